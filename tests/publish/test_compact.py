"""Compact export of structured tickets (issue 22, item 3): the pruned heads and neurons are
sliced out, the logits equal the masked model's, and the checkpoint reloads with AutoModel."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForSequenceClassification, BertForSequenceClassification

from bert_tickets.pruning import prune_ticket
from bert_tickets.publish.compact import compact_model, compact_plan, parameter_count
from bert_tickets.ticket import TicketMask

from conftest import tiny_config


@pytest.fixture
def model():
    torch.manual_seed(0)
    m = BertForSequenceClassification(tiny_config(num_labels=3))
    with torch.no_grad():  # "fine-tuned": biases far from 0, so a wrong slice would show
        for p in m.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return m.eval()


def _logits(m, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, m.config.vocab_size, (4, 12), generator=g)
    mask = torch.ones_like(ids)
    mask[1, 8:] = 0
    with torch.no_grad():
        return m(input_ids=ids, attention_mask=mask).logits


def _masked(model, ticket):
    ticket.apply(model)
    assert ticket.count_nonzero_pruned(model) == 0
    return model


def test_compact_heads_and_neurons_give_the_masked_logits_and_reload(model, tmp_path):
    ticket = prune_ticket(TicketMask.dense(model), model, 0.5, granularity="head")
    ticket = prune_ticket(ticket, model, 0.25, granularity="neuron")
    masked = _masked(model, ticket)
    plan = compact_plan(ticket, model.config)
    assert sum(len(h) for h in plan.heads) == 4 and sum(len(n) for n in plan.neurons) == 96 and not plan.plain
    small = compact_model(masked, ticket)
    assert torch.allclose(_logits(small), _logits(masked), atol=1e-5)
    # the removed weights: 4 heads x (3 x (8 x 32 + 8) + 32 x 8) + 32 neurons x (32 + 1 + 32)
    assert parameter_count(masked) - parameter_count(small) == 4 * (3 * (8 * 32 + 8) + 32 * 8) + 32 * (32 + 1 + 32)
    small.save_pretrained(tmp_path / "c")
    assert (tmp_path / "c" / "modeling_compact_bert.py").is_file()
    loaded = AutoModelForSequenceClassification.from_pretrained(tmp_path / "c", trust_remote_code=True).eval()
    assert type(loaded).__name__ == "CompactBertForSequenceClassification"
    assert torch.allclose(_logits(loaded, 1), _logits(masked, 1), atol=1e-5)


def test_a_layer_without_heads_and_a_plain_bert_when_sizes_are_uniform(model, tmp_path):
    ticket = TicketMask.dense(model)
    for part in ("query", "key", "value"):
        ticket.masks[f"encoder.layer.0.attention.self.{part}.weight"][:] = False
    ticket.masks["encoder.layer.0.attention.output.dense.weight"][:] = False
    masked = _masked(model, ticket)
    small = compact_model(masked, ticket)
    assert small.config.heads_per_layer == [0, 4]
    assert torch.allclose(_logits(small), _logits(masked), atol=1e-5)
    # the same FFN width in every layer and every head kept: a plain BERT, no remote code
    torch.manual_seed(1)
    other = BertForSequenceClassification(tiny_config(num_labels=3)).eval()
    ticket = TicketMask.dense(other)
    for i in range(2):
        ticket.masks[f"encoder.layer.{i}.intermediate.dense.weight"][i : 16 + i] = False
        ticket.masks[f"encoder.layer.{i}.output.dense.weight"][:, i : 16 + i] = False
    masked = _masked(other, ticket)
    plain = compact_model(masked, ticket)
    assert type(plain) is BertForSequenceClassification and plain.config.intermediate_size == 48
    plain.save_pretrained(tmp_path / "p")
    assert not (tmp_path / "p" / "modeling_compact_bert.py").exists()
    loaded = AutoModelForSequenceClassification.from_pretrained(tmp_path / "p").eval()
    assert torch.allclose(_logits(loaded), _logits(masked), atol=1e-5)


def test_export_compact_of_a_structured_run(tmp_path, capsys):
    import json

    from bert_tickets.cli import main

    from tiny_assets import IMP_TRAIN_ARGS, write_imp_inputs

    ckpt, glue = write_imp_inputs(tmp_path)
    run = tmp_path / "run"
    argv = ["find", "--task", "rte", "--model", str(ckpt), "--data_dir", str(glue), "--output_dir", str(run), *IMP_TRAIN_ARGS]
    assert main([*argv, "--max_levels", "1", "--prune_step", "0.5", "--granularity", "head+neuron", "--save_trained"]) == 0
    assert main(["export", str(run), "--level", "1", "--output_dir", str(tmp_path / "masked")]) == 0
    assert main(["export", str(run), "--level", "1", "--output_dir", str(tmp_path / "small"), "--compact"]) == 0
    printed = capsys.readouterr().out
    assert "compact: heads per layer" in printed and "max |Δ logits|" in printed
    config = json.loads((tmp_path / "small" / "config.json").read_text())
    info = config["bert_tickets_compact"]
    assert sum(info["heads_per_layer"]) == 4 and sum(info["intermediate_per_layer"]) == 64 and info["max_abs_logit_difference"] <= 1e-4
    assert info["checked_examples"] == 16 and "auto_map" in config and "Compact export" in (tmp_path / "small" / "README.md").read_text()
    masked = AutoModelForSequenceClassification.from_pretrained(tmp_path / "masked").eval()
    small = AutoModelForSequenceClassification.from_pretrained(tmp_path / "small", trust_remote_code=True).eval()
    assert torch.allclose(_logits(small), _logits(masked), atol=1e-5)
    assert parameter_count(small) == info["parameters"] < info["parameters_masked_model"] == parameter_count(masked)
    assert main(["export", str(run), "--cell", "x", "--output_dir", str(tmp_path / "bad"), "--compact"]) == 2
    # every output is compared (SQuAD has start and end logits): a difference in the second one is refused
    import bert_tickets.training.finetune as finetune

    real, calls = finetune.predict_outputs, []

    def two_outputs(model, *args, **kw):
        out, labels = real(model, *args, **kw)
        calls.append(model)
        return [out[0], out[0] + (1e-3 if len(calls) == 2 else 0.0)], labels

    finetune.predict_outputs = two_outputs
    try:
        assert main(["export", str(run), "--level", "1", "--output_dir", str(tmp_path / "qa"), "--compact"]) == 2
    finally:
        finetune.predict_outputs = real
    assert "differ from the masked model's by 1.00e-03" in capsys.readouterr().err and not (tmp_path / "qa").exists()


def test_the_latency_benchmark_times_dense_masked_and_compact(tmp_path, capsys):
    import importlib.util
    import json
    from pathlib import Path

    torch.manual_seed(0)
    BertForSequenceClassification(tiny_config(vocab_size=1100)).save_pretrained(tmp_path / "dense")
    script = Path(__file__).resolve().parents[2] / "scripts" / "bench_latency.py"
    spec = importlib.util.spec_from_file_location("bench_latency", script)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    argv = ["--dense", str(tmp_path / "dense"), "--synthetic", "0.5", "0.5", "--length", "16", "--batches", "1", "2"]
    assert bench.main([*argv, "--repeats", "2", "--warmup", "1", "--threads", "1", "--semi_structured"]) == 0
    out = capsys.readouterr().out
    rows = json.loads(out.strip().splitlines()[-1])
    assert [(r["batch"], r["model"]) for r in rows] == [(b, m) for b in (1, 2) for m in ("dense", "masked", "compact")]
    dense, masked, compact = rows[:3]
    assert dense["speedup_vs_dense"] == 1.0 and masked["parameters"] == dense["parameters"] > compact["parameters"]
    assert ("no GPU" in out) != torch.cuda.is_available()
