"""A ticket found on any task applies to every other task's model (Chen et al. 2020, Section 5):
all 11 x 11 (source task, target task) pairs on tiny configs. Mask keys are backbone-relative;
the pooler entry of a sequence-classification ticket is skipped on the QA / MLM models (built
without a pooler), and a QA / MLM ticket (no pooler entry) leaves a classifier's pooler alone."""

from __future__ import annotations

import copy

import pytest
import torch

from bert_tickets.pruning import prune_ticket, target_count
from bert_tickets.tasks import get_kind, get_task, list_tasks
from bert_tickets.ticket import TicketMask, get_backbone

from conftest import TINY_PRUNABLE, tiny_config

TASKS = list_tasks()
POOLER = "pooler.dense.weight"
NO_POOLER = {"squad", "mlm"}


@pytest.fixture(scope="module")
def models():
    out = {}
    for i, name in enumerate(TASKS):
        spec = get_task(name)
        kind = get_kind(spec.kind)
        torch.manual_seed(i)
        out[name] = kind.model_class(spec).from_config(tiny_config(**kind.model_kwargs(spec)))
    return out


@pytest.fixture(scope="module")
def tickets(models):
    out = {}
    for name, model in models.items():
        dense = TicketMask.dense(model)
        out[name] = (dense, prune_ticket(dense, model, 0.5))
    return out


def test_eleven_tasks_and_their_heads(models):
    assert len(TASKS) == 11
    for name, model in models.items():
        has_pooler = getattr(get_backbone(model), "pooler", None) is not None
        assert has_pooler == (name not in NO_POOLER), name
    assert models["mnli"].config.num_labels == 3 and models["stsb"].config.num_labels == 1
    assert type(models["squad"]).__name__ == "BertForQuestionAnswering"
    assert type(models["mlm"]).__name__ == "BertForMaskedLM"


@pytest.mark.parametrize("source", TASKS)
def test_mask_from_source_applies_to_every_target(source, models, tickets):
    dense, ticket = tickets[source]
    n_prunable = TINY_PRUNABLE - (32 * 32 if source in NO_POOLER else 0)
    assert dense.num_prunable == ticket.num_prunable == n_prunable
    assert ticket.num_pruned == target_count(0.5, n_prunable)
    assert (POOLER in ticket.masks) == (source not in NO_POOLER)
    for target in TASKS:
        model = copy.deepcopy(models[target])
        backbone = get_backbone(model)
        params = dict(backbone.named_parameters())
        before = {n: p.detach().clone() for n, p in params.items()}
        head_before = {n: p.detach().clone() for n, p in model.named_parameters() if not n.startswith(model.base_model_prefix + ".")}

        dense.apply(model)  # the dense mask changes nothing
        assert all(torch.equal(params[n], before[n]) for n in params)

        ticket.apply(model)
        skipped = [k for k in ticket.masks if k not in params]
        assert skipped == ([POOLER] if source not in NO_POOLER and target in NO_POOLER else []), (source, target)
        applied = 0
        for key, mask in ticket.masks.items():
            if key in skipped:
                continue
            w = params[key].detach()
            assert torch.all(w[~mask] == 0), (source, target, key)  # exact zeros
            assert torch.equal(w[mask], before[key][mask])  # kept weights untouched
            applied += int((~mask).sum())
        expected = ticket.num_pruned - (int((~ticket.masks[POOLER]).sum()) if skipped else 0)
        assert applied == expected, (source, target)
        # nothing outside the ticket changed: every other backbone tensor and the head
        zeros = sum(int((params[n].detach() == 0).sum()) - int((before[n] == 0).sum()) for n in params)
        assert zeros == expected
        assert all(torch.equal(params[n], before[n]) for n in params if n not in ticket.masks)
        assert all(torch.equal(p, head_before[n]) for n, p in model.named_parameters() if n in head_before)
        assert ticket.count_nonzero_pruned(model) == 0
