import re

import pytest
from transformers import BertConfig, BertForMaskedLM, BertForQuestionAnswering, BertForSequenceClassification, BertModel

from bert_tickets.ticket.prunable import DEFAULT_PRUNABLE_PATTERNS, prunable_parameters, resolve_mask_targets

from conftest import TINY_PRUNABLE


def test_default_set_is_bert_tickets_set(config):
    model = BertForSequenceClassification(config)
    params = prunable_parameters(model)
    assert sum(p.numel() for p in params.values()) == TINY_PRUNABLE
    assert len(params) == 2 * 6 + 1
    assert "pooler.dense.weight" in params
    # never embeddings, LayerNorm, biases or the task head
    assert not any(re.search(r"embeddings|LayerNorm|bias|classifier", n) for n in params)
    assert all(n.startswith(("encoder.", "pooler.")) for n in params)


def test_bert_base_count_without_weights():
    # The meta device builds bert-base's shapes without allocating memory.
    import torch

    with torch.device("meta"):
        model = BertModel(BertConfig())
    assert sum(p.numel() for p in prunable_parameters(model).values()) == 85_524_480
    assert len(prunable_parameters(model)) == 73


def test_keys_are_relative_to_backbone_across_heads(config):
    cls_keys = set(prunable_parameters(BertForSequenceClassification(config)))
    qa_keys = set(prunable_parameters(BertForQuestionAnswering(config)))
    mlm_keys = set(prunable_parameters(BertForMaskedLM(config)))
    assert qa_keys == mlm_keys == cls_keys - {"pooler.dense.weight"}


def test_exclude_and_patterns(config):
    model = BertModel(config)
    params = prunable_parameters(model, exclude=[r"pooler\..*"])
    assert "pooler.dense.weight" not in params
    only_q = prunable_parameters(model, patterns=[r"encoder\.layer\.\d+\.attention\.self\.query\.weight"])
    assert list(only_q) == ["encoder.layer.0.attention.self.query.weight", "encoder.layer.1.attention.self.query.weight"]
    with pytest.raises(ValueError, match="no prunable weights matched"):
        prunable_parameters(model, patterns=[r"nothing"])
    with pytest.raises(ValueError, match="invalid prunable-weight regex"):
        prunable_parameters(model, patterns=[r"("])


def test_resolve_targets_skips_missing_pooler_but_rejects_other_keys(config, caplog):
    shapes = {n: tuple(p.shape) for n, p in prunable_parameters(BertForSequenceClassification(config)).items()}
    qa = BertForQuestionAnswering(config)
    with caplog.at_level("INFO"):
        targets = resolve_mask_targets(qa, shapes)
    assert "pooler.dense.weight" not in targets and len(targets) == len(shapes) - 1
    assert "pooler.dense.weight skipped" in caplog.text
    bad = dict(shapes, **{"encoder.layer.5.output.dense.weight": (32, 64)})
    with pytest.raises(ValueError, match="encoder.layer.5"):
        resolve_mask_targets(qa, bad)
    wrong = dict(shapes, **{"encoder.layer.0.output.dense.weight": (64, 32)})
    with pytest.raises(ValueError, match="shape"):
        resolve_mask_targets(qa, wrong)


def test_default_patterns_are_fullmatch_only():
    assert not any(re.fullmatch(p, "encoder.layer.0.attention.self.query.bias") for p in DEFAULT_PRUNABLE_PATTERNS)
