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

``--compare LINEAR_RUN ROUTE_RUN ...`` runs nothing: it prints the time-to-ticket table of
issue 20 from finished runs — the ground truth s* of the linear run (its highest matching level
before the first two consecutive non-matching levels), and for every route (an adaptive,
early-bird, data-diet or other ``find`` run with the same per-level budget) the sparsity it
reached, the metric, the optimizer steps and example passes (steps × global batch, one
forward and one backward per example) spent up to it, the ratio to linear's cost to s*, and
whether it reaches s* within one level (0.1). A route is judged by its own summary unless its
level 0 is not the linear run's dense model (other per-seed metrics: a data diet in ``state``
mode trains level 0 from its pre-trained point); then it is judged against the linear run's
dense model, which s* is defined against — and that dense judging is charged to it —, and the
note gives its own verdict (:func:`route_row`). An early-bird run's cost is its whole search plus
its judging (``summary.json`` → ``early_bird.cost``); an IMP run's cost is every level it ran
up to and including the one that gave its ticket (all seeds; a data diet's pre-training and
EL2N runs included, and the calibrated adaptive schedule's second dense copy; barrier
evaluations are forward passes, listed in the note, not in the steps). A route given as a
transfer matrix directory adds one at-init route per criterion row (``--baselines magnitude
random snip synflow gem_miner``; :func:`matrix_routes`: judging dense and the row, plus the mask
searches). A prune-at-init directory's own criterion is its ticket row and is not a route here.
``RUN+SCAN[+SCAN…]`` is the route that starts IMP at the highest matching magnitude-of-θ0 sparsity
(:func:`magnitude_start_route`): ``prune-at-init --criterion magnitude`` directories or transfer
matrices with a magnitude row at several sparsities (the scan), and the ``find`` run with
``--schedule_options start_sparsity=S``; it costs the scan's judging plus the run.

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


def cost_to_ticket(run: Path, best: float | None | str = "summary") -> dict:
    """The run's optimizer steps up to its highest matching level (``best``: the summary's
    ``highest_matching_sparsity`` unless given) and in all."""
    summary = json.loads(RunPaths(run).summary_json.read_text())
    rows = summary["levels"]
    best = summary["highest_matching_sparsity"] if best == "summary" else best
    upto = max((r["level"] for r in rows if best is not None and abs(r["sparsity"] - best) < 1e-12), default=len(rows) - 1)
    record = RunRecord(run)
    steps = [record.train_steps(r["level"]) for r in rows]
    calibration = record.calibration_steps()  # the calibrated adaptive schedule's second dense copy
    return {
        "levels_run": len(rows),
        "highest_matching_sparsity": best,
        "dense_learned": summary.get("dense_learned"),
        "levels_to_ticket": upto + 1,
        "calibration_steps": calibration,
        "steps_to_ticket": sum(steps[: upto + 1]) + calibration,
        "steps_total": sum(steps) + calibration,
        "wall_s_to_ticket": sum(r["elapsed_s"] for r in rows[: upto + 1]),
        "barrier_evaluations": sum(1 for r in rows if r.get("barrier") is not None),
        "sparsities": [round(r["target_sparsity"], 4) for r in rows],
    }


def ground_truth(run: Path) -> dict:
    """Linear IMP's s* (issue 20, item 5): the highest matching level before the first two
    consecutive non-matching levels (levels in order; a level at or below the trivial baseline
    is not matching), the metric there, and the optimizer steps of levels 0 … L* (all seeds)."""
    summary = json.loads(RunPaths(run).summary_json.read_text())
    rows = sorted(summary["levels"], key=lambda r: r["level"])
    record = RunRecord(run)
    best, misses = rows[0], 0
    for r in rows[1:]:
        ok = bool(r.get("matching")) and r.get("beats_trivial") is not False
        misses = 0 if ok else misses + 1
        if misses == 2:
            break
        if ok:
            best = r
    steps = sum(record.train_steps(r["level"]) for r in rows if r["level"] <= best["level"])
    return {
        "route": "linear (ground truth)",
        "sparsity": best["sparsity"] if best["level"] > 0 else None,
        "level": best["level"],
        "metric": best["metric"],
        "mean": best["mean"],
        "std": best.get("std"),
        "steps": steps,
        "examples": steps * _batch(run),
        "levels_run": len(rows),
        "dense_learned": summary.get("dense_learned"),
        "note": f"levels 0–{best['level']} of {len(rows)} run",
    }


