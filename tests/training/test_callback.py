"""TicketCallback with a stock transformers.Trainer on a tiny BERT."""

import pytest
import torch
from datasets import Dataset
from transformers import BertForSequenceClassification, Trainer, TrainingArguments

from bert_tickets import TicketCallback, TicketMask, fix_loss_scaling, prune_ticket


def _data(n=32, seq=12, vocab=99, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, vocab, (n, seq), generator=g)
    labels = (ids[:, 0] > vocab // 2).long()
    return Dataset.from_dict({"input_ids": ids.tolist(), "attention_mask": [[1] * seq] * n, "labels": labels.tolist()})


def _args(tmp_path, **kw):
    base = dict(
        output_dir=str(tmp_path),
        per_device_train_batch_size=8,
        num_train_epochs=2,
        learning_rate=1e-3,
        report_to="none",
        save_strategy="no",
        logging_strategy="no",
        seed=0,
        data_seed=0,
        use_cpu=True,
        disable_tqdm=True,
    )
    base.update(kw)
    return TrainingArguments(**base)


def _model_and_ticket(config, sparsity=0.5):
    torch.manual_seed(0)
    model = BertForSequenceClassification(config)
    ticket = prune_ticket(TicketMask.dense(model), model, sparsity)
    return model, ticket


def test_pruned_weights_exactly_zero_after_training_and_adam_moments_zero(config, tmp_path):
    model, ticket = _model_and_ticket(config)
    before = {n: p.detach().clone() for n, p in model.bert.named_parameters()}
    cb = TicketCallback(ticket)
    trainer = Trainer(model=fix_loss_scaling(model), args=_args(tmp_path, weight_decay=0.1), train_dataset=_data(), callbacks=[cb])
    trainer.train()
    # Trainer hands callbacks accelerate's AcceleratedOptimizer around torch AdamW: seen through, so no per-step pass
    assert type(trainer.optimizer).__name__ == "AcceleratedOptimizer"
    assert cb.rezero_every_step is False
    params = dict(model.bert.named_parameters())
    assert ticket.count_nonzero_pruned(model) == 0
    # surviving weights did train
    changed = sum(int((params[n][m] != before[n][m]).sum()) for n, m in ticket.masks.items())
    assert changed > 0.9 * (ticket.num_prunable - ticket.num_pruned)
    for n, m in ticket.masks.items():
        state = trainer.optimizer.state[params[n]]
        assert torch.count_nonzero(state["exp_avg"][~m]) == 0
        assert torch.count_nonzero(state["exp_avg_sq"][~m]) == 0
    # hooks were removed at the end of training: a backward now gives dense gradients
    model.zero_grad()
    batch = _data(4)[:4]
    out = model(input_ids=torch.tensor(batch["input_ids"]), labels=torch.tensor(batch["labels"]))
    out.loss.backward()
    q = "encoder.layer.0.attention.self.query.weight"
    assert torch.count_nonzero(params[q].grad[~ticket.masks[q]]) > 0


def test_gradients_masked_before_clipping(config):
    model, ticket = _model_and_ticket(config)
    cb = TicketCallback(ticket)
    cb.attach(model)
    batch = _data(4)[:4]
    model(input_ids=torch.tensor(batch["input_ids"]), labels=torch.tensor(batch["labels"])).loss.backward()
    params = dict(model.bert.named_parameters())
    for n, m in ticket.masks.items():
        assert torch.count_nonzero(params[n].grad[~m]) == 0  # already in .grad, i.e. before any clipping
    cb.detach()


def _train_weights(config, tmp_path, **kw):
    model, ticket = _model_and_ticket(config)
    args = _args(tmp_path, optim="sgd", max_grad_norm=0.0, num_train_epochs=1, learning_rate=0.5, **kw)
    Trainer(model=fix_loss_scaling(model), args=args, train_dataset=_data(), callbacks=[TicketCallback(ticket)]).train()
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def test_gradient_accumulation_matches_full_batch(config, tmp_path):
    """Accumulation 2 at batch 4 == accumulation 1 at batch 8 (plain SGD, so a loss that is not
    divided by the accumulation steps would double every update)."""
    full = _train_weights(config, tmp_path / "a", per_device_train_batch_size=8, gradient_accumulation_steps=1)
    accum = _train_weights(config, tmp_path / "b", per_device_train_batch_size=4, gradient_accumulation_steps=2)
    for n in full:
        torch.testing.assert_close(accum[n], full[n], rtol=1e-4, atol=1e-5, msg=n)


def test_without_fix_accumulation_differs(config, tmp_path):
    """The pitfall is real in this transformers version: without fix_loss_scaling the result differs."""
    model, ticket = _model_and_ticket(config)
    args = _args(
        tmp_path,
        optim="sgd",
        max_grad_norm=0.0,
        num_train_epochs=1,
        learning_rate=0.5,
        per_device_train_batch_size=4,
        gradient_accumulation_steps=2,
    )
    Trainer(model=model, args=args, train_dataset=_data(), callbacks=[TicketCallback(ticket)]).train()
    full = _train_weights(config, tmp_path / "a", per_device_train_batch_size=8, gradient_accumulation_steps=1)
    diffs = [float((p.detach() - full[n]).abs().max()) for n, p in model.named_parameters()]
    assert max(diffs) > 1e-3


def test_bf16_autocast_keeps_zeros(config, tmp_path):
    model, ticket = _model_and_ticket(config)
    Trainer(
        model=fix_loss_scaling(model), args=_args(tmp_path, bf16=True), train_dataset=_data(), callbacks=[TicketCallback(ticket)]
    ).train()
    assert ticket.count_nonzero_pruned(model) == 0


def test_bad_mask_fails_before_training(config, tmp_path):
    from conftest import tiny_config

    _, ticket = _model_and_ticket(tiny_config(intermediate_size=48))
    model = BertForSequenceClassification(config)
    before = [p.detach().clone() for p in model.parameters()]
    trainer = Trainer(model=model, args=_args(tmp_path), train_dataset=_data(), callbacks=[TicketCallback(ticket)])
    with pytest.raises(ValueError, match="shape"):
        trainer.train()
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


# -- re-zeroing policy ("auto": only optimizers that provably keep zero weights skip the per-step pass)


def _adafactor(ps):
    from transformers.optimization import Adafactor

    return Adafactor(ps, lr=1e-2, relative_step=False, scale_parameter=False, warmup_init=False, beta1=0.9, weight_decay=0.1)


ZERO_PRESERVING_CASES = {
    "sgd_nesterov_wd": lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.1),
    "adam_amsgrad_l2": lambda ps: torch.optim.Adam(ps, lr=1e-2, weight_decay=0.1, amsgrad=True),
    "adamw_forloop": lambda ps: torch.optim.AdamW(ps, lr=1e-2, weight_decay=0.1, foreach=False),
    "adamw_foreach": lambda ps: torch.optim.AdamW(ps, lr=1e-2, weight_decay=0.1, foreach=True),
    "adamw_fused": lambda ps: torch.optim.AdamW(ps, lr=1e-2, weight_decay=0.1, fused=True),
    "adagrad": lambda ps: torch.optim.Adagrad(ps, lr=0.1, weight_decay=0.1, initial_accumulator_value=0.1),
    "rmsprop_centered": lambda ps: torch.optim.RMSprop(ps, lr=1e-2, momentum=0.9, centered=True, weight_decay=0.1),
    "adafactor": _adafactor,
}


