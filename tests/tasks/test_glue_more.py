"""MNLI, QQP, QNLI and WNLI: fixtures in the exact GLUE TSV format and column order (their real
files are not on this machine), loading and labels, the Hub path (``datasets.load_dataset``
replaced, never downloading), and MNLI's two evaluation splits reported through
``GlueKind.evaluate`` on a tiny model."""

from __future__ import annotations

import logging
import tomllib
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoTokenizer, Trainer, TrainingArguments

from bert_tickets.tasks import GlueKind, get_kind, get_task, list_tasks, load_task_dataset, validate_task_inputs
from bert_tickets.training.callback import fix_loss_scaling

from tiny_assets import write_tiny_checkpoint

REPO = Path(__file__).resolve().parents[2]

# --------------------------------------------------------------------- MNLI (GLUE download layout)
# train.tsv: 12 columns (one annotator label + gold); dev_*.tsv: 16 columns (label1..label5 + gold).
MNLI_COLS = (
    "index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\tsentence1_parse\tsentence2_parse\tsentence1\tsentence2"
)
MNLI_TRAIN_HEADER = MNLI_COLS + "\tlabel1\tgold_label\n"
MNLI_DEV_HEADER = MNLI_COLS + "\tlabel1\tlabel2\tlabel3\tlabel4\tlabel5\tgold_label\n"


def mnli_row(i, s1, s2, labels):
    parse1 = "( " + " ".join(s1.split()) + " )"
    parse2 = "( " + " ".join(s2.split()) + " )"
    tree1, tree2 = f"(ROOT (S {s1}))", f"(ROOT (S {s2}))"
    return "\t".join([str(i), str(31193 + i), f"{31193 + i}n", "government", parse1, parse2, tree1, tree2, s1, s2, *labels]) + "\n"


MNLI_TRAIN = MNLI_TRAIN_HEADER + "".join(
    [
        mnli_row(
            0,
            "Conceptually cream skimming has two basic dimensions - product and geography.",
            "Product and geography are what make cream skimming work. ",
            ["neutral", "neutral"],
        ),
        mnli_row(
            1,
            'you know during the season and i guess at at your level uh you lose them "',
            "You lose the things to the following level if the people recall.",
            ["entailment", "entailment"],
        ),
        mnli_row(
            2,
            "One of our number will carry out your instructions minutely.",
            "A member of my team will execute your orders with immense precision.",
            ["entailment", "entailment"],
        ),
        mnli_row(
            3,
            "How do you know? All this is their information again.",
            "This information belongs to them.",
            ["contradiction", "contradiction"],
        ),
    ]
)
MNLI_DEV_MATCHED = MNLI_DEV_HEADER + "".join(
    [
        mnli_row(
            0,
            "The new rights are nice enough",
            "Everyone really likes the newest benefits ",
            ["neutral", "entailment", "neutral", "neutral", "neutral", "neutral"],
        ),
        # gold_label differs from label1: the gold column must be the one read
        mnli_row(
            1,
            "This site includes a list of all award winners.",
            "The Government Executive articles are not online.",
            ["entailment", "contradiction", "contradiction", "contradiction", "contradiction", "contradiction"],
        ),
        mnli_row(
            2,
            "uh i don't know i i have mixed emotions about him",
            "I like him for the most part.",
            ["neutral", "neutral", "entailment", "neutral", "neutral", "neutral"],
        ),
    ]
)
MNLI_DEV_MISMATCHED = MNLI_DEV_HEADER + "".join(
    [
        mnli_row(
            0,
            "Your contribution helped make it possible.",
            "Your contributions were of no help.",
            ["contradiction", "contradiction", "contradiction", "contradiction", "contradiction", "contradiction"],
        ),
        mnli_row(
            1,
            "The answer is no.",
            "The answer is yes, most definitely.",
            ["contradiction", "contradiction", "neutral", "contradiction", "contradiction", "contradiction"],
        ),
        mnli_row(
            2,
            "Thank you for supporting the school.",
            "Your support matters.",
            ["entailment", "entailment", "entailment", "entailment", "entailment", "entailment"],
        ),
        mnli_row(3, 'He said "yes.', "He agreed.", ["entailment", "entailment", "neutral", "entailment", "entailment", "entailment"]),
    ]
)

