"""Tables of a run: the summary table printed at the end of ``find`` and by ``info``."""

from __future__ import annotations

from .matching import level_barrier as _barrier


def format_summary(summary: dict) -> str:
    """The summary table as printed at the end of ``find`` (and by ``info``): one row per level;
    with a trivial baseline, levels that do not beat it are marked ``≤ trivial``, and levels whose
    models predict (almost) a constant ``constant output (k/n seeds)`` (issue 20)."""
    trivial = summary.get("trivial_baseline")
    # two barrier columns, each from its own producer: to the parent level (the adaptive schedule,
    # measured by find) and from level L-1 (stability --successive). A summary written before the
    # columns were split has "barrier" without "parent_level" when successive wrote it.
    columns = [
        (key, title)
        for key, title in (("barrier", "barrier to parent"), ("barrier_successive", "barrier from L-1"))
        if any(_barrier(r, key) is not None for r in summary["levels"])
    ]
    head = f"{'level':>5}  {'sparsity':>8}  {summary['metric']:>22}  {'Δ vs dense':>10}  matching  "
    lines = [head + "".join(f"{title:>17}  " for _, title in columns) + "collapsed tensors"]
    for r in summary["levels"]:
        value = f"{r['mean']:.4f}" + (f" ± {r['std']:.4f}" if r["std"] is not None else "")
        collapsed = ", ".join(f"{n} ({s:.2f})" for n, s in r.get("collapsed_tensors", {}).items()) or "-"
        matching = {True: "yes", False: "no", None: "-"}[r["matching"]]
        flag = "  ≤ trivial" if r.get("beats_trivial") is False else ""
        if r.get("super_ticket") and r.get("beats_trivial") is not False:
            flag += "  super ticket"
        if r.get("near_constant"):
            flag += f"  constant output ({r['near_constant']}/{len(r['per_seed'])} seeds)"
        barrier = "".join(f"{_barrier(r, key):>17.4f}  " if _barrier(r, key) is not None else f"{'-':>17}  " for key, _ in columns)
        lines.append(
            f"{r['level']:>5}  {r['sparsity']:>8.4f}  {value:>22}  {r['delta']:>+10.4f}  {matching:<8}  {barrier}{collapsed}{flag}"
        )
    best = summary["highest_matching_sparsity"]
    for key, value in summary.get("notes", {}).items():
        lines.append(f"note: {key}: {value}")
    captions = {
        "barrier": "barrier to parent = error barrier of {m} on the linear path between the trained level L and the level its mask "
        "was pruned from (parent_level; adaptive schedule)",
        "barrier_successive": "barrier from L-1 = error barrier of {m} on the linear path between the trained levels L-1 and L "
        "(stability --successive)",
    }
    for key, _ in columns:
        lines.append(captions[key].format(m=summary["metric"]))
    if (eb := summary.get("early_bird")) is not None:
        cost, searched = eb["cost"], eb["search"]
        stops = ", ".join(f"{s['level']}:{s['steps']}{'' if s['converged_at_step'] is not None else '*'}" for s in searched)
        lines.append(
            f"early-bird levels: {len(searched)} mask searches (steps per level {stops}; * = never settled, trained to the end): "
            f"{cost['search_steps']} steps; judged by bisection: levels {eb['judged_levels']}, {cost['judging_steps']} steps; "
            f"total {cost['total_steps']} steps = {cost['total_examples']} example passes"
        )
    if trivial is not None:
        shown = "undefined" if trivial["value"] is None else f"{trivial['value']:.4f}"
        lines.append(f"trivial baseline ({summary['metric']}): {shown}, {trivial['prediction']}; a level must reach {trivial['rule']}")
    if summary.get("dense_learned") is False:
        lines.append(f"dense did not learn: matching is undefined on {summary['task']} (no ticket can be named)")
        return "\n".join(lines)
    lines.append(f"matching = {summary['matching_rule']}")
    if any(r.get("super_ticket") for r in summary["levels"]):
        lines.append("super ticket = a pruned level above dense by more than that margin (Liang et al. 2021)")
    lines.append(
        f"highest matching sparsity on {summary['task']}: {best:.4f}"
        if best is not None
        else f"no pruned level is matching on {summary['task']}"
    )
    return "\n".join(lines)
