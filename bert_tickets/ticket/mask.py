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
* ``ticket_config.json`` — format version, shapes of every masked tensor, the metadata
  fields of :class:`TicketMetadata` (base model and revision, task, level, target and achieved
  sparsity, schedule, criterion and its options, rewind step, cost, parent level and lineage,
  data split, sanity transform, free notes in ``extra``; version 1 kept the provenance in
  ``extra`` and is read unchanged), the versions of the libraries that wrote it, and the
  sha256 of ``ticket_mask.safetensors`` (``mask_sha256``; checked on load when present — it
  equals the Hub's LFS object id of the file).
* ``README.md`` — a model card, when one is given (:mod:`bert_tickets.publish` renders it).

A ticket is loaded from a local directory or from a Hugging Face Hub repository
(:meth:`TicketMask.from_pretrained`, :func:`bert_tickets.ticket.load.load_ticket`) and pushed with
:meth:`TicketMask.push_to_hub`.

Files are written to a temporary name and renamed into place, so an interrupted save never
leaves a half-written ticket.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.numpy import load as np_load_bytes
from safetensors.numpy import save as np_save_bytes
from torch import nn

from .._io import atomic_write_bytes, atomic_write_dir, canonical_safetensors, derived_seed, first_line, library_versions
from .format import CONFIG_FILE, FORMAT_NAME, FORMAT_VERSION, MASK_FILE, MASK_FORMAT_VERSION, README_FILE, read_ticket_config
from .prunable import DEFAULT_PRUNABLE_PATTERNS, prunable_parameters, resolve_mask_targets

#: ``extra`` keys of a version-1 ticket that are typed fields in version 2 (same names).
V1_EXTRA_FIELDS = ("criterion_options", "cost", "parent_level", "data_split", "sanity")


@dataclass
class TicketMetadata:
    """Provenance of a ticket (stored in ``ticket_config.json``, format version 2): every field
    that decides a result is typed; ``extra`` holds free notes.

    Attributes:
        base_model: Hub id or path of the model whose θ0 the ticket selects from.
        base_model_revision: revision of ``base_model`` (a commit sha for a Hub model,
            ``sha256:<hex>`` of the weights for a local one).
        task: task the ticket was found on (e.g. ``"rte"``), or ``None``.
        level: IMP level (0 = dense).
        target_sparsity: sparsity the level aimed at (fraction in [0, 1)).
        schedule: the registered schedule that chose the level's sparsity, or ``None``.
        criterion: the registered criterion that chose the pruned weights (``"magnitude"``,
            ``"random"``, ``"snip"``, …; ``"dense"`` for no pruning). Version 1 called it
            ``pruning_method`` (still readable and writable as the attribute ``pruning_method``).
        criterion_options: the criterion's options (its ``Options`` as JSON; ``{}`` when it has none).
        pruning_scope: ``"global"`` (one ranking over all tensors) or ``"layerwise"``.
        max_tensor_sparsity: per-tensor sparsity cap of global pruning, or ``None``.
        exclude_patterns: regexes of weights left out of the prunable set (e.g. the pooler).
        rewind_step: training step the surviving weights are rewound to (0 = θ0).
        prunable_patterns: regexes that selected the prunable weights.
        cost: what producing the mask spent, summed over its lineage (keys of
            :data:`bert_tickets.pruning.COST_KEYS`: ``train_steps``, ``score_forward``,
            ``score_backward``; non-negative ints); ``{}`` when none is recorded.
        parent_level: the level whose ticket and trained weights this mask was pruned from
            (``None`` for dense or a mask not found by IMP).
        lineage: every level on the mask's line of descent, level 0 first (``[0, 1]`` for a
            level-2 ticket of a linear run); ``[]`` when not found by IMP.
        data_split: how the training data were split off locally (e.g. SQuAD's dev set split by
            article), or ``None``: scores are then not comparable with the official ones.
        sanity: the sanity transform applied to the mask (``{"kind": "layer_shuffle", "seed": s}``),
            or ``None``.
        extra: free-form JSON-serialisable notes (what the model kind says about the model, the
            prune-at-init command's spec, a published ticket's evaluation …).
    """

    base_model: str | None = None
    base_model_revision: str | None = None
    task: str | None = None
    level: int = 0
    target_sparsity: float = 0.0
    schedule: str | None = None
    criterion: str = "dense"
    criterion_options: dict[str, Any] = field(default_factory=dict)
    pruning_scope: str = "global"
    max_tensor_sparsity: float | None = None
    exclude_patterns: list[str] = field(default_factory=list)
    rewind_step: int = 0
    prunable_patterns: list[str] = field(default_factory=lambda: list(DEFAULT_PRUNABLE_PATTERNS))
    cost: dict[str, int] = field(default_factory=dict)
    parent_level: int | None = None
    lineage: list[int] = field(default_factory=list)
    data_split: str | None = None
    sanity: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def pruning_method(self) -> str:
        """The criterion's name, under its version-1 field name."""
        return self.criterion

    @pruning_method.setter
    def pruning_method(self, value: str) -> None:
        self.criterion = value

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> TicketMetadata:
        """The metadata of a ``ticket_config.json`` (version 1 or 2): a version-1 file's
        ``pruning_method`` becomes ``criterion`` and its ``extra`` keys of
        :data:`V1_EXTRA_FIELDS` the typed fields; unknown keys are ignored.

        Raises:
            TypeError: a field of the wrong kind (e.g. a list where a mapping belongs).
        """
        cfg = dict(cfg)
        if cfg.get("format_version", 1) == 1:
            extra = dict(cfg.get("extra") or {})
            cfg.update({k: extra.pop(k) for k in V1_EXTRA_FIELDS if k in extra})
            cfg["extra"] = extra
            if "pruning_method" in cfg:
                cfg["criterion"] = cfg.pop("pruning_method")
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in cfg.items() if k in known})


