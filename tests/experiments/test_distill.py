"""`bert-tickets distill` (issue 21, item 2) on a tiny BERT: the distillation loss falls, the set
round-trips through the embeddings source, a killed run resumes to the same set, regression and
bad values are refused before any work."""

from __future__ import annotations

import json

import pytest
import torch

from bert_tickets.cli import main
from bert_tickets.experiments.distill import DistillArguments, Distiller, attention_kl, fresh_head, initial_set, real_batches
from bert_tickets.tasks import get_kind, get_task
from bert_tickets.training.sources.embeddings import read_embeddings
from bert_tickets.training.weights import load_theta0

from tiny_assets import write_imp_inputs


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    return write_imp_inputs(tmp_path_factory.mktemp("inputs"))


def distill(inputs, out, *extra):
    ckpt, glue = inputs
    argv = ["distill", "--task", "rte", "--model", str(ckpt), "--data_dir", str(glue), "--output_dir", str(out)]
    return main([*argv, "--per_class", "2", "--seq_length", "8", "--real_batch_size", "8", *extra])


def _setup(inputs):
    from transformers import AutoTokenizer

    ckpt, glue = inputs
    task = get_task("rte")
    tok = AutoTokenizer.from_pretrained(ckpt)
    data = get_kind("glue").prepare(task, tok, str(glue), None, 16, None, None)
    model = load_theta0(task, str(ckpt), 0)
    model.set_attn_implementation("eager")
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return task, tok, data, model


def test_the_distillation_loss_falls_on_a_fixed_batch_and_head(inputs):
    task, tok, data, model = _setup(inputs)
    args = DistillArguments(output_dir="x", per_class=2, steps=2, seq_length=8, distill_learning_rate=5e-2, lr_init=0.1, outer_steps=100)
    gen = torch.Generator().manual_seed(0)
    init = initial_set(task, model, 2, 8, gen)
    assert init["inputs_embeds"].shape == (4, 8, model.config.hidden_size) and init["labels"].tolist() == [0, 0, 1, 1]
    d = Distiller(model, init, args, gen)
    # their parametrisation: η = softplus(raw), starting at lr_init; [CLS]-row attention labels for every layer and head
    assert d.learning_rates().tolist() == pytest.approx([0.1, 0.1])
    assert d.attention_labels().shape == (4, model.config.num_hidden_layers, model.config.num_attention_heads, 1, 8)
    batch = next(real_batches(data, tok, 16, 0))
    head = fresh_head(model, d.head, torch.Generator().manual_seed(1))
    before = float(d.outer_loss(batch, head))
    embeds0 = d.embeds.detach().clone()
    for _ in range(8):
        loss = d.outer_loss(batch, head)
        learnable = [t for t in d.tensors().values() if t.requires_grad]
        for p, g in zip(learnable, torch.autograd.grad(loss, learnable), strict=True):
            p.grad = g
        d.optimizer.step()
    after = float(d.outer_loss(batch, head))
    assert after < before and not torch.equal(d.embeds.detach(), embeds0)
    # hard labels stay one-hot and are not learned
    hard = Distiller(model, init, DistillArguments(output_dir="x", per_class=2, seq_length=8, label_type="hard"), gen)
    assert not hard.label_logits.requires_grad and hard.labels().tolist() == [[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]]


def test_attention_kl_is_zero_for_equal_distributions_and_matches_a_hand_computation():
    att = torch.softmax(torch.randn(2, 3, 4, 4), dim=-1)
    labels = att[:, None, :, :1, :].clone()  # (n, layers=1, heads, rows=1, L): the [CLS] rows
    assert float(attention_kl((att,), labels)) == pytest.approx(0.0, abs=1e-6)
    other = torch.softmax(torch.randn(2, 1, 3, 1, 4), dim=-1)
    expected = (other * (other.log() - att[:, None, :, :1, :].log())).sum(-1).mean()
    assert float(attention_kl((att,), other)) == pytest.approx(float(expected), rel=1e-5)