def _batch(run: Path) -> int:
    config = json.loads(RunPaths(run).run_config.read_text())
    return int(config.get("launch", {}).get("global_train_batch_size") or config["hyperparameters"]["training"]["global_train_batch_size"])


def _shown_row(levels: list[dict], best: float | None) -> tuple[dict, str]:
    """The level a route's row shows, and a note: the level at its highest matching sparsity
    ``best``; without one, its least sparse *judged* pruned level (the closest it came) with a
    note saying so, or dense when it judged none — never dense's metric beside a route that
    pruned, which would read as a ticket at dense's value."""
    row = next((r for r in levels if best is not None and abs(r["sparsity"] - best) < 1e-12), None)
    if row is not None:
        return row, ""
    pruned = [r for r in levels if r["level"] > 0 and r.get("mean") is not None]
    if not pruned:
        return min(levels, key=lambda r: r["level"]), ""
    row = min(pruned, key=lambda r: r["sparsity"])
    return row, f"no level matched: metric of level {row['level']} (sparsity {row['sparsity']:.2f}), the least sparse"


def against_dense(levels: list[dict], dense: dict, tolerance: float) -> float | None:
    """The highest matching sparsity of the pruned ``levels`` (summary rows) when judged against
    ``dense`` (another run's level-0 row) instead of their own level 0: the summary's own rule
    (:func:`~bert_tickets.results.summarize`: mean ≥ dense mean − one std of its seeds, or −
    ``tolerance`` with one seed; a level recorded at or below the trivial baseline never counts);
    ``None`` when none matches."""
    from bert_tickets.results import LevelResult, summarize

    rows = [LevelResult(**dense), *(LevelResult(**r) for r in levels if r["level"] > 0)]
    return summarize(rows, tolerance, "", 0.0)["highest_matching_sparsity"]


def route_row(run: Path, linear: Path | None = None) -> dict:
    """A route's time-to-ticket row (see the module docstring). Without a matching level the
    row shows its least sparse judged pruned level (:func:`_shown_row`) and says so.

    With the ``linear`` ground-truth run: a route whose own level 0 is not the linear run's dense
    model (other per-seed metrics — a data diet in ``state`` mode trains level 0 from its
    pre-trained point) is judged against the linear run's dense model, the one s* is defined
    against, and the note gives the verdict against its own level 0 too. Routes whose level 0 is
    the same computation are unchanged. The linear run's dense judging (its level 0, all seeds)
    is then charged to the route: the route needs it to be judged at all."""
    summary = json.loads(RunPaths(run).summary_json.read_text())
    eb = summary.get("early_bird")
    if eb is not None:
        best = summary["highest_matching_sparsity"]
        row, unmatched = _shown_row(summary["levels"], best)
        cost = eb["cost"]
        return {
            "route": f"early-bird ({run.name})",
            "sparsity": best,
            "level": row["level"],
            "metric": row["metric"],
            "mean": row["mean"],
            "std": row.get("std"),
            "steps": cost["total_steps"],
            "examples": cost["total_examples"],
            "dense_learned": summary.get("dense_learned"),
            "note": "; ".join(
                filter(
                    None,
                    [
                        f"search {cost['search_steps']} + judging {cost['judging_steps']} steps",
                        f"judged levels {eb['judged_levels']}",
                        unmatched,
                    ],
                )
            ),
        }
    own_dense, judged, dense_steps = None, "summary", 0
    if linear is not None:
        truth = json.loads(RunPaths(linear).summary_json.read_text())
        dense = min(truth["levels"], key=lambda r: r["level"])
        ours = min(summary["levels"], key=lambda r: r["level"])
        if ours["per_seed"] != dense["per_seed"]:
            tolerance = json.loads(RunPaths(linear).run_config.read_text())["hyperparameters"]["imp"].get("tolerance", 0.01)
            judged = against_dense(summary["levels"], dense, tolerance) if summary.get("dense_learned") is not False else None
            own = summary["highest_matching_sparsity"]
            dense_steps = RunRecord(linear).train_steps(dense["level"])  # the dense judging it is measured against: charged
            own_dense = (
                f"judged against {linear.name}'s dense {dense['mean']:.4f} ± {dense.get('std') or 0:.4f} "
                f"(its {dense_steps} steps charged); against its own level 0 "
                f"({ours['mean']:.4f} ± {ours.get('std') or 0:.4f}) the highest matching sparsity is "
                + ("none" if own is None else f"{own:.2f}")
            )
    cost = cost_to_ticket(run, judged)
    best = cost["highest_matching_sparsity"]
    row, unmatched = _shown_row(summary["levels"], best)
    diet = run / "data_diet" / "subset.json"
    diet_steps = int(json.loads(diet.read_text()).get("spent_steps", 0)) if diet.is_file() else 0
    calibration = cost["calibration_steps"]
    steps = cost["steps_to_ticket"] + diet_steps + dense_steps
    notes = [f"{cost['levels_to_ticket']} of {cost['levels_run']} levels"]
    if unmatched:
        notes.append(unmatched)
    if own_dense:
        notes.append(own_dense)
    if diet_steps:
        notes.append(f"data diet {diet_steps} steps")
    if calibration:
        notes.append(f"dense instability copy {calibration} steps")
    if cost["barrier_evaluations"]:
        notes.append(f"{cost['barrier_evaluations']} barrier evaluations (forward passes only)")
    return {
        "route": run.name,
        "sparsity": best,
        "level": row["level"],
        "metric": row["metric"],
        "mean": row["mean"],
        "std": row.get("std"),
        "steps": steps,
        "examples": steps * _batch(run),
        "dense_learned": summary.get("dense_learned"),
        "note": "; ".join(notes),
    }


