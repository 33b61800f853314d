"""Ticket config format 2: the fields that decide results are typed (criterion and its options,
cost, parent level and lineage, data split, sanity transform); version-1 tickets — files written
before, where these sat in ``extra`` — load unchanged into them, and a mask saved now has the bytes
(and sha256) it had before."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import torch
from safetensors import safe_open

from bert_tickets.ticket import CONFIG_FILE, MASK_FILE, TicketMask, TicketMetadata

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "v0_1_run"


def test_a_version_1_ticket_loads_into_the_typed_fields(tmp_path):
    ticket = TicketMask.from_pretrained(FIXTURE / "level_01" / "ticket")
    m = ticket.metadata
    assert m.criterion == m.pruning_method == "magnitude" and m.level == 1 and ticket.num_pruned == 1741
    assert m.cost == {} and m.parent_level is None and m.lineage == [] and m.sanity is None and m.data_split is None
    assert m.extra["accuracy"] == 0.5  # free notes stay in extra
    # a version-1 file with the provenance in extra (as written by find, transfer and
    # prune-at-init before format 2): each key moves to its typed field and leaves extra
    v1 = tmp_path / "v1"
    shutil.copytree(FIXTURE / "level_01" / "ticket", v1)
    cfg = json.loads((v1 / CONFIG_FILE).read_text())
    notes = {
        "cost": {"train_steps": 12, "score_forward": 0, "score_backward": 0},
        "parent_level": 0,
        "criterion_options": {"score_iterations": 5},
        "data_split": "split by article",
        "sanity": {"kind": "layer_shuffle", "seed": 3},
        "mlm_head_pretrained": False,
    }
    cfg["extra"] = notes
    (v1 / CONFIG_FILE).write_text(json.dumps(cfg))
    old = TicketMask.from_pretrained(v1).metadata
    assert old.cost == notes["cost"] and old.parent_level == 0 and old.criterion_options == {"score_iterations": 5}
    assert old.data_split == "split by article" and old.sanity == {"kind": "layer_shuffle", "seed": 3}
    assert old.extra == {"mlm_head_pretrained": False}


def test_version_2_round_trip_and_unchanged_mask_bytes(tmp_path):
    v1 = TicketMask.from_pretrained(FIXTURE / "level_02" / "ticket")
    v1.metadata = TicketMetadata(
        **{
            **v1.metadata.__dict__,
            "criterion": "snip",
            "criterion_options": {"score_batches": 2},
            "cost": {"train_steps": 7, "score_forward": 2, "score_backward": 2},
            "parent_level": 1,
            "lineage": [0, 1],
            "data_split": "first 4 of 5 articles",
            "sanity": {"kind": "layer_shuffle", "seed": 1},
            "extra": {"note": "free"},
        }
    )
    v1.save_pretrained(tmp_path / "v2")
    cfg = json.loads((tmp_path / "v2" / CONFIG_FILE).read_text())
    assert cfg["format_version"] == 2 and cfg["criterion"] == "snip" and "pruning_method" not in cfg
    assert cfg["lineage"] == [0, 1] and cfg["extra"] == {"note": "free"}
    loaded = TicketMask.from_pretrained(tmp_path / "v2")
    assert loaded.metadata == v1.metadata
    assert all(torch.equal(loaded.masks[n], v1.masks[n]) for n in v1.masks)
    # the mask encoding did not change: its header still says version 1, so a mask saved now has
    # the bytes (and the mask_sha256, the Hub's LFS id) that the code before format 2 gave it
    with safe_open(str(tmp_path / "v2" / MASK_FILE), "np") as f:
        assert f.metadata() == {"format": "bert-tickets-mask", "format_version": "1"}
    assert cfg["mask_sha256"] == hashlib.sha256((tmp_path / "v2" / MASK_FILE).read_bytes()).hexdigest() == loaded.mask_sha256()
