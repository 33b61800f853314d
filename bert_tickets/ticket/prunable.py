"""Which weights of a BERT model are *prunable*, and how mask keys map onto a model.

The default prunable set is the one of Chen et al. 2020 (*The Lottery Ticket Hypothesis for
Pre-trained BERT Networks*, Section 3 and the released VITA-Group/BERT-Tickets code): the
``weight`` of every encoder layer's ``attention.self.{query,key,value}``,
``attention.output.dense``, ``intermediate.dense`` and ``output.dense``, plus ``pooler.dense``
when the model has a pooler. Embeddings, LayerNorm, biases and task heads are never pruned.
In bert-base this is 73 tensors and 85,524,480 weights.

Names ("mask keys") are relative to the backbone (``model.base_model``, i.e. the ``BertModel``
inside ``BertForSequenceClassification`` / ``BertForQuestionAnswering`` / ``BertForMaskedLM``),
e.g. ``encoder.layer.0.attention.self.query.weight``, so one mask fits every head.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable, Sequence

from torch import nn

logger = logging.getLogger(__name__)

#: Regular expressions (``re.fullmatch`` on backbone-relative parameter names) of the
#: BERT-Tickets prunable set.
DEFAULT_PRUNABLE_PATTERNS: tuple[str, ...] = (
    r"encoder\.layer\.\d+\.attention\.self\.(query|key|value)\.weight",
    r"encoder\.layer\.\d+\.attention\.output\.dense\.weight",
    r"encoder\.layer\.\d+\.intermediate\.dense\.weight",
    r"encoder\.layer\.\d+\.output\.dense\.weight",
    r"pooler\.dense\.weight",
)


def unwrap_model(model: nn.Module) -> nn.Module:
    """Strip the wrappers around a model: DDP / accelerate (``.module``) and PEFT
    (``PeftModel`` / ``PeftMixedModel`` -> ``get_base_model()``, a tuner such as ``LoraModel`` ->
    ``.model``). Returns the innermost model (e.g. ``BertForSequenceClassification``); a model
    without wrappers is returned unchanged. peft is never imported here: a model can only be a
    PEFT wrapper when peft is already loaded.
    """
    for _ in range(8):  # wrappers nest at most a few levels deep
        inner = None
        if hasattr(model, "module") and isinstance(model.module, nn.Module):
            inner = model.module
        elif _is_peft_wrapper(model):
            inner = model.get_base_model() if hasattr(model, "get_base_model") else model.model
        if inner is None or inner is model:
            return model
        model = inner
    return model


def _is_peft_wrapper(model: nn.Module) -> bool:
    peft = sys.modules.get("peft")
    if peft is None:
        return False
    from peft.tuners.tuners_utils import BaseTuner

    wrappers = tuple(c for c in (getattr(peft, "PeftModel", None), getattr(peft, "PeftMixedModel", None), BaseTuner) if c)
    return isinstance(model, wrappers)


def get_backbone(model: nn.Module) -> nn.Module:
    """Return the backbone (``BertModel``) of ``model``; mask keys are relative to it.

    Works for a bare ``BertModel``, any ``BertFor*`` head model (via ``base_model``), a model
    wrapped by DDP/accelerate (``.module``) and a PEFT-wrapped model (``PeftModel``, e.g. from
    ``peft.get_peft_model``; see :func:`unwrap_model`).
    """
    model = unwrap_model(model)
    base = getattr(model, "base_model", model)
    return base if isinstance(base, nn.Module) else model


def is_backbone_parameter(model: nn.Module, name: str) -> bool:
    """Whether ``name`` (a full parameter or state-dict name of ``model``, e.g.
    ``bert.encoder.layer.0.output.dense.weight``) belongs to the backbone rather than the task
    head: it starts with the model's ``base_model_prefix`` (``"bert"`` for BERT heads) and a dot."""
    return name.startswith(getattr(model, "base_model_prefix", "bert") + ".")


def canonical_parameter_name(name: str) -> str:
    """Parameter name with PEFT's wrapper segments removed.

    PEFT tuners (LoRA, IA3, LoHa, …) replace a layer by a wrapper holding the original layer as
    ``base_layer``, so ``encoder.layer.0.attention.self.query.weight`` becomes
    ``encoder.layer.0.attention.self.query.base_layer.weight``; this maps it back. Adapter
    parameters (``...query.lora_A.default.weight``) keep their own names and never match a
    prunable pattern.
    """
    return _BASE_LAYER.sub(".", name) if ".base_layer." in name else name


_BASE_LAYER = re.compile(r"\.base_layer\.")