def _read_bytes(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


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

    def overlap(self, other: TicketMask) -> dict[str, float | int]:
        """How much two masks over the same tensors agree (McDermott et al. 2023 compare the masks
        of IMP on distilled data with real-data IMP's at the same sparsity):

        * ``hamming``: positions where the masks differ / prunable weights (a fraction in [0, 1]);
        * ``jaccard_pruned``: |pruned in both| / |pruned in either| (1 for the same pruned set;
          for two independent random masks at sparsity s it is about s / (2 - s));
        * ``differ`` and ``pruned_both``: the counts.

        Raises:
            ValueError: the masks cover different tensors or shapes.
        """
        if self.shapes != other.shapes:
            raise ValueError("the two tickets mask different tensors (or shapes): no overlap to compute")
        differ = sum(int(torch.count_nonzero(self.masks[n] ^ other.masks[n])) for n in self.masks)
        both = sum(int(torch.count_nonzero(~self.masks[n] & ~other.masks[n])) for n in self.masks)
        either = sum(int(torch.count_nonzero(~self.masks[n] | ~other.masks[n])) for n in self.masks)
        return {
            "hamming": differ / self.num_prunable,
            "jaccard_pruned": both / either if either else 1.0,
            "differ": differ,
            "pruned_both": both,
        }

    def layer_shuffled(self, seed: int) -> TicketMask:
        """The sanity check of Frankle et al. 2021 (*Pruning Neural Networks at Initialization:
        Why are We Missing the Mark?*, Section 5): each tensor's mask entries permuted at random
        (a ``torch.Generator`` seeded with ``seed * 100003 + i`` for the i-th tensor), so every
        tensor keeps its count of pruned weights (its per-tensor sparsity) but not *which*
        weights. Metadata is copied with ``sanity = {"kind": "layer_shuffle", "seed": seed}``."""
        out = {}
        for i, (name, m) in enumerate(self.masks.items()):
            gen = torch.Generator().manual_seed(derived_seed(seed, i))
            flat = m.reshape(-1)
            out[name] = flat[torch.randperm(flat.numel(), generator=gen)].reshape(m.shape)
        meta = copy.deepcopy(self.metadata)
        meta.sanity = {"kind": "layer_shuffle", "seed": int(seed)}
        return TicketMask(out, meta)

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

    def apply(self, model: nn.Module, strict: bool = False) -> nn.Module:
        """Zero the pruned weights of ``model`` in place (after validating every key first).

        ``model`` may be PEFT-wrapped (the mask then acts on each wrapped layer's
        ``base_layer`` weight). When ``model`` was loaded from another checkpoint than the
        ticket's ``base_model`` (``config._name_or_path``, or a different commit sha), a
        :class:`~bert_tickets.ticket.base_model.BaseModelMismatchWarning` is issued — or, with ``strict=True``,
        a ``ValueError`` is raised before anything is touched (see
        :func:`bert_tickets.ticket.base_model.check_base_model`).

        Returns:
            ``model`` itself, so ``mask.apply(AutoModel...from_pretrained(...))`` chains.

        Raises:
            ValueError: see :meth:`validate`, or a base-model mismatch with ``strict=True``; the
                model is unchanged in that case.
        """
        from .base_model import check_base_model

        targets = self.validate(model)
        check_base_model(self, model, strict=strict)
        with torch.no_grad():
            for name, param in targets.items():
                param.mul_(self.masks[name].to(param.device))
        return model

    def count_nonzero_pruned(self, model: nn.Module) -> int:
        """Number of pruned positions whose weight in ``model`` is not exactly zero (0 after
        :meth:`apply` or training with :class:`~bert_tickets.training.callback.TicketCallback`)."""
        targets = self.validate(model)
        with torch.no_grad():
            return sum(int(torch.count_nonzero(p.detach()[~self.masks[n].to(p.device)])) for n, p in targets.items())

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

    def save_pretrained(self, directory: str | os.PathLike, model_card: Any = None) -> Path:
        """Write ``ticket_mask.safetensors`` (bit-packed) and ``ticket_config.json`` (and the
        model card) to ``directory``.

        The bytes are deterministic: the same mask and metadata give the same mask file, byte
        for byte, in every process (:func:`~bert_tickets._io.canonical_safetensors`), so the
        ``mask_sha256`` recorded in the config always describes the file next to it. A new
        directory is written as one unit (a temporary directory, then a rename), so a crash
        leaves no half-written ticket. A directory that already holds this very ticket (same
        mask bytes, same metadata) is left untouched; any other existing directory (it may hold
        other files) gets each file through a temporary file + rename, the config last.

        Args:
            directory: target directory.
            model_card: optional model card (``str`` or ``huggingface_hub.ModelCard``) written
                as ``README.md``.

        Returns:
            The directory path.
        """
        directory = Path(directory)
        data = self._mask_bytes()
        config = {**self.to_config(), "mask_sha256": hashlib.sha256(data).hexdigest(), "library_versions": library_versions()}
        files = {MASK_FILE: data, CONFIG_FILE: (json.dumps(config, indent=2) + "\n").encode()}
        if model_card is not None:
            files[README_FILE] = str(model_card).encode()

        def write_all(target: Path) -> None:
            for name, blob in files.items():
                atomic_write_bytes(target / name, blob)

        if not directory.exists():
            atomic_write_dir(directory, write_all)
        elif not self._holds_same_ticket(directory, data) or (
            model_card is not None and _read_bytes(directory / README_FILE) != files[README_FILE]
        ):
            write_all(directory)  # the mask first, the config (with its sha) last
        return directory

    def _mask_bytes(self) -> bytes:
        """The mask file's bytes: bit-packed masks, canonical safetensors header."""
        packed = {n: np.packbits(m.numpy().reshape(-1)) for n, m in self.masks.items()}
        header = {"format": FORMAT_NAME, "format_version": str(MASK_FORMAT_VERSION)}
        return canonical_safetensors(np_save_bytes(packed, metadata=header))

    def mask_sha256(self) -> str:
        """The sha256 (hex) of the mask file :meth:`save_pretrained` writes: equal for equal
        masks (names, shapes and bits), in every process."""
        return hashlib.sha256(self._mask_bytes()).hexdigest()

    def _holds_same_ticket(self, directory: Path, data: bytes) -> bool:
        """Whether ``directory`` already holds these mask bytes and this metadata."""
        if _read_bytes(directory / MASK_FILE) != data:
            return False
        try:
            config = json.loads((directory / CONFIG_FILE).read_text())
        except (OSError, ValueError):
            return False
        mine = self.to_config()
        return config.get("mask_sha256") == hashlib.sha256(data).hexdigest() and {k: config.get(k) for k in mine} == json.loads(
            json.dumps(mine)
        )

    save = save_pretrained

    @classmethod
    def from_pretrained(
        cls,
        repo_id_or_dir: str | os.PathLike,
        revision: str | None = None,
        cache_dir: str | os.PathLike | None = None,
        local_files_only: bool = False,
        token: str | bool | None = None,
        subfolder: str | None = None,
    ) -> TicketMask:
        """Load a ticket saved by :meth:`save_pretrained` from a local directory or a Hub repo.

        ``repo_id_or_dir`` is read as a local directory when it is one (joined with
        ``subfolder``), or when it cannot be a Hub repo id (e.g. ``runs/rte/level_05/ticket``);
        otherwise it is a Hub repo id (``"alice/bert-base-uncased-rte-ticket"``) whose
        ``ticket_config.json`` and ``ticket_mask.safetensors`` are fetched with
        ``huggingface_hub.hf_hub_download`` into the Hugging Face cache (honouring
        ``HF_HUB_OFFLINE`` / ``local_files_only``). One run's levels live on branches such as
        ``revision="sparsity-60"`` (see :mod:`bert_tickets.ticket.hub`).

        Only safetensors and JSON are read (nothing is unpickled); the format version is checked
        before the mask file is read; names, sizes, the pruned count and the file's sha256 (when
        recorded) are checked before a :class:`TicketMask` is built.

        Args:
            repo_id_or_dir: local directory or Hub repo id.
            revision: Hub branch, tag or commit sha (Hub only; default ``"main"``).
            cache_dir: Hugging Face cache directory (Hub only; default ``HF_HUB_CACHE``).
            local_files_only: never reach the network, use the cache (Hub only).
            token: Hub token (Hub only).
            subfolder: folder inside the directory / repo holding the ticket files.

        Raises:
            FileNotFoundError: a file is missing, the repo / revision / file does not exist on
                the Hub or (offline) in the cache.
            ValueError: unknown format or version, a corrupted/truncated mask file, or tensor
                names/sizes that disagree with the config.
        """
        directory = Path(repo_id_or_dir) / subfolder if subfolder else Path(repo_id_or_dir)
        if not directory.is_dir():
            from .hub import download_ticket, is_hub_repo_id

            if is_hub_repo_id(repo_id_or_dir):
                directory = download_ticket(
                    str(repo_id_or_dir),
                    revision=revision,
                    cache_dir=cache_dir,
                    local_files_only=local_files_only,
                    token=token,
                    subfolder=subfolder,
                )
        return cls._from_directory(directory)

    @classmethod
    def _from_directory(cls, directory: Path) -> TicketMask:
        cfg_path, mask_path = directory / CONFIG_FILE, directory / MASK_FILE
        for path in (cfg_path, mask_path):
            if not path.is_file():
                raise FileNotFoundError(f"no ticket at {directory}: missing {path.name}")
        cfg = read_ticket_config(cfg_path, str(cfg_path))
        data = mask_path.read_bytes()
        expected_sha = cfg.get("mask_sha256")
        if expected_sha is not None and hashlib.sha256(data).hexdigest() != expected_sha:
            raise ValueError(f"{mask_path} is corrupted or truncated: its sha256 differs from the mask_sha256 recorded in {CONFIG_FILE}")
        try:
            packed = np_load_bytes(data)
        except (SafetensorError, OSError, ValueError) as err:
            raise ValueError(f"{mask_path} is corrupted or truncated: {first_line(err)}") from None
        shapes_cfg = cfg.get("shapes")
        if not isinstance(shapes_cfg, dict) or not shapes_cfg:
            raise ValueError(f"{cfg_path}: missing or empty 'shapes'")
        try:
            shapes = {n: tuple(int(d) for d in s) for n, s in shapes_cfg.items()}
        except (TypeError, ValueError):
            raise ValueError(f"{cfg_path}: 'shapes' must map tensor names to lists of integers") from None
        if set(packed) != set(shapes):
            diff = sorted(set(packed) ^ set(shapes))
            raise ValueError(f"{mask_path} and {CONFIG_FILE} disagree on tensor {diff[0]!r}")
        masks = {}
        kept = total = 0
        for name, shape in shapes.items():
            numel = math.prod(shape)
            arr = packed[name]
            if arr.dtype != np.uint8 or arr.ndim != 1 or arr.size != (numel + 7) // 8:
                raise ValueError(f"{mask_path}: tensor {name!r} has {arr.size} bytes, expected {(numel + 7) // 8} for shape {shape}")
            bits = np.unpackbits(arr, count=numel).view(np.bool_)  # fresh 0/1 uint8 array: a bool view is exact
            kept += int(np.count_nonzero(bits))
            total += numel
            masks[name] = torch.from_numpy(bits.reshape(shape))
        try:
            metadata = TicketMetadata.from_config(cfg)
        except TypeError as err:
            raise ValueError(f"{cfg_path}: invalid metadata: {err}") from None
        if "num_pruned" in cfg and total - kept != cfg["num_pruned"]:
            raise ValueError(f"{mask_path}: {total - kept} pruned weights but the config records {cfg['num_pruned']}")
        return cls(masks, metadata)

    load = from_pretrained

    def push_to_hub(
        self,
        repo_id: str,
        *,
        revision: str | None = None,
        private: bool | None = None,
        token: str | bool | None = None,
        commit_message: str | None = None,
        model_card: Any = None,
        create_pr: bool = False,
        api: Any = None,
    ):
        """Upload this ticket (mask, config and a model card ``README.md``) to a Hub repo.

        Through ``huggingface_hub.HfApi`` only: ``create_repo(exist_ok=True)``,
        ``create_branch`` when ``revision`` names a branch other than ``main``, then one
        ``upload_folder`` commit. Implemented by :func:`bert_tickets.publish.push_ticket` (registered with
        :func:`bert_tickets.ticket.hub.register_pusher`); see it for the arguments
        (``model_card`` defaults to a card rendered from this ticket's metadata).

        Returns:
            The ``huggingface_hub.CommitInfo`` of the upload.
        """
        from .hub import ticket_pusher

        return ticket_pusher()(
            self,
            repo_id,
            revision=revision,
            private=private,
            token=token,
            commit_message=commit_message,
            model_card=model_card,
            create_pr=create_pr,
            api=api,
        )

    def __repr__(self) -> str:
        m = self.metadata
        return (
            f"TicketMask(tensors={len(self.masks)}, prunable={self.num_prunable}, pruned={self.num_pruned}, "
            f"sparsity={self.sparsity:.4f}, level={m.level}, task={m.task!r}, base_model={m.base_model!r})"
        )
