"""``Registry``: name -> plug-in class, filled by a class decorator — one implementation for the
package's plug-in points (pruning criteria, sparsity schedules, matrix rows, training-data
sources; peft's ``register_peft_method`` and open_lth's strategy registries play the same role) —
and the parsing of a plug-in's own options: each plug-in declares them as a dataclass next to it
(``Options``; open_lth's ``get_pruning_hparams(strategy)`` idea), and the command line reaches
them generically as ``KEY=VALUE`` entries (:func:`parse_options`).

A bottom-layer module: it imports nothing from ``bert_tickets``.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Generic, TypeVar

T = TypeVar("T", bound=type)


class Registry(Generic[T]):
    """Plug-in classes by their ``name`` attribute, in registration order.

    Args:
        what: the kind of plug-in, in words (used in error messages, e.g. ``"pruning method"``).
    """

    def __init__(self, what: str):
        self.what = what
        self._items: dict[str, T] = {}
        self._aliases: dict[str, str] = {}

    def register(self, cls: T) -> T:
        """Class decorator: register ``cls`` under ``cls.name`` (and the old spellings in
        ``cls.aliases``, if any) and return it unchanged.

        Raises:
            ValueError: ``cls.name`` is empty, or the name or an alias is taken by another class.
        """
        name = getattr(cls, "name", "")
        if not name:
            raise ValueError(f"{cls.__name__} has no name")
        for key in (name, *getattr(cls, "aliases", ())):
            owner = self._items.get(self._aliases.get(key, key))
            if owner is not None and owner is not cls:
                raise ValueError(f"{self.what} {key!r} is already registered by {owner.__name__}")
        self._items[name] = cls
        self._aliases.update({alias: name for alias in getattr(cls, "aliases", ())})
        return cls

    def canonical(self, name: str) -> str:
        """The registered name ``name`` stands for (itself, or the name it is an alias of).

        Raises:
            ValueError: no such name or alias (the message lists the registered names).
        """
        key = self._aliases.get(name, name)
        if key not in self._items:
            raise ValueError(f"unknown {self.what} {name!r}; choose one of {', '.join(self._items)}")
        return key

    def get(self, name: str) -> T:
        """The class registered as ``name`` (or under the alias ``name``).

        Raises:
            ValueError: no such name (the message lists the registered ones).
        """
        return self._items[self.canonical(name)]

    def unregister(self, name: str) -> None:
        """Remove ``name`` and its aliases (for tests that register a plug-in of their own)."""
        self._items.pop(name, None)
        self._aliases = {a: n for a, n in self._aliases.items() if n != name}

    def names(self) -> list[str]:
        """Registered names, in registration order."""
        return list(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items or name in self._aliases

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._items))


# ------------------------------------------------------------------ plug-in options
#: Spellings of ``True`` / ``False`` accepted for a ``bool`` option given as text.
_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")


def option_names(options_cls: type | None) -> dict[str, str]:
    """Every name an option of ``options_cls`` (a dataclass) may be given by -> the field's name:
    the field names and the spellings in each field's ``metadata["aliases"]`` (e.g. an option
    that was a command-line flag before options were declared by the plug-in)."""
    if options_cls is None:
        return {}
    out: dict[str, str] = {}
    for f in dataclasses.fields(options_cls):
        out[f.name] = f.name
        for alias in f.metadata.get("aliases", ()):
            out[alias.lstrip("-")] = f.name
    return out


def _convert(value: Any, kind: Any, where: str) -> Any:
    """``value`` (text from a command line, or already typed from JSON) as ``kind``."""
    args = [a for a in typing.get_args(kind) if a is not type(None)]
    optional = type(None) in typing.get_args(kind)
    if optional and (value is None or (isinstance(value, str) and value.lower() == "none")):
        return None
    target = args[0] if optional and len(args) == 1 else kind
    if not isinstance(value, str):
        if target is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        return value
    try:
        if target is bool:
            if value.lower() in _TRUE:
                return True
            if value.lower() in _FALSE:
                return False
            raise ValueError(value)
        if target in (int, float, str):
            return target(value)
    except ValueError:
        raise ValueError(f"{where}: {value!r} is not a {getattr(target, '__name__', target)}") from None
    return value


def parse_options(options_cls: type | None, given: Mapping[str, Any] | None, *, what: str) -> Any:
    """An instance of the plug-in's options dataclass ``options_cls`` from ``given`` (option
    name or alias -> value as text or typed); options not given keep their defaults, and the
    dataclass's ``__post_init__`` checks the ranges.

    Args:
        options_cls: the plug-in's ``Options`` dataclass, or ``None`` (a plug-in without options).
        given: name -> value; text is converted by the field's annotation (``int``, ``float``,
            ``bool``, ``str`` and their ``| None`` forms; ``none`` means ``None``).
        what: the plug-in, in words, for messages (e.g. ``"schedule adaptive"``).

    Returns:
        The options instance, or ``None`` when ``options_cls`` is ``None`` and nothing was given.

    Raises:
        ValueError: an unknown option (the message lists the plug-in's options), a value of the
            wrong type, or the dataclass's own range check (one line each).
    """
    given = dict(given or {})
    names = option_names(options_cls)
    unknown = [k for k in given if k not in names]
    if unknown:
        have = ", ".join(f.name for f in dataclasses.fields(options_cls)) if options_cls else "none"
        raise ValueError(f"{what} has no option {unknown[0]!r} (its options: {have})")
    if options_cls is None:
        return None
    hints = typing.get_type_hints(options_cls)
    values = {}
    for key, value in given.items():
        name = names[key]
        values[name] = _convert(value, hints[name], f"{what} option {name}")
    return options_cls(**values)


def split_assignments(entries: Sequence[str] | Mapping[str, Any] | None, *, flag: str) -> dict[str, Any]:
    """``KEY=VALUE`` entries (command line) or a mapping (JSON config) -> ``{KEY: VALUE}``.

    Raises:
        ValueError: an entry without ``=`` or with an empty key (one line naming ``flag``).
    """
    if entries is None:
        return {}
    if isinstance(entries, Mapping):
        return dict(entries)
    out: dict[str, Any] = {}
    for entry in entries:
        key, eq, value = str(entry).partition("=")
        if not eq or not key.strip():
            raise ValueError(f"{flag} {entry}: expected KEY=VALUE, e.g. {flag} steps=100")
        out[key.strip().lstrip("-")] = value
    return out


def options_help(options_cls: type | None) -> str:
    """One line per option of ``options_cls``: name, default and the field's ``help`` (for
    ``--help`` texts and the README)."""
    if options_cls is None:
        return "(no options)"
    return "; ".join(f"{f.name}={_default(f)}: {f.metadata.get('help', '')}".rstrip(": ") for f in dataclasses.fields(options_cls))


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return "required"