def _count_zero_pruned_calls(cb) -> list:
    """Record every ``cb.zero_pruned()`` call (one list entry per call)."""
    calls, original = [], cb.zero_pruned
    cb.zero_pruned = lambda: (calls.append(1), original())[1]
    return calls


def _loop(model, cb, opt, tmp_path, steps, before_callback=None):
    """Trainer's event order by hand: forward, backward, clip, step, on_optimizer_step, zero_grad."""
    from transformers import TrainerControl, TrainerState

    args, state, control = _args(tmp_path), TrainerState(), TrainerControl()
    cb.on_train_begin(args, state, control, model=model)
    data = _data(8 * steps, seed=1)
    for i in range(steps):
        b = data[8 * i : 8 * (i + 1)]
        model(input_ids=torch.tensor(b["input_ids"]), labels=torch.tensor(b["labels"])).loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if before_callback is not None:
            before_callback(i)
        cb.on_optimizer_step(args, state, control, optimizer=opt)
        assert cb.mask.count_nonzero_pruned(model) == 0, f"step {i}"  # before on_train_end's final re-zero
        model.zero_grad()


@pytest.mark.parametrize("case", sorted(ZERO_PRESERVING_CASES))
def test_zero_preserving_optimizers_keep_exact_zeros_without_per_step_rezero(config, tmp_path, case):
    from bert_tickets.training.callback import preserves_zeros

    model, ticket = _model_and_ticket(config)
    opt = ZERO_PRESERVING_CASES[case](model.parameters())
    assert preserves_zeros(opt)
    cb = TicketCallback(ticket)
    calls = _count_zero_pruned_calls(cb)
    _loop(model, cb, opt, tmp_path, steps=4)
    assert cb.rezero_every_step is False
    assert len(calls) == 2  # attach + the first optimizer step only: zeros held by the optimizer itself


