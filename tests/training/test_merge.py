"""Tickets on PEFT (LoRA) models: applying, training with TicketCallback, merging, and why a
ticket is not a PEFT adapter type. Tiny BERT configs built in-process; nothing is downloaded."""

from __future__ import annotations

import copy

import pytest
import torch
from datasets import Dataset
from peft import LoraConfig, get_peft_model
from transformers import BertForSequenceClassification, Trainer, TrainingArguments

from bert_tickets import TicketCallback, TicketMask, fix_loss_scaling, prunable_parameters, prune_ticket
from bert_tickets.ticket.prunable import resolve_mask_targets, unwrap_model
from bert_tickets.training.merge import merge_with_ticket

TARGETS = ["query", "value", "attention.output.dense"]


def _data(n=32, seq=12, vocab=99, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, vocab, (n, seq), generator=g)
    labels = (ids[:, 0] > vocab // 2).long()
    return Dataset.from_dict({"input_ids": ids.tolist(), "attention_mask": [[1] * seq] * n, "labels": labels.tolist()})


def _lora(model, init=True, r=4):
    return get_peft_model(model, LoraConfig(task_type="SEQ_CLS", target_modules=TARGETS, r=r, lora_alpha=8, init_lora_weights=init))


def _setup(config, sparsity=0.6, init=True):
    torch.manual_seed(0)
    base = BertForSequenceClassification(config)
    ticket = prune_ticket(TicketMask.dense(base), base, sparsity)
    ticket.apply(base)
    return ticket, _lora(base, init=init)


def test_names_resolve_through_the_wrapper(config):
    torch.manual_seed(0)
    plain = BertForSequenceClassification(config)
    ticket = prune_ticket(TicketMask.dense(plain), plain, 0.6)
    wrapped = _lora(copy.deepcopy(plain))
    assert "bert.encoder.layer.0.attention.self.query.base_layer.weight" in dict(unwrap_model(wrapped).named_parameters())
    assert list(prunable_parameters(wrapped)) == list(prunable_parameters(plain))
    targets = resolve_mask_targets(wrapped, ticket.shapes)
    assert set(targets) == set(ticket.masks)
    query = unwrap_model(wrapped).bert.encoder.layer[0].attention.self.query
    assert targets["encoder.layer.0.attention.self.query.weight"] is query.base_layer.weight


def test_ticket_applies_to_lora_model_like_to_the_plain_one(config):
    torch.manual_seed(0)
    plain = BertForSequenceClassification(config)
    ticket = prune_ticket(TicketMask.dense(plain), plain, 0.6)
    wrapped = _lora(copy.deepcopy(plain))
    ticket.apply(plain)
    ticket.apply(wrapped)
    assert ticket.count_nonzero_pruned(wrapped) == 0
    merged = wrapped.merge_and_unload()  # LoRA B starts at zero: merging changes nothing
    for (n, p), (m, q) in zip(plain.named_parameters(), merged.named_parameters()):
        assert n == m and torch.equal(p, q)


def _args(tmp_path, **kw):
    base = dict(
        output_dir=str(tmp_path),
        per_device_train_batch_size=8,
        num_train_epochs=2,
        learning_rate=5e-3,
        report_to="none",
        save_strategy="no",
        logging_strategy="no",
        seed=0,
        data_seed=0,
        use_cpu=True,
        disable_tqdm=True,
        weight_decay=0.1,
    )
    base.update(kw)
    return TrainingArguments(**base)


@pytest.mark.parametrize("with_callback", [True, False])
def test_lora_training_keeps_pruned_base_weights_zero(config, tmp_path, with_callback):
    ticket, model = _setup(config)
    # besides the adapters, train one prunable base weight in full (not a LoRA target), so the
    # callback has to act through the PEFT wrapper for the ticket to hold
    key = unwrap_model(model).bert.encoder.layer[0].attention.self.key.weight
    key.requires_grad_(True)
    lora_b = dict(model.named_parameters())["base_model.model.bert.encoder.layer.0.attention.self.query.lora_B.default.weight"]
    key_before, b_before = key.detach().clone(), lora_b.detach().clone()
    callbacks = [TicketCallback(ticket)] if with_callback else []
    Trainer(model=fix_loss_scaling(model), args=_args(tmp_path), train_dataset=_data(), callbacks=callbacks).train()
    assert not torch.equal(lora_b, b_before)  # the adapters trained
    kept = ticket.masks["encoder.layer.0.attention.self.key.weight"]
    assert not torch.equal(key[kept], key_before[kept])  # so did the surviving weights of the full-trained tensor
    if with_callback:
        assert ticket.count_nonzero_pruned(model) == 0
    else:  # control: without the callback the ticket does not hold
        assert ticket.count_nonzero_pruned(model) > 0


def test_fix_loss_scaling_reaches_the_wrapped_model(config):
    _, model = _setup(config)
    fix_loss_scaling(model)
    assert unwrap_model(model).accepts_loss_kwargs is False


def test_merge_keeps_sparsity_and_reports_metric(config):
    ticket, model = _setup(config, init=False)  # random A and B: a non-zero, dense update
    data = _data(64, seed=1)
    ids, labels = torch.tensor(data["input_ids"]), torch.tensor(data["labels"])

    def evaluate(m):
        m.eval()
        with torch.no_grad():
            logits = m(input_ids=ids).logits
        return {"accuracy": float((logits.argmax(-1) == labels).float().mean()), "logit_sum": float(logits.double().sum())}

    reference = copy.deepcopy(model).merge_and_unload()  # plain merge: pruned positions filled
    assert ticket.count_nonzero_pruned(reference) > 0
    expected_before = evaluate(model)
    report = merge_with_ticket(model, ticket, evaluate)
    merged = report.model
    assert type(merged) is BertForSequenceClassification
    assert ticket.count_nonzero_pruned(merged) == 0 and report.sparsity == ticket.sparsity
    assert report.metric_before == expected_before
    assert report.metric_after == evaluate(merged)
    assert report.metric_after["logit_sum"] != report.metric_before["logit_sum"]  # re-masking changed the function
    assert report.removed_nonzero == ticket.count_nonzero_pruned(reference) and 0 < report.removed_norm < report.update_norm
    # = merging only the surviving positions: kept weights equal the plain merge's, bit for bit
    merged_params, ref_params = dict(merged.bert.named_parameters()), dict(reference.bert.named_parameters())
    for name, mask in ticket.masks.items():
        assert torch.equal(merged_params[name][mask], ref_params[name][mask])
    assert "before" in report.summary() and "after" in report.summary()


def test_applying_to_a_merged_adapter_is_refused(config):
    ticket, model = _setup(config, init=False)
    model.merge_adapter()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    with pytest.raises(ValueError, match="merged"):
        ticket.apply(model)
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters())


def test_a_ticket_cannot_be_registered_as_a_peft_method():
    """Why ``PeftModel.from_pretrained(base, ticket_repo)`` is not offered (README, "PEFT"):
    peft only registers methods named in its closed ``PeftType`` enum."""
    from peft.utils.peft_types import PeftType, register_peft_method

    assert "BERT_TICKET" not in {t.name for t in PeftType}
    with pytest.raises(ValueError, match="PeftType"):
        register_peft_method(name="bert_ticket", config_cls=object, model_cls=object)