def test_distill_writes_a_set_the_embeddings_source_reads_and_resumes(inputs, tmp_path, capsys, monkeypatch):
    from transformers import AutoTokenizer, TrainingArguments

    from bert_tickets.ticket import TicketMask
    from bert_tickets.training.finetune import finetune

    out = tmp_path / "d"
    assert distill(inputs, out, "--outer_steps", "4", "--save_every", "2", "--steps", "2", "--eval_models", "2") == 0
    card = json.loads((out / "distilled.json").read_text())
    assert card["finished"] and card["inner_steps"] == 2 and len(card["learning_rates"]) == 2 and len(card["loss_history"]) == 4
    evaluation = card["evaluation"]
    assert evaluation["models"] == 2 and len(evaluation["scores"]) == 2 and all(0.0 <= v <= 1.0 for v in evaluation["scores"])
    assert card["examples"] == 4 and sorted(card["classes"]) == [0, 0, 1, 1]
    task = get_task("rte")
    t = read_embeddings(out / "distilled.safetensors", task)
    assert t["inputs_embeds"].shape == (4, 8, 32) and t["labels"].shape == (4, 2) and t["attention_labels"].shape == (4, 2, 4, 1, 8)
    assert torch.allclose(t["labels"].sum(1), torch.ones(4)) and t["learning_rates"].tolist() == pytest.approx(card["learning_rates"])
    # the set trains a model through the embeddings source
    ckpt, glue = inputs
    tok = AutoTokenizer.from_pretrained(ckpt)
    data = get_kind("glue").prepare(task, tok, str(glue), None, 16, None, None)
    model = load_theta0(task, str(ckpt), 0)
    args = TrainingArguments(output_dir=str(tmp_path / "ft"), max_steps=2, per_device_train_batch_size=4, use_cpu=True, report_to=[])
    result = finetune(
        model,
        TicketMask.dense(model),
        task,
        data,
        args,
        seed=0,
        output_dir=str(tmp_path / "ft"),
        source="embeddings",
        source_options={"path": str(out / "distilled.safetensors")},
    )
    assert result.global_step == 2
    # a run killed during outer step 3 (after the step-2 checkpoint) resumes to the same set
    killed = tmp_path / "k"
    real_step = Distiller.train_step

    def crash_at_3(self, batch, generator):
        if self.step == 2:
            raise RuntimeError("killed")
        return real_step(self, batch, generator)

    monkeypatch.setattr(Distiller, "train_step", crash_at_3)
    with pytest.raises(RuntimeError, match="killed"):
        distill(inputs, killed, "--outer_steps", "4", "--save_every", "2", "--steps", "2", "--eval_models", "2")
    monkeypatch.setattr(Distiller, "train_step", real_step)
    assert not (killed / "distilled.safetensors").exists() and torch.load(killed / "checkpoint.pt", weights_only=False)["step"] == 2
    # resumed with --use_cpu: the device is not a hyperparameter of the set
    assert (
        distill(inputs, killed, "--outer_steps", "4", "--save_every", "2", "--steps", "2", "--eval_models", "2", "--use_cpu", "true") == 0
    )
    assert "resuming from" in capsys.readouterr().err
    again = read_embeddings(killed / "distilled.safetensors", task)
    assert torch.equal(again["inputs_embeds"], t["inputs_embeds"]) and torch.equal(again["labels"], t["labels"])
    assert torch.equal(again["learning_rates"], t["learning_rates"])
    # a finished set is read back, not redone; other hyperparameters are refused
    assert distill(inputs, out, "--outer_steps", "4", "--save_every", "2", "--steps", "2", "--eval_models", "2") == 0
    assert "already complete" in capsys.readouterr().err
    assert distill(inputs, out, "--outer_steps", "5") == 2
    assert "other hyperparameters" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--task", "stsb"], "stsb is a regression task"),
        (["--per_class", "0"], "--per_class must be >= 1"),
        (["--steps", "0"], "--steps must be >= 1"),
        (["--lr_init", "0"], "--lr_init must be > 0"),
        (["--label_type", "unrestricted"], "choose soft or hard"),
        (["--seq_length", "600"], "exceeds the model's"),
    ],
)
def test_bad_input_is_refused_before_any_work(inputs, tmp_path, capsys, extra, message):
    out = tmp_path / "bad"
    assert distill(inputs, out, *extra) == 2
    assert message in capsys.readouterr().err
    assert not (out / "distilled.safetensors").exists() and not (out / "checkpoint.pt").exists()


def test_no_attention_loss_trains_without_attention_labels(inputs, tmp_path):
    out = tmp_path / "w0"
    assert distill(inputs, out, "--outer_steps", "2", "--attention_loss_weight", "0", "--eval_models", "0") == 0
    t = read_embeddings(out / "distilled.safetensors", get_task("rte"))
    assert float(t["attention_loss_weight"]) == 0.0
