"""Contract test over the task-kind registry: every registered kind prepares tiny local data,
fine-tunes through ``finetune`` and reports its task's primary metric. A new kind adds a
tiny-data writer to ``TINY_DATA`` (the test fails for a registered kind without one)."""

from __future__ import annotations

import math

import pytest
from transformers import AutoTokenizer, TrainingArguments

from bert_tickets.tasks import get_kind, get_task, kind_names
from bert_tickets.ticket import TicketMask
from bert_tickets.training.finetune import finetune
from bert_tickets.training.weights import load_theta0

from tiny_assets import squad_articles, wikitext_lines, write_imp_inputs, write_squad_json, write_tiny_checkpoint


def _glue(root):
    return "rte", write_imp_inputs(root)[1], 16


def _squad(root):
    write_squad_json(root / "squad" / "dev-v1.1.json", squad_articles(5))
    return "squad", root / "squad", 32


def _mlm(root):
    (root / "wiki").mkdir()
    (root / "wiki" / "wiki.valid.raw").write_text(wikitext_lines(40, 1))
    (root / "wiki" / "wiki.test.raw").write_text(wikitext_lines(15, 2))
    return "mlm", root / "wiki", 32


#: kind -> writer of tiny local data: returns (task name, data_dir, max_seq_length).
TINY_DATA = {"glue": _glue, "squad": _squad, "mlm": _mlm}


@pytest.mark.parametrize("kind_name", kind_names())
def test_every_kind_prepares_trains_and_reports_its_primary_metric(kind_name, tmp_path):
    assert kind_name in TINY_DATA, f"registered task kind {kind_name!r} has no tiny-data writer in TINY_DATA"
    task_name, data_dir, length = TINY_DATA[kind_name](tmp_path)
    task = get_task(task_name)
    kind = get_kind(task.kind)
    assert kind.name == kind_name
    ckpt = write_tiny_checkpoint(tmp_path / "ckpt")
    kind.validate_inputs(task, data_dir)
    tokenizer = AutoTokenizer.from_pretrained(ckpt)
    data = kind.prepare(task, tokenizer, data_dir, None, length, 16, 8)
    assert len(data.train) > 0 and data.eval and all(len(ds) > 0 for ds in data.eval.values())
    model = load_theta0(task, str(ckpt), seed=0)
    ticket = TicketMask.dense(model)
    args = TrainingArguments(
        output_dir=str(tmp_path / "out"),
        max_steps=2,
        per_device_train_batch_size=4,
        per_device_eval_batch_size=4,
        learning_rate=1e-3,
        use_cpu=True,
        report_to="none",
        save_strategy="no",
        disable_tqdm=True,
    )
    result = finetune(model, ticket, task, data, args, seed=0, output_dir=str(tmp_path / "out"), tokenizer=tokenizer)
    assert result.global_step == 2
    value = result.metrics[task.primary_metric]
    assert isinstance(value, float) and math.isfinite(value)
    assert result.metrics["nonzero_pruned_weights"] == 0 and math.isfinite(result.metrics["train_loss"])
    # every kind states the trivial baseline of its evaluation data, on its primary metric
    trivial = kind.trivial_baseline(task, data)
    assert trivial.metric == task.primary_metric and trivial.prediction and trivial.rule
    assert trivial.value is None or 0.0 <= trivial.value <= 1.0
    assert not trivial.beaten_by(float("nan")) and not trivial.beaten_by(None)
    assert trivial.beaten_by((trivial.value or 0.0) + 0.01) and not trivial.beaten_by(trivial.value or 0.0)
