#!/usr/bin/env python
"""Time to ticket: optimizer steps (and wall time) that IMP spends to reach its highest matching
sparsity with the linear 10% schedule and with the adaptive schedule, from one invocation.

    python scripts/bench_time_to_ticket.py --out runs/ttt -- --task stsb --model ../shared/models/all-MiniLM-L6-v2 \\
        --data_dir ../shared/data/glue --exclude 'pooler\\.dense\\.weight' --learning_rate 1e-4 --num_train_epochs 1

Everything after ``--`` is passed to both ``bert-tickets find`` runs (the same seeds and
per-level budget); each run's directory is ``OUT/linear`` and ``OUT/adaptive``, so a finished
run is reused (resume) and an interrupted one continues. The adaptive run's barrier
evaluations are counted separately (forward passes over the evaluation split, no optimizer
steps). Steps of a level are read from its Trainer log (``log_history.json``: the last
``step``), summed over seeds; "to ticket" sums every level run up to and including the one
that gave the highest matching sparsity (failed levels of the adaptive search included).

``--also`` adds more IMP runs (e.g. data-diet runs) and transfer / prune-at-init matrix
directories (criterion rows) to one cost table: method, sparsity, metric after fine-tuning, Δ vs
dense, matching, and the optimizer steps and scoring passes spent finding the mask (from the
tickets' cost records; magnitude and random masks cost none).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bert_tickets.cli import main as cli_main
from bert_tickets.results import RunPaths, RunRecord


def cost_to_ticket(run: Path) -> dict:
    summary = json.loads(RunPaths(run).summary_json.read_text())
    rows = summary["levels"]
    best = summary["highest_matching_sparsity"]
    upto = max((r["level"] for r in rows if best is not None and abs(r["sparsity"] - best) < 1e-12), default=len(rows) - 1)
    record = RunRecord(run)
    steps = [record.train_steps(r["level"]) for r in rows]
    return {
        "levels_run": len(rows),
        "highest_matching_sparsity": best,
        "dense_learned": summary.get("dense_learned"),
        "levels_to_ticket": upto + 1,
        "steps_to_ticket": sum(steps[: upto + 1]),
        "steps_total": sum(steps),
        "wall_s_to_ticket": sum(r["elapsed_s"] for r in rows[: upto + 1]),
        "barrier_evaluations": sum(1 for r in rows if r.get("barrier") is not None),
        "sparsities": [round(r["target_sparsity"], 4) for r in rows],
    }


def main(argv: list[str]) -> int:
    if "--" not in argv:
        print(
            "usage: bench_time_to_ticket.py --out DIR [--target_sparsity 0.9] [--also RUN_OR_MATRIX ...] -- FIND_ARGS...", file=sys.stderr
        )
        return 2
    split = argv.index("--")
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--target_sparsity", default="0.9")
    parser.add_argument(
        "--also",
        nargs="*",
        default=[],
        help="more IMP run directories (e.g. data-diet runs) and transfer / prune-at-init matrix directories to put in the cost table",
    )
    args = parser.parse_args(argv[:split])
    find_args = argv[split + 1 :]
    out = Path(args.out)
    results = {}
    for name, schedule in (("linear", ["--schedule", "linear", "--prune_step", "0.1"]), ("adaptive", ["--schedule", "adaptive"])):
        rc = cli_main(["find", *find_args, *schedule, "--target_sparsity", args.target_sparsity, "--output_dir", str(out / name)])
        if rc != 0:
            return rc
        results[name] = cost_to_ticket(out / name)
    lin, ada = results["linear"], results["adaptive"]
    print(f"\ntime to ticket (same find arguments for both: {' '.join(find_args)})")
    print(f"{'schedule':>9}  {'sparsities run':<40}  {'highest matching':>16}  {'steps to ticket':>15}  {'wall s':>8}  barrier evals")
    for name, r in results.items():
        best = "none" if r["highest_matching_sparsity"] is None else f"{r['highest_matching_sparsity']:.4f}"
        print(
            f"{name:>9}  {str(r['sparsities']):<40}  {best:>16}  {r['steps_to_ticket']:>15}  {r['wall_s_to_ticket']:>8.1f}  {r['barrier_evaluations']}"
        )
    if lin["steps_to_ticket"]:
        print(f"adaptive / linear: {ada['steps_to_ticket'] / lin['steps_to_ticket']:.3f} of the optimizer steps to their tickets")
    if lin["dense_learned"] is False or ada["dense_learned"] is False:
        print("note: dense did not learn at this budget: neither number is a ticket")
    table = [run_row(f"IMP {name}", out / name) for name in ("linear", "adaptive")]
    for path in map(Path, args.also):
        table += matrix_rows(path) if (path / "matrix.json").is_file() else [run_row(f"IMP {path.name}", path)]
    print()
    print(format_cost_table(table))
    print(json.dumps({**results, "cost_table": table}))
    return 0


def run_row(name: str, run: Path) -> dict:
    """The cost-table row of an IMP run: its highest matching level (else its last level), the
    metric, Δ vs dense, and what its mask cost: the ticket's cost record (the levels on its
    lineage, all seeds, plus a data diet's short EL2N runs and pre-training), or for a ticket
    written before cost records the lineage's steps from the run's logs."""
    summary = json.loads(RunPaths(run).summary_json.read_text())
    rows = summary["levels"]
    best = summary["highest_matching_sparsity"]
    row = next((r for r in rows if best is not None and abs(r["sparsity"] - best) < 1e-12), rows[-1])
    record = RunRecord(run)
    cost = (record.load_ticket(row["level"]).metadata.cost or None) if record.has_ticket(row["level"]) else None
    if cost is None:
        cost = {"train_steps": record.lineage_train_steps(row["level"])}
    return {
        "method": name,
        "sparsity": row["sparsity"],
        "metric": row["metric"],
        "mean": row["mean"],
        "std": row.get("std"),
        "delta": row.get("delta"),
        "matching": row.get("matching"),
        "steps": cost.get("train_steps", 0),
        "scoring_passes": cost.get("score_forward", 0),
        "note": "highest matching level" if best is not None else "no matching level: the last one",
    }


def matrix_rows(matrix_dir: Path) -> list[dict]:
    """Cost-table rows of a transfer / prune-at-init matrix: every row on its (first) target, with
    the mask cost its cells recorded."""
    matrix = json.loads((matrix_dir / "matrix.json").read_text())
    sparsity = json.loads((matrix_dir / "transfer_config.json").read_text())["spec"]["sparsity"]
    out = []
    for target in matrix["targets"]:
        for label in matrix["rows"]:
            e = matrix["entries"][label].get(target)
            if e is None:
                continue
            out.append(
                {
                    "method": f"{label} ({matrix_dir.name})",
                    "sparsity": None if label == "dense" else sparsity,
                    "metric": matrix["metric"][target],
                    "mean": e["mean"],
                    "std": e["std"],
                    "delta": e["delta_dense"],
                    "matching": e["matching"],
                    "steps": e.get("mask_train_steps") or 0,
                    "scoring_passes": e.get("mask_score_passes") or 0,
                    "note": f"{target}, {e['n']} seeds",
                }
            )
    return out


def format_cost_table(rows: list[dict]) -> str:
    """One markdown table: method, sparsity, metric after fine-tuning, Δ vs dense, matching,
    optimizer steps and scoring passes spent finding the mask."""
    lines = [
        "| method | sparsity | metric after fine-tuning | Δ vs dense | matching | steps to find the mask | scoring passes | note |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        value = f"{r['metric']} {r['mean']:.4f}" + (f" ± {r['std']:.4f}" if r.get("std") is not None else "")
        delta = "–" if r.get("delta") is None else f"{r['delta']:+.4f}"
        sparsity = "0 (dense)" if not r["sparsity"] else f"{r['sparsity']:.4f}"
        lines.append(
            f"| {r['method']} | {sparsity} | {value} | {delta} | {r['matching']} | {r['steps']:.0f} | {r['scoring_passes']:.0f} | {r['note']} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
