"""A physically smaller model from a structured ticket (issue 22, item 3): the pruned attention
heads and FFN neurons are sliced out of the fine-tuned weights.

Why the outputs do not change: a head whose query / key / value rows and attention-output
columns are all pruned still has its Q/K/V *biases*, but what it produces reaches the residual
stream only through its attention-output columns, which are 0 — so it adds nothing; likewise a
neuron whose intermediate row and output column are pruned adds ``0 · act(bias)``. Removing them
leaves every logit equal up to float rounding (checked by ``export --compact``: max |Δ logits| on
the evaluation split is printed, and refused above 1e-4).

Which checkpoint (the issue leaves it to us): when no head was removed and every layer keeps
the same FFN width, the compact model *is* a BERT (``intermediate_size`` = that width): a plain
``BertConfig`` that loads without remote code. Otherwise (per-layer head counts or widths;
BERT's config has one head count and the head size is tied to it) the checkpoint ships
:mod:`bert_tickets.publish.modeling_compact_bert` through ``auto_map``: it loads with
``AutoModelFor….from_pretrained(DIR, trust_remote_code=True)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..ticket import TicketMask
from . import modeling_compact_bert as mcb

_Q, _K, _V = (f"attention.self.{k}" for k in ("query", "key", "value"))
_O, _I, _F = "attention.output.dense", "intermediate.dense", "output.dense"


@dataclass
class CompactPlan:
    """What survives: per layer, the kept head indices and the kept FFN unit indices."""

    heads: list[list[int]]
    neurons: list[list[int]]
    num_heads: int
    intermediate: int

    @property
    def plain(self) -> bool:
        """No head removed and one FFN width everywhere: a plain BERT checkpoint suffices."""
        return all(len(h) == self.num_heads for h in self.heads) and len({len(n) for n in self.neurons}) == 1


def compact_plan(ticket: TicketMask, config) -> CompactPlan:
    """The heads and neurons of every layer with at least one kept weight in ``ticket`` (a head:
    its Q/K/V rows and attention-output columns; a neuron: its intermediate row and output column;
    backbone-relative mask names). Tensors outside the ticket count as kept."""
    d = config.hidden_size // config.num_attention_heads
    heads, neurons = [], []
    for i in range(config.num_hidden_layers):
        prefix = f"encoder.layer.{i}."

        def kept(part: str, axis: int, sl: slice, prefix=prefix) -> bool:
            mask = ticket.masks.get(prefix + part + ".weight")
            if mask is None:
                return True
            return bool((mask[sl] if axis == 0 else mask[:, sl]).any())

        layer_heads = [
            h
            for h in range(config.num_attention_heads)
            if any(kept(p, 0, slice(h * d, (h + 1) * d)) for p in (_Q, _K, _V)) or kept(_O, 1, slice(h * d, (h + 1) * d))
        ]
        layer_neurons = [j for j in range(config.intermediate_size) if kept(_I, 0, slice(j, j + 1)) or kept(_F, 1, slice(j, j + 1))]
        heads.append(layer_heads)
        neurons.append(layer_neurons)
    return CompactPlan(heads, neurons, config.num_attention_heads, config.intermediate_size)


def compact_model(model: torch.nn.Module, ticket: TicketMask) -> torch.nn.Module:
    """A smaller copy of the fine-tuned ``model`` (a ``BertFor…``, pruned weights at 0) without
    the heads and neurons ``ticket`` removes entirely: a plain ``BertFor…`` when
    :attr:`CompactPlan.plain`, else the class of :mod:`.modeling_compact_bert` registered for its
    ``AutoModel…`` class (``save_pretrained`` then writes ``auto_map`` and the module file).

    Raises:
        ValueError: a model class without a compact counterpart.
    """
    name = type(model).__name__
    if name not in mcb.COMPACT_CLASSES:
        raise ValueError(f"--compact: no compact class for {name} (supported: {', '.join(mcb.COMPACT_CLASSES)})")
    plan = compact_plan(ticket, model.config)
    config_dict = model.config.to_dict()
    d = model.config.hidden_size // model.config.num_attention_heads
    if plan.plain:
        config = type(model.config).from_dict({**config_dict, "intermediate_size": len(plan.neurons[0])})
        small = type(model)(config)
    else:
        config_dict.pop("model_type", None)
        config = mcb.CompactBertConfig(
            **config_dict, heads_per_layer=[len(h) for h in plan.heads], intermediate_per_layer=[len(n) for n in plan.neurons]
        )
        small = mcb.COMPACT_CLASSES[name](config)
    state = model.state_dict()
    prefix = "" if name == "BertModel" else "bert."
    out = dict(state)
    for i in range(model.config.num_hidden_layers):
        layer = f"{prefix}encoder.layer.{i}."
        rows = torch.tensor([r for h in plan.heads[i] for r in range(h * d, (h + 1) * d)], dtype=torch.long)
        units = torch.tensor(plan.neurons[i], dtype=torch.long)
        for part in (_Q, _K, _V):
            for suffix in ("weight", "bias"):
                key = f"{layer}{part}.{suffix}"
                if len(plan.heads[i]) == 0:
                    out.pop(key, None)
                else:
                    out[key] = state[key].index_select(0, rows)
        out[f"{layer}{_O}.weight"] = state[f"{layer}{_O}.weight"].index_select(1, rows)
        out[f"{layer}{_I}.weight"] = state[f"{layer}{_I}.weight"].index_select(0, units)
        out[f"{layer}{_I}.bias"] = state[f"{layer}{_I}.bias"].index_select(0, units)
        out[f"{layer}{_F}.weight"] = state[f"{layer}{_F}.weight"].index_select(1, units)
    missing, unexpected = small.load_state_dict(out, strict=False)
    tied = [m for m in missing if m.endswith("decoder.weight")]
    if unexpected or [m for m in missing if m not in tied]:
        raise ValueError(f"compact weights do not fit (missing {missing[:2]}, unexpected {unexpected[:2]})")
    if tied:
        small.tie_weights()
    if not plan.plain:
        mcb.CompactBertConfig.register_for_auto_class()
        type(small).register_for_auto_class(mcb.AUTO_CLASSES[type(small)])
    small.eval()
    return small


def parameter_count(model: torch.nn.Module) -> int:
    """Number of parameters (tied ones once)."""
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())
