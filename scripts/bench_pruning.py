"""Benchmark of ``bert_tickets.pruning.global_magnitude_pruning`` against ``torch.nn.utils.prune``.

What is measured, on a randomly initialised bert-base ``BertModel(BertConfig())`` (no download;
the BERT-Tickets prunable set of ``prunable_parameters``: 73 tensors, 85,524,480 weights), on CPU
with ``torch.set_num_threads(<available cores>)``:

* (a) ``global_magnitude_pruning(weights, s1)`` from dense (default s1 = 0.1);
* (b) the next IMP level ``global_magnitude_pruning(weights_masked, s2, masks)`` (default
  s2 = 0.2), where ``weights_masked`` are the weights with the level-(a) positions zeroed;
* (c) the reference ``torch.nn.utils.prune.global_unstructured([(module, "weight"), ...],
  pruning_method=L1Unstructured, amount=round(s1 * N))`` on the same weights. Every repeat uses
  fresh holder modules around the same (never modified) weight tensors, built outside the timed
  region, so torch's re-parametrisation of one repeat does not leak into the next; the timed
  region includes torch's ``weight = weight_orig * weight_mask`` products, which are part of that
  API.

The three are interleaved (order rotated every repeat, ``gc.collect()`` before each call) and
the median / min wall time of each is reported, with the ratio ours / torch. Correctness: the
number of positions where our mask differs from torch's (level (a) vs (c); level (b) vs a
one-shot torch mask at s2 on the dense weights, which is the same set when |w| has no ties at the
threshold) and that exactly ``round(s * N)`` weights are pruned.

Peak extra memory of each call is measured in a fresh subprocess (the RSS high-water mark reset
through ``/proc/self/clear_refs`` just before the call, falling back to the ``ru_maxrss`` delta),
reported in bytes per prunable weight, including the returned masks (1 byte/weight for
``torch.bool``). Target: at most one extra fp32 copy of the weights (4 B/weight) plus the masks.

Timing target: each pruning call <= 0.5 s on 2 CPU cores.

Usage: ``python scripts/bench_pruning.py [--repeats 5] [--profile]``.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402
from _bench_util import (  # noqa: E402
    MachineLoad,
    PeakRSS,
    environment,
    print_json,
    print_table,
    seed_everything,
    setup_threads,
    summary,
    timed,
)
from torch import nn  # noqa: E402
from torch.nn.utils import prune  # noqa: E402

TARGET_S = 0.5
MEMORY_TARGET_BPW = 4.0 + 1.0  # one fp32 copy of the weights + the bool masks


def build_weights(seed: int) -> dict[str, torch.Tensor]:
    from transformers import BertConfig, BertModel

    from bert_tickets.ticket import prunable_parameters

    seed_everything(seed)
    model = BertModel(BertConfig())
    model.eval()
    return {n: p.detach() for n, p in prunable_parameters(model).items()}


def masked_copy(weights, masks):
    return {n: w * masks[n] for n, w in weights.items()}


def torch_holders(weights) -> list[nn.Module]:
    """Fresh modules whose ``weight`` parameter shares storage with ``weights`` (untimed setup)."""
    holders = []
    for w in weights.values():
        m = nn.Module()
        m.weight = nn.Parameter(w, requires_grad=False)
        holders.append(m)
    return holders


def torch_prune(holders: list[nn.Module], k: int) -> None:
    prune.global_unstructured([(m, "weight") for m in holders], pruning_method=prune.L1Unstructured, amount=k)


def torch_masks(weights, holders) -> dict[str, torch.Tensor]:
    return {n: m.weight_mask.bool() for n, m in zip(weights, holders)}


def n_pruned(masks) -> int:
    return sum(m.numel() - int(m.count_nonzero()) for m in masks.values())


def n_differ(a, b) -> int:
    return sum(int((a[n] != b[n]).sum()) for n in a)


# ----------------------------------------------------------------------------- memory child
def memory_child(which: str, s1: float, s2: float, seed: int, threads: int | None) -> None:
    """Runs in a fresh subprocess; prints one JSON line with the peak extra RSS of one call."""
    from bert_tickets.pruning import global_magnitude_pruning, target_count

    setup_threads(threads)
    weights = build_weights(seed)
    total = sum(w.numel() for w in weights.values())
    if which == "ours_l1":
        fn = lambda: global_magnitude_pruning(weights, s1)  # noqa: E731
    elif which == "ours_l2":
        m1 = global_magnitude_pruning(weights, s1)
        wm = masked_copy(weights, m1)
        fn = lambda: global_magnitude_pruning(wm, s2, m1)  # noqa: E731
    elif which == "torch_l1":
        holders = torch_holders(weights)
        k = target_count(s1, total)
        fn = lambda: torch_prune(holders, k)  # noqa: E731
    else:
        raise SystemExit(f"unknown memory child {which!r}")
    with PeakRSS() as mem:
        result = fn()
    del result
    print(
        json.dumps(
            {
                "which": which,
                "peak_extra_bytes": mem.peak_extra,
                "retained_bytes": mem.rss_after_extra,
                "method": mem.method,
                "total": total,
            }
        )
    )


def measure_memory(which: str, args) -> dict:
    cmd = [
        sys.executable,
        os.path.abspath(__file__),
        "--memory-child",
        which,
        "--s1",
        str(args.s1),
        "--s2",
        str(args.s2),
        "--seed",
        str(args.seed),
    ]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


# ----------------------------------------------------------------------------- main
def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="See the module docstring for what is measured.",
    )
    p.add_argument("--repeats", type=int, default=5, help="timed repeats of each variant (interleaved; default 5)")
    p.add_argument("--s1", type=float, default=0.1, help="level-1 sparsity (default 0.1)")
    p.add_argument("--s2", type=float, default=0.2, help="level-2 sparsity (default 0.2)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random BERT init (default 0)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: available cores)")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    p.add_argument("--profile", action="store_true", help="also cProfile one call of (a) and (b)")
    p.add_argument("--memory-child", default=None, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.memory_child:
        memory_child(args.memory_child, args.s1, args.s2, args.seed, args.threads)
        return
    from bert_tickets.pruning import global_magnitude_pruning, target_count

    t_start = time.perf_counter()
    load = MachineLoad()
    threads = setup_threads(args.threads)
    weights = build_weights(args.seed)
    total = sum(w.numel() for w in weights.values())
    k1, k2 = target_count(args.s1, total), target_count(args.s2, total)
    print(
        f"bench_pruning: bert-base BertModel(BertConfig()) random init, seed {args.seed}; "
        f"{len(weights)} prunable tensors, N = {total:,} weights; torch threads {threads}"
    )
    print(
        f"(a) ours s={args.s1} from dense   (b) ours s={args.s2} on masked weights + level-(a) masks   "
        f"(c) torch.nn.utils.prune.global_unstructured L1Unstructured amount={k1:,}"
    )

    # Untimed warm-up of every path (and the level-1 masks used by (b)).
    m1 = global_magnitude_pruning(weights, args.s1)
    wm = masked_copy(weights, m1)
    global_magnitude_pruning(wm, args.s2, m1)
    h2 = torch_holders(weights)
    torch_prune(h2, k2)  # torch's warm-up, and its one-shot level-2 mask used in the checks
    torch2 = torch_masks(weights, h2)
    del h2

    times = {"a_ours_l1": [], "b_ours_l2": [], "c_torch_l1": []}
    cpu = {n: [] for n in times}
    results = {}

    def run_a():
        return global_magnitude_pruning(weights, args.s1)

    def run_b():
        return global_magnitude_pruning(wm, args.s2, m1)

    def run_c():
        holders = torch_holders(weights)  # untimed setup
        t, c, _ = timed(lambda: torch_prune(holders, k1))
        return t, c, torch_masks(weights, holders)

    variants = [("a_ours_l1", run_a), ("b_ours_l2", run_b), ("c_torch_l1", run_c)]
    for r in range(args.repeats):
        for j in range(len(variants)):
            name, fn = variants[(r + j) % len(variants)]
            t, c, out = fn() if name == "c_torch_l1" else timed(fn)
            times[name].append(t)
            cpu[name].append(c)
            results.setdefault(name, out)  # keep the first result for the checks
            del out

    # Correctness.
    ours1, ours2, torch1 = results["a_ours_l1"], results["b_ours_l2"], results["c_torch_l1"]
    checks = {
        "l1_pruned": n_pruned(ours1),
        "l1_expected": k1,
        "l1_diff_vs_torch": n_differ(ours1, torch1),
        "l2_pruned": n_pruned(ours2),
        "l2_expected": k2,
        "l2_diff_vs_torch_oneshot": n_differ(ours2, torch2),
        "l2_revived": sum(int((ours2[n] & ~m1[n]).sum()) for n in m1),
        "torch_l1_pruned": n_pruned(torch1),
    }
    # Ties in |w| at the thresholds (where tie-breaking may legitimately differ from torch's topk).
    # The k-th smallest |w| is the largest pruned |w|; count the weights sharing that value.
    ties = {}
    for k, masks in ((k1, ours1), (k2, ours2)):
        thr = max(float(w.abs()[~masks[n]].max()) for n, w in weights.items() if not bool(masks[n].all()))
        ties[k] = sum(int((w.abs() == thr).sum()) for w in weights.values())

    s = {n: summary(t) for n, t in times.items()}
    s_cpu = {n: summary(t) for n, t in cpu.items()}
    ratio = s["a_ours_l1"]["median_s"] / s["c_torch_l1"]["median_s"]
    ratio2 = s["b_ours_l2"]["median_s"] / s["c_torch_l1"]["median_s"]

    print()
    print(f"Wall time, {args.repeats} interleaved repeats each (order rotated per repeat):")
    print_table(
        [
            (
                n,
                f"{v['median_s']:.3f}",
                f"{v['min_s']:.3f}",
                f"{v['max_s']:.3f}",
                f"{v['median_s'] / s['c_torch_l1']['median_s']:.2f}",
                f"{v['min_s'] / s['c_torch_l1']['min_s']:.2f}",
                f"{s_cpu[n]['median_s']:.3f}",
            )
            for n, v in s.items()
        ],
        ("variant", "median s", "min s", "max s", "ratio vs torch (median)", "ratio vs torch (min)", "process cpu s (median)"),
    )
    print()
    print("Correctness:")
    print_table(
        [
            (
                "(a) level 1 vs torch",
                f"{checks['l1_pruned']:,}",
                f"{k1:,}",
                "yes" if checks["l1_pruned"] == k1 else "NO",
                f"{checks['l1_diff_vs_torch']:,}",
                ties[k1],
            ),
            (
                "(b) level 2 vs torch one-shot",
                f"{checks['l2_pruned']:,}",
                f"{k2:,}",
                "yes" if checks["l2_pruned"] == k2 else "NO",
                f"{checks['l2_diff_vs_torch_oneshot']:,}",
                ties[k2],
            ),
        ],
        ("check", "pruned", "round(s*N)", "exact", "positions differing from torch", "weights tied at |w| threshold"),
    )
    print(
        f"(b) revives no level-(a) pruned weight: {'yes' if checks['l2_revived'] == 0 else 'NO'} "
        f"({checks['l2_revived']} revived); torch (c) pruned {checks['torch_l1_pruned']:,}"
    )

    mem = {}
    if not args.no_memory:
        for which in ("ours_l1", "ours_l2", "torch_l1"):
            mem[which] = measure_memory(which, args)
        print()
        print(
            f"Peak extra memory of one call (fresh subprocess, {mem['ours_l1']['method']}); "
            "includes the returned masks (ours: 1 B/weight bool; torch: float32 mask + weight products):"
        )
        print_table(
            [
                (w, f"{m['peak_extra_bytes'] / 2**20:.1f}", f"{m['peak_extra_bytes'] / total:.2f}", f"{m['retained_bytes'] / total:.2f}")
                for w, m in mem.items()
            ],
            ("call", "peak extra MiB", "peak extra B/weight", "retained after call B/weight"),
        )
        print(
            f"memory target: <= {MEMORY_TARGET_BPW:.0f} B/weight (one fp32 copy + bool masks): "
            + ", ".join(
                f"{w} {'MET' if mem[w]['peak_extra_bytes'] / total <= MEMORY_TARGET_BPW else 'NOT MET'}" for w in ("ours_l1", "ours_l2")
            )
        )

    if args.profile:
        for label, fn in (("(a)", run_a), ("(b)", run_b)):
            pr = cProfile.Profile()
            pr.enable()
            fn()
            pr.disable()
            buf = io.StringIO()
            pstats.Stats(pr, stream=buf).sort_stats("tottime").print_stats(10)
            print(f"\ncProfile of {label} (top 10 by tottime):")
            print("\n".join(line for line in buf.getvalue().splitlines() if line.strip())[:4000])

    env = {**environment(), **load.report()}
    met_a = s["a_ours_l1"]["median_s"] <= TARGET_S
    met_b = s["b_ours_l2"]["median_s"] <= TARGET_S
    print()
    print(f"environment: {env}; total runtime {time.perf_counter() - t_start:.0f} s")
    if env.get("others_pct", 0) + env.get("steal_pct", 0) > 10:
        print(
            f"NOTE: other processes ({env['others_pct']}%) and hypervisor steal ({env['steal_pct']}%) took CPU during "
            "this run: medians are inflated; the min column is the better estimate of uncontended time. With "
            "torch threads = cores and a core taken by another process, torch's OpenMP regions stall; compare --threads 1"
        )
    print(
        f"TARGET <= {TARGET_S} s per pruning call on 2 CPU cores (bert-base, N = {total:,}; measured on "
        f"{env['cores']} cores, torch threads {threads}): "
        f"(a) median {s['a_ours_l1']['median_s']:.3f} s {'MET' if met_a else 'NOT MET'}; "
        f"(b) median {s['b_ours_l2']['median_s']:.3f} s {'MET' if met_b else 'NOT MET'}; "
        f"ours/torch (a) {ratio:.2f}x"
    )
    print_json(
        {
            "bench": "pruning",
            "N": total,
            "tensors": len(weights),
            "repeats": args.repeats,
            "s1": args.s1,
            "s2": args.s2,
            "times": {n: {k: round(v, 4) if isinstance(v, float) else v for k, v in x.items()} for n, x in s.items()},
            "cpu": {n: {k: round(v, 4) if isinstance(v, float) else v for k, v in x.items()} for n, x in s_cpu.items()},
            "ratio_ours_l1_vs_torch": round(ratio, 3),
            "ratio_ours_l2_vs_torch": round(ratio2, 3),
            "checks": checks,
            "ties_at_threshold": {"l1": ties[k1], "l2": ties[k2]},
            "memory_bytes_per_weight": {
                w: {"peak_extra": round(m["peak_extra_bytes"] / total, 3), "retained": round(m["retained_bytes"] / total, 3)}
                for w, m in mem.items()
            },
            "memory_method": mem.get("ours_l1", {}).get("method"),
            "target_s": TARGET_S,
            "target_met": {"a": met_a, "b": met_b},
            "env": env,
        }
    )


if __name__ == "__main__":
    main()
