"""Tests for bert_tickets.tasks: the TOML specs, local GLUE TSV loading (with fixtures in the
exact GLUE format), the Hub path (with ``datasets.load_dataset`` replaced, never downloading),
input validation errors and tokenization. Tests on the real data in ``../shared/data/glue``
skip when it is absent."""

from __future__ import annotations

import csv
import io
import tomllib
from pathlib import Path

import numpy as np
import pytest

from bert_tickets.tasks import (
    get_task,
    list_tasks,
    load_task_dataset,
    load_task_spec,
    tokenize_task_dataset,
    validate_task_inputs,
)
from bert_tickets.tasks.spec import TASK_NAMES, is_regression, num_labels

REPO = Path(__file__).resolve().parents[2]
SHARED_GLUE = REPO.parent / "shared" / "data" / "glue"

# ------------------------------------------------------------------------- fixtures in GLUE format

# Sentence starting with an unbalanced double quote, as in the real MRPC dev.tsv
# ('" The foodservice pie business does not fit our long-term growth strategy .').
QUOTED = '" The plan would fail , he said .'

RTE_TRAIN = (
    "index\tsentence1\tsentence2\tlabel\n"
    f"0\t{QUOTED}\tThe plan failed.\tnot_entailment\n"
    "1\tA dog runs in the park.\tAn animal is outside.\tentailment\n"
    "2\tNo Weapons of Mass Destruction Found in Iraq Yet.\tWeapons Found.\tnot_entailment\n"
)
RTE_DEV = "index\tsentence1\tsentence2\tlabel\n0\tCats sleep.\tCats rest.\tentailment\n"

# MRPC dev.tsv of the GLUE download starts with a UTF-8 BOM.
MRPC_TRAIN = (
    "\ufeffQuality\t#1 ID\t#2 ID\t#1 String\t#2 String\n"
    f'1\t702876\t702977\t{QUOTED}\tReferring to him as only " the witness " , he left .\n'
    "0\t2108705\t2108831\tYucaipa owned Dominick 's .\tYucaipa bought Dominick 's .\n"
)
MRPC_DEV = "Quality\t#1 ID\t#2 ID\t#1 String\t#2 String\n1\t1\t2\tA b .\tA c .\n"

# CoLA has no header: source, label, original mark, sentence.
COLA_TRAIN = (
    "gj04\t1\t\tOur friends won't buy this analysis.\n"
    "gj04\t0\t*\tOne more pseudo generalization or I'm giving up.\n"
    f"gj04\t1\t\t{QUOTED}\n"
    "gj04\t0\t*\tThe more you eat, the fatter.\n"
)
COLA_DEV = "gj04\t1\t\tThe sailors rode the breeze clear of the rocks."  # no trailing newline, as the real file

STSB_HEADER = "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore\n"
STSB_TRAIN = (
    STSB_HEADER
    + "0\tmain-captions\tMSRvid\t2012test\t0001\tnone\tnone\tA plane is taking off.\tAn air plane is taking off.\t5.000\n"
    + f"1\tmain-news\theadlines\t2013\t0002\tnone\tnone\t{QUOTED}\tA man is playing a flute.\t3.800\n"
    + "2\tmain-forums\tdeft\t2014\t0003\tnone\tnone\tA.\tB.\t0.000\n"
)
STSB_DEV = STSB_HEADER + "0\tmain-captions\tMSRvid\t2012test\t0000\tnone\tnone\tA man.\tA man.\t4.750\n"

SST2_TRAIN = "sentence\tlabel\nhide new secretions from the parental units \t0\n" + f"{QUOTED} \t1\n"
SST2_DEV = "sentence\tlabel\nit 's a charming and often affecting journey . \t1\n"

FIXTURES = {
    "rte": ("RTE", RTE_TRAIN, RTE_DEV),
    "mrpc": ("MRPC", MRPC_TRAIN, MRPC_DEV),
    "cola": ("CoLA", COLA_TRAIN, COLA_DEV),
    "stsb": ("STS-B", STSB_TRAIN, STSB_DEV),
    "sst2": ("SST-2", SST2_TRAIN, SST2_DEV),
}


def write_glue(root: Path, task: str, train: str | None = None, dev: str | None = None) -> Path:
    """Write one task's train.tsv / dev.tsv under root/<Folder>/ exactly as given (UTF-8, \\n)."""
    folder, default_train, default_dev = FIXTURES[task]
    d = root / folder
    d.mkdir(parents=True, exist_ok=True)
    (d / "train.tsv").write_bytes((default_train if train is None else train).encode("utf-8"))
    (d / "dev.tsv").write_bytes((default_dev if dev is None else dev).encode("utf-8"))
    return root


