"""BERT with a different number of attention heads and FFN width in every layer — the model of a
*compact* export of a structured ticket (``bert-tickets export --compact``). Copied into the
checkpoint directory and loaded through ``auto_map`` with ``trust_remote_code=True``
(transformers 5 removed head pruning from BERT, so a physically smaller BERT needs its own
class). Self-contained: imports only torch and transformers.

``CompactBertConfig`` is ``BertConfig`` plus ``heads_per_layer`` and ``intermediate_per_layer``;
the head size stays ``hidden_size / num_attention_heads`` (the original model's), so layer i's
query / key / value have ``heads_per_layer[i] · head_size`` outputs and its FFN
``intermediate_per_layer[i]`` units. A layer with no head left adds only the attention output's
bias (its attention block has nothing to attend with); a layer with no FFN unit adds only the
output bias — which is what the masked model computes there.
"""

from __future__ import annotations

from torch import nn
from transformers import BertConfig, BertForMaskedLM, BertForQuestionAnswering, BertForSequenceClassification, BertModel


class CompactBertConfig(BertConfig):
    """``BertConfig`` with per-layer head counts and FFN widths (lists of ``num_hidden_layers`` ints)."""

    model_type = "compact_bert"

    def __init__(self, heads_per_layer: list[int] | None = None, intermediate_per_layer: list[int] | None = None, **kwargs):
        super().__init__(**kwargs)
        layers = self.num_hidden_layers
        self.heads_per_layer = list(heads_per_layer) if heads_per_layer is not None else [self.num_attention_heads] * layers
        self.intermediate_per_layer = (
            list(intermediate_per_layer) if intermediate_per_layer is not None else [self.intermediate_size] * layers
        )


class _NoHeads(nn.Module):
    """Self-attention of a layer whose heads were all pruned: a ``(…, 0)`` output."""

    def forward(self, hidden_states, attention_mask=None, *args, **kwargs):
        return hidden_states.new_zeros(*hidden_states.shape[:-1], 0), None


def compact_layers(model: nn.Module, config: CompactBertConfig) -> None:
    """Resize every encoder layer of ``model`` (any ``BertFor…``) to ``config``'s per-layer sizes
    (new, uninitialised ``nn.Linear`` modules: the weights come from the checkpoint)."""
    hidden = config.hidden_size
    head_size = hidden // config.num_attention_heads
    base = model if isinstance(model, BertModel) else model.bert
    for i, layer in enumerate(base.encoder.layer):
        heads, width = config.heads_per_layer[i], config.intermediate_per_layer[i]
        inner = heads * head_size
        attention = layer.attention
        if heads == 0:
            attention.self = _NoHeads()
        else:
            attention.self.query = nn.Linear(hidden, inner)
            attention.self.key = nn.Linear(hidden, inner)
            attention.self.value = nn.Linear(hidden, inner)
            attention.self.num_attention_heads = heads
            attention.self.all_head_size = inner
        attention.output.dense = nn.Linear(inner, hidden)
        layer.intermediate.dense = nn.Linear(hidden, width)
        layer.output.dense = nn.Linear(width, hidden)


class CompactBertModel(BertModel):
    config_class = CompactBertConfig

    def __init__(self, config, add_pooling_layer: bool = True):
        super().__init__(config, add_pooling_layer=add_pooling_layer)
        compact_layers(self, config)


class CompactBertForSequenceClassification(BertForSequenceClassification):
    config_class = CompactBertConfig

    def __init__(self, config):
        super().__init__(config)
        compact_layers(self, config)


class CompactBertForQuestionAnswering(BertForQuestionAnswering):
    config_class = CompactBertConfig

    def __init__(self, config):
        super().__init__(config)
        compact_layers(self, config)


class CompactBertForMaskedLM(BertForMaskedLM):
    config_class = CompactBertConfig

    def __init__(self, config):
        super().__init__(config)
        compact_layers(self, config)


#: Plain BERT class -> its compact class (what ``export --compact`` saves).
COMPACT_CLASSES = {
    "BertModel": CompactBertModel,
    "BertForSequenceClassification": CompactBertForSequenceClassification,
    "BertForQuestionAnswering": CompactBertForQuestionAnswering,
    "BertForMaskedLM": CompactBertForMaskedLM,
}

#: Compact class -> the ``AutoModel…`` name it registers for.
AUTO_CLASSES = {
    CompactBertModel: "AutoModel",
    CompactBertForSequenceClassification: "AutoModelForSequenceClassification",
    CompactBertForQuestionAnswering: "AutoModelForQuestionAnswering",
    CompactBertForMaskedLM: "AutoModelForMaskedLM",
}
