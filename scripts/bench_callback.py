"""Benchmark of the training-step overhead of ``bert_tickets.training.callback.TicketCallback``.

What is measured, on CPU (``torch.set_num_threads(<available cores>)``), for a randomly
initialised bert-base ``BertForSequenceClassification(BertConfig())`` (no download), batch 8,
sequence length 128 (random token ids, fixed batch), ``model.train()`` (dropout on):

* ``dense``: a plain fine-tuning step;
* ``callback``: the same step with a :class:`TicketCallback` at 50% global magnitude sparsity
  over the BERT-Tickets prunable set (85,524,480 weights), default ``rezero="auto"`` (AdamW keeps
  zero weights at zero, so the weights are re-zeroed only at the first step);
* ``callback_eager``: the same with ``cpu_kernel=False`` (gradients multiplied by eager
  ``grad.mul_(uint8 mask)``, which on CPU first copies the mask to a float32 temporary, instead of
  the fused kernel of ``bert_tickets.training.kernels``);
* ``callback_every_step``: the same with ``rezero="every_step"`` (weights re-zeroed after every
  optimizer step, as for an optimizer that does not keep zeros);
* ``torch_prune``: the same step with ``torch.nn.utils.prune.global_unstructured(...,
  L1Unstructured, amount=0.5)`` applied to the same prunable set and left in place
  (``weight_orig`` parameter + ``weight_mask`` buffer + ``weight = weight_orig * weight_mask``
  recomputed by a forward pre-hook).

The step is a hand-written loop that calls the callback's events as ``transformers.Trainer``
(5.x) does, not a real ``Trainer``: ``cb.on_train_begin(args, state, control, model=model)`` once,
then per step forward -> ``loss.backward()`` -> ``clip_grad_norm_(model.parameters(), 1.0)`` ->
``optimizer.step()`` -> ``cb.on_optimizer_step(args, state, control, optimizer=optimizer)`` ->
``model.zero_grad()``.
``args`` is a real ``TrainingArguments(use_cpu=True)``; the optimizer is the one ``Trainer``
builds by default (``Trainer.get_optimizer_cls_and_kwargs(args)``: fused ``torch.optim.AdamW``,
lr 5e-5). No LR scheduler, no data loader.

Each variant has its own model (identical initial weights) and optimizer; steps are interleaved
round-robin (order rotated each round) — ``--warmup`` untimed rounds, then ``--steps`` timed
rounds. Reported: median / min wall time per step, process CPU time, the ratio to dense (of the
medians, of the minima, and the median of per-round ratios; target for the callback <= 1.01), a
direct timing of the callback's own work as a low-noise cross-check — the gradient hooks timed
*inside* ``--steps`` extra real training steps of each callback variant (after the timed rounds,
so the timers do not perturb them; a hook timed in isolation on a fresh tensor is misleading on
CPU, where eager ``mul_``'s float temporary is page-faulted anew inside a real step but reuses
warm memory in a tight loop), and one ``zero_pruned`` pass, which ``rezero="every_step"`` adds to
every step — and the extra bytes per prunable weight each method holds between steps,
computed from the tensors it keeps (callback: its bool masks on the parameters' device;
torch.prune: the float32 ``weight_mask`` and the materialised ``weight`` next to
``weight_orig``; target <= 1 B/weight). Checks: pruned weights are exactly zero after
training, and AdamW's moments are zero at pruned positions.

Usage: ``python scripts/bench_callback.py [--warmup 1] [--steps 6]`` (defaults sized for ~5 minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import copy
import os
import shutil
import statistics
import sys
import tempfile
import time
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402
from _bench_util import MachineLoad, environment, print_json, print_table, seed_everything, setup_threads, summary  # noqa: E402
from torch.nn.utils import prune  # noqa: E402

RATIO_TARGET = 1.01
VARIANTS = ("dense", "callback", "callback_eager", "callback_every_step", "torch_prune")
MEMORY_TARGET_BPW = 1.0


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="See the module docstring for what is measured.",
    )
    p.add_argument(
        "--warmup",
        type=int,
        default=1,
        help="untimed warm-up rounds (one step of each variant; default 1: a bert-base step takes ~7-15 s on 2 cores)",
    )
    p.add_argument(
        "--steps", type=int, default=6, help="timed rounds (one step of each variant; default 6, to stay near 5 minutes on 2 cores)"
    )
    p.add_argument("--batch", type=int, default=8, help="batch size (default 8)")
    p.add_argument("--seq-len", type=int, default=128, help="sequence length (default 128)")
    p.add_argument("--sparsity", type=float, default=0.5, help="global sparsity of the ticket (default 0.5)")
    p.add_argument("--seed", type=int, default=0, help="seed (model init, mask, batch; default 0)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: available cores)")
    p.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated subset of {','.join(VARIANTS)} (default: all)")
    return p.parse_args(argv)


def unique_bytes(tensors) -> int:
    """Bytes of the distinct storages behind ``tensors``."""
    seen, total = set(), 0
    for t in tensors:
        st = t.untyped_storage()
        key = (st.data_ptr(), t.device)
        if key not in seen:
            seen.add(key)
            total += st.nbytes()
    return total


def main(argv=None) -> None:
    args = parse_args(argv)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = set(variants) - set(VARIANTS)
    if unknown or "dense" not in variants:
        raise SystemExit(f"--variants must include dense and only name {','.join(VARIANTS)} (got {args.variants})")
    t_start = time.perf_counter()
    load = MachineLoad()
    threads = setup_threads(args.threads)
    warnings.filterwarnings("ignore")

    from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainerControl, TrainerState, TrainingArguments
    from transformers.utils import logging as hf_logging

    from bert_tickets.pruning import global_magnitude_pruning
    from bert_tickets.ticket import TicketMask, get_backbone, prunable_parameters
    from bert_tickets.training import kernels
    from bert_tickets.training.callback import TicketCallback, _GradMask, fix_loss_scaling

    hf_logging.set_verbosity_error()
    seed_everything(args.seed)
    base = BertForSequenceClassification(BertConfig(num_labels=2))
    prunable = prunable_parameters(base)
    total = sum(p.numel() for p in prunable.values())
    print(
        f"bench_callback: bert-base BertForSequenceClassification(BertConfig()) random init, seed {args.seed}; "
        f"batch {args.batch} x seq {args.seq_len}; {len(prunable)} prunable tensors, N = {total:,}; "
        f"sparsity {args.sparsity}; torch threads {threads}"
    )
    print(
        "step: hand-written loop calling the callback's events as transformers.Trainer does "
        "(on_train_begin once; forward, backward, clip_grad_norm_(1.0), optimizer.step(), on_optimizer_step, zero_grad)"
    )

    tmp = tempfile.mkdtemp(prefix="bench_callback_")
    targs = TrainingArguments(output_dir=tmp, use_cpu=True, report_to="none", max_grad_norm=1.0)
    shutil.rmtree(tmp, ignore_errors=True)  # TrainingArguments only needs output_dir to exist as a name
    opt_cls, opt_kwargs = Trainer.get_optimizer_cls_and_kwargs(targs)
    state, control = TrainerState(), TrainerControl()
    print(f"optimizer: {opt_cls.__module__}.{opt_cls.__name__} {opt_kwargs} (Trainer's default for these args)")

    gen = torch.Generator().manual_seed(args.seed)
    batch = {
        "input_ids": torch.randint(0, base.config.vocab_size, (args.batch, args.seq_len), generator=gen),
        "attention_mask": torch.ones(args.batch, args.seq_len, dtype=torch.long),
        "labels": torch.randint(0, 2, (args.batch,), generator=gen),
    }

    setups = {}
    for v in variants:
        model = fix_loss_scaling(copy.deepcopy(base))
        model.train()
        extra = {}
        if v.startswith("callback"):
            masks = global_magnitude_pruning({n: p.detach() for n, p in prunable_parameters(model).items()}, args.sparsity)
            cb = TicketCallback(
                TicketMask(masks), rezero="every_step" if v == "callback_every_step" else "auto", cpu_kernel=v != "callback_eager"
            )
            cb.on_train_begin(targs, state, control, model=model)
            extra["cb"] = cb
        elif v == "torch_prune":
            backbone = get_backbone(model)
            params = [(backbone.get_submodule(n.rsplit(".", 1)[0]), n.rsplit(".", 1)[1]) for n in prunable_parameters(model)]
            t0 = time.perf_counter()
            prune.global_unstructured(params, pruning_method=prune.L1Unstructured, amount=args.sparsity)
            extra["prune_setup_s"] = time.perf_counter() - t0
            extra["params"] = params
        opt = opt_cls(model.parameters(), **opt_kwargs)
        setups[v] = {"model": model, "opt": opt, **extra}
    del base

    def step(v: str) -> None:
        s = setups[v]
        model, opt, cb = s["model"], s["opt"], s.get("cb")
        loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), targs.max_grad_norm)
        opt.step()
        if cb is not None:
            cb.on_optimizer_step(targs, state, control, optimizer=opt)
        model.zero_grad()

    wall = {v: [] for v in variants}
    cpu = {v: [] for v in variants}
    t_loop = time.perf_counter()
    for r in range(args.warmup + args.steps):
        for j in range(len(variants)):
            v = variants[(r + j) % len(variants)]
            t0, c0 = time.perf_counter(), time.process_time()
            step(v)
            t1, c1 = time.perf_counter(), time.process_time()
            if r >= args.warmup:
                wall[v].append(t1 - t0)
                cpu[v].append(c1 - c0)
        state.global_step += 1
        print(
            f"  round {r + 1}/{args.warmup + args.steps}{' (warm-up)' if r < args.warmup else ''} done, "
            f"{time.perf_counter() - t_loop:.0f} s",
            file=sys.stderr,
            flush=True,
        )
    # Paired ratios: each variant's step over the dense step of the same round (robust to slow drift in load).
    paired = {v: statistics.median(a / b for a, b in zip(wall[v], wall["dense"])) for v in variants}

    # Direct, low-noise timing of the callback's own work per step: the gradient hooks timed inside real
    # steps (extra, untimed-as-a-whole steps after the timed rounds), and one zero_pruned pass.
    direct = {}
    cb_variants = [v for v in ("callback", "callback_eager", "callback_every_step") if v in setups]
    if cb_variants:
        acc = [0.0]
        plain_call = _GradMask.__call__

        def timed_call(self, param):
            t0 = time.perf_counter()
            plain_call(self, param)
            acc[0] += time.perf_counter() - t0

        hook_t = {v: [] for v in cb_variants}
        _GradMask.__call__ = timed_call
        try:
            for r in range(args.steps):
                for j in range(len(cb_variants)):
                    v = cb_variants[(r + j) % len(cb_variants)]
                    acc[0] = 0.0
                    step(v)
                    hook_t[v].append(acc[0])
        finally:
            _GradMask.__call__ = plain_call
        zero_t = []
        cb = setups[cb_variants[0]]["cb"]
        for _ in range(5):
            t0 = time.perf_counter()
            cb.zero_pruned()
            zero_t.append(time.perf_counter() - t0)
        direct = {f"hooks_{v}_s": statistics.median(t) for v, t in hook_t.items()}
        direct["zero_pruned_s"] = statistics.median(zero_t)

    # Memory held between steps, from the tensors each method keeps.
    mem = {"dense": 0}
    for v in ("callback", "callback_eager", "callback_every_step"):
        if v in setups:
            cb = setups[v]["cb"]
            mem[v] = unique_bytes(m for _, m in cb._targets.values())
            mem[f"{v}_cpu_ticket_copy"] = (
                0 if all(m.device.type == "cpu" for _, m in cb._targets.values()) else unique_bytes(cb.mask.masks.values())
            )
    if "torch_prune" in setups:
        params = setups["torch_prune"]["params"]
        mem["torch_prune"] = unique_bytes(getattr(mod, name + "_mask") for mod, name in params) + unique_bytes(
            getattr(mod, name) for mod, name in params
        )

    # Checks.
    checks = {}
    for v in ("callback", "callback_eager", "callback_every_step"):
        if v not in setups:
            continue
        cb, model, opt = setups[v]["cb"], setups[v]["model"], setups[v]["opt"]
        checks[f"{v}_rezero_every_step"] = cb.rezero_every_step
        checks[f"{v}_nonzero_pruned_weights"] = cb.mask.count_nonzero_pruned(model)
        nz = 0
        for n, (p, _) in cb._targets.items():
            st = opt.state.get(p, {})
            for key in ("exp_avg", "exp_avg_sq"):
                if key in st:
                    nz += int(torch.count_nonzero(st[key][~cb.mask.masks[n].to(p.device)]))
        checks[f"{v}_nonzero_adam_moments_at_pruned"] = nz
    if "torch_prune" in setups:
        params = setups["torch_prune"]["params"]
        pruned = sum(int((getattr(mod, name + "_mask") == 0).sum()) for mod, name in params)
        checks["torch_prune_pruned"] = pruned

    s_wall = {v: summary(t) for v, t in wall.items()}
    s_cpu = {v: summary(t) for v, t in cpu.items()}
    dense_med, dense_min = s_wall["dense"]["median_s"], s_wall["dense"]["min_s"]
    dense_cpu = s_cpu["dense"]["median_s"]
    ratios = {v: s_wall[v]["median_s"] / dense_med for v in variants}

    print()
    print(f"Step time, {args.steps} timed steps per variant after {args.warmup} warm-up rounds, interleaved round-robin:")
    rows = []
    for v in variants:
        rows.append(
            (
                v,
                f"{s_wall[v]['median_s']:.3f}",
                f"{s_wall[v]['min_s']:.3f}",
                f"{s_wall[v]['max_s']:.3f}",
                f"{ratios[v]:.3f}",
                f"{s_wall[v]['min_s'] / dense_min:.3f}",
                f"{paired[v]:.3f}",
                f"{s_cpu[v]['median_s']:.3f}",
                f"{s_cpu[v]['median_s'] / dense_cpu:.3f}",
                f"{mem[v] / total:.2f}",
            )
        )
    print_table(
        rows,
        (
            "variant",
            "median s",
            "min s",
            "max s",
            "ratio (median)",
            "ratio (min)",
            "ratio (paired)",
            "cpu s (median)",
            "cpu ratio",
            "extra B/weight held",
        ),
    )
    if direct:
        parts = []
        for v in cb_variants:
            h = direct[f"hooks_{v}_s"]
            direct[f"est_ratio_{v}_vs_dense_median"] = (dense_med + h) / dense_med
            parts.append(f"{v} {h * 1e3:.1f} ms (-> {direct[f'est_ratio_{v}_vs_dense_median']:.3f})")
        every = direct.get("hooks_callback_every_step_s", direct[f"hooks_{cb_variants[0]}_s"]) + direct["zero_pruned_s"]
        direct["est_ratio_every_step_with_zero_pruned_vs_dense_median"] = (dense_med + every) / dense_med
        print(
            f"callback work measured directly: gradient hooks (in-place grad *= mask) timed inside real steps, median of "
            f"{args.steps} steps each, and the estimated ratio vs the dense median step: {'; '.join(parts)}. "
            f"rezero='every_step' adds zero_pruned {direct['zero_pruned_s'] * 1e3:.1f} ms per step "
            f"-> {direct['est_ratio_every_step_with_zero_pruned_vs_dense_median']:.3f}"
        )
        print(f"fused CPU kernel (bert_tickets.training.kernels): {kernels._state}")
    if "torch_prune" in setups:
        print(f"torch.prune.global_unstructured setup (untimed in the steps): {setups['torch_prune']['prune_setup_s']:.2f} s")
    print(f"checks: {checks}")

    env = {**environment(), **load.report()}
    cb_ratio = ratios.get("callback")
    print()
    print(f"environment: {env}; total runtime {time.perf_counter() - t_start:.0f} s")
    if env.get("others_pct", 0) + env.get("steal_pct", 0) > 10:
        print(
            f"NOTE: other processes ({env['others_pct']}%) and hypervisor steal ({env['steal_pct']}%) took CPU during "
            "this run: step times and ratios are noisy; compare the paired ratio and the direct callback timing. With "
            "torch threads = cores and a core taken by another process, every OpenMP region stalls, which inflates the "
            "callback's extra per-tensor ops most; compare --threads 1"
        )
    if cb_ratio is not None:
        print(
            f"TARGET callback step / dense step <= {RATIO_TARGET} (torch threads {threads}): median ratio {cb_ratio:.3f} "
            f"(paired {paired['callback']:.3f}) "
            f"{'MET' if cb_ratio <= RATIO_TARGET else 'NOT MET'}"
            + (
                f"; hooks timed inside steps -> {direct['est_ratio_callback_vs_dense_median']:.3f} "
                f"{'MET' if direct['est_ratio_callback_vs_dense_median'] <= RATIO_TARGET else 'NOT MET'}"
                if "est_ratio_callback_vs_dense_median" in direct
                else ""
            )
            + f"; memory <= {MEMORY_TARGET_BPW:.0f} B/weight: "
            f"{mem['callback'] / total:.2f} {'MET' if mem['callback'] / total <= MEMORY_TARGET_BPW else 'NOT MET'}"
        )
    print_json(
        {
            "bench": "callback",
            "N": total,
            "batch": args.batch,
            "seq_len": args.seq_len,
            "sparsity": args.sparsity,
            "warmup": args.warmup,
            "steps": args.steps,
            "loop": "hand-written, Trainer event order",
            "optimizer": f"{opt_cls.__name__} {opt_kwargs}",
            "wall": {v: {k: round(x, 4) if isinstance(x, float) else x for k, x in d.items()} for v, d in s_wall.items()},
            "cpu": {v: {k: round(x, 4) if isinstance(x, float) else x for k, x in d.items()} for v, d in s_cpu.items()},
            "ratio_vs_dense_median": {v: round(r, 4) for v, r in ratios.items()},
            "ratio_vs_dense_paired": {v: round(r, 4) for v, r in paired.items()},
            "callback_direct_s": {k: round(x, 5) for k, x in direct.items()},
            "extra_bytes_per_weight": {v: round(b / total, 3) for v, b in mem.items()},
            "checks": checks,
            "targets": {"ratio": RATIO_TARGET, "bytes_per_weight": MEMORY_TARGET_BPW},
            "env": env,
        }
    )


if __name__ == "__main__":
    main()