@pytest.fixture
def glue_dir(tmp_path: Path) -> Path:
    root = tmp_path / "glue"
    for task in FIXTURES:
        write_glue(root, task)
    return root


# ------------------------------------------------------------------------- specs


def test_task_names():
    assert list_tasks() == ["cola", "mlm", "mnli", "mrpc", "qnli", "qqp", "rte", "squad", "sst2", "stsb", "wnli"]
    assert TASK_NAMES == tuple(list_tasks())


@pytest.mark.parametrize(
    "alias, name",
    [
        ("RTE", "rte"),
        ("sts-b", "stsb"),
        ("STS-B", "stsb"),
        ("sst-2", "sst2"),
        ("SST2", "sst2"),
        ("CoLA", "cola"),
        (" mrpc ", "mrpc"),
        ("sts_b", "stsb"),
    ],
)
def test_get_task_aliases(alias, name):
    assert get_task(alias).name == name


def test_unknown_task_error_lists_known_tasks():
    with pytest.raises(ValueError) as info:
        get_task("mnli-typo")
    msg = str(info.value)
    assert "\n" not in msg and "mnli-typo" in msg
    for name in ("cola", "mrpc", "rte", "sst2", "stsb"):
        assert name in msg


@pytest.mark.parametrize("name", ["rte", "mrpc", "cola", "stsb", "sst2"])
def test_toml_files_are_plain_tomllib_and_match_spec(name):
    path = REPO / "tasks" / f"{name}.toml"
    with path.open("rb") as fh:
        raw = tomllib.load(fh)
    spec = get_task(name)
    assert raw["name"] == spec.name and raw["kind"] == spec.kind == "glue"
    assert raw["hub"]["dataset"] == spec.hub_dataset == "nyu-mll/glue"
    assert raw["hub"]["config"] == spec.hub_config == name
    assert spec.split_names == ("train", "validation")
    assert spec.eval_splits == ("validation",)
    assert (spec.split("train").hub_split, spec.split("train").local_file) == ("train", "train.tsv")
    assert (spec.split("validation").hub_split, spec.split("validation").local_file) == ("validation", "dev.tsv")
    hp = spec.hyperparameters
    assert (hp.learning_rate, hp.per_device_train_batch_size, hp.num_train_epochs, hp.max_seq_length) == (
        2e-5,
        32,
        3,
        128,
    )
    assert hp.training_arguments()["learning_rate"] == 2e-5
    assert spec.primary_metric in spec.metrics
    assert hash(spec) == hash(get_task(name.upper()))


def test_spec_details():
    rte, mrpc, cola, stsb, sst2 = (get_task(n) for n in ("rte", "mrpc", "cola", "stsb", "sst2"))
    assert rte.label_names == ("entailment", "not_entailment") and rte.local_label_format == "name"
    assert rte.id2label == {0: "entailment", 1: "not_entailment"}
    assert rte.local_folder == "RTE" and rte.local_text_columns == ("sentence1", "sentence2")
    assert mrpc.local_text_columns == ("#1 String", "#2 String") and mrpc.local_label_column == "Quality"
    assert mrpc.metrics == ("accuracy", "f1") and mrpc.primary_metric == "f1"
    assert cola.local_header is False and cola.local_text_columns == (3,) and cola.local_label_column == 1
    assert cola.text_columns == ("sentence1",) and not cola.is_pair_task
    assert cola.primary_metric == "matthews_correlation"
    assert stsb.is_regression and is_regression(stsb) and num_labels(stsb) == 1 and stsb.label_range == (0.0, 5.0)
    assert stsb.metrics == ("pearson", "spearmanr") and stsb.local_label_column == "score"
    assert sst2.local_folder == "SST-2" and sst2.hub_text_columns == ("sentence",)
    assert num_labels(sst2) == 2 and not is_regression(sst2)


