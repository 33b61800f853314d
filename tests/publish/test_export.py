"""`bert-tickets export`: a level's fine-tuned sparse model as a standard Hugging Face
checkpoint that reloads with exact zeros and the level's metric."""

from __future__ import annotations

import json

import pytest
from transformers import AutoModelForSequenceClassification, AutoTokenizer, TrainingArguments

from bert_tickets.cli import main
from bert_tickets.tasks import get_kind, get_task
from bert_tickets.ticket import TicketMask
from bert_tickets.training.finetune import evaluate_model

from tiny_assets import IMP_TRAIN_ARGS, write_imp_inputs


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    return write_imp_inputs(tmp_path_factory.mktemp("export"))


def _find(inputs, out, *extra):
    ckpt, glue = inputs
    argv = ["find", "--task", "rte", "--model", str(ckpt), "--data_dir", str(glue), "--output_dir", str(out), *IMP_TRAIN_ARGS]
    return main([*argv, "--max_levels", "2", "--num_train_epochs", "30", "--learning_rate", "3e-3", *extra])


def test_export_reloads_with_exact_zeros_and_the_levels_metric(inputs, tmp_path, capsys):
    run = tmp_path / "run"
    assert _find(inputs, run, "--save_trained") == 0
    out = tmp_path / "exported"
    assert main(["export", str(run), "--level", "2", "--output_dir", str(out)]) == 0
    assert {"model.safetensors", "config.json", "README.md", "tokenizer_config.json"} <= {p.name for p in out.iterdir()}
    model = AutoModelForSequenceClassification.from_pretrained(out)
    ticket = TicketMask.from_pretrained(run / "level_02" / "ticket")
    assert ticket.num_pruned > 0 and ticket.count_nonzero_pruned(model) == 0
    # evaluated again from the export: the metric the run recorded for level 2
    ckpt, glue = inputs
    task = get_task("rte")
    tokenizer = AutoTokenizer.from_pretrained(out)
    data = get_kind("glue").prepare(task, tokenizer, glue, None, 16, None, None)
    args = TrainingArguments(output_dir=str(tmp_path / "eval"), use_cpu=True, report_to="none", per_device_eval_batch_size=64)
    metrics = evaluate_model(model, task, data, args, output_dir=str(tmp_path / "eval"), tokenizer=tokenizer)
    recorded = json.loads((run / "level_02" / "metrics.json").read_text())["per_seed"]["42"]
    assert metrics["accuracy"] == recorded["accuracy"] and abs(metrics["loss"] - recorded["loss"]) < 1e-6
    card = (out / "README.md").read_text()
    assert "IMP level 2" in card and f"{ticket.sparsity:.4f}" in card and "lottery-ticket" in card
    # bad input: an existing output dir, a run without trained weights (one line each)
    capsys.readouterr()
    assert main(["export", str(run), "--level", "2", "--output_dir", str(out)]) == 2
    assert "exists" in capsys.readouterr().err
    plain = tmp_path / "plain"
    assert _find(inputs, plain) == 0
    capsys.readouterr()
    assert main(["export", str(plain), "--level", "1", "--output_dir", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--save_trained" in err[0] and not (tmp_path / "x").exists()
    # --save_trained is not part of the run's identity: adding it continues the finished run
    assert _find(inputs, plain, "--save_trained") == 0
    assert "already complete: skipped" in capsys.readouterr().err


def test_export_a_transfer_cell(inputs, tmp_path, capsys):
    """transfer --save_trained keeps each cell's mask and model (not part of the cell id); export
    --cell writes it as a checkpoint that reloads with exact zeros and the cell's metric."""
    ckpt, glue = inputs
    run = tmp_path / "run"
    assert _find(inputs, run) == 0
    common = ["--tickets", str(run), "--tasks", "rte", "--sparsity", "0.1", "--seeds", "1", "--baselines", "dense"]
    common += ["--model", str(ckpt), "--data_dir", str(glue), *IMP_TRAIN_ARGS, "--num_train_epochs", "30", "--learning_rate", "3e-3"]
    kept, plain = tmp_path / "kept", tmp_path / "plain"
    assert main(["transfer", *common, "--output_dir", str(kept), "--save_trained"]) == 0
    assert main(["transfer", *common, "--output_dir", str(plain)]) == 0
    assert sorted(p.name for p in (kept / "cells").iterdir()) == sorted(p.name for p in (plain / "cells").iterdir())  # same ids
    results = {r["label"]: r for r in json.loads((kept / "results.json").read_text())}
    cell = results["rte"]["cell_id"]
    out = tmp_path / "cell_export"
    capsys.readouterr()
    assert main(["export", str(kept), "--cell", cell, "--output_dir", str(out)]) == 0
    model = AutoModelForSequenceClassification.from_pretrained(out)
    ticket = TicketMask.from_pretrained(kept / "cells" / cell / "ticket")
    assert ticket.num_pruned > 0 and ticket.count_nonzero_pruned(model) == 0
    task = get_task("rte")
    tokenizer = AutoTokenizer.from_pretrained(out)
    data = get_kind("glue").prepare(task, tokenizer, glue, None, 16, None, None)
    args = TrainingArguments(output_dir=str(tmp_path / "eval"), use_cpu=True, report_to="none", per_device_eval_batch_size=64)
    assert (
        evaluate_model(model, task, data, args, output_dir=str(tmp_path / "eval"), tokenizer=tokenizer)["accuracy"]
        == results["rte"]["value"]
    )
    assert main(["export", str(plain), "--cell", cell, "--output_dir", str(tmp_path / "y")]) == 2
    assert "kept no trained weights" in capsys.readouterr().err
