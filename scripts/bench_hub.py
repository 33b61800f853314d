"""Benchmark of a ticket as a Hub artifact: size on disk and ``from_pretrained`` + ``apply`` time.

What is measured, on a randomly initialised bert-base ``BertModel(BertConfig())`` (no download;
the BERT-Tickets prunable set: 73 tensors, 85,524,480 weights), pruned to 70% sparsity by global
magnitude (``prune_ticket``), on CPU with ``torch.set_num_threads(--threads)``:

* **size**: ``ticket_mask.safetensors`` (bit-packed), ``ticket_config.json`` and the model card
  ``README.md`` as written by ``save_pretrained`` / ``push_run``; bits per prunable weight.
  Target: mask file <= 1 bit per prunable weight + 1% = 10.8 MB, against 4 bytes per weight
  (342.1 MB, computed) for BERT-Tickets' fp32 ``mask.pt``.
* **load time** (median, min over ``--repeats``, interleaved, ``gc.collect()`` before each):
  (a) ``TicketMask.from_pretrained(local_dir)``; (b) ``TicketMask.from_pretrained(repo_id)``
  resolved by ``hf_hub_download`` from a Hugging Face cache directory with ``HF_HUB_OFFLINE``
  (the files copied into the cache layout, so no network); (c) ``ticket.apply(model)`` on the
  bert-base model (validation of names/shapes + zeroing). Reported: (a) + (c) and (b) + (c).
  Target: <= 0.3 s.

Usage: ``python scripts/bench_hub.py [--repeats 5] [--threads N] [--sparsity 0.7]``.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402
from _bench_util import MachineLoad, environment, print_json, print_table, seed_everything, setup_threads, summary, timed  # noqa: E402
from transformers import BertConfig, BertModel  # noqa: E402

from bert_tickets import TicketMask, TicketMetadata, prune_ticket  # noqa: E402
from bert_tickets.publish import render_model_card  # noqa: E402
from bert_tickets.ticket import CONFIG_FILE, MASK_FILE, README_FILE  # noqa: E402

MB = 1e6
REPO = "bench/bert-base-uncased-ticket"


def populate_cache(cache: Path, repo_id: str, folder: Path) -> None:
    """Copy ``folder``'s files into huggingface_hub's cache layout (blobs, snapshot, refs/main)."""
    commit = hashlib.sha1(repo_id.encode()).hexdigest()
    repo_dir = cache / ("models--" + repo_id.replace("/", "--"))
    for path in folder.iterdir():
        data = path.read_bytes()
        blob = repo_dir / "blobs" / hashlib.sha256(data).hexdigest()
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(data)
        link = repo_dir / "snapshots" / commit / path.name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    (repo_dir / "refs").mkdir(parents=True, exist_ok=True)
    (repo_dir / "refs" / "main").write_text(commit)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: available cores)")
    parser.add_argument("--sparsity", type=float, default=0.7)
    args = parser.parse_args()
    threads = setup_threads(args.threads)
    seed_everything(0)
    load = MachineLoad()

    model = BertModel(BertConfig())
    meta = TicketMetadata(base_model="google-bert/bert-base-uncased", task="rte", schedule="linear", level=7)
    ticket = prune_ticket(TicketMask.dense(model, metadata=meta), model, args.sparsity)
    n = ticket.num_prunable

    with tempfile.TemporaryDirectory(prefix="bench-hub-") as tmp:
        folder = Path(tmp) / "ticket"
        ticket.save_pretrained(folder, model_card=render_model_card(ticket, repo_id=REPO))
        sizes = {name: (folder / name).stat().st_size for name in (MASK_FILE, CONFIG_FILE, README_FILE)}
        cache = Path(tmp) / "hf-cache"
        populate_cache(cache, REPO, folder)

        import huggingface_hub.constants

        huggingface_hub.constants.HF_HUB_OFFLINE = True  # what HF_HUB_OFFLINE=1 sets at import

        times: dict[str, list[float]] = {"from_pretrained(dir)": [], "from_pretrained(repo id, cache)": [], "apply(bert-base)": []}
        for _ in range(args.repeats):
            wall, _, loaded = timed(lambda: TicketMask.from_pretrained(folder))
            times["from_pretrained(dir)"].append(wall)
            wall, _, by_id = timed(lambda: TicketMask.from_pretrained(REPO, cache_dir=cache))
            times["from_pretrained(repo id, cache)"].append(wall)
            assert all(torch.equal(by_id.masks[k], ticket.masks[k]) for k in ticket.masks)
            wall, _, _ = timed(lambda: loaded.apply(model))  # noqa: B023 (called at once)
            times["apply(bert-base)"].append(wall)
        assert ticket.count_nonzero_pruned(model) == 0

    stats = {k: summary(v) for k, v in times.items()}
    total_dir = stats["from_pretrained(dir)"]["median_s"] + stats["apply(bert-base)"]["median_s"]
    total_id = stats["from_pretrained(repo id, cache)"]["median_s"] + stats["apply(bert-base)"]["median_s"]
    fp32_mask_pt = 4 * n
    print(f"bert-base prunable set: {n:,} weights, sparsity {ticket.sparsity:.4f}; torch threads {threads}")
    print_table(
        [(name, f"{size:,}", f"{size / MB:.3f}") for name, size in sizes.items()]
        + [("fp32 mask.pt (BERT-Tickets, computed 4 B/weight)", f"{fp32_mask_pt:,}", f"{fp32_mask_pt / MB:.1f}")],
        ("file", "bytes", "MB"),
    )
    bits = sizes[MASK_FILE] * 8 / n
    print(
        f"mask file: {bits:.4f} bits per prunable weight (target <= 1.01: {sizes[MASK_FILE] / MB:.3f} MB <= 10.8 MB), "
        f"{fp32_mask_pt / sizes[MASK_FILE]:.1f}x smaller than fp32 mask.pt"
    )
    print_table(
        [(k, f"{v['median_s']:.4f}", f"{v['min_s']:.4f}") for k, v in stats.items()]
        + [("from_pretrained(dir) + apply", f"{total_dir:.4f}", ""), ("from_pretrained(repo id) + apply", f"{total_id:.4f}", "")],
        ("step", "median s", "min s"),
    )
    print(f"target from_pretrained + apply <= 0.3 s: {'met' if max(total_dir, total_id) <= 0.3 else 'NOT met'}")
    print_json(
        {
            "benchmark": "hub",
            "num_prunable": n,
            "sparsity": ticket.sparsity,
            "sizes_bytes": sizes,
            "bits_per_weight": bits,
            "fp32_mask_pt_bytes": fp32_mask_pt,
            "times": stats,
            "load_apply_dir_s": total_dir,
            "load_apply_repo_id_s": total_id,
            "environment": environment(),
            "machine_load": load.report(),
        }
    )


if __name__ == "__main__":
    main()
