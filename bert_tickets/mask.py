"""`TicketMask`: a lottery-ticket mask over a BERT model's prunable weights, with metadata.

A *ticket* is a mask plus the weights it selects from the pre-trained weights θ0 (Chen et al.
2020). The weights live in the base model; this artifact stores only the mask (bit-packed, ≤ 1
bit per prunable weight) and a JSON config naming the base model, so it travels like a PEFT
adapter.

On-disk format (a directory), version :data:`FORMAT_VERSION`:

* ``ticket_mask.safetensors`` — one ``uint8`` tensor per masked weight, key = backbone-relative
  parameter name, holding ``numpy.packbits`` of the flattened mask (``True`` = kept; big bit
  order), i.e. ``ceil(numel / 8)`` bytes. The safetensors header metadata repeats the format
  name and version.
* ``ticket_config.json`` — format version, shapes of every masked tensor, and the metadata
  fields of :class:`TicketMask` (base model and revision, task, level, target and achieved
  sparsity, schedule, rewind step, …).

Files are written to a temporary name and renamed into place, so an interrupted save never
leaves a half-written ticket.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.numpy import load_file as np_load_file
from safetensors.numpy import save_file as np_save_file
from torch import nn

from .prunable import DEFAULT_PRUNABLE_PATTERNS, prunable_parameters, resolve_mask_targets

FORMAT_NAME = "bert-tickets-mask"
FORMAT_VERSION = 1
MASK_FILE = "ticket_mask.safetensors"
CONFIG_FILE = "ticket_config.json"


@dataclass
class TicketMetadata:
    """Provenance of a ticket (stored in ``ticket_config.json``).

    Attributes:
        base_model: Hub id or path of the model whose θ0 the ticket selects from.
        base_model_revision: revision (commit sha when known) of ``base_model``.
        task: task the ticket was found on (e.g. ``"rte"``), or ``None``.
        level: IMP level (0 = dense).
        target_sparsity: sparsity the level aimed at (fraction in [0, 1)).
        schedule: ``"linear"`` / ``"geometric"`` / ``None``.
        pruning_method: ``"magnitude"``, ``"random"`` or ``"dense"``.
        pruning_scope: ``"global"`` (one ranking over all tensors) or ``"layerwise"``.
        max_tensor_sparsity: per-tensor sparsity cap of global pruning, or ``None``.
        exclude_patterns: regexes of weights left out of the prunable set (e.g. the pooler).
        rewind_step: training step the surviving weights are rewound to (0 = θ0).
        prunable_patterns: regexes that selected the prunable weights.
        extra: free-form JSON-serialisable extras (metrics, hyperparameters, versions …).
    """

    base_model: str | None = None
    base_model_revision: str | None = None
    task: str | None = None
    level: int = 0
    target_sparsity: float = 0.0
    schedule: str | None = None
    pruning_method: str = "dense"
    pruning_scope: str = "global"
    max_tensor_sparsity: float | None = None
    exclude_patterns: list[str] = field(default_factory=list)
    rewind_step: int = 0
    prunable_patterns: list[str] = field(default_factory=lambda: list(DEFAULT_PRUNABLE_PATTERNS))
    extra: dict[str, Any] = field(default_factory=dict)


def _atomic_write(path: Path, write) -> None:
    """Call ``write(tmp_path)`` then rename ``tmp_path`` onto ``path`` (same directory)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and an atomic rename."""

    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)

    _atomic_write(Path(path), write)


class TicketMask:
    """Mask over the prunable weights of a BERT model (``True`` = kept), plus metadata.

    Args:
        masks: backbone-relative parameter name -> ``torch.bool`` tensor of the parameter's
            shape (e.g. ``(768, 768)`` for a query weight). Kept on CPU.
        metadata: :class:`TicketMetadata` (defaults to an empty one).

    Raises:
        ValueError: a mask is not a ``torch.bool`` tensor, or ``masks`` is empty.
    """

    def __init__(self, masks: Mapping[str, torch.Tensor], metadata: TicketMetadata | None = None):
        if not masks:
            raise ValueError("a TicketMask needs at least one masked tensor")
        for name, m in masks.items():
            if not isinstance(m, torch.Tensor) or m.dtype != torch.bool:
                raise ValueError(f"mask for {name!r} must be a torch.bool tensor, got {getattr(m, 'dtype', type(m))}")
        self.masks: dict[str, torch.Tensor] = {n: m.detach().to("cpu") for n, m in masks.items()}
        self.metadata = metadata if metadata is not None else TicketMetadata()

    # ----------------------------------------------------------------- construction
    @classmethod
    def dense(
        cls,
        model: nn.Module,
        patterns: list[str] | None = None,
        exclude: list[str] | None = None,
        metadata: TicketMetadata | None = None,
    ) -> TicketMask:
        """All-kept mask over ``prunable_parameters(model, patterns, exclude)`` (level 0).

        Raises:
            ValueError: no prunable weight matched.
        """
        params = prunable_parameters(model, patterns, exclude)
        meta = metadata if metadata is not None else TicketMetadata()
        if patterns is not None:
            meta.prunable_patterns = list(patterns)
        if exclude:
            meta.exclude_patterns = list(exclude)
        return cls({n: torch.ones(p.shape, dtype=torch.bool) for n, p in params.items()}, meta)

    # ----------------------------------------------------------------- counts
    @property
    def shapes(self) -> dict[str, tuple[int, ...]]:
        """Name -> shape of every masked tensor."""
        return {n: tuple(m.shape) for n, m in self.masks.items()}

    @property
    def num_prunable(self) -> int:
        """``N``: number of prunable weights covered by the mask."""
        return sum(m.numel() for m in self.masks.values())

    @property
    def num_pruned(self) -> int:
        """Number of pruned (``False``) positions."""
        return sum(m.numel() - int(m.count_nonzero()) for m in self.masks.values())

    @property
    def sparsity(self) -> float:
        """Achieved global sparsity: pruned / prunable, a fraction in [0, 1]."""
        return self.num_pruned / self.num_prunable

    def per_tensor_sparsity(self) -> dict[str, float]:
        """Name -> fraction of that tensor's weights pruned."""
        return {n: 1.0 - int(m.count_nonzero()) / m.numel() for n, m in self.masks.items()}

    # ----------------------------------------------------------------- model I/O
    def validate(self, model: nn.Module) -> dict[str, nn.Parameter]:
        """Check names and shapes against ``model`` without touching any weight.

        Returns:
            Mask key -> target parameter (keys without a target module, such as the pooler on a
            model without one, are skipped with a logged note).

        Raises:
            ValueError: a key names no parameter of ``model`` or a shape differs.
        """
        return resolve_mask_targets(model, self.shapes)

    def apply(self, model: nn.Module) -> nn.Module:
        """Zero the pruned weights of ``model`` in place (after validating every key first).

        Returns:
            ``model`` itself, so ``mask.apply(AutoModel...from_pretrained(...))`` chains.

        Raises:
            ValueError: see :meth:`validate`; the model is unchanged in that case.
        """
        targets = self.validate(model)
        with torch.no_grad():
            for name, param in targets.items():
                param.mul_(self.masks[name].to(param.device))
        return model

    def count_nonzero_pruned(self, model: nn.Module) -> int:
        """Number of pruned positions whose weight in ``model`` is not exactly zero (0 after
        :meth:`apply` or training with :class:`~bert_tickets.callback.TicketCallback`)."""
        targets = self.validate(model)
        with torch.no_grad():
            return sum(
                int(torch.count_nonzero(p.detach()[~self.masks[n].to(p.device)])) for n, p in targets.items()
            )

    # ----------------------------------------------------------------- save / load
    def to_config(self) -> dict[str, Any]:
        """The JSON-serialisable content of ``ticket_config.json``."""
        return {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            **asdict(self.metadata),
            "sparsity": self.sparsity,
            "num_pruned": self.num_pruned,
            "num_prunable": self.num_prunable,
            "shapes": {n: list(s) for n, s in self.shapes.items()},
            "per_tensor_sparsity": self.per_tensor_sparsity(),
        }

    def save_pretrained(self, directory: str | os.PathLike) -> Path:
        """Write ``ticket_mask.safetensors`` (bit-packed) and ``ticket_config.json`` to
        ``directory`` (created if needed), each through a temporary file + rename.

        Returns:
            The directory path.
        """
        directory = Path(directory)
        packed = {n: np.packbits(m.numpy().reshape(-1)) for n, m in self.masks.items()}
        header = {"format": FORMAT_NAME, "format_version": str(FORMAT_VERSION)}
        _atomic_write(directory / MASK_FILE, lambda tmp: np_save_file(packed, tmp, metadata=header))
        atomic_write_text(directory / CONFIG_FILE, json.dumps(self.to_config(), indent=2) + "\n")
        return directory

    save = save_pretrained

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike) -> TicketMask:
        """Load a ticket saved by :meth:`save_pretrained` from a local directory.

        Only safetensors and JSON are read (nothing is unpickled).

        Raises:
            FileNotFoundError: a file is missing.
            ValueError: unknown format or version, a corrupted/truncated mask file, or tensor
                names/sizes that disagree with the config.
        """
        directory = Path(directory)
        cfg_path, mask_path = directory / CONFIG_FILE, directory / MASK_FILE
        for path in (cfg_path, mask_path):
            if not path.is_file():
                raise FileNotFoundError(f"no ticket at {directory}: missing {path.name}")
        try:
            cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise ValueError(f"{cfg_path} is not valid JSON: {err}") from None
        if cfg.get("format") != FORMAT_NAME or cfg.get("format_version") != FORMAT_VERSION:
            raise ValueError(
                f"{cfg_path}: unsupported ticket format {cfg.get('format')!r} version {cfg.get('format_version')!r} "
                f"(this bert-tickets reads {FORMAT_NAME!r} version {FORMAT_VERSION})"
            )
        try:
            packed = np_load_file(str(mask_path))
        except (SafetensorError, OSError, ValueError) as err:
            raise ValueError(f"{mask_path} is corrupted or truncated: {err}") from None
        shapes = {n: tuple(s) for n, s in cfg["shapes"].items()}
        if set(packed) != set(shapes):
            diff = sorted(set(packed) ^ set(shapes))
            raise ValueError(f"{mask_path} and {CONFIG_FILE} disagree on tensor {diff[0]!r}")
        masks = {}
        for name, shape in shapes.items():
            numel = math.prod(shape)
            arr = packed[name]
            if arr.dtype != np.uint8 or arr.ndim != 1 or arr.size != (numel + 7) // 8:
                raise ValueError(f"{mask_path}: tensor {name!r} has {arr.size} bytes, expected {(numel + 7) // 8} for shape {shape}")
            bits = np.unpackbits(arr, count=numel).astype(bool)
            masks[name] = torch.from_numpy(bits.reshape(shape))
        known = {f.name for f in fields(TicketMetadata)}
        metadata = TicketMetadata(**{k: v for k, v in cfg.items() if k in known})
        ticket = cls(masks, metadata)
        if ticket.num_pruned != cfg.get("num_pruned", ticket.num_pruned):
            raise ValueError(f"{mask_path}: {ticket.num_pruned} pruned weights but the config records {cfg['num_pruned']}")
        return ticket

    load = from_pretrained

    def __repr__(self) -> str:
        m = self.metadata
        return (
            f"TicketMask(tensors={len(self.masks)}, prunable={self.num_prunable}, pruned={self.num_pruned}, "
            f"sparsity={self.sparsity:.4f}, level={m.level}, task={m.task!r}, base_model={m.base_model!r})"
        )