def test_load_task_spec_rejects_bad_files(tmp_path):
    good = (REPO / "tasks" / "rte.toml").read_text()
    bad_primary = tmp_path / "bad_primary.toml"
    bad_primary.write_text(good.replace('primary = "accuracy"', 'primary = "f1"'))
    with pytest.raises(ValueError, match="bad_primary.toml.*primary"):
        load_task_spec(bad_primary)
    broken = tmp_path / "broken.toml"
    broken.write_text("name = \n")
    with pytest.raises(ValueError, match="broken.toml: invalid TOML"):
        load_task_spec(broken)
    with pytest.raises(FileNotFoundError):
        load_task_spec(tmp_path / "absent.toml")
    # a custom spec file is accepted by get_task
    custom = tmp_path / "my_rte.toml"
    custom.write_text(good.replace('name = "rte"', 'name = "my_rte"'))
    assert get_task(str(custom)).name == "my_rte"


# ------------------------------------------------------------------------- local TSV loading


def test_quote_none_keeps_rows_with_unbalanced_quotes(glue_dir):
    # Default csv quoting would swallow the following lines into the quoted field.
    # RTE / CoLA: rows are merged; MRPC: fields of one row are merged.
    for text in (RTE_TRAIN, MRPC_TRAIN, COLA_TRAIN):
        default = list(csv.reader(io.StringIO(text), delimiter="\t"))
        none = list(csv.reader(io.StringIO(text), delimiter="\t", quoting=csv.QUOTE_NONE))
        assert len(none) == text.count("\n") and default != none
    assert len(list(csv.reader(io.StringIO(RTE_TRAIN), delimiter="\t"))) < RTE_TRAIN.count("\n")
    ds = load_task_dataset(get_task("rte"), glue_dir)
    assert ds["train"].num_rows == 3 and ds["validation"].num_rows == 1
    assert ds["train"][0] == {"sentence1": QUOTED, "sentence2": "The plan failed.", "label": 1}
    assert ds["train"]["label"][:3] == [1, 0, 1]
    assert ds["train"].features["label"].names == ["entailment", "not_entailment"]


def test_mrpc_bom_header_and_quotes(glue_dir):
    ds = load_task_dataset("mrpc", glue_dir)
    assert set(ds) == {"train", "validation"}
    assert ds["train"].column_names == ["sentence1", "sentence2", "label"]
    assert ds["train"]["label"] == [1, 0]
    assert ds["train"][0]["sentence1"] == QUOTED
    assert ds["train"][0]["sentence2"] == 'Referring to him as only " the witness " , he left .'


def test_cola_without_header(glue_dir):
    ds = load_task_dataset("cola", glue_dir)
    assert ds["train"].column_names == ["sentence1", "label"]
    assert ds["train"].num_rows == 4  # the first line is data, not a header
    assert ds["train"]["label"] == [1, 0, 1, 0]
    assert ds["train"][2]["sentence1"] == QUOTED
    assert ds["validation"].num_rows == 1  # last line without newline is kept
    assert ds["validation"][0]["sentence1"] == "The sailors rode the breeze clear of the rocks."


def test_stsb_regression_labels(glue_dir):
    ds = load_task_dataset("stsb", glue_dir)
    assert ds["train"].features["label"].dtype == "float32"
    assert ds["train"]["label"] == pytest.approx([5.0, 3.8, 0.0])
    assert ds["train"][1]["sentence1"] == QUOTED


def test_sst2_single_sentence(glue_dir):
    ds = load_task_dataset("SST-2", glue_dir, splits=["validation"])
    assert list(ds) == ["validation"]
    assert ds["validation"][0] == {"sentence1": "it 's a charming and often affecting journey . ", "label": 1}


def test_task_folder_itself_is_accepted(glue_dir):
    ds = load_task_dataset("rte", glue_dir / "RTE")
    assert ds["train"].num_rows == 3


# ------------------------------------------------------------------------- validation errors


def test_missing_directory_folder_and_file(tmp_path, glue_dir):
    with pytest.raises(FileNotFoundError, match="data directory not found"):
        validate_task_inputs(get_task("rte"), tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="task folder not found"):
        validate_task_inputs(get_task("rte"), tmp_path)
    (glue_dir / "RTE" / "dev.tsv").unlink()
    with pytest.raises(FileNotFoundError) as info:
        load_task_dataset("rte", glue_dir)
    assert str(glue_dir / "RTE" / "dev.tsv") in str(info.value)
    assert "\n" not in str(info.value)


def test_validate_returns_paths(glue_dir):
    paths = validate_task_inputs(get_task("stsb"), glue_dir)
    assert paths == {"train": glue_dir / "STS-B" / "train.tsv", "validation": glue_dir / "STS-B" / "dev.tsv"}