# --------------------------------------------------------------------- QQP
QQP_HEADER = "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate\n"
QQP_TRAIN = (
    QQP_HEADER + "133273\t213221\t213222\tHow is the life of a math student? Could you describe your own experiences?\t"
    "Which level of prepration is enough for the exam jlpt5?\t0\n"
    + "402555\t536040\t536041\tHow do I control my horny emotions?\tHow do you control your horniness?\t1\n"
    # a question broken by a newline, as in the original train.tsv: both fragments are malformed
    + "201841\t303951\t174364\tHow can I create an Android app?\n"
    + "How do I start making apps?\t1\n"
    + '360472\t364011\t490273\tWhat is the "best" way to learn?\tHow do I learn fast?\t0\n'
)
QQP_DEV = QQP_HEADER + "40066\t65810\t65811\tWhat are the best ways to lose weight?\tHow can I lose weight fast?\t1\n"

# --------------------------------------------------------------------- QNLI, WNLI
QNLI_TRAIN = (
    "index\tquestion\tsentence\tlabel\n"
    "0\tWhen did the third Digimon series begin?\tUnlike the two seasons before it and most of the seasons that "
    "followed, Digimon Tamers takes a darker and more realistic approach to its story.\tnot_entailment\n"
    "1\tWhich missile batteries often have individual launchers several kilometres from one another?\t"
    "When MANPADS is operated by specialists, batteries may have several dozen teams deploying separately in small "
    "sections; self-propelled air defence guns may deploy in pairs.\tnot_entailment\n"
    "2\tWhat two things does Popper argue Tarski's theory involves in an evaluation of truth?\tHe bases this "
    'interpretation on the fact that examples such as the one described above refer to two things: "assertions" '
    "and the facts to which they refer.\tentailment\n"
)
QNLI_DEV = (
    "index\tquestion\tsentence\tlabel\n0\tWhat came into force after the new constitution was herald?\t"
    "As of that day, the new constitution heralding the Second Republic came into force.\tentailment\n"
)
WNLI_TRAIN = (
    "index\tsentence1\tsentence2\tlabel\n"
    "0\tI stuck a pin through a carrot. When I pulled the pin out, it had a hole.\tThe carrot had a hole.\t1\n"
    "1\tJohn couldn't see the stage with Billy in front of him because he is so short.\tJohn is so short.\t1\n"
    "2\tThe police arrested all of the gang members. They were trying to stop the drug trade in the neighborhood."
    "\tThe police were trying to stop the drug trade in the neighborhood.\t1\n"
    "3\tSteve follows Fred's example in everything. He influences him hugely.\tSteve influences him hugely.\t0\n"
)
WNLI_DEV = "index\tsentence1\tsentence2\tlabel\n0\tThe drain is clogged with hair. It has to be cleaned.\tThe hair has to be cleaned.\t0\n"

FILES = {
    "mnli": ("MNLI", {"train.tsv": MNLI_TRAIN, "dev_matched.tsv": MNLI_DEV_MATCHED, "dev_mismatched.tsv": MNLI_DEV_MISMATCHED}),
    "qqp": ("QQP", {"train.tsv": QQP_TRAIN, "dev.tsv": QQP_DEV}),
    "qnli": ("QNLI", {"train.tsv": QNLI_TRAIN, "dev.tsv": QNLI_DEV}),
    "wnli": ("WNLI", {"train.tsv": WNLI_TRAIN, "dev.tsv": WNLI_DEV}),
}


@pytest.fixture
def glue_dir(tmp_path):
    for folder, files in FILES.values():
        (tmp_path / folder).mkdir()
        for name, text in files.items():
            (tmp_path / folder / name).write_bytes(text.encode("utf-8"))
    return tmp_path


def test_all_eleven_tasks_are_listed():
    assert list_tasks() == ["cola", "mlm", "mnli", "mrpc", "qnli", "qqp", "rte", "squad", "sst2", "stsb", "wnli"]


