#!/usr/bin/env python
"""Print the bad-input table of docs/reliability.md: every case run through the real CLI (every
command) on tiny inputs made in a temporary directory, with its exit status, its error line
count, whether anything under the directory changed, and the message.

    python scripts/bad_input_table.py > /tmp/table.md

``tests/experiments/test_bad_input_table.py`` runs the same cases (:func:`make_inputs`,
:func:`cases`, :func:`run_case`) and asserts each is one line, exit 2, nothing changed.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from bert_tickets.cli import main  # noqa: E402

from tiny_assets import IMP_TRAIN_ARGS, write_imp_inputs  # noqa: E402


def tree(root: Path) -> str:
    """sha256 over every path and file content under ``root``."""
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        h.update(str(p.relative_to(root)).encode())
        if p.is_file():
            h.update(p.read_bytes())
    return h.hexdigest()


def _quiet(argv: list[str]) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        rc = main([str(a) for a in argv])
    return rc, err.getvalue()


def run_case(argv: list) -> tuple[int, list[str], str]:
    """Run one case: its exit status, its ``bert-tickets …: error:`` (or traceback) lines, and
    the whole of stderr."""
    try:
        rc, err = _quiet(argv)
    except BaseException as exc:  # a traceback: the case fails
        return 1, [f"Traceback: {type(exc).__name__}: {exc}"], ""
    lines = [line for line in err.splitlines() if line.startswith("bert-tickets") and ": error: " in line or "Traceback" in line]
    return rc, lines, err


def make_inputs(root: Path) -> dict[str, Path]:
    """The tiny inputs the cases read: a checkpoint, GLUE files, a finished run (``done``, 2
    levels), a run that kept its weights (``kept``), a transfer matrix, a prune-at-init directory,
    an export, and broken copies of them."""
    ckpt, glue = write_imp_inputs(root / "in")
    p = {"root": root, "ckpt": ckpt, "glue": glue}
    find = ["find", "--task", "rte", "--model", ckpt, "--data_dir", glue, "--max_levels", "2", *IMP_TRAIN_ARGS]
    for name, extra in (("done", ()), ("kept", ("--save_trained", "true"))):
        p[name] = root / name
        assert _quiet([*find, "--output_dir", p[name], *extra])[0] == 0
    p["matrix"] = root / "matrix"
    transfer = ["transfer", "--tickets", p["done"], "--tasks", "rte", "--sparsity", "0.1", "--baselines", "dense"]
    assert _quiet([*transfer, "--model", ckpt, "--data_dir", glue, "--output_dir", p["matrix"], *IMP_TRAIN_ARGS])[0] == 0
    p["pai"] = root / "pai"
    pai = ["prune-at-init", "--task", "rte", "--model", ckpt, "--data_dir", glue, "--criterion", "magnitude", "--sparsity", "0.5"]
    assert _quiet([*pai, "--no_finetune", "true", "--output_dir", p["pai"], *IMP_TRAIN_ARGS])[0] == 0
    p["exported"] = root / "exported"
    assert _quiet(["export", p["kept"], "--level", "1", "--output_dir", p["exported"]])[0] == 0
    p["empty_glue"] = root / "glue_empty"
    shutil.copytree(glue, p["empty_glue"])
    (p["empty_glue"] / "RTE" / "train.tsv").write_text("index\tsentence1\tsentence2\tlabel\n")
    p["a_file"] = root / "a_file"
    p["a_file"].write_text("x")
    p["empty_dir"] = root / "empty_dir"
    p["empty_dir"].mkdir()
    p["truncated"] = root / "truncated"
    shutil.copytree(p["kept"], p["truncated"])
    weights = p["truncated"] / "level_01" / "trained_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    p["bad_config"] = root / "bad_config"
    shutil.copytree(p["done"], p["bad_config"])
    (p["bad_config"] / "run_config.json").write_text("{oops")
    p["bad_cell"] = root / "bad_cell"
    shutil.copytree(p["matrix"], p["bad_cell"])
    p["cell"] = Path(next((p["bad_cell"] / "cells").iterdir()).name)
    (p["bad_cell"] / "cells" / p["cell"].name / "result.json").write_text("{oops")
    p["bad_matrix"] = root / "bad_matrix"
    shutil.copytree(p["matrix"], p["bad_matrix"])
    (p["bad_matrix"] / "matrix.json").write_text("{oops")
    p["bad_find_config"] = root / "bad_find_config.json"
    p["bad_find_config"].write_text("{oops")
    p["bad_examples"] = root / "bad_examples.jsonl"
    p["bad_examples"].write_text('{"sentence1": "a cat", "sentence2": "a dog", "labels": 7}\n')
    p["examples"] = root / "examples.jsonl"
    p["examples"].write_text(
        '{"sentence1": "a cat", "sentence2": "a dog", "labels": 1}\n{"sentence1": "a mat", "sentence2": "a dog", "labels": 0}\n'
    )
    p["other_task_matrix"] = root / "other_task_matrix"
    shutil.copytree(p["matrix"], p["other_task_matrix"])
    m = json.loads((p["other_task_matrix"] / "matrix.json").read_text())
    m["targets"], m["metric"] = ["mrpc"], {"mrpc": "f1"}
    m["entries"] = {row: {"mrpc": e} for row, entries in m["entries"].items() for e in entries.values()}
    (p["other_task_matrix"] / "matrix.json").write_text(json.dumps(m))
    return p


def cases(p: dict[str, Path]) -> list[tuple[str, str, list]]:
    """Every bad-input case: (command, what is wrong, argv)."""
    root, ckpt, glue, done = p["root"], p["ckpt"], p["glue"], p["done"]
    new = root / "new"

    def find(*extra, model=ckpt, data=glue, out=new):
        return ["find", "--task", "rte", "--model", model, "--data_dir", data, "--output_dir", out, *IMP_TRAIN_ARGS, *extra]

    def transfer(*extra, out=root / "m", tickets=(done,)):
        base = ["transfer", "--tickets", *tickets, "--tasks", "rte", "--sparsity", "0.1", "--model", ckpt, "--data_dir", glue]
        return [*base, "--output_dir", out, *IMP_TRAIN_ARGS, *extra]

    def pai(*extra, out=root / "p"):
        base = ["prune-at-init", "--task", "rte", "--model", ckpt, "--data_dir", glue, "--criterion", "magnitude", "--sparsity", "0.5"]
        return [*base, "--output_dir", out, *IMP_TRAIN_ARGS, *extra]

    def export(*extra, run=p["kept"], out=root / "x"):
        return ["export", run, "--output_dir", out, *extra]

    out = []

    def add(command: str, what: str, argv: list) -> None:
        out.append((command, what, argv))

    # find
    for what, argv in [
        ("unknown task", find("--task", "qqqq")),
        ("target sparsity 1.0", find("--target_sparsity", "1.0")),
        ("target sparsity -0.1", find("--target_sparsity", "-0.1")),
        ("prunable patterns match nothing", find("--prunable_patterns", "nothing")),
        ("linear schedule, step 0", find("--prune_step", "0")),
        ("linear schedule, step 1.5", find("--prune_step", "1.5")),
        ("unknown schedule", find("--schedule", "cosine")),
        ("unknown criterion", find("--criterion", "nope")),
        ("unknown pruning scope", find("--pruning_scope", "rows")),
        ("layer-wise with a tensor cap", find("--pruning_scope", "layerwise", "--max_tensor_sparsity", "0.5")),
        ("rewind step beyond level-0 training", find("--rewind_step", "1000")),
        ("negative rewind step", find("--rewind_step", "-1")),
        ("duplicate seeds", find("--seeds", "1", "1")),
        ("negative seed", find("--seeds", "-1")),
        ("negative tolerance", find("--tolerance", "-1")),
        ("--save_steps -1", find("--save_steps", "-1")),
        ("empty train.tsv", find(data=p["empty_glue"])),
        ("missing data directory", find(data=root / "nowhere")),
        ("--max_train_samples 0", find("--max_train_samples", "0")),
        ("--max_train_samples -3", find("--max_train_samples", "-3")),
        ("--max_eval_samples 0", find("--max_eval_samples", "0")),
        ("output dir is a file", find(out=p["a_file"])),
        ("output dir under a file", find(out=p["a_file"] / "run")),
        ("output dir on a read-only filesystem (/proc)", find(out=Path("/proc/bert-tickets/run"))),
        ("output dir is a transfer matrix", find(out=p["matrix"])),
        ("output dir is a prune-at-init directory", find(out=p["pai"])),
        ("output dir is an export", find(out=p["exported"])),
        ("output dir is a ticket", find(out=done / "level_01" / "ticket")),
        ("model directory missing", find(model=root / "no_model")),
        ("model directory empty", find(model=p["empty_dir"])),
        ("model is a file", find(model=p["a_file"])),
        ("other hyperparameters in a run directory", find("--max_levels", "2", "--learning_rate", "0.5", out=done)),
        ("corrupt run_config.json on resume", find("--max_levels", "2", out=p["bad_config"])),
        ("a criterion that needs data", find("--criterion", "snip")),
        ("adaptive schedule option out of range", find("--schedule", "adaptive", "--step_growth", "0.5")),
        ("unknown schedule option", find("--schedule_options", "nope=1")),
        ("malformed schedule option", find("--schedule_options", "prune_step")),
        ("criterion option of a criterion not used", find("--criterion_options", "snip.score_batches=2")),
        ("--config: no such file", ["find", "--config", root / "nowhere.json"]),
        ("--config: not JSON", ["find", "--config", p["bad_find_config"]]),
        ("unknown rewind data", find("--rewind_data", "nope")),
        ("early bird with the adaptive schedule", find("--early_bird", "--schedule", "adaptive")),
        ("early-bird queue of 1 mask", find("--early_bird", "--early_bird_options", "window=1")),
        ("early-bird options without --early_bird", find("--early_bird_options", "interval=5")),
        ("mask data file missing", find("--mask_data", root / "nowhere.jsonl")),
        ("mask data neither a file nor a source", find("--mask_data", "nonsense")),
        ("mask data with a bad label", find("--mask_data", p["bad_examples"])),
        ("mask data with a rewind step", find("--mask_data", p["bad_examples"], "--rewind_step", "2")),
        ("unknown granularity", find("--granularity", "block")),
        ("groups per layer with unstructured pruning", find("--min_groups_per_layer", "1")),
        ("structured granularity with a tensor cap", find("--granularity", "head", "--max_tensor_sparsity", "0.5")),
        ("importance criterion at weight granularity", find("--criterion", "importance")),
        (
            "layer-wise head target that empties every layer",
            find("--granularity", "head", "--pruning_scope", "layerwise", "--prune_step", "0.9"),
        ),
        ("2:4 pruned layer-wise", find("--granularity", "2:4", "--pruning_scope", "layerwise")),
        ("importance criterion with --mask_data", find("--criterion", "importance", "--granularity", "head", "--mask_data", p["examples"])),
        ("linear start sparsity 1.0", find("--schedule_options", "start_sparsity=1.0")),
        ("linear start sparsity above the target", find("--schedule_options", "start_sparsity=0.95", "--target_sparsity", "0.5")),
    ]:
        add("find", what, argv)
    # info
    for what, argv in [
        ("neither run nor ticket", ["info", root / "nowhere"]),
        ("a file", ["info", p["a_file"]]),
        ("an empty directory", ["info", p["empty_dir"]]),
        ("corrupt run_config.json", ["info", p["bad_config"]]),
    ]:
        add("info", what, argv)
    # push
    for what, argv in [
        ("not a run directory", ["push", root / "nowhere", "--repo-id", "a/b"]),
        ("a transfer matrix", ["push", p["matrix"], "--repo-id", "a/b"]),
        ("invalid repo id", ["push", done, "--repo-id", "not a repo", "--level", "1", "--force"]),
        ("dense did not learn", ["push", done, "--repo-id", "a/b", "--base-model-id", "a/tiny", "--level", "1"]),
        ("level and all levels", ["push", done, "--repo-id", "a/b", "--level", "1", "--all-levels"]),
        ("no such level", ["push", done, "--repo-id", "a/b", "--level", "9", "--force"]),
        ("corrupt run_config.json", ["push", p["bad_config"], "--repo-id", "a/b", "--level", "1"]),
    ]:
        add("push", what, argv)
    # transfer
    for what, argv in [
        ("no target task", ["transfer", "--tickets", done, "--output_dir", root / "m"]),
        ("no source", ["transfer", "--tasks", "rte", "--output_dir", root / "m"]),
        ("unknown target task", transfer("--tasks", "qqqq")),
        ("sparsity no level has", transfer("--sparsity", "0.35")),
        ("no such level", transfer("--level", "9")),
        ("unknown baseline", transfer("--baselines", "magic")),
        ("unknown sanity check", transfer("--sanity", "magic")),
        ("--gpus_per_cell 1.5", transfer("--gpus_per_cell", "1.5")),
        ("--gpus_per_cell -1", transfer("--gpus_per_cell", "-1")),
        ("--cpus_per_cell 0", transfer("--cpus_per_cell", "0")),
        ("--max_retries -1", transfer("--max_retries", "-1")),
        ("unknown executor", transfer("--executor", "slurm")),
        ("negative seed", transfer("--seeds", "-1")),
        ("duplicate seeds", transfer("--seeds", "1", "1")),
        ("--task_args malformed", transfer("--task_args", "rte=3")),
        ("--task_args for a non-target", transfer("--task_args", "mrpc:num_train_epochs=2")),
        ("--max_train_samples for a non-target", transfer("--max_train_samples", "sst2=5")),
        ("--max_train_samples 0", transfer("--max_train_samples", "0")),
        ("--data_dir for a non-target", transfer("--data_dir", "mrpc=" + str(glue))),
        ("missing data directory", transfer("--data_dir", str(root / "nowhere"))),
        ("source missing", transfer(tickets=(root / "nowhere",))),
        ("source is a file", transfer(tickets=(p["a_file"],))),
        ("source is a transfer matrix", transfer(tickets=(p["matrix"],))),
        ("source run with a corrupt run_config.json", transfer(tickets=(p["bad_config"],))),
        ("--model is not the tickets' base model", transfer("--model", str(root / "nowhere"))),
        ("output dir is a find run", transfer(out=p["kept"])),
        ("output dir is a prune-at-init directory", transfer(out=p["pai"])),
        ("output dir is a file", transfer(out=p["a_file"])),
        ("other spec in a matrix directory", transfer("--learning_rate", "0.5", out=p["matrix"])),
        ("--config: no such file", ["transfer", "--config", root / "nowhere.json"]),
        ("Ray: nothing listening at --ray_address", transfer("--executor", "ray", "--ray_address", "127.0.0.1:1")),
    ]:
        add("transfer", what, argv)
    # plot
    for what, argv in [
        ("not a run directory", ["plot", root / "nowhere"]),
        ("a transfer matrix as the run", ["plot", p["matrix"]]),
        ("corrupt run_config.json", ["plot", p["bad_config"]]),
        ("--transfer: not a matrix", ["plot", done, "--transfer", root / "nowhere"]),
        ("--transfer: a run directory", ["plot", done, "--transfer", p["kept"]]),
        ("--transfer: corrupt matrix.json", ["plot", done, "--transfer", p["bad_matrix"]]),
        ("--transfer: a matrix of other tasks", ["plot", done, "--transfer", p["other_task_matrix"]]),
        ("--out under a file", ["plot", done, "--out", p["a_file"] / "x.png"]),
    ]:
        add("plot", what, argv)
    # stability
    for what, argv in [
        ("same data seed twice", ["stability", done, "--level", "1", "--data_seeds", "3", "3"]),
        ("one data seed", ["stability", done, "--level", "1", "--data_seeds", "3"]),
        ("negative data seed", ["stability", done, "--level", "1", "--data_seeds", "-1", "2"]),
        ("no such level", ["stability", done, "--level", "7"]),
        ("negative level", ["stability", done, "--level", "-1"]),
        ("neither --level nor --successive", ["stability", done]),
        ("both --level and --successive", ["stability", done, "--level", "1", "--successive"]),
        ("--points 2", ["stability", done, "--level", "1", "--points", "2"]),
        ("negative rewind step", ["stability", done, "--level", "1", "--rewind_step", "-1"]),
        ("rewind step beyond one fine-tune", ["stability", done, "--level", "1", "--rewind_step", "1000"]),
        ("successive without trained weights", ["stability", done, "--successive"]),
        ("successive on a truncated trained model", ["stability", p["truncated"], "--successive"]),
        ("not a run directory", ["stability", root / "nowhere", "--level", "1"]),
        ("a transfer matrix", ["stability", p["matrix"], "--level", "1"]),
        ("corrupt run_config.json", ["stability", p["bad_config"], "--level", "1"]),
    ]:
        add("stability", what, argv)
    # export
    for what, argv in [
        ("no trained weights kept", export("--level", "1", run=done)),
        ("output dir exists (a file)", export("--level", "1", out=p["a_file"])),
        ("output dir exists (a directory)", export("--level", "1", out=p["empty_dir"])),
        ("output dir under a file", export("--level", "1", out=p["a_file"] / "x")),
        ("neither --level nor --cell", export()),
        ("both --level and --cell", export("--level", "1", "--cell", "abc")),
        ("no such level", export("--level", "9")),
        ("truncated trained model", export("--level", "1", run=p["truncated"])),
        ("not a run directory", export("--level", "1", run=root / "nowhere")),
        ("no such cell", export("--cell", "abc", run=p["matrix"])),
        ("a cell that kept no weights", export("--cell", p["cell"].name, run=p["matrix"])),
        ("a corrupt cell", export("--cell", p["cell"].name, run=p["bad_cell"])),
        ("--cell of a find run", export("--cell", "abc", run=p["kept"])),
        ("--level of a matrix", export("--level", "1", run=p["matrix"])),
        ("--compact of a cell", export("--cell", p["cell"].name, "--compact", run=p["matrix"])),
    ]:
        add("export", what, argv)
    # prune-at-init
    for what, argv in [
        ("unknown criterion", pai("--criterion", "nope")),
        ("sparsity 0", pai("--sparsity", "0")),
        ("sparsity 1", pai("--sparsity", "1")),
        ("negative seed", pai("--seeds", "-1")),
        ("duplicate seeds", pai("--seeds", "1", "1")),
        ("unknown sanity check", pai("--sanity", "nope")),
        ("unknown baseline", pai("--baselines", "nope")),
        ("unknown pruning scope", pai("--pruning_scope", "rows")),
        ("unknown task", pai("--task", "qqqq")),
        ("missing data directory", pai("--data_dir", str(root / "nowhere"))),
        ("model directory missing", pai("--model", str(root / "nowhere"))),
        ("criterion option of another criterion", pai("--criterion_options", "snip.score_batches=2")),
        ("criterion option out of range", pai("--criterion", "snip", "--criterion_options", "score_batches=0")),
        ("--max_train_samples 0", pai("--max_train_samples", "0")),
        ("other arguments in its directory", pai("--sparsity", "0.6", "--no_finetune", "true", out=p["pai"])),
        ("output dir is a find run", pai(out=p["kept"])),
        ("output dir is a transfer matrix", pai(out=p["matrix"])),
        ("output dir is an export", pai(out=p["exported"])),
        ("output dir is a file", pai(out=p["a_file"])),
    ]:
        add("prune-at-init", what, argv)

    # distill
    def distill(*extra, out=root / "d"):
        base = ["distill", "--task", "rte", "--model", ckpt, "--data_dir", glue, "--output_dir", out]
        return [*base, "--seq_length", "8", "--outer_steps", "2", *extra]

    for what, argv in [
        ("regression task", distill("--task", "stsb")),
        ("unknown task", distill("--task", "qqqq")),
        ("no --output_dir", distill(out="")),
        ("0 examples per class", distill("--per_class", "0")),
        ("0 inner steps", distill("--steps", "0")),
        ("initial step size 0", distill("--lr_init", "0")),
        ("unknown label type", distill("--label_type", "unrestricted")),
        ("unknown attention labels", distill("--attention_labels", "rows")),
        ("sequence longer than the model's positions", distill("--seq_length", "4096")),
        ("model directory missing", distill("--model", root / "no_model")),
        ("output dir is a file", distill(out=p["a_file"])),
    ]:
        add("distill", what, argv)
    return out


def main_() -> None:
    root = Path(tempfile.mkdtemp(prefix="bad-input-"))
    try:
        found = cases(make_inputs(root))
        print(f"{len(found)} cases over {len({c for c, _, _ in found})} commands.\n")
        print("| command | bad input | exit | lines | dir changed | message |")
        print("|---|---|---|---|---|---|")
        for command, what, argv in found:
            before = tree(root)
            rc, lines, _ = run_case(argv)
            changed = tree(root) != before
            message = (lines[-1] if lines else "(none)").replace(str(root), "…").replace("|", "\\|")
            print(f"| {command} | {what} | {rc} | {len(lines)} | {'yes' if changed else 'no'} | `{message}` |")
    finally:
        shutil.rmtree(root)


if __name__ == "__main__":
    main_()
