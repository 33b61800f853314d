import json
import os

import pytest
import torch
from transformers import BertForMaskedLM, BertForQuestionAnswering, BertForSequenceClassification

from bert_tickets.pruning import prune_ticket, target_count
from bert_tickets.ticket import CONFIG_FILE, MASK_FILE, TicketMask, TicketMetadata

from conftest import TINY_PRUNABLE, tiny_config


def _ticket(config, sparsity=0.6):
    model = BertForSequenceClassification(config)
    meta = TicketMetadata(base_model="tiny", task="rte", schedule="linear")
    return prune_ticket(TicketMask.dense(model, metadata=meta), model, sparsity), model


def test_apply_zeroes_exactly_the_pruned_weights(config):
    ticket, model = _ticket(config)
    fresh = BertForSequenceClassification(config)
    before = {n: p.detach().clone() for n, p in fresh.bert.named_parameters()}
    ticket.apply(fresh)
    after = dict(fresh.bert.named_parameters())
    for n, m in ticket.masks.items():
        assert torch.count_nonzero(after[n][~m]) == 0
        assert torch.equal(after[n][m], before[n][m])
    untouched = [n for n in before if n not in ticket.masks]
    assert all(torch.equal(before[n], after[n]) for n in untouched)
    assert ticket.count_nonzero_pruned(fresh) == 0


def test_sparsity_counts(config):
    ticket, _ = _ticket(config, 0.6)
    assert ticket.num_prunable == TINY_PRUNABLE
    assert ticket.num_pruned == target_count(0.6, TINY_PRUNABLE)
    assert ticket.sparsity == ticket.num_pruned / TINY_PRUNABLE
    per = ticket.per_tensor_sparsity()
    weighted = sum(per[n] * m.numel() for n, m in ticket.masks.items()) / TINY_PRUNABLE
    assert weighted == pytest.approx(ticket.sparsity, abs=1e-12)


def test_save_load_round_trip_is_bit_exact(config, tmp_path):
    ticket, _ = _ticket(config)
    ticket.metadata.extra["metric"] = 0.61
    ticket.save_pretrained(tmp_path / "t")
    loaded = TicketMask.from_pretrained(tmp_path / "t")
    assert set(loaded.masks) == set(ticket.masks)
    assert all(torch.equal(loaded.masks[n], ticket.masks[n]) for n in ticket.masks)
    assert loaded.metadata == ticket.metadata
    cfg = json.loads((tmp_path / "t" / CONFIG_FILE).read_text())
    assert cfg["format_version"] == 2 and cfg["num_pruned"] == ticket.num_pruned
    # bit-packed: at most one bit per weight plus a small header
    size = os.path.getsize(tmp_path / "t" / MASK_FILE)
    assert TINY_PRUNABLE / 8 <= size <= TINY_PRUNABLE / 8 + 4096
    assert not list((tmp_path / "t").glob("*.tmp"))


def test_one_mask_fits_every_head(config):
    ticket, _ = _ticket(config)
    for cls in (BertForSequenceClassification, BertForQuestionAnswering, BertForMaskedLM):
        model = ticket.apply(cls(config))
        assert ticket.count_nonzero_pruned(model) == 0


def test_load_rejects_bad_files_and_apply_leaves_model_unchanged(config, tmp_path):
    ticket, _ = _ticket(config)
    ticket.save_pretrained(tmp_path / "t")
    data = (tmp_path / "t" / MASK_FILE).read_bytes()
    (tmp_path / "t" / MASK_FILE).write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="corrupted or truncated"):
        TicketMask.from_pretrained(tmp_path / "t")
    ticket.save_pretrained(tmp_path / "v")
    cfg = json.loads((tmp_path / "v" / CONFIG_FILE).read_text())
    cfg["format_version"] = 99
    (tmp_path / "v" / CONFIG_FILE).write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="version 99"):
        TicketMask.from_pretrained(tmp_path / "v")
    with pytest.raises(FileNotFoundError, match="missing"):
        TicketMask.from_pretrained(tmp_path / "nothing")
    # a mask for another size: validated before any weight is touched
    other = BertForSequenceClassification(tiny_config(hidden_size=48, num_attention_heads=4))
    before = [p.detach().clone() for p in other.parameters()]
    with pytest.raises(ValueError, match="shape"):
        ticket.apply(other)
    assert all(torch.equal(a, b) for a, b in zip(before, other.parameters()))


def test_non_bool_mask_rejected():
    with pytest.raises(ValueError, match="torch.bool"):
        TicketMask({"a": torch.ones(2, 2)})


def test_overlap_counts_exactly():
    import pytest as _pytest

    a = TicketMask({"w": torch.tensor([[True, False, False], [True, True, False]])})
    b = TicketMask({"w": torch.tensor([[True, True, False], [False, True, False]])})
    out = a.overlap(b)
    # differ at (0,1) and (1,0); pruned in both: (0,2), (1,2); pruned in either: 4 positions
    assert out == {"hamming": 2 / 6, "jaccard_pruned": 2 / 4, "differ": 2, "pruned_both": 2}
    assert a.overlap(a)["hamming"] == 0.0 and a.overlap(a)["jaccard_pruned"] == 1.0
    with _pytest.raises(ValueError, match="mask different tensors"):
        a.overlap(TicketMask({"v": torch.ones(2, 3, dtype=torch.bool)}))
