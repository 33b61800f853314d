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
    trainer = Trainer(model=fix_loss_scaling(model), args=_args(tmp_path, weight_decay=0.1), train_dataset=_data(),
                      callbacks=[TicketCallback(ticket)])
    trainer.train()
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
    args = _args(tmp_path, optim="sgd", max_grad_norm=0.0, num_train_epochs=1, learning_rate=0.5,
                 per_device_train_batch_size=4, gradient_accumulation_steps=2)
    Trainer(model=model, args=args, train_dataset=_data(), callbacks=[TicketCallback(ticket)]).train()
    full = _train_weights(config, tmp_path / "a", per_device_train_batch_size=8, gradient_accumulation_steps=1)
    diffs = [float((p.detach() - full[n]).abs().max()) for n, p in model.named_parameters()]
    assert max(diffs) > 1e-3


def test_bf16_autocast_keeps_zeros(config, tmp_path):
    model, ticket = _model_and_ticket(config)
    Trainer(model=fix_loss_scaling(model), args=_args(tmp_path, bf16=True), train_dataset=_data(),
            callbacks=[TicketCallback(ticket)]).train()
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