#: Training hyperparameters that must agree between a matrix and the linear run for their steps to compare.
SAME_BUDGET = ("learning_rate", "num_train_epochs", "max_steps", "lr_scheduler_type")


def matrix_routes(matrix_dir: Path, linear: Path, ticket_criterion: str | None = None) -> list[dict]:
    """The at-init routes of a transfer matrix on the linear run's task: one row
    per criterion row (magnitude of θ0, random, snip, synflow, gem_miner; not dense, the IMP
    ticket rows or the sanity checks). ``ticket_criterion`` names the criterion of the matrix's
    ticket row when that mask was itself found at θ0 (a prune-at-init ``finetune`` matrix): the
    ticket row is then a route of that criterion too. A route reaches the matrix's sparsity when that row
    matches dense and beats the trivial baseline, else nothing. Its cost: judging dense (the
    matching threshold) and the row, one fine-tune per seed each, plus the optimizer steps of
    every mask search (one per seed for criteria whose search depends on the seed, one in all
    otherwise); scoring passes are forward/backward passes without optimizer steps, in the
    note. A fine-tune's steps are the linear run's dense steps per seed (the same budget, which
    is checked).

    Raises:
        ValueError: the matrix has no row on the run's task, or its budget differs from the run's
            (learning rate, epochs, steps, schedule, global batch as per-device × accumulation —
            a matrix trained on several processes is refused —, training examples).
        OSError / KeyError: a missing or incomplete ``matrix.json``, ``transfer_config.json`` or
            ``run_config.json``.
    """
    from bert_tickets.pruning import get_criterion
    from bert_tickets.results.rows import CriterionRow, get_row

    matrix = json.loads((matrix_dir / "matrix.json").read_text())
    spec = json.loads((matrix_dir / "transfer_config.json").read_text())["spec"]
    config = json.loads(RunPaths(linear).run_config.read_text())["hyperparameters"]
    task = config["data"]["task"]
    if task not in matrix["targets"]:
        raise ValueError(f"{matrix_dir}: no cells on {task} (the linear run's task); it has {', '.join(matrix['targets'])}")
    ours, theirs = spec["training"][task], config["training"]
    differ = [k for k in SAME_BUDGET if ours.get(k) != theirs.get(k)]
    if ours.get("per_device_train_batch_size", 0) * ours.get("gradient_accumulation_steps", 1) != theirs.get("global_train_batch_size"):
        differ.append("global batch")
    samples = spec["data"].get("max_train_samples")
    samples = samples.get(task) if isinstance(samples, dict) else samples  # per target when the targets differ
    if samples != config["data"].get("max_train_samples"):
        differ.append("max_train_samples")
    if differ:
        raise ValueError(f"{matrix_dir}: its budget differs from {linear}'s in {', '.join(differ)}: their steps do not compare")
    per_cell = RunRecord(linear).steps_per_seed(0)
    batch = _batch(linear)
    dense = matrix["entries"].get("dense", {}).get(task)
    kinds, checks = matrix.get("kinds", {}), matrix.get("checks", {})
    out = []
    for label in matrix["rows"]:
        e = matrix["entries"][label].get(task)
        if e is None or label in checks:
            continue
        try:
            row = get_row(kinds.get(label, label))  # the row registry knows old names (oneshot) too
        except ValueError:
            continue
        if isinstance(row, CriterionRow):
            criterion = row.criterion
        elif ticket_criterion is not None and kinds.get(label) == "ticket":
            criterion = ticket_criterion  # prune-at-init: its own mask, found at θ0
        else:
            continue  # dense, the IMP ticket, reinit, weight_shuffle: no mask found at θ0
        searches = e["n"] if "seed" in get_criterion(criterion).needs else 1
        search = round((e.get("mask_train_steps") or 0) * searches)
        judging = (e["n"] + (dense["n"] if dense else 0)) * per_cell
        ok = bool(e.get("matching")) and e.get("beats_trivial") is not False
        note = [
            f"{label}: judging {judging} steps ({e['n']} seeds + dense {dense['n']})"
            if dense
            else f"{label}: no dense cells, matching undefined"
        ]
        if search:
            note.append(f"search {search} steps ({searches} masks)")
        if e.get("mask_score_passes"):
            note.append(f"{round(e['mask_score_passes'] * searches)} scoring passes")
        if not ok:
            note.append(f"{spec['sparsity']:.2f} not matching")
        out.append(
            {
                "label": label,
                "criterion": criterion,
                "matrix_sparsity": spec["sparsity"],
                "seeds": e["n"],
                "dense_seeds": dense["n"] if dense else 0,
                "route": f"{label} at θ0 ({matrix_dir.name})",
                "sparsity": spec["sparsity"] if ok else None,
                "level": None,
                "metric": matrix["metric"][task],
                "mean": e["mean"],
                "std": e.get("std"),
                "steps": search + judging,
                "examples": (search + judging) * batch,
                "dense_learned": None,
                "note": "; ".join(note),
            }
        )
    return out