def test_every_metric_named_by_a_spec_is_implemented_by_its_kind():
    from bert_tickets.tasks.metrics import METRICS

    implemented = {"glue": set(METRICS), "squad": {"exact_match", "f1"}, "mlm": {"accuracy", "perplexity"}}
    for name in list_tasks():
        spec = get_task(name)
        assert set(spec.metrics) <= implemented[spec.kind], name
        assert spec.primary_metric in spec.metrics and spec.primary_metric != "perplexity"  # higher is better
        get_kind(spec.kind)  # every kind is registered


@pytest.mark.parametrize(
    "name, labels, hub_text, local_text, label_col, metrics, primary, eval_files",
    [
        (
            "mnli",
            ("entailment", "neutral", "contradiction"),
            ("premise", "hypothesis"),
            ("sentence1", "sentence2"),
            "gold_label",
            ("accuracy",),
            "accuracy",
            ("dev_matched.tsv", "dev_mismatched.tsv"),
        ),
        (
            "qqp",
            ("not_duplicate", "duplicate"),
            ("question1", "question2"),
            ("question1", "question2"),
            "is_duplicate",
            ("accuracy", "f1"),
            "f1",
            ("dev.tsv",),
        ),
        (
            "qnli",
            ("entailment", "not_entailment"),
            ("question", "sentence"),
            ("question", "sentence"),
            "label",
            ("accuracy",),
            "accuracy",
            ("dev.tsv",),
        ),
        (
            "wnli",
            ("not_entailment", "entailment"),
            ("sentence1", "sentence2"),
            ("sentence1", "sentence2"),
            "label",
            ("accuracy",),
            "accuracy",
            ("dev.tsv",),
        ),
    ],
)
def test_specs_match_glue(name, labels, hub_text, local_text, label_col, metrics, primary, eval_files):
    spec = get_task(name)
    with (REPO / "tasks" / f"{name}.toml").open("rb") as fh:
        assert tomllib.load(fh)["name"] == name
    assert spec.kind == "glue" and spec.label_names == labels and spec.num_labels == len(labels)
    assert (spec.hub_dataset, spec.hub_config) == ("nyu-mll/glue", name)
    assert spec.hub_text_columns == hub_text and spec.local_text_columns == local_text
    assert spec.local_label_column == label_col and spec.metrics == metrics and spec.primary_metric == primary
    assert tuple(spec.split(s).local_file for s in spec.eval_splits) == eval_files
    assert spec.split("train").local_file == "train.tsv"
    hp = spec.hyperparameters
    assert (hp.learning_rate, hp.per_device_train_batch_size, hp.num_train_epochs, hp.max_seq_length) == (2e-5, 32, 3, 128)


def test_mnli_loads_gold_labels_and_both_dev_sets(glue_dir):
    ds = load_task_dataset("mnli", glue_dir)
    assert list(ds) == ["train", "validation_matched", "validation_mismatched"]
    assert ds["train"].column_names == ["sentence1", "sentence2", "label"]
    assert ds["train"]["label"] == [1, 0, 0, 2]  # neutral, entailment, entailment, contradiction
    assert ds["validation_matched"]["label"] == [1, 2, 1]  # gold_label, not label1
    assert ds["validation_mismatched"]["label"] == [2, 2, 0, 0]
    assert ds["train"]["sentence1"][1].endswith('"')  # unbalanced quote kept (QUOTE_NONE)
    assert ds["validation_mismatched"]["sentence1"][3] == 'He said "yes.'
    assert ds["train"].features["label"].names == ["entailment", "neutral", "contradiction"]
    # the task folder itself is accepted too (BERT-Tickets passes --data_dir glue_data/MNLI)
    assert load_task_dataset("mnli", glue_dir / "MNLI")["validation_mismatched"].num_rows == 4
    (glue_dir / "MNLI" / "dev_mismatched.tsv").unlink()
    with pytest.raises(FileNotFoundError, match="dev_mismatched.tsv"):
        validate_task_inputs(get_task("mnli"), glue_dir)


