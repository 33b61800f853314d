"""``Registry``: name -> plug-in class, filled by a class decorator — one implementation for the
package's plug-in points (pruning criteria, sparsity schedules; peft's ``register_peft_method``
and open_lth's strategy registries play the same role).

A bottom-layer module: it imports nothing from ``bert_tickets``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Generic, TypeVar

T = TypeVar("T", bound=type)


class Registry(Generic[T]):
    """Plug-in classes by their ``name`` attribute, in registration order.

    Args:
        what: the kind of plug-in, in words (used in error messages, e.g. ``"pruning method"``).
    """

    def __init__(self, what: str):
        self.what = what
        self._items: dict[str, T] = {}

    def register(self, cls: T) -> T:
        """Class decorator: register ``cls`` under ``cls.name`` and return it unchanged.

        Raises:
            ValueError: ``cls.name`` is empty, or the name is taken by another class.
        """
        name = getattr(cls, "name", "")
        if not name:
            raise ValueError(f"{cls.__name__} has no name")
        if name in self._items and self._items[name] is not cls:
            raise ValueError(f"{self.what} {name!r} is already registered by {self._items[name].__name__}")
        self._items[name] = cls
        return cls

    def get(self, name: str) -> T:
        """The class registered as ``name``.

        Raises:
            ValueError: no such name (the message lists the registered ones).
        """
        if name not in self._items:
            raise ValueError(f"unknown {self.what} {name!r}; choose one of {', '.join(self._items)}")
        return self._items[name]

    def unregister(self, name: str) -> None:
        """Remove ``name`` (for tests that register a plug-in of their own)."""
        self._items.pop(name, None)

    def names(self) -> list[str]:
        """Registered names, in registration order."""
        return list(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._items))