def _scan_point(scan: Path, linear: Path) -> tuple[float, bool, int, int]:
    """One sparsity of a magnitude-of-θ0 scan: (sparsity, matching and above trivial, the
    magnitude row's seeds, dense's seeds). ``scan`` is a ``prune-at-init --criterion magnitude``
    directory (its ticket row, in ``scan/finetune``) or a transfer matrix with a ``magnitude``
    row; both are read and checked against the linear run's task and budget by
    :func:`matrix_routes`."""
    matrix_dir, ticket_criterion = scan, None
    if (scan / "finetune" / "matrix.json").is_file():  # prune-at-init: its own criterion is the ticket row
        matrix_dir = scan / "finetune"
        ticket_criterion = json.loads((scan / "ticket" / "ticket_config.json").read_text()).get("criterion")
        if ticket_criterion != "magnitude":
            raise ValueError(f"{scan}: a prune-at-init scan of {ticket_criterion!r}, not magnitude")
    rows = [r for r in matrix_routes(matrix_dir, linear, ticket_criterion) if r["criterion"] == "magnitude"]
    if not rows:
        raise ValueError(f"{scan}: no magnitude row (prune-at-init --criterion magnitude, or transfer --baselines dense magnitude)")
    r = rows[0]
    return r["matrix_sparsity"], r["sparsity"] is not None, r["seeds"], r["dense_seeds"]


def magnitude_start_route(spec: str, linear: Path) -> dict:
    """The "start from the highest matching magnitude-of-θ0 sparsity" route of issue 20, given as
    ``RUN+SCAN[+SCAN…]``: each SCAN judged the magnitude-of-θ0 mask at one sparsity
    (``prune-at-init --criterion magnitude --sparsity S --baselines dense``, or a transfer matrix
    with a ``magnitude`` row), and RUN is the ``find`` run started at the highest matching one
    (``--schedule_options start_sparsity=S``). Its cost is the run's (:func:`route_row`) plus
    every scanned magnitude row's judging and dense's judging once (magnitude needs no search; the
    route needs dense judged once, so further scans' own dense cells are not counted); the run's
    own dense level is counted too, as it ran.

    Raises:
        ValueError: a SCAN that is not a magnitude scan, or on another task or budget
            (:func:`matrix_routes`); two SCANs at one sparsity; a RUN on another task or model
            than the linear run, or without ``start_sparsity``; a ``start_sparsity`` that is not
            the highest matching scanned sparsity (the rule picks S: a hand-picked S would hide
            the cost of finding it).
    """
    run, *scans = (Path(p) for p in spec.split("+"))
    if not scans:
        raise ValueError(f"{spec}: give the run and its scan as RUN+SCAN[+SCAN...]")
    ours = json.loads(RunPaths(run).run_config.read_text())["hyperparameters"]
    theirs = json.loads(RunPaths(linear).run_config.read_text())["hyperparameters"]
    for key, what in (("task", "data"), ("model_name_or_path", "model")):
        if ours[what][key] != theirs[what][key]:
            raise ValueError(f"{run}: {key} {ours[what][key]!r} differs from {linear}'s {theirs[what][key]!r}")
    start = ours["imp"].get("start_sparsity")
    if start is None:
        raise ValueError(f"{run}: not started at a scanned sparsity (no --schedule_options start_sparsity)")
    scanned, seeds, dense_seeds = {}, 0, 0
    for scan in scans:
        sparsity, ok, n, dense_n = _scan_point(scan, linear)
        if sparsity in scanned:
            raise ValueError(f"{scan}: a second scan at sparsity {sparsity}")
        scanned[sparsity] = ok
        seeds, dense_seeds = seeds + n, dense_seeds or dense_n  # dense judged once: the first scan's dense cells
    judging = (seeds + dense_seeds) * RunRecord(linear).steps_per_seed(0)
    matching = [s for s, ok in scanned.items() if ok]
    if not matching or abs(max(matching) - start) > 1e-9:
        shown = ", ".join(f"{s:.2f} {'matching' if ok else 'not matching'}" for s, ok in sorted(scanned.items()))
        raise ValueError(f"{run}: start_sparsity {start} is not the highest matching scanned sparsity ({shown})")
    row = route_row(run, linear)
    scan_note = ", ".join(f"{s:.2f}{' ✓' if ok else ' ✗'}" for s, ok in sorted(scanned.items()))
    return {
        **row,
        "route": f"θ0-magnitude start {start:g} ({run.name})",
        "steps": row["steps"] + judging,
        "examples": row["examples"] + judging * _batch(linear),
        "note": f"scan {scan_note}: {judging} judging steps; run: {row['note']}",
    }