def backbone_parameters(model: nn.Module) -> dict[str, nn.Parameter]:
    """Backbone parameters of ``model`` by canonical (mask-key) name (see
    :func:`canonical_parameter_name`), in model order. For an unwrapped model these are exactly
    ``get_backbone(model).named_parameters()``.

    Raises:
        ValueError: a layer is PEFT-wrapped while an adapter is merged into its base weight (a
            mask applied then would be undone by an unmerge); unmerge first or use
            :func:`bert_tickets.training.merge.merge_with_ticket`.
    """
    backbone = get_backbone(model)
    params: dict[str, nn.Parameter] = {}
    for name, param in backbone.named_parameters():
        canonical = canonical_parameter_name(name)
        if canonical != name:
            owner = backbone.get_submodule(name.rsplit(".base_layer.", 1)[0])
            if getattr(owner, "merged", False):
                raise ValueError(
                    f"{name.rsplit('.base_layer.', 1)[0]} has an adapter merged into its weight; call unmerge_adapter() "
                    "before applying a ticket, or merge with bert_tickets.training.merge.merge_with_ticket"
                )
        params.setdefault(canonical, param)
    return params


def _compile(patterns: Iterable[str] | None) -> list[re.Pattern]:
    try:
        return [re.compile(p) for p in (patterns or ())]
    except re.error as err:
        raise ValueError(f"invalid prunable-weight regex: {err}") from None


def prunable_parameters(
    model: nn.Module,
    patterns: Sequence[str] | None = None,
    exclude: Sequence[str] | None = None,
) -> dict[str, nn.Parameter]:
    """Select the prunable weights of ``model``.

    Args:
        model: a BERT model (bare backbone or any head model, possibly PEFT-wrapped: names are
            canonical, see :func:`canonical_parameter_name`).
        patterns: regexes matched with ``re.fullmatch`` against backbone-relative parameter
            names; default :data:`DEFAULT_PRUNABLE_PATTERNS` (the BERT-Tickets set).
        exclude: regexes (``re.fullmatch``) of names to leave out of the selected set, e.g.
            ``["pooler\\..*"]``.

    Returns:
        Ordered dict (model parameter order) backbone-relative name -> parameter (float tensor
        of any shape, usually 2-D ``(out_features, in_features)``).

    Raises:
        ValueError: a regex does not compile, or no parameter matches.
    """
    include = _compile(patterns if patterns is not None else DEFAULT_PRUNABLE_PATTERNS)
    excl = _compile(exclude)
    selected = {
        name: p
        for name, p in backbone_parameters(model).items()
        if any(r.fullmatch(name) for r in include) and not any(r.fullmatch(name) for r in excl)
    }
    if not selected:
        raise ValueError(
            f"no prunable weights matched in {type(model).__name__} "
            f"(patterns {list(patterns or DEFAULT_PRUNABLE_PATTERNS)}, exclude {list(exclude or [])})"
        )
    return selected


def resolve_mask_targets(model: nn.Module, shapes: dict[str, Sequence[int]]) -> dict[str, nn.Parameter]:
    """Map mask keys to the parameters of ``model`` they apply to, validating shapes.

    A key whose top-level module is absent from the backbone (the pooler of a model built with
    ``add_pooling_layer=False``, as in ``BertForMaskedLM`` / ``BertForQuestionAnswering``) is
    skipped with a logged note. Every other key must name an existing parameter of the same
    shape. Nothing is modified. In a PEFT-wrapped model (``peft.get_peft_model``) a key resolves
    to the wrapped layer's ``base_layer`` parameter (LoRA renames ``...query.weight`` to
    ``...query.base_layer.weight``).

    Args:
        model: the target model.
        shapes: mask key -> expected parameter shape.

    Returns:
        Dict mask key -> parameter, for every key that has a target.

    Raises:
        ValueError: a key has no parameter in the model (other than the skippable case above), or
            a shape differs, or an adapter is merged into a wrapped layer. The message names the
            first offending key.
    """
    backbone = get_backbone(model)
    params = backbone_parameters(model)
    targets: dict[str, nn.Parameter] = {}
    for key, shape in shapes.items():
        param = params.get(key)
        if param is None:
            top = key.split(".", 1)[0]
            if getattr(backbone, top, None) is None:
                logger.info("mask key %s skipped: %s has no '%s' module", key, type(model).__name__, top)
                continue
            raise ValueError(f"mask key {key!r} has no parameter in {type(model).__name__} (mask is for another architecture?)")
        if tuple(param.shape) != tuple(shape):
            raise ValueError(f"mask key {key!r} has shape {tuple(shape)} but the model's parameter has shape {tuple(param.shape)}")
        targets[key] = param
    if not targets and shapes:
        raise ValueError(f"no mask key matches a parameter of {type(model).__name__}")
    return targets