def test_qqp_skips_malformed_rows(glue_dir, caplog):
    with caplog.at_level(logging.WARNING, logger="bert_tickets"):
        ds = load_task_dataset("qqp", glue_dir)
    assert "skipped 2 malformed rows" in caplog.text
    assert ds["train"].num_rows == 3 and ds["train"]["label"] == [0, 1, 0]
    assert ds["train"]["sentence1"][2] == 'What is the "best" way to learn?'
    assert ds["validation"]["label"] == [1]


def test_qnli_and_wnli(glue_dir):
    qnli = load_task_dataset("qnli", glue_dir)
    assert qnli["train"]["label"] == [1, 1, 0] and qnli["validation"]["label"] == [0]
    assert qnli["train"]["sentence1"][0] == "When did the third Digimon series begin?"
    assert qnli["train"]["sentence2"][2].startswith("He bases this interpretation")
    wnli = load_task_dataset("wnli", glue_dir)
    assert wnli["train"]["label"] == [1, 1, 1, 0] and wnli["validation"]["label"] == [0]
    assert wnli["train"].features["label"].int2str(1) == "entailment"


def test_mnli_hub_path(monkeypatch):
    import datasets
    from datasets import ClassLabel, Dataset, DatasetDict, Features, Value

    feats = Features(
        {
            "premise": Value("string"),
            "hypothesis": Value("string"),
            "label": ClassLabel(names=["entailment", "neutral", "contradiction"]),
            "idx": Value("int32"),
        }
    )

    def make(labels):
        return Dataset.from_dict(
            {"premise": ["p"] * len(labels), "hypothesis": ["h"] * len(labels), "label": labels, "idx": list(range(len(labels)))},
            features=feats,
        )

    fake = DatasetDict(
        {
            "train": make([0, 1, 2]),
            "validation_matched": make([2]),
            "validation_mismatched": make([1, 0]),
            "test_matched": make([-1]),
            "test_mismatched": make([-1]),
        }
    )
    calls = []
    monkeypatch.setattr(datasets, "load_dataset", lambda path, name=None, **kw: calls.append((path, name)) or fake)
    ds = load_task_dataset("mnli")
    assert calls == [("nyu-mll/glue", "mnli")]
    assert list(ds) == ["train", "validation_matched", "validation_mismatched"]
    assert ds["validation_mismatched"]["label"] == [1, 0] and ds["train"].column_names == ["sentence1", "sentence2", "label"]


def test_mnli_reports_both_eval_splits(glue_dir, tmp_path):
    ckpt = write_tiny_checkpoint(tmp_path / "ckpt")
    spec = get_task("mnli")
    kind = get_kind(spec.kind)
    assert isinstance(kind, GlueKind)
    tokenizer = AutoTokenizer.from_pretrained(ckpt)
    data = kind.prepare(spec, tokenizer, glue_dir, None, 32, None, None)
    assert list(data.eval) == ["validation_matched", "validation_mismatched"]
    model = fix_loss_scaling(kind.load_model(spec, str(ckpt)))
    assert model.config.num_labels == 3
    args = TrainingArguments(
        output_dir=str(tmp_path / "out"), use_cpu=True, report_to="none", per_device_eval_batch_size=2, disable_tqdm=True
    )
    trainer = Trainer(model=model, args=args, processing_class=tokenizer, **kind.trainer_kwargs(spec, tokenizer, data))
    metrics = kind.evaluate(trainer, spec, data)
    assert {"accuracy", "loss", "validation_mismatched_accuracy", "validation_mismatched_loss"} <= set(metrics)
    model.eval()
    for split, key in (("validation_matched", "accuracy"), ("validation_mismatched", "validation_mismatched_accuracy")):
        ds = data.eval[split]
        with torch.no_grad():
            preds = [
                int(model(**{k: torch.tensor([ds[i][k]]) for k in ("input_ids", "token_type_ids", "attention_mask")}).logits.argmax())
                for i in range(len(ds))
            ]
        assert metrics[key] == pytest.approx(float(np.mean(np.array(preds) == np.array(ds["label"]))))
