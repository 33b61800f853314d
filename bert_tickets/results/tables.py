"""Tables of a run: the summary table printed at the end of ``find`` and by ``info``."""

from __future__ import annotations


def format_summary(summary: dict) -> str:
    """The summary table as printed at the end of ``find`` (and by ``info``): one row per level;
    with a trivial baseline, levels that do not beat it are marked ``≤ trivial``."""
    trivial = summary.get("trivial_baseline")
    barriers = any(r.get("barrier") is not None for r in summary["levels"])
    head = f"{'level':>5}  {'sparsity':>8}  {summary['metric']:>22}  {'Δ vs dense':>10}  matching  "
    lines = [head + (f"{'barrier':>16}  " if barriers else "") + "collapsed tensors"]
    for r in summary["levels"]:
        value = f"{r['mean']:.4f}" + (f" ± {r['std']:.4f}" if r["std"] is not None else "")
        collapsed = ", ".join(f"{n} ({s:.2f})" for n, s in r.get("collapsed_tensors", {}).items()) or "-"
        matching = {True: "yes", False: "no", None: "-"}[r["matching"]]
        flag = "  ≤ trivial" if r.get("beats_trivial") is False else ""
        barrier = ""
        if barriers:
            barrier = f"{r['barrier']:>16.4f}  " if r.get("barrier") is not None else f"{'-':>16}  "
        lines.append(
            f"{r['level']:>5}  {r['sparsity']:>8.4f}  {value:>22}  {r['delta']:>+10.4f}  {matching:<8}  {barrier}{collapsed}{flag}"
        )
    best = summary["highest_matching_sparsity"]
    for key, value in summary.get("notes", {}).items():
        lines.append(f"note: {key}: {value}")
    if barriers:
        parents = any(r.get("parent_level") is not None for r in summary["levels"])
        between = "level L and the level its mask was pruned from (parent_level)" if parents else "the trained levels L-1 and L"
        lines.append(f"barrier = error barrier of {summary['metric']} on the linear path between {between}")
    if trivial is not None:
        shown = "undefined" if trivial["value"] is None else f"{trivial['value']:.4f}"
        lines.append(f"trivial baseline ({summary['metric']}): {shown}, {trivial['prediction']}; a level must reach {trivial['rule']}")
    if summary.get("dense_learned") is False:
        lines.append(f"dense did not learn: matching is undefined on {summary['task']} (no ticket can be named)")
        return "\n".join(lines)
    lines.append(f"matching = {summary['matching_rule']}")
    lines.append(
        f"highest matching sparsity on {summary['task']}: {best:.4f}"
        if best is not None
        else f"no pruned level is matching on {summary['task']}"
    )
    return "\n".join(lines)
