"""Contract of the training-data sources (``bert_tickets.training.sources``): a toy source
registered from this file alone drives ``finetune``; a common table runs over every registered
source; the built-in sources train on exactly their examples (``subset``: those indices;
``examples``: the task's own tokenisation; ``embeddings``: the ``input_ids`` forward)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pytest
import torch
from safetensors.torch import save_file

from bert_tickets.tasks import PreparedData
from bert_tickets.training.finetune import finetune
from bert_tickets.training.sources import SOURCES, TrainingData, TrainingSource, random_subset, register_source

from seam_assets import dense, losses, same_weights, steps, tiny


@pytest.fixture(scope="module")
def t(tmp_path_factory):
    return tiny(tmp_path_factory.mktemp("seam_sources"))


# ------------------------------------------------------------------ a toy source, from this file alone
@dataclass
class FirstK:
    k: int = field(default=1, metadata={"help": "train on the first k training examples"})

    def __post_init__(self):
        if self.k < 1:
            raise ValueError(f"toy source: k must be >= 1, got {self.k}")


class ToySource(TrainingSource):
    name = "toy_first_k"
    summary = "the first k training examples (test only)"
    Options = FirstK
    built: list[int] = []

    def build(self, options, *, task, data, tokenizer=None):
        ToySource.built.append(options.k)
        return TrainingData(data.train.select(range(options.k)))


@pytest.fixture
def toy():
    register_source(ToySource)
    yield ToySource
    SOURCES.unregister(ToySource.name)


@pytest.mark.parametrize("k, epochs", [(11, 2), (8, 1), (1, 3)])
def test_toy_source_sets_the_optimizer_steps(t, toy, tmp_path, k, epochs):
    model = t.model(0)
    out = finetune(
        model,
        dense(model),
        t.task,
        t.data,
        t.args(num_train_epochs=epochs),
        seed=1,
        output_dir=str(tmp_path / "o"),
        tokenizer=t.tokenizer,
        source="toy_first_k",
        source_options={"k": str(k)},  # text, as from a command line
    )
    assert out.global_step == steps(k, epochs) != steps(len(t.data.train), epochs)
    assert toy.built[-1] == k and len(losses(out.log_history)) == out.global_step


def test_toy_source_bad_option_fails_before_training(t, toy, tmp_path):
    model = t.model(0)
    for options, message in (({"k": 0}, "toy source: k must be >= 1"), ({"j": 1}, "has no option 'j'")):
        with pytest.raises(ValueError, match=message):
            finetune(
                model,
                dense(model),
                t.task,
                t.data,
                t.args(),
                seed=1,
                output_dir=str(tmp_path / "o"),
                source="toy_first_k",
                source_options=options,
            )
    assert not (tmp_path / "o").exists()
    with pytest.raises(ValueError, match="unknown training-data source 'nope'; choose one of"):
        finetune(model, dense(model), t.task, t.data, t.args(), seed=1, output_dir=str(tmp_path / "o"), source="nope")


# ------------------------------------------------------------------ inputs of the built-in sources
def _jsonl(t, path, rows):
    """The first ``rows`` raw RTE training rows as an ``examples`` file (labels as names)."""
    lines = (t.root / "glue" / "RTE" / "train.tsv").read_text().splitlines()[1 : rows + 1]
    with path.open("w") as fh:
        for line in lines:
            _, s1, s2, label = line.split("\t")
            fh.write(json.dumps({"sentence1": s1, "sentence2": s2, "labels": label}) + "\n")
    return path


def _padded(t, n: int, length: int):
    """The first ``n`` tokenized training examples padded to ``length`` tokens (pad id, mask 0, type 0)."""

    def pad(row):
        extra = length - len(row["input_ids"])
        return {
            "input_ids": row["input_ids"] + [t.tokenizer.pad_token_id] * extra,
            "attention_mask": row["attention_mask"] + [0] * extra,
            "token_type_ids": row["token_type_ids"] + [0] * extra,
        }

    return t.data.train.select(range(n)).map(pad)


def _embeddings_file(t, path, ds, model, *, soft: bool = False, token_types: bool = True):
    ids = torch.tensor(ds["input_ids"])
    with torch.no_grad():
        embeds = model.get_input_embeddings()(ids).float().contiguous()
    labels = torch.tensor(ds["label"])
    tensors = {"inputs_embeds": embeds, "attention_mask": torch.tensor(ds["attention_mask"]), "labels": labels}
    if soft:
        tensors["labels"] = torch.nn.functional.one_hot(labels, t.task.num_labels).float()
    if token_types:
        tensors["token_type_ids"] = torch.tensor(ds["token_type_ids"])
    save_file(tensors, str(path))
    return path


def _options(t, name, tmp_path):
    """A valid option set of every built-in source (a new source adds its row here)."""
    if name == "task":
        return {}, len(t.data.train)
    if name == "subset":
        return {"indices": "3,1,20,7,9"}, 5
    if name == "examples":
        return {"path": str(_jsonl(t, tmp_path / "ex.jsonl", 10)), "max_seq_length": 16}, 10
    if name == "embeddings":
        return {"path": str(_embeddings_file(t, tmp_path / "emb.safetensors", _padded(t, 9, 16), t.model(0)))}, 9
    raise AssertionError(f"source {name!r} has no row in the common table: add one")


@pytest.mark.parametrize("name", SOURCES.names())
def test_common_table_over_every_registered_source(t, tmp_path, name):
    source = SOURCES.get(name)()
    given, n = _options(t, name, tmp_path)
    options = source.options(given)
    assert source.options(source.options_dict(options)) == options  # options round-trip through JSON-ready values
    source.check(options, task=t.task, data=t.data)
    a = source.build(options, task=t.task, data=t.data, tokenizer=t.tokenizer)
    b = source.build(options, task=t.task, data=t.data, tokenizer=t.tokenizer)
    assert len(a.dataset) == n and a.dataset.column_names == b.dataset.column_names
    assert all(json.dumps(x, default=str) == json.dumps(y, default=str) for x, y in zip(a.dataset.to_list(), b.dataset.to_list()))
    with pytest.raises(ValueError, match="has no option 'no_such_option'"):
        source.options({"no_such_option": 1})
    model = t.model(0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    out = finetune(
        model,
        dense(model),
        t.task,
        t.data,
        t.args(),
        seed=0,
        output_dir=str(tmp_path / "o"),
        tokenizer=t.tokenizer,
        source=name,
        source_options=given,
    )
    assert out.global_step == steps(n, t.training_args.num_train_epochs)
    assert out.metrics["train_loss"] is not None and torch.isfinite(torch.tensor(out.metrics["train_loss"]))
    assert "accuracy" in out.metrics  # evaluated on the task's own evaluation split
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items())


# ------------------------------------------------------------------ subset
def test_subset_of_indices_trains_on_exactly_those_examples(t, tmp_path):
    idx = [30, 2, 17, 5, 11, 23, 8, 0, 14, 26]
    ref = t.model(0)
    finetune(ref, dense(ref), t.task, PreparedData(t.data.train.select(idx), t.data.eval), t.args(), seed=4, output_dir=str(tmp_path / "r"))
    model = t.model(0)
    out = finetune(
        model,
        dense(model),
        t.task,
        t.data,
        t.args(),
        seed=4,
        output_dir=str(tmp_path / "s"),
        source="subset",
        source_options={"indices": idx},
    )
    assert out.global_step == steps(len(idx), 1) and same_weights(model, ref) == []
    other = t.model(0)  # other examples of the same count do change the result
    finetune(
        other,
        dense(other),
        t.task,
        t.data,
        t.args(),
        seed=4,
        output_dir=str(tmp_path / "o"),
        source="subset",
        source_options={"indices": list(range(10))},
    )
    assert same_weights(other, ref) != []


def test_subset_size_seed_and_step_budget(t, tmp_path):
    source = SOURCES.get("subset")()
    built = source.build(source.options({"size": 6, "seed": 3}), task=t.task, data=t.data)
    assert built.dataset.to_list() == t.data.train.select(random_subset(len(t.data.train), 6, 3).tolist()).to_list()
    assert built.max_steps is None
    model = t.model(0)
    out = finetune(
        model,
        dense(model),
        t.task,
        t.data,
        t.args(),
        seed=0,
        output_dir=str(tmp_path / "o"),
        source="subset",
        source_options={"size": 6, "steps": 5},
    )
    assert out.global_step == 5  # 6 examples = 1 batch an epoch, cycled to the budget
    for given, message in (
        ({"indices": [1, 1]}, "indices repeat an example"),
        ({"indices": [1], "size": 2}, "give indices or size, not both"),
        ({"indices": [32]}, "index 32 outside the 32 training examples"),
        ({"size": 33}, "size 33 exceeds the 32 training examples"),
        ({"steps": 0}, "steps must be >= 1"),
        ({"indices": "1,x"}, "not a comma-separated list of integers"),
    ):
        with pytest.raises(ValueError, match=message):
            finetune(
                model,
                dense(model),
                t.task,
                t.data,
                t.args(),
                seed=0,
                output_dir=str(tmp_path / "bad"),
                source="subset",
                source_options=given,
            )
    assert not (tmp_path / "bad").exists()


# ------------------------------------------------------------------ examples
def test_examples_are_tokenised_as_the_task_data(t, tmp_path):
    path = _jsonl(t, tmp_path / "ex.jsonl", 12)
    ref = t.model(0)
    finetune(
        ref,
        dense(ref),
        t.task,
        PreparedData(t.data.train.select(range(12)), t.data.eval),
        t.args(),
        seed=2,
        output_dir=str(tmp_path / "r"),
        tokenizer=t.tokenizer,
    )
    model = t.model(0)
    finetune(
        model,
        dense(model),
        t.task,
        t.data,
        t.args(),
        seed=2,
        output_dir=str(tmp_path / "e"),
        tokenizer=t.tokenizer,
        source="examples",
        source_options={"path": str(path), "max_seq_length": 16},
    )
    assert same_weights(model, ref) == []
    bad = tmp_path / "bad.jsonl"
    for text, message in (
        ('{"sentence1": "a"}', "no text 'sentence2'"),
        ('{"sentence1": "a", "sentence2": "b", "labels": 7}', "not a class id in"),
        ('{"sentence1": "a", "sentence2": "b", "labels": "maybe"}', "unknown label 'maybe'"),
        ('{"sentence1": "a", "sentence2": "b", "labels": [0.5, 0.6]}', "soft labels must sum to 1"),
        ("[1]", "not a JSON object"),
    ):
        bad.write_text(text + "\n")
        with pytest.raises(ValueError, match=message):
            finetune(
                model,
                dense(model),
                t.task,
                t.data,
                t.args(),
                seed=0,
                output_dir=str(tmp_path / "x"),
                tokenizer=t.tokenizer,
                source="examples",
                source_options={"path": str(bad)},
            )
    with pytest.raises(FileNotFoundError, match="no such file"):
        finetune(
            model,
            dense(model),
            t.task,
            t.data,
            t.args(),
            seed=0,
            output_dir=str(tmp_path / "x"),
            source="examples",
            source_options={"path": str(tmp_path / "none.jsonl")},
        )
    assert not (tmp_path / "x").exists()


# ------------------------------------------------------------------ embeddings
def _frozen(model):
    model.get_input_embeddings().weight.requires_grad_(False)
    return model


def test_embeddings_equal_the_input_ids_forward(t, tmp_path):
    """inputs_embeds = the word-embedding lookup of the ids, with the same token types, attention
    mask and length: BERT adds the same position and token-type embeddings to them, so the
    forward is bitwise the ``input_ids`` one. Exact for the whole training only with the word
    embeddings frozen in both: the ``input_ids`` run also trains the word-embedding matrix (its
    later lookups move), while given ``inputs_embeds`` are constants."""
    padded = _padded(t, 20, 16)
    path = _embeddings_file(t, tmp_path / "e.safetensors", padded, t.model(0))
    args = t.args(num_train_epochs=2)
    ref = _frozen(t.model(0))
    r = finetune(
        ref, dense(ref), t.task, PreparedData(padded, t.data.eval), args, seed=5, output_dir=str(tmp_path / "r"), tokenizer=t.tokenizer
    )
    model = _frozen(t.model(0))
    e = finetune(
        model,
        dense(model),
        t.task,
        t.data,
        args,
        seed=5,
        output_dir=str(tmp_path / "e"),
        tokenizer=t.tokenizer,
        source="embeddings",
        source_options={"path": str(path)},
    )
    assert e.global_step == r.global_step == steps(20, 2)
    assert losses(e.log_history) == losses(r.log_history)
    assert same_weights(model, ref) == []
    # trainable word embeddings: the ids run trains them, the embeddings run cannot (not on its graph)
    free = t.model(0)
    start = free.get_input_embeddings().weight.detach().clone()
    finetune(
        free,
        dense(free),
        t.task,
        t.data,
        args,
        seed=5,
        output_dir=str(tmp_path / "f"),
        source="embeddings",
        source_options={"path": str(path)},
    )
    assert torch.equal(free.get_input_embeddings().weight, start)
    # without token_type_ids a pair task's second segment gets type 0: the numbers differ
    no_types = _embeddings_file(t, tmp_path / "n.safetensors", padded, t.model(0), token_types=False)
    other = _frozen(t.model(0))
    finetune(
        other,
        dense(other),
        t.task,
        t.data,
        args,
        seed=5,
        output_dir=str(tmp_path / "n"),
        source="embeddings",
        source_options={"path": str(no_types)},
    )
    assert same_weights(other, ref) != []


def test_embeddings_soft_labels_train_with_cross_entropy(t, tmp_path):
    """One-hot soft labels give the hard-label training up to rounding (the soft-label loss is
    -sum(p log softmax) instead of the model's CrossEntropyLoss)."""
    padded = _padded(t, 16, 16)
    hard = _embeddings_file(t, tmp_path / "h.safetensors", padded, t.model(0))
    soft = _embeddings_file(t, tmp_path / "s.safetensors", padded, t.model(0), soft=True)
    runs = {}
    for name, path in (("hard", hard), ("soft", soft)):
        model = t.model(0)
        out = finetune(
            model,
            dense(model),
            t.task,
            t.data,
            t.args(),
            seed=1,
            output_dir=str(tmp_path / name),
            source="embeddings",
            source_options={"path": str(path)},
        )
        runs[name] = (model, out)
    (mh, oh), (ms, os_) = runs["hard"], runs["soft"]
    torch.testing.assert_close(dict(ms.named_parameters()), dict(mh.named_parameters()), rtol=1e-4, atol=1e-5)
    assert losses(os_.log_history) == pytest.approx(losses(oh.log_history), rel=1e-5)
    assert ms.config.problem_type != "multi_label_classification" and "accuracy" in os_.metrics


def test_embeddings_bad_input_fails_before_training(t, tmp_path):
    model = t.model(0)
    padded = _padded(t, 4, 16)
    good = _embeddings_file(t, tmp_path / "g.safetensors", padded, model)
    from safetensors.torch import load_file

    base = load_file(good)
    cases = (
        ({**base, "inputs_embeds": torch.zeros(4, 16, 31)}, "do not fit the model"),
        (
            {
                **base,
                "inputs_embeds": torch.zeros(4, 80, 32),
                "attention_mask": torch.ones(4, 80),
                "token_type_ids": torch.zeros(4, 80, dtype=torch.long),
            },
            "do not fit the model",
        ),
        ({**base, "labels": torch.tensor([0, 1, 2, 0])}, "class ids in"),
        ({**base, "labels": torch.full((4, 2), 0.7)}, "soft labels"),
        ({k: v for k, v in base.items() if k != "attention_mask"}, "no tensor 'attention_mask'"),
        ({**base, "attention_mask": torch.zeros(4, 16)}, "attention_mask is all 0"),
        ({**base, "extra": torch.zeros(1)}, "unknown tensor 'extra'"),
    )
    for tensors, message in cases:
        save_file(tensors, str(tmp_path / "b.safetensors"))
        with pytest.raises(ValueError, match=message):
            finetune(
                model,
                dense(model),
                t.task,
                t.data,
                t.args(),
                seed=0,
                output_dir=str(tmp_path / "x"),
                source="embeddings",
                source_options={"path": str(tmp_path / "b.safetensors")},
            )
    with pytest.raises(ValueError, match="needs path="):
        finetune(model, dense(model), t.task, t.data, t.args(), seed=0, output_dir=str(tmp_path / "x"), source="embeddings")
    assert not (tmp_path / "x").exists()
