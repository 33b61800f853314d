"""End-to-end IMP through the ``bert-tickets find`` CLI for the SQuAD and masked-LM kinds, on a
tiny BERT checkpoint (a bare ``BertModel``: no QA head, no MLM head) and tiny local data in the
layouts of this machine's ``../shared`` (a SQuAD dev file only; WikiText valid + test only)."""

from __future__ import annotations

import json

import pytest

from bert_tickets.cli import main
from bert_tickets.pruning import target_count
from bert_tickets.ticket import TicketMask

from conftest import TINY_PRUNABLE
from tiny_assets import squad_articles, wikitext_lines, write_squad_json, write_tiny_checkpoint

NO_POOLER_PRUNABLE = TINY_PRUNABLE - 32 * 32  # QA and MLM models have no pooler


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return write_tiny_checkpoint(tmp_path_factory.mktemp("ckpt"))


def run_find(task, ckpt, data_dir, out, *extra):
    return main(
        [
            "find",
            "--task",
            task,
            "--model",
            str(ckpt),
            "--data_dir",
            str(data_dir),
            "--output_dir",
            str(out),
            "--num_train_epochs",
            "1",
            "--per_device_train_batch_size",
            "8",
            "--per_device_eval_batch_size",
            "8",
            "--learning_rate",
            "1e-3",
            "--use_cpu",
            "true",
            "--disable_tqdm",
            "true",
            "--max_levels",
            "1",
            *extra,
        ]
    )


def check_levels(out, metric):
    summary = json.loads((out / "summary.json").read_text())
    levels = summary["levels"]
    assert [r["level"] for r in levels] == [0, 1] and summary["metric"] == metric
    for r in levels:
        k = target_count(r["level"] * 0.1, NO_POOLER_PRUNABLE)
        assert r["num_pruned"] == k and r["num_prunable"] == NO_POOLER_PRUNABLE
        assert r["nonzero_pruned_weights"] == 0  # pruned weights exactly zero after training
        ticket = TicketMask.from_pretrained(out / f"level_{r['level']:02d}" / "ticket")
        assert ticket.num_pruned == k and "pooler.dense.weight" not in ticket.masks
    return summary, TicketMask.from_pretrained(out / "level_01" / "ticket")


def test_squad_find(ckpt, tmp_path, capsys):
    data = tmp_path / "squad"
    write_squad_json(data / "dev-v1.1.json", squad_articles(5))  # like ../shared: the dev set only
    out = tmp_path / "run"
    assert run_find("squad", ckpt, data, out, "--max_seq_length", "32") == 0
    captured = capsys.readouterr()
    assert "split by article" in captured.err  # the run says so ...
    assert "note: data_split: no SQuAD training file" in captured.out  # ... and in the printed summary
    summary, ticket = check_levels(out, "f1")
    assert "split by article" in summary["notes"]["data_split"]
    assert "split by article" in ticket.metadata.data_split  # ... and in every ticket
    metrics = json.loads((out / "level_01" / "metrics.json").read_text())["per_seed"]["42"]
    assert 0.0 <= metrics["f1"] <= 1.0 and 0.0 <= metrics["exact_match"] <= metrics["f1"] + 1e-12
    assert ticket.metadata.task == "squad"


def test_mlm_find(ckpt, tmp_path, capsys):
    data = tmp_path / "wikitext"
    data.mkdir()
    (data / "wiki.valid.raw").write_text(wikitext_lines(40, 1))
    (data / "wiki.test.raw").write_text(wikitext_lines(15, 2))
    out = tmp_path / "run"
    assert run_find("mlm", ckpt, data, out, "--max_seq_length", "32") == 0
    captured = capsys.readouterr()
    assert "has no pre-trained masked-LM head" in captured.err
    assert "trained on wiki.valid.raw, evaluated on wiki.test.raw" in captured.err
    summary, ticket = check_levels(out, "accuracy")
    assert summary["notes"]["mlm_head_pretrained"] is False
    extra = ticket.metadata.extra
    assert extra["mlm_head_pretrained"] is False and extra["mlm_decoder_tied_to_word_embeddings"] is True
    assert "trained on wiki.valid.raw" in ticket.metadata.data_split
    dense = TicketMask.from_pretrained(out / "level_00" / "ticket")
    assert dense.metadata.extra["mlm_head_pretrained"] is False
    m = json.loads((out / "level_01" / "metrics.json").read_text())["per_seed"]["42"]
    assert 0.0 <= m["accuracy"] <= 1.0 and m["perplexity"] > 1.0 and m["masked_tokens"] > 0
    # the fixed evaluation masking: both levels scored on the same masked positions
    level0 = json.loads((out / "level_00" / "metrics.json").read_text())["per_seed"]["42"]
    assert level0["masked_tokens"] == m["masked_tokens"]
    assert main(["info", str(out / "level_01")]) == 0
    assert "mlm_head_pretrained: False" in capsys.readouterr().out


def test_bad_squad_and_mlm_inputs_fail_before_training(ckpt, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert run_find("squad", ckpt, tmp_path / "empty", tmp_path / "o1") == 2
    assert "dev-v1.1.json" in capsys.readouterr().err
    assert run_find("mlm", ckpt, tmp_path / "empty", tmp_path / "o2") == 2
    assert "wiki.test.raw" in capsys.readouterr().err
    assert not (tmp_path / "o1").exists() and not (tmp_path / "o2").exists()
