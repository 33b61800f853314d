"""Masked-LM kind: blocks, the 15% / 80-10-10 masking rule, fixed (seeded) evaluation masking,
metrics, local WikiText layouts and the warning + metadata for a checkpoint without an MLM head.
Tiny and offline."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest
import torch
from transformers import BertForMaskedLM, EvalPrediction

from bert_tickets.tasks import get_kind, get_task
from bert_tickets.tasks.metrics import masked_lm_metrics
from bert_tickets.tasks.mlm import (
    MaskedLMCollator,
    compute_mlm_metrics,
    group_into_blocks,
    load_mlm_text,
    mask_once,
    preprocess_logits_for_metrics,
    resolve_mlm_files,
    tokenize_into_blocks,
)

from tiny_assets import tiny_tokenizer, wikitext_lines, write_tiny_checkpoint


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    return tiny_tokenizer(tmp_path_factory.mktemp("tok"))


def test_blocks_are_cls_chunk_sep_and_drop_the_rest(tok):
    ids = list(range(100, 123))  # 23 ids
    blocks = group_into_blocks(ids, 8, tok)  # chunks of 6
    assert len(blocks) == 3 and all(len(b) == 8 for b in blocks)
    assert all(b[0] == tok.cls_token_id and b[-1] == tok.sep_token_id for b in blocks)
    assert [i for b in blocks for i in b[1:-1]] == ids[:18]
    with pytest.raises(ValueError, match="no room"):
        group_into_blocks(ids, 2, tok)
    lines = ["", " = the cat = ", "  ", " the red dog ran home . ", "big tree"]
    text_ids = tok(" ".join(lines), add_special_tokens=False)["input_ids"]
    blocks = tokenize_into_blocks(lines, tok, 5, batch_size=2)
    assert [i for b in blocks for i in b[1:-1]] == text_ids[: len(blocks) * 3]


def _blocks(tok, n=400, size=64):
    g = torch.Generator().manual_seed(1)
    words = torch.randint(5, len(tok), (n, size - 2), generator=g)
    return [[tok.cls_token_id, *row.tolist(), tok.sep_token_id] for row in words]


def test_fixed_masking_is_deterministic_and_follows_80_10_10(tok):
    blocks = _blocks(tok)
    a = mask_once(blocks, tok, get_task("mlm"), seed=0)
    torch.manual_seed(123)  # the global RNG does not matter
    b = mask_once(blocks, tok, get_task("mlm"), seed=0)
    assert a == b
    assert mask_once(blocks, tok, get_task("mlm"), seed=1) != a
    orig = torch.tensor(blocks)
    inp, lab = torch.tensor(a["input_ids"]), torch.tensor(a["labels"])
    selected = lab != -100
    assert not selected[:, 0].any() and not selected[:, -1].any()  # [CLS]/[SEP] never selected
    assert torch.equal(lab[selected], orig[selected])
    assert torch.equal(inp[~selected], orig[~selected])
    frac = selected.sum().item() / (orig.numel() - 2 * orig.shape[0])
    assert abs(frac - 0.15) < 0.01
    n = selected.sum().item()
    masked = (inp[selected] == tok.mask_token_id).sum().item() / n
    kept = (inp[selected] == orig[selected]).sum().item() / n
    assert abs(masked - 0.8) < 0.02
    assert abs(kept - (0.1 + 0.1 / len(tok))) < 0.02  # random replacements can hit the original id
    assert abs(1 - masked - kept - 0.1) < 0.02


def test_collator_masks_training_batches_but_never_eval_batches(tok):
    blocks = _blocks(tok, n=4, size=32)
    collate = MaskedLMCollator(tok, get_task("mlm"))
    torch.manual_seed(0)
    first = collate([{"input_ids": b} for b in blocks])
    torch.manual_seed(0)
    again = collate([{"input_ids": b} for b in blocks])
    assert torch.equal(first["input_ids"], again["input_ids"]) and torch.equal(first["labels"], again["labels"])
    assert (first["labels"] != -100).any() and first["attention_mask"].all()
    fixed = mask_once(blocks, tok, seed=0)
    feats = [{"input_ids": i, "labels": lab} for i, lab in zip(fixed["input_ids"], fixed["labels"])]
    out = collate(feats)
    assert out["input_ids"].tolist() == fixed["input_ids"] and out["labels"].tolist() == fixed["labels"]


def test_metrics_hand_computed():
    # vocab 3, 1 block of 4 positions, 3 scored
    logits = torch.log(torch.tensor([[[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.5, 0.25, 0.25], [0.2, 0.2, 0.6]]]))
    labels = torch.tensor([[0, 2, -100, 2]])
    preds, nll = preprocess_logits_for_metrics(logits, labels)
    assert preds.tolist() == [[0, 1, 0, 2]]
    expected_nll = [-math.log(0.7), -math.log(0.1), 0.0, -math.log(0.6)]
    assert np.allclose(nll.numpy()[0], expected_nll, atol=1e-6)
    out = compute_mlm_metrics(EvalPrediction(predictions=(preds.numpy(), nll.numpy()), label_ids=labels.numpy()))
    assert out["accuracy"] == pytest.approx(2 / 3)
    assert out["perplexity"] == pytest.approx(math.exp((-math.log(0.7) - math.log(0.1) - math.log(0.6)) / 3), rel=1e-5)
    assert out["masked_tokens"] == 3.0
    assert masked_lm_metrics([[1, 2]], [[1, -100]]) == {"accuracy": 1.0}
    with pytest.raises(ValueError, match="no masked token"):
        masked_lm_metrics([[1, 2]], [[-100, -100]])
    with pytest.raises(ValueError, match="shape"):
        masked_lm_metrics([[1, 2]], [[1]])


def test_local_layouts(tmp_path):
    spec = get_task("mlm")
    full = tmp_path / "full"
    full.mkdir()
    for name, seed in (("wiki.train.raw", 0), ("wiki.valid.raw", 1), ("wiki.test.raw", 2)):
        (full / name).write_text(wikitext_lines(8, seed))
    files = resolve_mlm_files(spec, full)
    assert files["train"].name == "wiki.train.raw" and files["test"].name == "wiki.test.raw" and not files["fallback"]
    text, notes = load_mlm_text(spec, full)
    assert notes == {} and text["train"] == (full / "wiki.train.raw").read_text().splitlines()

    (full / "wiki.train.raw").unlink()
    text, notes = load_mlm_text(spec, full)
    assert text["train"] == (full / "wiki.valid.raw").read_text().splitlines()
    assert "trained on wiki.valid.raw, evaluated on wiki.test.raw" in notes["data_split"]

    (full / "wiki.valid.raw").unlink()
    with pytest.raises(FileNotFoundError, match="wiki.train.raw"):
        get_kind("mlm").validate_inputs(spec, full)
    (full / "wiki.test.raw").unlink()
    with pytest.raises(FileNotFoundError, match="wiki.test.raw"):
        get_kind("mlm").validate_inputs(spec, full)
    with pytest.raises(FileNotFoundError, match="not found"):
        resolve_mlm_files(spec, tmp_path / "nowhere")


def test_prepare_masks_eval_once(tok, tmp_path):
    spec = get_task("wikitext")
    (tmp_path / "wiki.valid.raw").write_text(wikitext_lines(30, 1))
    (tmp_path / "wiki.test.raw").write_text(wikitext_lines(20, 2))
    kind = get_kind("mlm")
    data = kind.prepare(spec, tok, tmp_path, None, 16, 5, None)
    assert len(data.train) == 5 and all(len(x) == 16 for x in data.train["input_ids"])
    assert set(data.eval) == {"test"} and set(data.eval["test"].column_names) == {"input_ids", "labels"}
    again = kind.prepare(spec, tok, tmp_path, None, 16, 5, None)
    assert data.eval["test"]["labels"] == again.eval["test"]["labels"]
    assert "data_split" in data.notes
    with pytest.raises(ValueError, match="too little text"):
        kind.prepare(spec, tok, tmp_path, None, 10_000, None, None)


def test_head_not_pretrained_is_warned_and_described(tmp_path, caplog):
    kind, spec = get_kind("mlm"), get_task("mlm")
    bare = write_tiny_checkpoint(tmp_path / "bare")
    with caplog.at_level(logging.WARNING, logger="bert_tickets"):
        model = kind.load_model(spec, str(bare))
    assert "has no pre-trained masked-LM head" in caplog.text and "cls.predictions.transform.dense.weight" in caplog.text
    info = kind.describe_model(model)
    assert info["mlm_head_pretrained"] is False and info["mlm_decoder_tied_to_word_embeddings"] is True
    assert "cls.predictions.transform.dense.weight" in info["mlm_head_initialized"]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="bert_tickets"):
        kind.load_model(spec, str(bare))
    assert "masked-LM head" not in caplog.text  # once per checkpoint

    with_head = write_tiny_checkpoint(tmp_path / "with_head", head_model_class=BertForMaskedLM)
    model = kind.load_model(spec, str(with_head))
    assert kind.describe_model(model) == {"mlm_head_pretrained": True, "mlm_decoder_tied_to_word_embeddings": True}
    assert kind.describe_model(torch.nn.Linear(1, 1)) == {}


def test_spec():
    spec = get_task("mlm")
    assert spec.kind == "mlm" and spec.primary_metric == "accuracy" and spec.metrics == ("accuracy", "perplexity")
    assert (spec.hub_dataset, spec.hub_config) == ("Salesforce/wikitext", "wikitext-2-raw-v1")
    assert spec.hyperparameters.max_seq_length == 512 and spec.option("mlm_probability") == 0.15
    assert spec.eval_splits == ("test",) and spec.local_option("fallback_train_file") == "wiki.valid.raw"


@pytest.mark.shared
def test_real_wikitext_and_minilm_without_mlm_head():
    from transformers import AutoTokenizer

    from conftest import shared_path

    wiki = shared_path("data", "wikitext-2-raw")
    model_dir = shared_path("models", "all-MiniLM-L6-v2")
    tok = AutoTokenizer.from_pretrained(model_dir)
    spec, kind = get_task("mlm"), get_kind("mlm")
    data = kind.prepare(spec, tok, wiki, None, 512, None, 16)
    assert "trained on wiki.valid.raw, evaluated on wiki.test.raw" in data.notes["data_split"]
    assert 400 < len(data.train) < 700 and len(data.eval["test"]) == 16
    assert all(len(x) == 512 for x in data.eval["test"]["input_ids"])
    model = kind.load_model(spec, str(model_dir))
    info = kind.describe_model(model)
    assert info["mlm_head_pretrained"] is False and info["mlm_decoder_tied_to_word_embeddings"] is True


def test_trivial_baselines_on_known_labels():
    """MLM: the share of the most frequent masked token; STS-B: undefined (a constant has no
    Pearson correlation), beaten by any positive correlation; MRPC: the best constant class
    under F1 is the positive class, F1 = 2p / (1 + p)."""
    from datasets import Dataset

    from bert_tickets.tasks import PreparedData, get_kind, get_task

    mlm = get_task("mlm")
    labels = [[-100, 7, 7, -100], [3, -100, 7, 9]]  # masked: 7, 7, 3, 7, 9 -> token 7, 3/5
    data = PreparedData(train=None, eval={"test": Dataset.from_dict({"input_ids": [[0] * 4] * 2, "labels": labels})})
    b = get_kind("mlm").trivial_baseline(mlm, data)
    assert b.value == 3 / 5 and "token id 7 (3/5" in b.prediction
    stsb = get_task("stsb")
    b = get_kind("glue").trivial_baseline(stsb, PreparedData(None, {"validation": Dataset.from_dict({"label": [0.5, 2.0, 4.1]})}))
    assert b.value is None and b.beaten_by(0.01) and not b.beaten_by(0.0) and not b.beaten_by(float("nan"))
    mrpc = get_task("mrpc")
    b = get_kind("glue").trivial_baseline(mrpc, PreparedData(None, {"validation": Dataset.from_dict({"label": [1, 1, 1, 0]})}))
    assert b.metric == "f1" and abs(b.value - 2 * 0.75 / 1.75) < 1e-12 and "(class 1: 3/4" in b.prediction
