"""Local paths (issue 12, item 8): a run names its θ0 and data by resolved path and a local
checkpoint by the sha256 of its weights, so it resumes from any working directory and with any
spelling of the paths, its tickets load from anywhere, and a changed θ0 is refused."""

from __future__ import annotations

import hashlib
import json
import os
import shutil

import pytest
from safetensors.torch import load_file, save_file
from transformers import AutoModelForSequenceClassification

from bert_tickets.cli import main
from bert_tickets.ticket import BaseModelMismatchWarning, TicketMask, load_ticket

from tiny_assets import IMP_TRAIN_ARGS, write_imp_inputs


def _find(model, glue, out, *extra):
    argv = ["find", "--task", "rte", "--model", str(model), "--data_dir", str(glue), "--output_dir", str(out), "--max_levels", "1"]
    return main([*argv, *IMP_TRAIN_ARGS, *extra])


def _weights_sha(ckpt):
    digest = hashlib.sha256()
    for p in sorted(ckpt.iterdir()):
        if p.name.endswith(".safetensors"):
            digest.update(p.name.encode() + b"\0" + p.read_bytes())
    return "sha256:" + digest.hexdigest()


def test_relative_paths_resolve_and_theta0_is_identified_by_its_weights(tmp_path, monkeypatch, capsys):
    ckpt, glue = write_imp_inputs(tmp_path / "inputs")
    monkeypatch.chdir(tmp_path)
    assert _find("inputs/ckpt", "inputs/glue", "run") == 0
    config = json.loads((tmp_path / "run" / "run_config.json").read_text())["hyperparameters"]
    assert config["model"]["model_name_or_path"] == os.path.realpath(ckpt)
    assert config["model"]["revision"] == _weights_sha(ckpt)  # the sha256 of the weights, not "main"
    assert config["data"]["data_dir"] == os.path.realpath(glue)
    ticket = TicketMask.from_pretrained(tmp_path / "run" / "level_01" / "ticket")
    assert ticket.metadata.base_model == os.path.realpath(ckpt) and ticket.metadata.base_model_revision == _weights_sha(ckpt)

    # the same run from another working directory, paths spelled absolute: resumed, nothing retrained
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    stamp = (tmp_path / "run" / "level_01" / "metrics.json").stat().st_mtime_ns
    capsys.readouterr()
    assert _find(ckpt, glue, tmp_path / "run") == 0
    assert "already complete: skipped" in capsys.readouterr().err
    assert (tmp_path / "run" / "level_01" / "metrics.json").stat().st_mtime_ns == stamp
    # and its ticket loads from here, with no warning
    with _no_mismatch():
        model = load_ticket(tmp_path / "run" / "level_01" / "ticket", AutoModelForSequenceClassification, num_labels=2)
    assert model is not None

    # the checkpoint moved (same weights): still the same θ0
    moved = tmp_path / "moved_ckpt"
    shutil.copytree(ckpt, moved)
    assert _find(moved, glue, tmp_path / "run") == 0

    # θ0 changed in place: the run is refused (one line), load_ticket warns (raises when strict)
    weights = ckpt / "model.safetensors"
    tensors = load_file(weights)
    name = next(n for n in tensors if n.endswith("query.weight"))
    tensors[name] = tensors[name] + 1.0
    save_file(tensors, weights, metadata={"format": "pt"})
    before = {p: p.read_bytes() for p in (tmp_path / "run").rglob("*") if p.is_file()}
    capsys.readouterr()
    assert _find(ckpt, glue, tmp_path / "run") == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "was run on another θ0" in err and "weights of" in err
    assert {p: p.read_bytes() for p in (tmp_path / "run").rglob("*") if p.is_file()} == before
    with pytest.warns(BaseModelMismatchWarning, match="changed since the ticket was found"):
        load_ticket(tmp_path / "run" / "level_01" / "ticket", AutoModelForSequenceClassification, num_labels=2)
    with pytest.raises(ValueError, match="strict"):
        load_ticket(tmp_path / "run" / "level_01" / "ticket", AutoModelForSequenceClassification, num_labels=2, strict=True)


class _no_mismatch:
    """Fail on a BaseModelMismatchWarning inside the block."""

    def __enter__(self):
        import warnings

        self._ctx = warnings.catch_warnings()
        self._ctx.__enter__()
        warnings.simplefilter("error", BaseModelMismatchWarning)

    def __exit__(self, *exc):
        return self._ctx.__exit__(*exc)
