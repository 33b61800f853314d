"""SQuAD v1.1 kind: official EM/F1 against hand-computed values, the sliding-window
preprocessing on a context longer than the window, post-processing from perfect logits, and the
local JSON layouts (standard, and one file split by article). Everything offline and tiny."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bert_tickets.tasks import get_kind, get_task
from bert_tickets.tasks.metrics import normalize_answer, squad_exact_match, squad_f1, squad_metrics
from bert_tickets.tasks.squad import (
    load_squad_dataset,
    postprocess_qa_predictions,
    prepare_eval_features,
    prepare_train_features,
    read_squad_json,
    resolve_squad_files,
    scaled_doc_stride,
    split_articles,
)

from tiny_assets import squad_articles, tiny_tokenizer, write_squad_json

# ------------------------------------------------------------------------------ metric


@pytest.mark.parametrize(
    "text, expected",
    [
        ("The Cat", "cat"),
        ("  A  big, red   apple! ", "big red apple"),
        ("Theater and banana", "theater and banana"),  # articles only as whole words
        ("an apple, the pear & a plum.", "apple pear plum"),
        ("Denver's\tBroncos", "denvers broncos"),
        ("", ""),
    ],
)
def test_normalize_answer(text, expected):
    assert normalize_answer(text) == expected


def test_f1_and_em_hand_computed():
    # pred -> [big, red, dog], gold -> [red, dog, barked]: overlap 2, P = R = 2/3
    assert squad_f1("the big red dog", "a red dog barked") == pytest.approx(2 / 3)
    # multiset overlap: pred [dog, dog, dog] vs gold [dog] -> overlap 1, P = 1/3, R = 1, F1 = 0.5
    assert squad_f1("dog dog dog", "dog") == pytest.approx(0.5)
    assert squad_f1("", "dog") == 0.0 and squad_f1("cat", "dog") == 0.0
    assert squad_f1("The Broncos!", "broncos") == 1.0
    assert squad_exact_match("The Broncos!", "broncos") == 1.0
    assert squad_exact_match("Broncos team", "broncos") == 0.0


def test_squad_metrics_max_over_golds_and_missing_predictions():
    refs = {
        "q1": ["Denver Broncos", "Broncos"],
        "q2": {"text": ["Carolina Panthers"], "answer_start": [0]},
        "q3": ["Santa Clara"],
    }
    preds = {"q1": "the Broncos", "q2": "the Carolina Panthers team"}  # q3 unanswered -> 0
    out = squad_metrics(preds, refs)
    # q1: EM 1 (vs "Broncos"), F1 1; q2: EM 0, F1 = 2*(2/3)*1/(2/3+1) = 0.8; q3: 0
    assert out["exact_match"] == pytest.approx(1 / 3)
    assert out["f1"] == pytest.approx((1 + 0.8 + 0) / 3)
    with pytest.raises(ValueError):
        squad_metrics({}, {})
    with pytest.raises(ValueError, match="no gold answer"):
        squad_metrics({"q": "x"}, {"q": []})


# ------------------------------------------------------------------------------ preprocessing

ANSWER = "red dog"


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    return tiny_tokenizer(tmp_path_factory.mktemp("tok"))


def long_example():
    context = " ".join(["the cat sat on the mat ."] * 6) + " the red dog ran home fast . " + " ".join(["the big tree is old ."] * 3)
    return {
        "id": ["q1"],
        "question": ["  who ran home ?"],
        "context": [context],
        "answers": [{"text": [ANSWER], "answer_start": [context.index(ANSWER)]}],
    }


def test_train_features_overflow_and_answer_positions(tok):
    ex = long_example()
    max_len, stride = 24, 8
    feats = prepare_train_features(ex, tok, max_len, stride)
    n = len(feats["input_ids"])
    full_ctx = len(tok(ex["context"][0], add_special_tokens=False)["input_ids"])
    assert full_ctx > max_len and n >= 3  # the context does not fit in one window
    assert all(len(ids) <= max_len for ids in feats["input_ids"])
    assert feats["example_index"] == [0] * n
    enc = tok(
        ex["question"][0].lstrip(),
        ex["context"][0],
        truncation="only_second",
        max_length=max_len,
        stride=stride,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
    )
    inside = outside = 0
    for i in range(n):
        ids, s, e = feats["input_ids"][i], feats["start_positions"][i], feats["end_positions"][i]
        assert ids[0] == tok.cls_token_id
        offsets, seq = enc["offset_mapping"][i], enc.sequence_ids(i)
        ctx = [k for k, sid in enumerate(seq) if sid == 1]
        lo, hi = offsets[ctx[0]][0], offsets[ctx[-1]][1]
        a0 = ex["answers"][0]["answer_start"][0]
        if lo <= a0 and a0 + len(ANSWER) <= hi:
            inside += 1
            assert seq[s] == 1 and seq[e] == 1 and s <= e
            assert ex["context"][0][offsets[s][0] : offsets[e][1]] == ANSWER
            assert tok.decode(ids[s : e + 1]) == ANSWER
        else:
            outside += 1
            assert s == e == 0  # the [CLS] index
        if i + 1 < n:  # consecutive windows share exactly `stride` context tokens
            nxt_seq = enc.sequence_ids(i + 1)
            nxt_ctx = [k for k, sid in enumerate(nxt_seq) if sid == 1]
            assert [tuple(offsets[k]) for k in ctx[-stride:]] == [tuple(enc["offset_mapping"][i + 1][k]) for k in nxt_ctx[:stride]]
    assert inside >= 1 and outside >= 1


def test_answer_cut_by_the_window_gets_cls(tok):
    # The answer starts in the last context token of window 0 and continues in window 1.
    ex = long_example()
    feats = prepare_train_features(ex, tok, 24, 8)
    enc = tok(
        "who ran home ?",
        ex["context"][0],
        truncation="only_second",
        max_length=24,
        stride=8,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
    )
    last_ctx = [k for k, s in enumerate(enc.sequence_ids(0)) if s == 1][-1]
    start_char = enc["offset_mapping"][0][last_ctx][0]
    text = ex["context"][0][start_char : start_char + 12]
    cut = dict(ex, answers=[{"text": [text], "answer_start": [start_char]}])
    f = prepare_train_features(cut, tok, 24, 8)
    assert f["start_positions"][0] == f["end_positions"][0] == 0
    assert len(f["input_ids"]) == len(feats["input_ids"])


def test_eval_features_offsets_only_for_context(tok):
    ex = long_example()
    feats = prepare_eval_features(ex, tok, 24, 8)
    assert set(feats["example_id"]) == {"q1"} and len(feats["example_id"]) >= 3
    for ids, offsets in zip(feats["input_ids"], feats["offset_mapping"]):
        assert len(ids) == len(offsets)
        assert offsets[0] is None  # [CLS]
        q_len = len(tok("who ran home ?", add_special_tokens=False)["input_ids"])
        assert all(o is None for o in offsets[: q_len + 2])  # [CLS] question [SEP]
        assert offsets[-1] is None  # final [SEP]
        assert all(o is not None for o in offsets[q_len + 2 : -1])


def test_slow_tokenizer_is_refused():
    class Slow:
        is_fast = False

    with pytest.raises(ValueError, match="fast tokenizer"):
        prepare_train_features(long_example(), Slow(), 24, 8)


# ------------------------------------------------------------------------------ post-processing


def _perfect_logits(tok, ex, max_len=24, stride=8, pad_to=None):
    train = prepare_train_features(ex, tok, max_len, stride)
    feats = prepare_eval_features(ex, tok, max_len, stride)
    width = pad_to or max(len(x) for x in feats["input_ids"])
    start = np.full((len(feats["input_ids"]), width), -100.0, dtype=np.float32)
    end = start.copy()
    for i, ids in enumerate(feats["input_ids"]):
        start[i, : len(ids)] = 0.0
        end[i, : len(ids)] = 0.0
        s, e = train["start_positions"][i], train["end_positions"][i]
        if s != 0:  # window holding the answer: one-hot at the gold positions
            start[i, s], end[i, e] = 10.0, 10.0
    return feats, start, end


def test_postprocess_recovers_answer_from_perfect_logits(tok):
    ex = long_example()
    feats, start, end = _perfect_logits(tok, ex, pad_to=40)  # -100 padding as Trainer concatenates
    preds = postprocess_qa_predictions(ex, feats, start, end, n_best_size=20, max_answer_length=30)
    assert preds == {"q1": ANSWER}
    assert squad_metrics(preds, {"q1": ex["answers"][0]}) == {"exact_match": 1.0, "f1": 1.0}


def test_postprocess_skips_invalid_spans(tok):
    ex = long_example()
    feats, start, end = _perfect_logits(tok, ex)
    i = next(k for k in range(start.shape[0]) if start[k].max() == 10.0)
    s, e = int(start[i].argmax()), int(end[i].argmax())
    start[i, 0] = end[i, 0] = 100.0  # [CLS]: no offset -> never an answer
    start[i, 1:s] = -1000.0  # no good start before the answer ...
    end[i, s - 1] = 50.0  # ... so the best end (before the best start) only forms invalid spans
    preds = postprocess_qa_predictions(ex, feats, start, end)
    assert preds["q1"] == ANSWER
    assert e > s  # a two-token answer: with max_answer_length 1 only one-token spans remain
    one = postprocess_qa_predictions(ex, feats, start, end, max_answer_length=1)
    assert one["q1"] != ANSWER and len(one["q1"].split()) == 1
    # no valid span at all -> ""
    none_feats = {"example_id": feats["example_id"], "offset_mapping": [[None] * len(o) for o in feats["offset_mapping"]]}
    assert postprocess_qa_predictions(ex, none_feats, start, end) == {"q1": ""}
    with pytest.raises(ValueError, match="features"):
        postprocess_qa_predictions(ex, feats, start[:1], end[:1])


def test_scaled_doc_stride():
    assert scaled_doc_stride(128, 384, 384) == 128
    assert scaled_doc_stride(128, 384, 128) == 43
    assert scaled_doc_stride(128, 384, 32) == 11
    assert scaled_doc_stride(128, 384, 1) == 1


# ------------------------------------------------------------------------------ local data


def test_split_by_article_is_deterministic_and_disjoint(tmp_path):
    spec = get_task("squad")
    write_squad_json(tmp_path / "only_dev" / "dev-v1.1.json", squad_articles(5))
    ds, notes = load_squad_dataset(spec, tmp_path / "only_dev")
    assert set(ds) == {"train", "validation"}
    assert len(ds["train"]) == 4 * 4 and len(ds["validation"]) == 1 * 4  # floor(0.8 * 5) = 4 articles
    assert set(ds["train"]["title"]) == {f"Article_{i}" for i in range(4)}
    assert set(ds["validation"]["title"]) == {"Article_4"}
    assert not set(ds["train"]["context"]) & set(ds["validation"]["context"])
    assert "split by article" in notes["data_split"] and "first 4 of 5 articles" in notes["data_split"]
    row = ds["train"][0]
    assert row["id"] == "a0p0q0" and row["answers"]["text"][0] == "red dog"
    assert row["context"][row["answers"]["answer_start"][0] :].startswith("red dog")
    # the same file given directly gives the same split
    ds2, notes2 = load_squad_dataset(spec, tmp_path / "only_dev" / "dev-v1.1.json")
    assert ds2["train"]["id"] == ds["train"]["id"] and notes2 == notes
    assert split_articles(list(range(48)), 0.8) == (list(range(38)), list(range(38, 48)))
    assert split_articles([1, 2], 0.1) == ([1], [2])
    with pytest.raises(ValueError):
        split_articles([1], 0.8)


def test_standard_layout_and_errors(tmp_path):
    spec = get_task("squad")
    root = tmp_path / "squad"
    write_squad_json(root / "train-v1.1.json", squad_articles(3, seed=1))
    write_squad_json(root / "dev-v1.1.json", squad_articles(2, seed=2))
    layout = resolve_squad_files(spec, root)
    assert layout["split_fraction"] is None
    ds, notes = load_squad_dataset(spec, root)
    assert notes == {} and len(ds["train"]) == 12 and len(ds["validation"]) == 8
    get_kind("squad").validate_inputs(spec, root)

    with pytest.raises(FileNotFoundError, match="not found"):
        resolve_squad_files(spec, tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="dev-v1.1.json"):
        get_kind("squad").validate_inputs(spec, tmp_path / "empty")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="bad.json"):
        read_squad_json(bad)
    broken = squad_articles(2)
    del broken[1]["paragraphs"][0]["qas"][0]["answers"][0]["answer_start"]
    write_squad_json(tmp_path / "broken.json", broken)
    with pytest.raises(ValueError, match=r"data\[1\].paragraphs\[0\].qas\[0\] \(id a1p0q0\)"):
        get_kind("squad").validate_inputs(spec, tmp_path / "broken.json")
    dup = squad_articles(2)
    dup[1]["paragraphs"][0]["qas"][0]["id"] = "a0p0q0"
    write_squad_json(tmp_path / "dup.json", dup)
    with pytest.raises(ValueError, match="duplicate question id"):
        load_squad_dataset(spec, tmp_path / "dup.json")


def test_spec():
    spec = get_task("SQuAD")
    assert spec.kind == "squad" and spec.primary_metric == "f1" and spec.metrics == ("exact_match", "f1")
    assert spec.hub_dataset == "rajpurkar/squad" and spec.split_names == ("train", "validation")
    hp = spec.hyperparameters
    assert (hp.learning_rate, hp.per_device_train_batch_size, hp.max_seq_length) == (3e-5, 16, 384)
    assert (spec.option("doc_stride"), spec.option("n_best_size"), spec.option("max_answer_length")) == (128, 20, 30)
    assert spec.local_option("split_train_fraction") == 0.8
    assert json.loads(json.dumps(spec.options))  # plain JSON-able values


# ------------------------------------------------------------------------------ real inputs (../shared)


@pytest.mark.shared
def test_real_dev_file_is_split_by_article_and_features_hold_the_answers():
    from transformers import AutoTokenizer

    from conftest import shared_path

    squad_dir = shared_path("data", "squad")
    tok = AutoTokenizer.from_pretrained(shared_path("models", "all-MiniLM-L6-v2"))
    ds, notes = load_squad_dataset(get_task("squad"), squad_dir)
    # 48 articles: the first 38 train (7836 questions), the last 10 evaluate (2734 questions)
    assert (len(ds["train"]), len(ds["validation"])) == (7836, 2734)
    assert "first 38 of 48 articles" in notes["data_split"]
    assert not set(ds["train"]["title"]) & set(ds["validation"]["title"])
    sample = ds["train"].select(range(300))[:]
    feats = prepare_train_features(sample, tok, 384, 128)
    evals = prepare_eval_features(sample, tok, 384, 128)  # same windows, with offsets
    assert len(feats["input_ids"]) == len(evals["input_ids"]) >= 300 and max(map(len, feats["input_ids"])) <= 384
    found = exact = 0
    for i, (s, e, k) in enumerate(zip(feats["start_positions"], feats["end_positions"], feats["example_index"])):
        if s == 0:
            continue
        found += 1
        answer = sample["answers"][k]["text"][0]
        span = sample["context"][k][evals["offset_mapping"][i][s][0] : evals["offset_mapping"][i][e][1]]
        assert answer in span  # token boundaries can only widen it ("Israel" -> "Israelis")
        exact += span == answer
    assert found >= 295 and exact / found > 0.97
