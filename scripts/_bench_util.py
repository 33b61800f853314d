"""Shared helpers of the ``scripts/bench_*.py`` benchmarks (timing, threads, memory, output).

Not part of the ``bert_tickets`` package; imported by the scripts from this directory.
"""

from __future__ import annotations

import gc
import json
import os
import platform
import resource
import statistics
import time
from collections.abc import Callable

import torch


def available_cores() -> int:
    """CPU cores this process may run on (affinity-aware)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def setup_threads(threads: int | None) -> int:
    """``torch.set_num_threads`` to ``threads`` (default: the available cores); returns it."""
    n = threads or available_cores()
    torch.set_num_threads(n)
    return n


def seed_everything(seed: int) -> None:
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def timed(fn: Callable[[], object]) -> tuple[float, float, object]:
    """Run ``fn`` once after a ``gc.collect()``; returns (wall seconds, process CPU seconds, result)."""
    gc.collect()
    c0, t0 = time.process_time(), time.perf_counter()
    out = fn()
    t1, c1 = time.perf_counter(), time.process_time()
    return t1 - t0, c1 - c0, out


def summary(times: list[float]) -> dict[str, float]:
    return {"median_s": statistics.median(times), "min_s": min(times), "max_s": max(times), "n": len(times)}


# ----------------------------------------------------------------------------- memory
def _status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


class PeakRSS:
    """Peak resident memory added by a block of code, in bytes.

    On Linux, resets the process's RSS high-water mark (``/proc/self/clear_refs`` <- ``5``) and
    reads ``VmHWM - VmRSS(before)``, which sees every allocation (torch, numpy, Python). Where
    that is unavailable it falls back to the ``ru_maxrss`` delta, which is only a lower bound
    when an earlier peak of the process was higher (``method`` says which was used).
    """

    def __enter__(self) -> PeakRSS:
        gc.collect()
        self.method = "ru_maxrss delta (lower bound)"
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            if _status_kib("VmHWM") is not None:
                self.method = "VmHWM after clear_refs"
        except OSError:
            pass
        self.rss0 = (_status_kib("VmRSS") or 0) * 1024
        self.maxrss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        return self

    def __exit__(self, *exc) -> None:
        if self.method.startswith("VmHWM"):
            self.peak_extra = (_status_kib("VmHWM") or 0) * 1024 - self.rss0
        else:
            self.peak_extra = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - self.maxrss0
        self.rss_after_extra = (_status_kib("VmRSS") or 0) * 1024 - self.rss0


# ----------------------------------------------------------------------------- machine load
def _proc_stat_cpu() -> list[int] | None:
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
        return [int(x) for x in fields[1:9]]  # user nice system idle iowait irq softirq steal
    except (OSError, ValueError, IndexError):
        return None


def _self_cpu_s() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


class MachineLoad:
    """How busy the machine was between construction and :meth:`report` (Linux ``/proc/stat``):
    CPU time stolen by the hypervisor, used by other processes, and used by this benchmark
    (with its children), each in % of the machine's total CPU capacity. Timings taken while
    others use a sizeable share are noisy; the minimum is then the better estimate."""

    def __init__(self) -> None:
        self.stat0, self.self0 = _proc_stat_cpu(), _self_cpu_s()

    def report(self) -> dict[str, float]:
        stat1 = _proc_stat_cpu()
        if self.stat0 is None or stat1 is None:
            return {}
        d = [b - a for a, b in zip(self.stat0, stat1)]
        total = sum(d) or 1
        hz = os.sysconf("SC_CLK_TCK")
        self_ticks = (_self_cpu_s() - self.self0) * hz
        busy = total - d[3] - d[4] - d[7]
        return {
            "steal_pct": round(100 * d[7] / total, 1),
            "others_pct": round(max(0.0, 100 * (busy - self_ticks) / total), 1),
            "this_bench_pct": round(100 * self_ticks / total, 1),
        }


# ----------------------------------------------------------------------------- output
def environment() -> dict[str, object]:
    import numpy
    import transformers

    return {
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "numpy": numpy.__version__,
        "python": platform.python_version(),
        "cores": available_cores(),
        "torch_threads": torch.get_num_threads(),
        "loadavg_1m": round(os.getloadavg()[0], 2),
    }


def print_table(rows: list[tuple], header: tuple) -> None:
    """Aligned text table (first column left-aligned, the rest right-aligned)."""
    cells = [tuple(str(c) for c in header)] + [tuple(str(c) for c in r) for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    for j, r in enumerate(cells):
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))))
        if j == 0:
            print("  ".join("-" * w for w in widths))


def print_json(figures: dict) -> None:
    """One line of JSON (``json.dumps``), meant to be the script's last line of output."""
    print(json.dumps(figures, sort_keys=False))