class _NoisySGD(torch.optim.SGD):
    """A subclass (so not trusted) whose step also moves every weight, gradient or not."""

    @torch.no_grad()
    def step(self, closure=None):
        loss = super().step(closure)
        for group in self.param_groups:
            for p in group["params"]:
                p.add_(1e-3)
        return loss


def test_other_optimizers_get_weights_rezeroed_every_step(config, tmp_path):
    from bert_tickets.training.callback import preserves_zeros

    model, ticket = _model_and_ticket(config)
    opt = _NoisySGD(model.parameters(), lr=0.1)
    assert not preserves_zeros(opt)
    cb = TicketCallback(ticket)
    moved = []
    _loop(model, cb, opt, tmp_path, steps=3, before_callback=lambda i: moved.append(ticket.count_nonzero_pruned(model)))
    assert cb.rezero_every_step is True
    assert min(moved) == ticket.num_pruned  # the optimizer did move every pruned weight; the callback undid it


def test_every_step_mode_forced(config, tmp_path):
    model, ticket = _model_and_ticket(config)
    cb = TicketCallback(ticket, rezero="every_step")
    calls = _count_zero_pruned_calls(cb)
    _loop(model, cb, torch.optim.AdamW(model.parameters(), lr=1e-2), tmp_path, steps=3)
    assert cb.rezero_every_step is True and len(calls) == 4  # attach + 3 steps


def test_stale_optimizer_state_is_zeroed_at_first_step(config, tmp_path):
    """Adam state from dense steps (e.g. resumed from another mask's checkpoint) would move pruned
    weights through its momentum; the first step zeroes it at pruned positions."""
    model, ticket = _model_and_ticket(config)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    batch = _data(8, seed=2)[:8]
    for _ in range(2):  # dense steps: state non-zero everywhere
        model(input_ids=torch.tensor(batch["input_ids"]), labels=torch.tensor(batch["labels"])).loss.backward()
        opt.step()
        model.zero_grad()
    params = dict(model.bert.named_parameters())
    q = "encoder.layer.0.attention.self.query.weight"
    assert torch.count_nonzero(opt.state[params[q]]["exp_avg"][~ticket.masks[q]]) > 0
    cb = TicketCallback(ticket)
    _loop(model, cb, opt, tmp_path, steps=4)
    assert cb.rezero_every_step is False
    for n, m in ticket.masks.items():
        for key in ("exp_avg", "exp_avg_sq"):
            assert torch.count_nonzero(opt.state[params[n]][key][~m]) == 0, (n, key)


def test_preserves_zeros_rules():
    from bert_tickets.training.callback import preserves_zeros

    p = [torch.nn.Parameter(torch.zeros(2))]

    class Wrapper:  # like accelerate's AcceleratedOptimizer
        def __init__(self, optimizer):
            self.optimizer = optimizer

    assert preserves_zeros(Wrapper(torch.optim.AdamW(p)))
    assert not preserves_zeros(torch.optim.Adam(p, eps=0.0))  # 0/0 at a pruned position
    assert not preserves_zeros(torch.optim.Adamax(p))  # not on the list
    assert not preserves_zeros(None)
    with pytest.raises(ValueError, match="rezero"):
        TicketCallback(TicketMask({"w": torch.ones(2, dtype=torch.bool)}), rezero="never")


