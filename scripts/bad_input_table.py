#!/usr/bin/env python
"""Print the bad-input table of docs/reliability.md: every case run through the real CLI on tiny
inputs made in a temporary directory, with its exit status, its stderr line count, whether the
output directory changed, and the message.

    python scripts/bad_input_table.py > /tmp/table.md
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from bert_tickets.cli import main  # noqa: E402

from tiny_assets import IMP_TRAIN_ARGS, write_imp_inputs  # noqa: E402


def tree(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        h.update(str(p.relative_to(root)).encode())
        if p.is_file():
            h.update(p.read_bytes())
    return h.hexdigest()


def run(argv: list[str]) -> tuple[int, list[str]]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        rc = main(argv)
    lines = [line for line in err.getvalue().splitlines() if "bert-tickets" in line and "error" in line or "interrupted" in line]
    return rc, lines


def main_() -> None:
    root = Path(tempfile.mkdtemp(prefix="bad-input-"))
    ckpt, glue = write_imp_inputs(root / "in")
    done = root / "done"
    assert (
        main(
            [
                "find",
                "--task",
                "rte",
                "--model",
                str(ckpt),
                "--data_dir",
                str(glue),
                "--output_dir",
                str(done),
                "--max_levels",
                "1",
                *IMP_TRAIN_ARGS,
            ]
        )
        == 0
    )
    empty = root / "glue_empty"
    shutil.copytree(glue, empty)
    (empty / "RTE" / "train.tsv").write_text("index\tsentence1\tsentence2\tlabel\n")
    (root / "a_file").write_text("x")
    (root / "empty_model").mkdir()
    corrupt = root / "corrupt"
    shutil.copytree(done, corrupt)
    mask = corrupt / "level_01" / "ticket" / "ticket_mask.safetensors"
    mask.write_bytes(mask.read_bytes()[:100])

    def find(*extra, model=ckpt, data=glue, out=root / "new"):
        return ["find", "--task", "rte", "--model", str(model), "--data_dir", str(data), "--output_dir", str(out), *IMP_TRAIN_ARGS, *extra]

    cases = [
        ("unknown task", find("--task", "qqqq")),
        ("target sparsity 1.0", find("--target_sparsity", "1.0")),
        ("prunable patterns match nothing", find("--prunable_patterns", "nothing")),
        ("linear schedule, step 0", find("--prune_step", "0")),
        ("unknown schedule", find("--schedule", "cosine")),
        ("unknown pruning method", find("--pruning_method", "nope")),
        ("unknown pruning scope", find("--pruning_scope", "rows")),
        ("layer-wise with a tensor cap", find("--pruning_scope", "layerwise", "--max_tensor_sparsity", "0.5")),
        ("rewind step beyond level-0 training", find("--rewind_step", "1000")),
        ("duplicate seeds", find("--seeds", "1", "1")),
        ("negative tolerance", find("--tolerance", "-1")),
        ("empty train.tsv", find(data=empty)),
        ("missing data directory", find(data=root / "nowhere")),
        ("--max_train_samples 0", find("--max_train_samples", "0")),
        ("--max_train_samples -3", find("--max_train_samples", "-3")),
        ("--max_eval_samples 0", find("--max_eval_samples", "0")),
        ("output dir is a file", find(out=root / "a_file")),
        ("output dir under a file", find(out=root / "a_file" / "run")),
        ("output dir on a read-only filesystem (/proc)", find(out=Path("/proc/bert-tickets/run"))),
        ("model directory missing", find(model=root / "no_model")),
        ("model directory empty", find(model=root / "empty_model")),
        ("other hyperparameters in a run directory", find("--max_levels", "1", "--learning_rate", "0.5", out=done)),
        ("corrupt ticket found on resume", find("--max_levels", "1", out=corrupt)),
        ("info: neither run nor ticket", ["info", str(root / "nowhere")]),
        ("push: not a run directory", ["push", str(root / "nowhere"), "--repo-id", "a/b"]),
        ("push: invalid repo id", ["push", str(done), "--repo-id", "not a repo", "--level", "1", "--force"]),
        ("push: dense did not learn", ["push", str(done), "--repo-id", "a/b", "--base-model-id", "a/tiny", "--level", "1"]),
        ("push: level and all levels", ["push", str(done), "--repo-id", "a/b", "--level", "1", "--all-levels"]),
        ("transfer: no target task", ["transfer", "--tickets", str(done), "--output_dir", str(root / "m")]),
        (
            "transfer: sparsity no level has",
            ["transfer", "--tickets", str(done), "--tasks", "rte", "--sparsity", "0.35", "--output_dir", str(root / "m")],
        ),
        (
            "transfer: unknown baseline",
            ["transfer", "--tickets", str(done), "--tasks", "rte", "--baselines", "magic", "--output_dir", str(root / "m")],
        ),
        (
            "transfer: --gpus_per_cell 1.5",
            ["transfer", "--tickets", str(done), "--tasks", "rte", "--gpus_per_cell", "1.5", "--output_dir", str(root / "m")],
        ),
        (
            "transfer: --task_args malformed",
            ["transfer", "--tickets", str(done), "--tasks", "rte", "--task_args", "rte=3", "--output_dir", str(root / "m")],
        ),
        (
            "transfer: --max_train_samples for a non-target",
            [
                "transfer",
                "--tickets",
                str(done),
                "--tasks",
                "rte",
                "--max_train_samples",
                "sst2=5",
                "--sparsity",
                "0.1",
                "--output_dir",
                str(root / "m"),
            ],
        ),
        ("plot: not a run directory", ["plot", str(root / "nowhere")]),
        ("find: a criterion that needs data", find("--pruning_method", "snip")),
        ("find: adaptive schedule option out of range", find("--schedule", "adaptive", "--step_growth", "0.5")),
        ("stability: same data seed twice", ["stability", str(done), "--level", "1", "--seeds", "3", "3"]),
        ("stability: no such level", ["stability", str(done), "--level", "7"]),
        ("stability: successive without trained weights", ["stability", str(done), "--successive"]),
        ("export: no trained weights kept", ["export", str(done), "--level", "1", "--output_dir", str(root / "x")]),
        ("export: output dir exists", ["export", str(done), "--level", "1", "--output_dir", str(root / "a_file")]),
    ]
    print("| bad input | exit | lines | dir changed | message |")
    print("|---|---|---|---|---|")
    for name, argv in cases:
        before = tree(root)
        rc, lines = run(argv)
        changed = tree(root) != before
        message = (lines[-1] if lines else "(none)").replace(str(root), "…").replace("|", "\\|")
        print(f"| {name} | {rc} | {len(lines)} | {'yes' if changed else 'no'} | `{message}` |")
    shutil.rmtree(root)


if __name__ == "__main__":
    main_()