def format_time_to_ticket(truth: dict, routes: list[dict], level_step: float = 0.1) -> str:
    """The time-to-ticket table: one row per route with the ratio of its steps to linear's steps
    to s*, and whether it reached s* within ``level_step``."""
    lines = [
        "| route | sparsity reached | metric | optimizer steps | example passes | ratio to linear | reaches s* (± one level) | note |",
        "|---|---|---|---|---|---|---|---|",
    ]
    s_star = truth["sparsity"]
    for r in [truth, *routes]:
        value = f"{r['metric']} {r['mean']:.4f}" + (f" ± {r['std']:.4f}" if r.get("std") is not None else "")
        reached = (
            "–"
            if r is truth
            else (
                "no matching level"
                if r["sparsity"] is None
                else "yes"
                if s_star is None or r["sparsity"] >= s_star - level_step - 1e-9
                else "no"
            )
        )
        ratio = r["steps"] / truth["steps"] if truth["steps"] else float("nan")
        shown = "none" if r["sparsity"] is None else f"{r['sparsity']:.4f}"
        lines.append(f"| {r['route']} | {shown} | {value} | {r['steps']} | {r['examples']} | {ratio:.3f} | {reached} | {r['note']} |")
    if any(r.get("dense_learned") is False for r in [truth, *routes]):
        lines.append("\nnote: dense did not learn in at least one run: no number there is a ticket")
    return "\n".join(lines)


def compare(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench_time_to_ticket.py --compare")
    parser.add_argument("linear", help="the linear 10%% IMP run (ground truth)")
    parser.add_argument(
        "routes",
        nargs="*",
        help="finished find runs of the cheaper routes, matrix directories (at-init routes), and RUN+SCAN[+SCAN...] "
        "(a run started at the highest matching magnitude-of-θ0 sparsity of the scan matrices)",
    )
    args = parser.parse_args(argv)
    truth = ground_truth(Path(args.linear))
    routes = []
    for r in map(Path, args.routes):
        try:
            if not r.is_dir() and "+" in str(r):
                routes.append(magnitude_start_route(str(r), Path(args.linear)))
            else:
                routes += matrix_routes(r, Path(args.linear)) if (r / "matrix.json").is_file() else [route_row(r, Path(args.linear))]
        except (ValueError, KeyError, OSError) as err:
            print(f"bench_time_to_ticket.py --compare: error: {r}: {type(err).__name__}: {err}", file=sys.stderr)
            return 2
    s_star = "none" if truth["sparsity"] is None else f"{truth['sparsity']:.4f}"
    print(f"ground truth s* = {s_star} ({args.linear}; highest matching level before two consecutive non-matching levels)")
    print(format_time_to_ticket(truth, routes))
    print(json.dumps({"ground_truth": truth, "routes": routes}))
    return 0


def main(argv: list[str]) -> int:
    if argv[:1] == ["--compare"]:
        return compare(argv[1:])
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
