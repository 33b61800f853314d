"""Crash safety of a run directory (issue 12, item 1): a ticket's bytes are the same in every
process, and a run that crashes between any two of its file writes, then is re-run with the same
command, ends with the masks and metrics of an uninterrupted run."""

from __future__ import annotations

import hashlib
import json
import struct
import subprocess
import sys

import pytest
import torch

import bert_tickets._io as io
from bert_tickets.cli import main
from bert_tickets.ticket import TicketMask, TicketMetadata

from tiny_assets import IMP_TRAIN_ARGS, write_imp_inputs

_SAVE_IN_A_NEW_PROCESS = """
import sys, torch
from bert_tickets.ticket import TicketMask, TicketMetadata
g = torch.Generator().manual_seed(0)
masks = {f"encoder.layer.{i}.attention.self.query.weight": torch.rand(8, 8, generator=g) > 0.5 for i in range(3)}
TicketMask(masks, TicketMetadata(base_model="tiny", task="rte", level=3)).save_pretrained(sys.argv[1])
"""


def test_ticket_bytes_are_the_same_in_every_process(tmp_path):
    """Five interpreters write the same ticket: one mask file, byte for byte (the safetensors
    writer orders the header's metadata differently from process to process)."""
    for i in range(5):
        subprocess.run([sys.executable, "-c", _SAVE_IN_A_NEW_PROCESS, str(tmp_path / str(i))], check=True)
    blobs = {(tmp_path / str(i) / "ticket_mask.safetensors").read_bytes() for i in range(5)}
    assert len(blobs) == 1
    data = blobs.pop()
    (n,) = struct.unpack("<Q", data[:8])
    header = data[8 : 8 + n]
    assert n % 8 == 0 and header.rstrip(b" ") == json.dumps(json.loads(header), sort_keys=True, separators=(",", ":")).encode()
    config = json.loads((tmp_path / "0" / "ticket_config.json").read_text())
    assert config["mask_sha256"] == hashlib.sha256(data).hexdigest()
    assert TicketMask.from_pretrained(tmp_path / "0").masks.keys() == TicketMask.from_pretrained(tmp_path / "4").masks.keys()


def test_an_existing_identical_ticket_is_not_rewritten(tmp_path):
    masks = {"encoder.layer.0.attention.self.query.weight": torch.rand(4, 4, generator=torch.Generator().manual_seed(1)) > 0.5}
    ticket = TicketMask(masks, TicketMetadata(base_model="tiny", task="rte"))
    ticket.save_pretrained(tmp_path / "t")
    stamp = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "t").iterdir()}
    ticket.save_pretrained(tmp_path / "t")
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "t").iterdir()} == stamp
    assert not [p for p in tmp_path.iterdir() if p.name != "t"]  # no temporary directory left
    other = TicketMask({n: ~m for n, m in masks.items()}, ticket.metadata)
    other.save_pretrained(tmp_path / "t")
    assert torch.equal(TicketMask.from_pretrained(tmp_path / "t").masks[next(iter(masks))], ~next(iter(masks.values())))


class _Crash(Exception):
    pass


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    return write_imp_inputs(tmp_path_factory.mktemp("crash"))


def _find(inputs, out):
    ckpt, glue = inputs
    argv = ["find", "--task", "rte", "--model", str(ckpt), "--data_dir", str(glue), "--output_dir", str(out), "--max_levels", "2"]
    return main([*argv, *IMP_TRAIN_ARGS])


def _outcome(out):
    """Every level's mask (bool tensors) and metrics, and the summary's rows."""
    levels = sorted(p for p in out.iterdir() if p.name.startswith("level_"))
    masks = {p.name: TicketMask.from_pretrained(p / "ticket").masks for p in levels if (p / "ticket").exists()}
    metrics = {p.name: json.loads((p / "metrics.json").read_text()) for p in levels if (p / "metrics.json").exists()}
    for m in metrics.values():
        m["result"].pop("elapsed_s")
        for per_seed in m["per_seed"].values():
            for key in [k for k in per_seed if "runtime" in k or "per_second" in k]:
                per_seed.pop(key)
    return masks, metrics


def _counting_writes(monkeypatch, crash_at=None):
    """Wrap every file / directory write of the package; raise before write number ``crash_at``."""
    calls = []
    for name in ("atomic_write", "atomic_write_dir"):
        real = getattr(io, name)

        def wrapped(path, write, _real=real):
            calls.append(str(path))
            if crash_at is not None and len(calls) == crash_at:
                raise _Crash(f"injected before write {crash_at}: {path}")
            return _real(path, write)

        monkeypatch.setattr(io, name, wrapped)
    return calls


def test_a_crash_between_any_two_writes_resumes_to_the_uninterrupted_result(inputs, tmp_path, monkeypatch):
    reference = tmp_path / "reference"
    with monkeypatch.context() as m:
        writes = _counting_writes(m)
        assert _find(inputs, reference) == 0
    expected = _outcome(reference)
    assert len(writes) > 10 and any("ticket" in w for w in writes) and any("metrics.json" in w for w in writes)
    for k in range(1, len(writes) + 1):
        out = tmp_path / f"crash_{k}"
        with monkeypatch.context() as m:
            _counting_writes(m, crash_at=k)
            with pytest.raises(_Crash):
                _find(inputs, out)
        assert _find(inputs, out) == 0, f"re-run after a crash before write {k} ({writes[k - 1]})"
        masks, metrics = _outcome(out)
        assert metrics == expected[1], f"crash before write {k} ({writes[k - 1]})"
        assert masks.keys() == expected[0].keys()
        for level, level_masks in masks.items():
            assert all(torch.equal(level_masks[n], expected[0][level][n]) for n in level_masks), f"crash before write {k}: {level}"
