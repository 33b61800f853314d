"""Contract of the training objectives (``bert_tickets.training.objectives``): a toy objective
registered from this file alone is the loss the Trainer logs and the one that moves the weights;
a common table runs over every registered objective; ``standard`` gives the numbers of the
Trainer ``finetune`` built before the seam (tensor-equal weights); ``adversarial`` computes
Goodfellow et al.'s FGSM mixture on the word embeddings."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
import torch
from transformers import Trainer

from bert_tickets.training.finetune import ObjectiveTrainer, finetune
from bert_tickets.training.objectives import OBJECTIVES, TrainingObjective, get_objective, register_objective
from bert_tickets.training.objectives.adversarial import perturbation

from seam_assets import dense, losses, old_way_train, same_weights, steps, tiny


@pytest.fixture(scope="module")
def t(tmp_path_factory):
    return tiny(tmp_path_factory.mktemp("seam_objectives"))


# ------------------------------------------------------------------ a toy objective, from this file alone
@dataclass
class Scale:
    scale: float = field(default=1.0, metadata={"help": "factor on the model's own loss"})

    def __post_init__(self):
        if self.scale < 0:
            raise ValueError(f"toy objective: scale must be >= 0, got {self.scale}")


class ScaledLoss(TrainingObjective):
    name = "toy_scaled"
    summary = "the model's loss times a factor (test only)"
    Options = Scale
    returned: list[float] = []

    def loss(self, model, inputs, options, base_loss):
        loss, outputs = base_loss(model, inputs)
        loss = options.scale * loss
        ScaledLoss.returned.append(loss.item())
        return loss, outputs


@pytest.fixture
def toy():
    register_objective(ScaledLoss)
    ScaledLoss.returned.clear()
    yield ScaledLoss
    OBJECTIVES.unregister(ScaledLoss.name)


def test_toy_objective_is_the_logged_loss(t, toy, tmp_path):
    model = t.model(0)
    out = finetune(
        model,
        dense(model),
        t.task,
        t.data,
        t.args(),
        seed=3,
        output_dir=str(tmp_path / "o"),
        objective="toy_scaled",
        objective_options={"scale": "2.5"},
    )
    assert out.global_step == steps(len(t.data.train), 1) == len(toy.returned)  # training batches only, not evaluation
    assert losses(out.log_history) == toy.returned
    assert out.metrics["train_loss"] == pytest.approx(sum(toy.returned) / len(toy.returned), rel=1e-12)


def test_toy_objective_is_what_moves_the_weights(t, toy, tmp_path):
    model = t.model(0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    finetune(
        model,
        dense(model),
        t.task,
        t.data,
        t.args(weight_decay=0.0),
        seed=3,
        output_dir=str(tmp_path / "z"),
        objective="toy_scaled",
        objective_options={"scale": 0.0},
    )
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # a zero loss: zero gradients, no Adam step
    for given, message in (({"scale": -1}, "toy objective: scale must be >= 0"), ({"shift": 1}, "has no option 'shift'")):
        with pytest.raises(ValueError, match=message):
            finetune(
                model,
                dense(model),
                t.task,
                t.data,
                t.args(),
                seed=0,
                output_dir=str(tmp_path / "bad"),
                objective="toy_scaled",
                objective_options=given,
            )
    with pytest.raises(ValueError, match="unknown training objective 'nope'; choose one of"):
        finetune(model, dense(model), t.task, t.data, t.args(), seed=0, output_dir=str(tmp_path / "bad"), objective="nope")
    assert not (tmp_path / "bad").exists()


# ------------------------------------------------------------------ the common table
#: A valid, non-default option set of every built-in objective (a new objective adds its row here).
OPTIONS = {"standard": {}, "adversarial": {"epsilon": "0.05", "alpha": "0.3", "norm": "l2"}, "attention_labels": {"weight": "0.5"}}


@pytest.mark.parametrize("name", OBJECTIVES.names())
def test_common_table_over_every_registered_objective(t, tmp_path, name):
    assert name in OPTIONS, f"objective {name!r} has no row in the common table: add one"
    objective = get_objective(name)
    options = objective.options(OPTIONS[name])
    assert objective.options(objective.options_dict(options)) == options
    with pytest.raises(ValueError, match="has no option 'no_such_option'"):
        objective.options({"no_such_option": 1})
    model = t.model(0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    out = finetune(
        model,
        dense(model),
        t.task,
        t.data,
        t.args(),
        seed=0,
        output_dir=str(tmp_path / "o"),
        objective=name,
        objective_options=OPTIONS[name],
    )
    assert out.global_step == steps(len(t.data.train), 1) and len(losses(out.log_history)) == out.global_step
    assert all(torch.isfinite(torch.tensor(losses(out.log_history))))
    assert {"accuracy", "train_loss"} <= set(out.metrics)  # evaluated with the base loss
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items())
    # the objective's loss on one batch is a scalar with a graph to the weights
    batch = next(iter(_loader(t)))
    model.train()
    loss, _ = objective.loss(model, batch, options, lambda m, b: _own_loss(m, b))
    assert loss.dim() == 0 and loss.requires_grad


def _loader(t):
    from transformers import DataCollatorWithPadding

    rows = t.data.train.select(range(8)).remove_columns(
        [c for c in t.data.train.column_names if c not in ("input_ids", "attention_mask", "token_type_ids", "label")]
    )
    return torch.utils.data.DataLoader(rows, batch_size=8, collate_fn=DataCollatorWithPadding(t.tokenizer))


def _own_loss(model, batch):
    out = model(**batch)
    return out.loss, out


# ------------------------------------------------------------------ standard == before the seam
def test_standard_objective_gives_the_numbers_of_the_old_trainer(t, tmp_path):
    args = t.args(num_train_epochs=2)
    ref = t.model(7)
    old = old_way_train(t, ref, args, seed=7, output_dir=str(tmp_path / "old"))
    model = t.model(7)
    new = finetune(model, dense(model), t.task, t.data, args, seed=7, output_dir=str(tmp_path / "new"), tokenizer=t.tokenizer)
    assert same_weights(model, ref) == [] and losses(new.log_history) == losses(old.state.log_history)


def test_only_a_non_standard_objective_overrides_compute_loss(t, tmp_path, monkeypatch):
    import bert_tickets.training.finetune as ft

    seen = []
    real = ft._trainer
    monkeypatch.setattr(ft, "_trainer", lambda *a, **k: seen.append(real(*a, **k)) or seen[-1])
    for name in ("standard", "adversarial"):
        model = t.model(0)
        finetune(model, dense(model), t.task, t.data, t.args(max_steps=1), seed=0, output_dir=str(tmp_path / name), objective=name)
    assert type(seen[0]) is Trainer and type(seen[1]) is ObjectiveTrainer


# ------------------------------------------------------------------ adversarial
def test_adversarial_loss_is_the_fgsm_mixture(t):
    model = t.model(0)
    model.train()
    batch = next(iter(_loader(t)))
    objective = get_objective("adversarial")
    options = objective.options({"epsilon": 0.1, "alpha": 0.25})
    got, _ = objective.loss(model, batch, options, _own_loss)
    # reference (Goodfellow et al. 2015, Eq. 2, on the word embeddings): 0.25 L(e) + 0.75 L(e + 0.1 sign(dL/de))
    inputs = {k: v for k, v in batch.items() if k != "input_ids"}
    e = model.get_input_embeddings()(batch["input_ids"]).detach().requires_grad_(True)
    clean = model(**inputs, inputs_embeds=e).loss
    (g,) = torch.autograd.grad(clean, e)
    delta = 0.1 * (g * batch["attention_mask"].unsqueeze(-1)).sign()
    adv = model(**inputs, inputs_embeds=e.detach() + delta).loss
    torch.testing.assert_close(got, 0.25 * clean.detach() + 0.75 * adv.detach(), rtol=0, atol=1e-6)
    assert not torch.allclose(adv, clean)  # the perturbation raises the loss
    assert adv > clean


def test_adversarial_with_alpha_one_is_the_standard_training(t, tmp_path):
    ref = t.model(0)
    finetune(ref, dense(ref), t.task, t.data, t.args(), seed=1, output_dir=str(tmp_path / "s"))
    model = t.model(0)
    finetune(
        model,
        dense(model),
        t.task,
        t.data,
        t.args(),
        seed=1,
        output_dir=str(tmp_path / "a"),
        objective="adversarial",
        objective_options={"alpha": 1.0},
    )
    torch.testing.assert_close(dict(model.named_parameters()), dict(ref.named_parameters()), rtol=0, atol=1e-7)
    other = t.model(0)
    finetune(
        other,
        dense(other),
        t.task,
        t.data,
        t.args(),
        seed=1,
        output_dir=str(tmp_path / "b"),
        objective="adversarial",
        objective_options={"epsilon": 0.5},
    )
    assert same_weights(other, ref) != []


def test_perturbation_norms_and_padding():
    g = torch.randn(3, 5, 4)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]])
    d = perturbation(g, mask, 0.2, "sign")
    assert torch.equal(d.abs()[mask.bool()], torch.full((int(mask.sum()), 4), 0.2)) and torch.equal(
        d[~mask.bool()], torch.zeros(int((1 - mask).sum()), 4)
    )
    d2 = perturbation(g, mask, 0.2, "l2")
    torch.testing.assert_close(torch.linalg.vector_norm(d2.flatten(1), dim=1), torch.full((3,), 0.2))
    assert torch.equal(d2[~mask.bool()], torch.zeros(int((1 - mask).sum()), 4))
    for given, message in (
        ({"epsilon": 0}, "epsilon must be > 0"),
        ({"alpha": 2}, r"alpha must be in \[0, 1\]"),
        ({"norm": "linf"}, "norm 'linf'"),
    ):
        with pytest.raises(ValueError, match=message):
            get_objective("adversarial").options(given)


# ------------------------------------------------------------------ attention labels
def test_attention_label_loss_is_the_label_loss_plus_the_weighted_kl(t):
    from bert_tickets.training.objectives.attention_labels import attention_kl

    model = t.model(0)
    model.set_attn_implementation("eager")
    model.train()
    batch = next(iter(_loader(t)))
    n, length = batch["input_ids"].shape
    cfg = model.config
    labels = torch.softmax(torch.randn(n, cfg.num_hidden_layers, cfg.num_attention_heads, 1, length), dim=-1)
    objective = get_objective("attention_labels")
    got, _ = objective.loss(model, {**batch, "attention_labels": labels}, objective.options({"weight": 0.5}), _own_loss)
    out = model(**batch, output_attentions=True)
    att = torch.stack(out.attentions, dim=1)[..., :1, :]
    kl = (labels * (labels.log() - (att + 1e-12).log())).sum(-1).mean()
    torch.testing.assert_close(got, out.loss + 0.5 * kl, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(attention_kl(out.attentions, labels), kl, rtol=1e-5, atol=1e-6)
    # a batch without attention labels: the base loss alone
    plain, _ = objective.loss(model, batch, objective.options({"weight": 0.5}), _own_loss)
    torch.testing.assert_close(plain, out.loss)
    # sdpa attention returns no probabilities: a clear error
    model.set_attn_implementation("sdpa")
    with pytest.raises(ValueError, match="use eager attention"):
        objective.loss(model, {**batch, "attention_labels": labels}, objective.options({}), _own_loss)
