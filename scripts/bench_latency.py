#!/usr/bin/env python
"""Inference latency of a dense model, a compact structured ticket and the masked model at the
same sparsity (issue 22, item 4): CPU, torch eager, batch 1 and 32, sequence 128, median of
repeats, ratios against dense measured in the same run (interleaved: every round times every
model once, so drift hits all of them alike).

    python scripts/bench_latency.py --dense ../shared/models/all-MiniLM-L6-v2 --compact DIR [--masked DIR]
    python scripts/bench_latency.py --dense ../shared/models/all-MiniLM-L6-v2 --synthetic 0.5 0.5

``--compact`` / ``--masked`` are ``bert-tickets export`` directories (``--compact`` or not).
``--synthetic H N`` instead prunes the fraction H of the heads and N of the FFN neurons of
``--dense`` by magnitude (global, ≥ 1 head per layer) and times the compact model and the
masked one built from that mask — latency depends on the sizes, not on which heads survive, so
this measures the speed a structured ticket of that size would have. The masked model is timed
as PyTorch runs it (dense kernels on a weight with zeros): the baseline an unstructured ticket
gets without a sparse runtime. ONNX Runtime is timed too when ``onnxruntime`` is installed (it
prints "onnxruntime: not installed" otherwise). On a GPU, ``--semi_structured`` times a 2:4 mask
with ``torch.sparse.to_sparse_semi_structured`` against dense; without one it prints "no GPU".
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _bench_util import setup_threads  # noqa: E402


def _load(path: str, remote: bool = False):
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(path, trust_remote_code=remote)
    return model.eval()


def synthetic(dense_path: str, heads: float, neurons: float):
    """The masked and the compact model of a magnitude structured mask of ``--dense``."""
    from bert_tickets.pruning import prune_ticket
    from bert_tickets.publish.compact import compact_model
    from bert_tickets.ticket import TicketMask

    masked = _load(dense_path)
    ticket = TicketMask.dense(masked, exclude=[r"pooler\..*"])
    if heads > 0:
        ticket = prune_ticket(ticket, masked, heads, granularity="head", min_per_layer=1)
    if neurons > 0:
        ticket = prune_ticket(ticket, masked, neurons, granularity="neuron", min_per_layer=1)
    ticket.apply(masked)
    return masked, compact_model(masked, ticket), ticket.sparsity


def _inputs(model, batch: int, length: int, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1000, model.config.vocab_size, (batch, length), generator=g)
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


def time_models(models: dict[str, torch.nn.Module], batch: int, length: int, repeats: int, warmup: int) -> dict[str, list[float]]:
    """Interleaved timings (seconds per forward) of every model on the same inputs."""
    times = {name: [] for name in models}
    inputs = _inputs(next(iter(models.values())), batch, length)
    with torch.inference_mode():
        for _ in range(warmup):
            for m in models.values():
                m(**inputs)
        for _ in range(repeats):
            for name, m in models.items():
                t0 = time.perf_counter()
                m(**inputs)
                times[name].append(time.perf_counter() - t0)
    return times


def onnx_times(
    models: dict[str, torch.nn.Module], batch: int, length: int, repeats: int, warmup: int, tmp: Path
) -> dict[str, list[float]] | None:
    try:
        import onnxruntime as ort
    except ImportError:
        print("onnxruntime: not installed (pip install onnxruntime to time it)")
        return None
    out = {}
    for name, m in models.items():
        inputs = _inputs(m, batch, length)
        path = tmp / f"{name}.onnx"
        torch.onnx.export(
            m, (inputs["input_ids"], inputs["attention_mask"]), str(path), input_names=["input_ids", "attention_mask"], dynamo=False
        )
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        feed = {k: v.numpy() for k, v in inputs.items()}
        for _ in range(warmup):
            session.run(None, feed)
        ts = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            session.run(None, feed)
            ts.append(time.perf_counter() - t0)
        out[name] = ts
    return out


def semi_structured(length: int) -> None:
    if not torch.cuda.is_available():
        print("semi-structured 2:4: no GPU")
        return
    from torch.sparse import to_sparse_semi_structured

    w = torch.randn(3072, 768, dtype=torch.float16, device="cuda")
    mask = torch.zeros_like(w, dtype=torch.bool).reshape(3072, -1, 4)
    mask[..., :2] = True
    w = w * mask.reshape(w.shape)
    x = torch.randn(768, 32 * length, dtype=torch.float16, device="cuda")
    sparse = to_sparse_semi_structured(w)

    def bench(fn):
        for _ in range(10):
            fn()
        torch.cuda.synchronize()
        ts = []
        for _ in range(50):
            t0 = time.perf_counter()
            fn()
            torch.cuda.synchronize()
            ts.append(time.perf_counter() - t0)
        return statistics.median(ts)

    dense_t, sparse_t = bench(lambda: w @ x), bench(lambda: sparse @ x)
    print(
        f"semi-structured 2:4 (3072x768 fp16 @ 768x{32 * length}): dense {dense_t * 1e3:.3f} ms, 2:4 {sparse_t * 1e3:.3f} ms, ratio {dense_t / sparse_t:.2f}x"
    )


def table_rows(runtime: str, batch: int, times: dict[str, list[float]], params: dict[str, int]) -> list[dict]:
    """One row per model: median and min in ms, the speed-up of its median against dense's."""
    base = statistics.median(times["dense"])
    return [
        {
            "runtime": runtime,
            "batch": batch,
            "model": name,
            "median_ms": 1e3 * statistics.median(ts),
            "min_ms": 1e3 * min(ts),
            "speedup_vs_dense": base / statistics.median(ts),
            "parameters": params[name],
        }
        for name, ts in times.items()
    ]


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dense", required=True, help="dense checkpoint (θ0 or an export of level 0)")
    p.add_argument("--compact", help="a bert-tickets export --compact directory")
    p.add_argument("--masked", help="a bert-tickets export directory (masked weights) at the same sparsity")
    p.add_argument("--synthetic", nargs=2, type=float, metavar=("HEADS", "NEURONS"), help="prune these fractions of --dense instead")
    p.add_argument("--length", type=int, default=128)
    p.add_argument("--batches", type=int, nargs="+", default=[1, 32])
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--onnx", action="store_true", help="also time ONNX Runtime (when installed)")
    p.add_argument("--semi_structured", action="store_true", help="time a 2:4 matmul on a GPU (prints 'no GPU' without one)")
    args = p.parse_args(argv)
    threads = setup_threads(args.threads)
    models = {"dense": _load(args.dense)}
    sparsity = None
    if args.synthetic:
        masked, compact, sparsity = synthetic(args.dense, *args.synthetic)
        models.update({"masked": masked, "compact": compact})
    else:
        if args.masked:
            models["masked"] = _load(args.masked)
        if args.compact:
            models["compact"] = _load(args.compact, remote=True)
    params = {n: sum(p.numel() for p in m.parameters()) for n, m in models.items()}
    print(f"threads {threads}, sequence {args.length}, {args.repeats} interleaved repeats after {args.warmup} warm-up rounds")
    if sparsity is not None:
        print(
            f"synthetic structured mask: heads {args.synthetic[0]}, neurons {args.synthetic[1]} -> sparsity {sparsity:.4f} of the prunable weights"
        )
    rows = []
    for batch in args.batches:
        rows += table_rows("torch eager", batch, time_models(models, batch, args.length, args.repeats, args.warmup), params)
    if args.onnx:
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            for batch in args.batches:
                times = onnx_times(models, batch, args.length, args.repeats, args.warmup, Path(tmp))
                if times is None:
                    break
                rows += table_rows("onnxruntime", batch, times, params)
    print("| runtime | batch | model | parameters | median ms | min ms | speed-up vs dense (median) |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['runtime']} | {r['batch']} | {r['model']} | {r['parameters']:,} | {r['median_ms']:.1f} | {r['min_ms']:.1f} | {r['speedup_vs_dense']:.2f}x |"
        )
    if args.semi_structured:
        semi_structured(args.length)
    print(json.dumps(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