def test_missing_column_is_named(tmp_path):
    root = write_glue(tmp_path, "rte", train=RTE_TRAIN.replace("\tlabel\n", "\tgold\n", 1))
    with pytest.raises(ValueError) as info:
        validate_task_inputs(get_task("rte"), root)
    msg = str(info.value)
    assert "'label'" in msg and "train.tsv" in msg and "\n" not in msg


def test_headerless_file_with_too_few_columns(tmp_path):
    root = write_glue(tmp_path, "cola", dev="gj04\t1\tsentence only\n")
    with pytest.raises(ValueError, match=r"dev.tsv: line 1 has 3 .*index 3"):
        validate_task_inputs(get_task("cola"), root)


def test_validation_reads_only_the_header(tmp_path):
    # A bad label deep in the file passes the cheap check but fails the full load.
    root = write_glue(tmp_path, "rte", train=RTE_TRAIN + "3\ta\tb\tmaybe\n")
    validate_task_inputs(get_task("rte"), root)
    with pytest.raises(ValueError) as info:
        load_task_dataset("rte", root)
    msg = str(info.value)
    assert f"{root / 'RTE' / 'train.tsv'}:5:" in msg and "'maybe'" in msg and "\n" not in msg


@pytest.mark.parametrize(
    "task, train, line, pattern",
    [
        ("mrpc", MRPC_TRAIN.replace("\n0\t", "\n2\t"), 3, "unknown label '2'"),
        ("sst2", SST2_TRAIN.replace("\t1\n", "\tpositive\n"), 3, "unknown label 'positive'"),
        ("cola", COLA_TRAIN.replace("gj04\t0\t*", "gj04\tx\t*", 1), 2, "unknown label 'x'"),
        ("stsb", STSB_TRAIN.replace("3.800", "7.5"), 3, r"outside \[0.0, 5.0\]"),
        ("stsb", STSB_TRAIN.replace("3.800", "n/a"), 3, "not a finite number"),
        ("rte", RTE_TRAIN.replace("An animal is outside.", "An animal\tis outside."), 3, "expected 4 .* found 5"),
    ],
)
def test_bad_rows_name_file_and_line(tmp_path, task, train, line, pattern):
    root = write_glue(tmp_path, task, train=train)
    with pytest.raises(ValueError, match=pattern) as info:
        load_task_dataset(task, root)
    assert f"train.tsv:{line}:" in str(info.value)


def test_unknown_split_and_non_glue_kind(glue_dir, tmp_path):
    with pytest.raises(ValueError, match="no split 'test'"):
        load_task_dataset("rte", glue_dir, splits=["test"])
    squad_like = tmp_path / "squad.toml"
    text = (REPO / "tasks" / "rte.toml").read_text().replace('kind = "glue"', 'kind = "squad"')
    squad_like.write_text(text.replace('name = "rte"', 'name = "squadish"'))
    with pytest.raises(NotImplementedError, match="squad"):
        load_task_dataset(load_task_spec(squad_like), glue_dir)


# ------------------------------------------------------------------------- Hub path (no download)


def _fake_hub(config: str):
    from datasets import ClassLabel, Dataset, DatasetDict, Features, Value

    if config == "sst2":
        feats = Features({"sentence": Value("string"), "label": ClassLabel(names=["negative", "positive"]), "idx": Value("int32")})
        make = lambda labels: Dataset.from_dict(  # noqa: E731
            {"sentence": [f"s{i}" for i in range(len(labels))], "label": labels, "idx": list(range(len(labels)))},
            features=feats,
        )
        return DatasetDict({"train": make([0, 1, 1]), "validation": make([1, 0]), "test": make([-1, -1])})
    feats = Features({"sentence1": Value("string"), "sentence2": Value("string"), "label": Value("float32"), "idx": Value("int32")})
    make = lambda labels: Dataset.from_dict(  # noqa: E731
        {"sentence1": ["a"] * len(labels), "sentence2": ["b"] * len(labels), "label": labels, "idx": list(range(len(labels)))},
        features=feats,
    )
    return DatasetDict({"train": make([0.5, 4.0]), "validation": make([3.25]), "test": make([-1.0])})