# -- DDP: two CPU processes (gloo) running a stock Trainer


def _ddp_worker(rank: int, world: int, port: int, out_dir: str, fix: bool) -> None:
    import os
    from pathlib import Path

    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        WORLD_SIZE=str(world),
        LOCAL_RANK=str(rank),
        LOCAL_WORLD_SIZE=str(world),
    )
    torch.set_num_threads(1)
    from conftest import tiny_config

    model, ticket = _model_and_ticket(tiny_config())
    args = _args(
        Path(out_dir) / "ddp",
        optim="sgd",
        max_grad_norm=0.0,
        num_train_epochs=1,
        learning_rate=0.5,
        per_device_train_batch_size=4,
        ddp_backend="gloo",
    )
    assert args.world_size == world
    Trainer(model=fix_loss_scaling(model) if fix else model, args=args, train_dataset=_data(), callbacks=[TicketCallback(ticket)]).train()
    torch.save(
        {"weights": {n: p.detach().clone() for n, p in model.named_parameters()}, "nonzero_pruned": ticket.count_nonzero_pruned(model)},
        Path(out_dir) / f"rank{rank}.pt",
    )
    # Join gloo's threads before the interpreter exits: a process left with a live gloo thread can
    # abort at exit ("terminate called without an active exception"), seen once under heavy load.
    torch.distributed.barrier()
    torch.distributed.destroy_process_group()


def _run_ddp(tmp_path, fix: bool):
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_ddp_worker, args=(2, port, str(tmp_path), fix), nprocs=2, join=True)
    return [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]


def test_ddp_two_processes_match_single_process_and_keep_zeros(config, tmp_path):
    """2 ranks x batch 4 == 1 process x batch 8 (plain SGD, no clipping): gradients are masked before
    the all-reduce, the loss is not multiplied by the world size, and pruned weights stay 0 on
    every rank."""
    ranks = _run_ddp(tmp_path, fix=True)
    single = _train_weights(config, tmp_path / "single", per_device_train_batch_size=8)
    for r in ranks:
        assert r["nonzero_pruned"] == 0
    for n, w in single.items():
        torch.testing.assert_close(ranks[0]["weights"][n], ranks[1]["weights"][n], rtol=0, atol=0, msg=n)
        torch.testing.assert_close(ranks[0]["weights"][n], w, rtol=1e-4, atol=1e-5, msg=n)


def test_fully_kept_tensors_get_no_hook(config):
    """The dense level-0 ticket costs no per-step work; a ticket leaving one tensor whole hooks only the rest."""
    model, ticket = _model_and_ticket(config)
    dense = TicketCallback(TicketMask.dense(model))
    dense.attach(model)
    assert dense._handles == [] and dense._targets == {}
    q = "encoder.layer.0.attention.self.query.weight"
    masks = dict(ticket.masks)
    masks[q] = torch.ones_like(masks[q])
    cb = TicketCallback(TicketMask(masks))
    cb.attach(model)
    assert q not in cb._targets and len(cb._handles) == len(masks) - 1
    batch = _data(4)[:4]
    model(input_ids=torch.tensor(batch["input_ids"]), labels=torch.tensor(batch["labels"])).loss.backward()
    params = dict(model.bert.named_parameters())
    for n, m in masks.items():
        assert torch.count_nonzero(params[n].grad[~m]) == 0, n
    cb.detach()


def test_the_callback_takes_a_ticket_under_its_former_name_too():
    from conftest import tiny_config

    ticket = TicketMask.dense(BertForSequenceClassification(tiny_config()))
    assert TicketCallback(ticket).ticket is ticket and TicketCallback(mask=ticket).ticket is ticket
    assert TicketCallback(ticket).mask is ticket
    with pytest.raises(TypeError, match="one ticket"):
        TicketCallback()
    with pytest.raises(TypeError, match="one ticket"):
        TicketCallback(ticket, mask=ticket)
