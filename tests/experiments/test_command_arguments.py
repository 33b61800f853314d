"""Every command validates its arguments before any work or write (issue 23, item 1) and says
what is wrong in the user's terms instead of a raw OS or Hub message (item 5): one line on
stderr, exit status 2 through ``bert_tickets.cli.main``, nothing on disk changed."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from transformers import AutoModelForSequenceClassification

from bert_tickets.cli import main
from bert_tickets.ticket import TicketMask, load_ticket

from tiny_assets import IMP_TRAIN_ARGS, write_imp_inputs


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """A tiny θ0, RTE data and a finished two-level run that kept its trained weights."""
    root = tmp_path_factory.mktemp("args")
    ckpt, glue = write_imp_inputs(root)
    run = root / "run"
    argv = ["find", "--task", "rte", "--model", str(ckpt), "--data_dir", str(glue), "--output_dir", str(run), "--max_levels", "1"]
    assert main([*argv, *IMP_TRAIN_ARGS, "--save_trained"]) == 0
    return root, ckpt, glue, run


def _tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir" for p in sorted(root.rglob("*"))}


def _refused(capsys, root: Path, argv: list[str], *needles: str) -> str:
    """Run ``argv``: exit status 2, one line on stderr holding every needle, ``root`` unchanged."""
    before = _tree(root)
    capsys.readouterr()
    assert main(argv) == 2, argv
    # the error is the last line and the only one (a check after reading the data may follow
    # the tokenizer's progress bar)
    err = [line for line in capsys.readouterr().err.strip().splitlines() if line.strip() and not line.startswith("tokenize ")]
    assert len(err) == 1 and err[0].startswith(f"bert-tickets {argv[0]}: error: "), err
    for needle in needles:
        assert needle in err[0], err[0]
    assert "Errno" not in err[0] and "Repo id" not in err[0], err[0]
    assert _tree(root) == before, argv
    return err[0]


def _find(inputs, out, *extra):
    root, ckpt, glue, _ = inputs
    argv = ["find", "--task", "rte", "--model", str(ckpt), "--data_dir", str(glue), "--output_dir", str(out), "--max_levels", "1"]
    return [*argv, *IMP_TRAIN_ARGS, *extra]


def _transfer(inputs, out, *extra):
    root, ckpt, glue, run = inputs
    argv = ["transfer", "--tickets", str(run), "--level", "1", "--tasks", "rte", "--data_dir", str(glue), "--baselines", "dense"]
    return [*argv, "--output_dir", str(out), *IMP_TRAIN_ARGS, "--max_steps", "1", *extra]


def _prune_at_init(inputs, out, *extra):
    root, ckpt, glue, _ = inputs
    argv = ["prune-at-init", "--task", "rte", "--model", str(ckpt), "--data_dir", str(glue), "--output_dir", str(out)]
    return [*argv, "--criterion", "magnitude", "--sanity", "none", "--baselines", "dense", *IMP_TRAIN_ARGS, "--max_steps", "1", *extra]


@pytest.mark.parametrize(
    "extra, needles",
    [
        (("--save_steps", "-1"), ("--save_steps must be > 0", "got -1")),
        (("--save_strategy", "steps", "--save_steps", "0"), ("--save_steps must be > 0",)),
        (("--logging_steps", "-5"), ("--logging_steps must be > 0",)),
        (("--eval_steps", "-1"), ("--eval_steps must be > 0",)),
        (("--per_device_train_batch_size", "0"), ("--per_device_train_batch_size must be >= 1, got 0",)),
        (("--gradient_accumulation_steps", "0"), ("--gradient_accumulation_steps must be >= 1, got 0",)),
        (("--num_train_epochs", "-1"), ("--num_train_epochs must be >= 0, got -1",)),
        (("--num_train_epochs", "0"), ("--num_train_epochs 0 without --max_steps trains nothing",)),
        (("--max_steps", "-3"), ("--max_steps must be a positive number of optimizer steps, or -1", "got -3")),
        (("--max_steps", "0"), ("--max_steps must be a positive number",)),
        (("--dataloader_num_workers", "-1"), ("--dataloader_num_workers must be >= 0",)),
        (("--save_total_limit", "-1"), ("--save_total_limit must be >= 0",)),
        (("--seed", "-1"), ("--seed must be an integer in [0, 2**32), got -1",)),
        (("--data_seed", "-2"), ("--data_seed must be an integer in [0, 2**32), got -2",)),
        (("--seeds", "-1"), ("--seeds must be integers in [0, 2**32), got -1",)),
        (("--max_tensor_sparsity", "1.5"), ("--max_tensor_sparsity must be a fraction in (0, 1], got 1.5",)),
    ],
)
def test_find_refuses_training_values_that_mean_nothing(inputs, capsys, extra, needles):
    root = inputs[0]
    _refused(capsys, root, _find(inputs, root / "new_run", *extra), *needles)


@pytest.mark.parametrize(
    "extra, needles",
    [
        (("--max_retries", "-1"), ("--max_retries must be >= 0, got -1",)),
        (("--tolerance", "-0.1"), ("--tolerance must be >= 0, got -0.1",)),
        (("--max_eval_samples", "0"), ("--max_eval_samples must be a positive number, got 0",)),
        (("--max_seq_length", "0"), ("--max_seq_length must be a positive number, got 0",)),
        (("--save_steps", "-1"), ("--save_steps must be > 0",)),
        (("--seed", "-1"), ("--seed must be an integer in [0, 2**32)",)),
        (("--task_args", "rte:logging_steps=-1"), ("--logging_steps must be > 0", "(target rte)")),
        (("--seeds", "-1"), ("--seeds must be distinct integers >= 0, got -1",)),
        (("--seeds", "1", "1"), ("--seeds must be distinct integers >= 0, got 1 1",)),
        (("--executor", "ray", "--cpus_per_cell", "0"), ("--cpus_per_cell must be > 0, got 0",)),
        (("--executor", "ray", "--ray_address", "nowhere"), ("--ray_address nowhere: expected HOST:PORT",)),
    ],
)
def test_transfer_refuses_values_that_mean_nothing(inputs, capsys, extra, needles):
    root = inputs[0]
    _refused(capsys, root, _transfer(inputs, root / "new_matrix", *extra), *needles)


@pytest.mark.parametrize(
    "extra, needles",
    [
        (("--tolerance", "-1"), ("--tolerance must be >= 0, got -1",)),
        (("--max_tensor_sparsity", "1.5"), ("--max_tensor_sparsity must be a fraction in (0, 1], got 1.5",)),
        (("--save_steps", "-1"), ("--save_steps must be > 0",)),
        (("--per_device_train_batch_size", "-1"), ("--per_device_train_batch_size must be >= 1",)),
        (("--seeds", "-1"), ("--seeds must be distinct integers >= 0, got -1",)),
    ],
)
def test_prune_at_init_refuses_values_that_mean_nothing(inputs, capsys, extra, needles):
    root = inputs[0]
    _refused(capsys, root, _prune_at_init(inputs, root / "new_pai", *extra), *needles)


def test_stability_refuses_bad_seeds_and_an_unreachable_rewind_step_before_training(inputs, capsys):
    root, _, _, run = inputs
    _refused(
        capsys,
        root,
        ["stability", str(run), "--level", "1", "--data_seeds", "-1", "2"],
        "--data_seeds must be integers in [0, 2**32), got -1 2",
    )
    # 32 examples, batch 8, one epoch: 4 optimizer steps; found before training, nothing written
    _refused(
        capsys, root, ["stability", str(run), "--level", "1", "--rewind_step", "1000"], "--rewind_step 1000 exceeds the 4 optimizer steps"
    )
    assert not (run / "stability").exists()


def test_outputs_of_the_wrong_type_are_named_not_errno(inputs, capsys, tmp_path):
    root, _, _, run = inputs
    (root / "a_file").write_text("x")
    a_file = root / "a_file"
    _refused(
        capsys, root, ["export", str(run), "--level", "1", "--output_dir", str(a_file / "out")], "a_file is a file, so the directory cannot"
    )
    _refused(capsys, root, ["plot", str(run), "--out", str(run / "level_01")], f"cannot write {run / 'level_01'}: it is a directory")
    _refused(capsys, root, ["plot", str(run), "--out", str(a_file / "x.png")], "a_file is a file, not a directory")
    push = ["push", str(run), "--repo-id", "a/b", "--level", "1", "--force", "--base-model-id", "bert-base-uncased"]
    _refused(capsys, root, [*push, "--save-dir", str(a_file)], "--save-dir", "a_file is a file, not a directory")
    _refused(capsys, root, [*push, "--save-dir", str(a_file / "s")], "--save-dir", "a_file is a file, so the directory cannot")
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "main").write_text("x")  # where push writes main's folder
    assert main([*push, "--save-dir", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "main is a file, not a directory" in err[0] and "Errno" not in err[0]


def test_a_model_path_that_does_not_exist_is_not_taken_for_a_hub_id(inputs, capsys, monkeypatch):
    root, ckpt, glue, run = inputs
    monkeypatch.chdir(root)
    argv = _prune_at_init(inputs, root / "pai")
    at = argv.index("--model") + 1
    for missing in ("../no/such/ckpt", "../nope", "no/such/ckpt/here"):
        argv[at] = missing
        _refused(capsys, root, argv, f"--model {missing}: model directory not found (and it is not a Hub repo id)")
    argv[at] = str(glue / "RTE" / "train.tsv")
    _refused(capsys, root, argv, "is a file, not a model directory")
    argv = _transfer(inputs, root / "m", "--model", "../no/such/ckpt")
    _refused(capsys, root, argv, "--model ../no/such/ckpt")


def test_load_ticket_names_a_base_model_it_cannot_find(inputs, tmp_path, monkeypatch):
    """A ticket that names θ0 by a relative path (as prune-at-init did) loaded from another
    directory: one line saying what to pass, not the Hub's "Repo id must be in the form…"."""
    root, ckpt, _, run = inputs
    ticket = TicketMask.from_pretrained(run / "level_01" / "ticket")
    ticket.metadata.base_model = os.path.relpath(ckpt, root)  # "ckpt", as typed in root
    ticket.metadata.base_model_revision = "main"
    ticket.save_pretrained(tmp_path / "ticket")
    monkeypatch.chdir(root)
    model = load_ticket(tmp_path / "ticket", AutoModelForSequenceClassification, num_labels=2)  # from where it was typed: found
    assert ticket.count_nonzero_pruned(model) == 0
    ticket.metadata.base_model = "../elsewhere/ckpt"
    ticket.save_pretrained(tmp_path / "ticket")
    with pytest.raises(FileNotFoundError, match=r"ckpt: model directory not found .*; pass base_model=") as err:
        load_ticket(tmp_path / "ticket", AutoModelForSequenceClassification, num_labels=2)
    assert len(str(err.value).splitlines()) == 1