def test_hub_path_normalises_columns(monkeypatch):
    import datasets

    calls = []

    def fake_load_dataset(path, name=None, **kwargs):
        calls.append((path, name, kwargs.get("cache_dir")))
        return _fake_hub(name)

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    ds = load_task_dataset("sst2", cache_dir="/tmp/cache")
    assert calls == [("nyu-mll/glue", "sst2", "/tmp/cache")]
    assert set(ds) == {"train", "validation"}
    assert ds["train"].column_names == ["sentence1", "label"]
    assert ds["train"]["label"] == [0, 1, 1]
    assert ds["validation"]["sentence1"] == ["s0", "s1"]

    ds = load_task_dataset("stsb")
    assert ds["train"].column_names == ["sentence1", "sentence2", "label"]
    assert ds["validation"]["label"] == pytest.approx([3.25])
    assert ds["train"].features["label"].dtype == "float32"


def test_hub_split_with_unlabelled_rows_is_rejected(monkeypatch):
    import datasets

    spec = get_task("sst2")
    raw = _fake_hub("sst2")
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: datasets.DatasetDict({"train": raw["train"], "validation": raw["test"]}))
    with pytest.raises(ValueError, match="unlabelled"):
        load_task_dataset(spec)


# ------------------------------------------------------------------------- tokenization


@pytest.fixture
def tiny_tokenizer():
    from transformers import BertTokenizer

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "the", "plan", "he", "said", '"', "."]
    return BertTokenizer(vocab={w: i for i, w in enumerate(words)})


def test_tokenize_pairs_to_max_length(glue_dir, tiny_tokenizer):
    spec = get_task("rte")
    ds = tokenize_task_dataset(load_task_dataset(spec, glue_dir), spec, tiny_tokenizer, max_seq_length=20)
    train = ds["train"]
    assert set(train.column_names) == {"input_ids", "token_type_ids", "attention_mask", "label"}
    ids = np.asarray(train["input_ids"])
    assert ids.shape == (3, 20)
    assert (ids[:, 0] == tiny_tokenizer.cls_token_id).all()
    assert (np.asarray(train["token_type_ids"]).max(axis=1) == 1).all()  # second segment present
    assert train["label"] == [1, 0, 1]
    # row 0 = '" The plan would fail , he said .' (9 word pieces) + 'The plan failed.' (4) + 3 specials
    assert int(np.asarray(train["attention_mask"])[0].sum()) == 16
    assert train["input_ids"][0][1] == tiny_tokenizer.convert_tokens_to_ids('"')


def test_tokenize_single_sentence_truncation_and_dynamic_padding(glue_dir, tiny_tokenizer):
    spec = get_task("cola")
    dd = load_task_dataset(spec, glue_dir)
    short = tokenize_task_dataset(dd, spec, tiny_tokenizer, max_seq_length=6)
    assert np.asarray(short["train"]["input_ids"]).shape == (4, 6)
    assert np.asarray(short["train"]["token_type_ids"]).max() == 0
    dynamic = tokenize_task_dataset(dd["train"], spec, tiny_tokenizer, padding=False)
    lengths = [len(x) for x in dynamic["input_ids"]]
    assert len(set(lengths)) > 1 and max(lengths) <= spec.hyperparameters.max_seq_length


def test_tokenize_requires_normalised_columns(tiny_tokenizer):
    from datasets import Dataset

    spec = get_task("rte")
    raw = Dataset.from_dict({"premise": ["a"], "label": [0]})
    with pytest.raises(ValueError, match="no column 'sentence1'"):
        tokenize_task_dataset(raw, spec, tiny_tokenizer)


# ------------------------------------------------------------------------- real data (../shared)

REAL_COUNTS = {
    "cola": (8551, 1043),
    "sst2": (67349, 872),
    "mrpc": (3668, 408),
    "stsb": (5749, 1500),
    "rte": (2490, 277),
}


@pytest.mark.shared
@pytest.mark.parametrize("name", sorted(REAL_COUNTS))
def test_real_glue_row_counts_and_label_ranges(name):
    if not SHARED_GLUE.is_dir():
        pytest.skip(f"real GLUE data not found at {SHARED_GLUE}")
    spec = get_task(name)
    validate_task_inputs(spec, SHARED_GLUE)
    ds = load_task_dataset(spec, SHARED_GLUE)
    assert (ds["train"].num_rows, ds["validation"].num_rows) == REAL_COUNTS[name]
    for split in ("train", "validation"):
        labels = np.asarray(ds[split]["label"])
        texts = ds[split]["sentence1"]
        assert all(isinstance(t, str) and t.strip() for t in texts)
        if spec.is_regression:
            assert labels.min() == pytest.approx(0.0) and labels.max() == pytest.approx(5.0)
        else:
            assert set(np.unique(labels).tolist()) == {0, 1}
