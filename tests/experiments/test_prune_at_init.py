"""``prune-at-init`` and the criterion / sanity rows of ``transfer`` on tiny inputs: the ticket
(exact count, criterion and cost in its metadata), the fine-tunes next to the sanity checks and
criterion rows, resume, the sanity options building the stated masks / weights, bad input."""

from __future__ import annotations

import json
import os

import pytest
import torch

from bert_tickets.cli import main
from bert_tickets.experiments import transfer as transfer_module
from bert_tickets.experiments.prune_at_init import sanity_verdicts
from bert_tickets.pruning import target_count
from bert_tickets.results.cells import build_matrix, format_matrix
from bert_tickets.tasks import get_task
from bert_tickets.ticket import TicketMask, local_checkpoint_revision
from bert_tickets.training.finetune import FinetuneResult
from bert_tickets.training.weights import load_theta0

from tiny_assets import IMP_TRAIN_ARGS, write_imp_inputs


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("pai")
    ckpt, glue = write_imp_inputs(root)
    return root, ckpt, glue


def _argv(inputs, out, *extra):
    _, ckpt, glue = inputs
    return ["--task", "rte", "--model", str(ckpt), "--data_dir", str(glue), "--output_dir", str(out), *IMP_TRAIN_ARGS, *extra]


def test_prune_at_init_ticket_finetunes_sanity_rows_and_resume(inputs, tmp_path, capsys):
    out = tmp_path / "pai"
    extra = ("--criterion", "snip", "--sparsity", "0.3", "--seeds", "1", "2", "--sanity", "layer_shuffle")
    extra += ("--baselines", "dense", "synflow", "gem_miner", "--score_iterations", "5", "--gem_steps", "3")
    assert main(["prune-at-init", *_argv(inputs, out, *extra)]) == 0
    report = capsys.readouterr().out
    ticket = TicketMask.from_pretrained(out / "ticket")
    assert ticket.num_pruned == target_count(0.3, ticket.num_prunable)
    assert ticket.metadata.pruning_method == "snip" and ticket.metadata.task == "rte"
    assert ticket.metadata.cost == {"train_steps": 0, "score_forward": 4, "score_backward": 4}  # snip's default 4 batches
    assert ticket.metadata.extra["prune_at_init"]["criterion"] == "snip"
    # (ticket + dense + synflow + gem_miner) x 2 seeds, + layer_shuffle of ticket, synflow, gem_miner x 2 seeds
    results = json.loads((out / "finetune" / "results.json").read_text())
    assert len(results) == 14
    labels = {r["label"] for r in results}
    assert labels == {"rte", "dense", "synflow", "gem_miner", "rte (layer_shuffle)", "synflow (layer_shuffle)", "gem_miner (layer_shuffle)"}
    by_label = {}
    for r in results:
        by_label.setdefault(r["label"], []).append(r)
    assert all(r["mask_score_forward"] == 5 for r in by_label["synflow"])  # the criterion rows carry their cost
    assert all(r["mask_train_steps"] == 3 for r in by_label["gem_miner"])
    assert "mask_train_steps" not in by_label["dense"][0]
    md = (out / "finetune" / "matrix.md").read_text()
    assert "mask cost |" in md and "| synflow | " in md
    assert "its layer_shuffle check" in report and (out / "report.md").is_file()
    # resume: nothing is found or trained again
    kept = [*(out / "ticket").iterdir(), *(out / "finetune").glob("cells/*/result.json")]
    stamps = {p: p.stat().st_mtime_ns for p in kept}
    capsys.readouterr()
    assert main(["prune-at-init", *_argv(inputs, out, *extra)]) == 0
    assert "14 cells, 0 to run" in capsys.readouterr().err
    assert len(stamps) == 16 and all(p.stat().st_mtime_ns == t for p, t in stamps.items())
    # other mask arguments in the same directory: refused, one line, nothing changed
    assert main(["prune-at-init", *_argv(inputs, out, "--criterion", "snip", "--sparsity", "0.4")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "holds a ticket found with other arguments (changed: sparsity)" in err
    assert TicketMask.from_pretrained(out / "ticket").num_pruned == ticket.num_pruned


def test_no_finetune_stops_at_the_mask(inputs, tmp_path, capsys):
    out = tmp_path / "mask_only"
    assert main(["prune-at-init", *_argv(inputs, out, "--criterion", "synflow", "--sparsity", "0.5", "--no_finetune")]) == 0
    ticket = TicketMask.from_pretrained(out / "ticket")
    assert ticket.metadata.pruning_method == "synflow" and ticket.num_pruned == target_count(0.5, ticket.num_prunable)
    assert ticket.metadata.cost["score_forward"] == 100
    assert not (out / "finetune").exists()
    assert "synflow ticket at sparsity 0.5000" in capsys.readouterr().out
    # θ0 recorded as find records it: the resolved directory and the sha256 of its weights, so
    # the ticket's base model is found from any working directory
    _, ckpt, _ = inputs
    assert ticket.metadata.base_model == os.path.realpath(ckpt)
    assert ticket.metadata.base_model_revision == local_checkpoint_revision(str(ckpt))
    assert ticket.metadata.base_model_revision.startswith("sha256:")


def test_a_mask_that_empties_a_tensor_warns_of_layer_collapse(inputs, tmp_path, capsys):
    """One warning line naming exactly the prunable tensors the mask empties (and none when it
    empties none), for a mask found now and for one reused."""
    out = tmp_path / "collapse"
    argv = ["prune-at-init", *_argv(inputs, out, "--criterion", "magnitude", "--sparsity", "0.9999", "--no_finetune")]
    assert main(argv) == 0
    ticket = TicketMask.from_pretrained(out / "ticket")
    emptied = [n for n, s in ticket.per_tensor_sparsity().items() if s == 1.0]
    assert "pooler.dense.weight" in emptied and len(emptied) < len(ticket.masks)
    warned = [line for line in capsys.readouterr().err.splitlines() if "layer collapse" in line]
    assert len(warned) == 1
    assert f"prunes every weight of {len(emptied)} prunable tensor(s): {', '.join(emptied)};" in warned[0]
    assert "--exclude" in warned[0] and "--max_tensor_sparsity" in warned[0]
    assert main(argv) == 0  # reused: still said
    assert sum("layer collapse" in line for line in capsys.readouterr().err.splitlines()) == 1
    # a mask that empties no tensor: no warning
    assert main(["prune-at-init", *_argv(inputs, tmp_path / "fine", "--criterion", "magnitude", "--sparsity", "0.5", "--no_finetune")]) == 0
    assert "layer collapse" not in capsys.readouterr().err
    assert all(s < 1.0 for s in TicketMask.from_pretrained(tmp_path / "fine" / "ticket").per_tensor_sparsity().values())


@pytest.mark.parametrize(
    "extra, message",
    [
        (("--criterion", "nope"), "--criterion 'nope': choose one of gem_miner, importance, magnitude, random, snip, synflow"),
        (("--sparsity", "0"), "--sparsity must be a fraction in (0, 1), got 0.0"),
        (("--sanity", "flip"), "unknown sanity check 'flip'; choose from layer_shuffle, reinit"),
        (("--score_iterations", "0"), "--score_iterations must be >= 1, got 0"),
        (("--criterion", "gem_miner", "--gem_score_init", "0.2"), "--gem_score_init must be in (0.5, 1], got 0.2"),
        (("--gem_score_init", "0.9"), "--criterion_options gem_score_init: no criterion used here (synflow) has this option"),
        (("--criterion_options", "synflow.iters=3"), "criterion synflow has no option 'iters' (its options: score_iterations, residual)"),
        (("--baselines", "nope"), "unknown baseline 'nope'"),
        (("--seeds", "-1"), "--seeds must be distinct integers >= 0, got -1"),
        (("--seeds", "1", "1"), "--seeds must be distinct integers >= 0, got 1 1"),
    ],
)
def test_bad_input_is_one_line_before_any_work(inputs, tmp_path, capsys, extra, message):
    out = tmp_path / "bad"
    assert main(["prune-at-init", *_argv(inputs, out, *extra)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err
    assert not (out / "ticket").exists()


def test_layer_shuffle_keeps_per_tensor_counts_and_moves_the_weights(inputs):
    _, ckpt, _ = inputs
    model = load_theta0(get_task("rte"), str(ckpt), seed=0)
    from bert_tickets.pruning import prune_ticket

    ticket = prune_ticket(TicketMask.dense(model), model, 0.6, "magnitude")
    a, b, c = ticket.layer_shuffled(1), ticket.layer_shuffled(1), ticket.layer_shuffled(2)
    for n, m in ticket.masks.items():
        assert int(a.masks[n].sum()) == int(m.sum())  # the same per-tensor sparsity
        assert torch.equal(a.masks[n], b.masks[n])  # seeded
    assert any(not torch.equal(a.masks[n], ticket.masks[n]) for n in ticket.masks)
    assert any(not torch.equal(a.masks[n], c.masks[n]) for n in ticket.masks)
    assert a.metadata.sanity == {"kind": "layer_shuffle", "seed": 1}


def test_sanity_cells_train_the_stated_mask_and_weights(inputs, tmp_path, monkeypatch):
    """Every cell's (mask, weights) as handed to finetune: layer_shuffle = the row's mask permuted
    by the cell's seed on θ0; reinit = the row's mask on re-initialised weights."""
    root, ckpt, glue = inputs
    out = tmp_path / "pai"
    assert main(["prune-at-init", *_argv(inputs, out, "--criterion", "magnitude", "--sparsity", "0.4", "--no_finetune")]) == 0
    seen = {}

    def fake_finetune(model, ticket, task, data, training_args, *, seed, output_dir, tokenizer=None, **kw):
        seen[output_dir] = (ticket, {n: p.detach().clone() for n, p in model.bert.named_parameters()})
        return FinetuneResult({"accuracy": 0.5, "nonzero_pruned_weights": 0}, model)

    monkeypatch.setattr(transfer_module, "finetune", fake_finetune)
    argv = [
        "--tickets",
        str(out / "ticket"),
        "--tasks",
        "rte",
        "--seeds",
        "3",
        "--baselines",
        "dense",
        "--sanity",
        "layer_shuffle",
        "reinit",
    ]
    argv += ["--model", str(ckpt), "--data_dir", str(glue), "--output_dir", str(tmp_path / "m"), *IMP_TRAIN_ARGS]
    assert main(["transfer", *argv]) == 0
    cells = {
        json.loads((p.parent / "cell.json").read_text())["spec"]["label"]: p.parent for p in (tmp_path / "m").glob("cells/*/result.json")
    }
    assert set(cells) == {"rte", "dense", "rte (layer_shuffle)", "rte (reinit)"}
    own = TicketMask.from_pretrained(out / "ticket")
    theta0 = {n: p.detach() for n, p in load_theta0(get_task("rte"), str(ckpt), seed=3).bert.named_parameters()}
    ticket, weights = seen[str(cells["rte (layer_shuffle)"] / "trainer")]
    assert all(torch.equal(ticket.masks[n], own.layer_shuffled(3).masks[n]) for n in own.masks)
    assert all(torch.equal(weights[n], theta0[n]) for n in theta0)
    ticket, weights = seen[str(cells["rte (reinit)"] / "trainer")]
    assert all(torch.equal(ticket.masks[n], own.masks[n]) for n in own.masks)
    assert any(not torch.equal(weights[n], theta0[n]) for n in own.masks)
    ticket, weights = seen[str(cells["rte"] / "trainer")]
    assert all(torch.equal(ticket.masks[n], own.masks[n]) for n in own.masks) and all(torch.equal(weights[n], theta0[n]) for n in theta0)


def test_sanity_verdicts_on_known_numbers():
    from bert_tickets.results.cells import CellResult, CellSpec

    def cell(label, seed, value, row="ticket", sanity=None):
        return CellResult(CellSpec(row, label, "", "rte", "rte", 0.5, seed, sanity), f"{label}{seed}", "accuracy", value)

    results = [
        cell("dense", 1, 0.80, "dense"),
        cell("dense", 2, 0.82, "dense"),
        cell("rte", 1, 0.78),
        cell("rte", 2, 0.80),
        cell("rte (layer_shuffle)", 1, 0.70, sanity="layer_shuffle"),
        cell("rte (layer_shuffle)", 2, 0.72, sanity="layer_shuffle"),
        cell("rte (reinit)", 1, 0.77, sanity="reinit"),
        cell("rte (reinit)", 2, 0.80, sanity="reinit"),
    ]
    matrix = build_matrix(results, 0.01)
    assert matrix["own"] == {"rte": "rte"}  # the own row is the ticket itself, not one of its sanity checks
    verdicts = {v["check"]: v for v in sanity_verdicts(matrix, "rte", 0.01)}
    # mask 0.79 vs shuffled 0.71 (std 0.01414): beats; vs reinit 0.785 (std 0.02121): does not
    assert verdicts["layer_shuffle"]["beats"] is True and verdicts["layer_shuffle"]["mean"] == pytest.approx(0.79)
    assert verdicts["reinit"]["beats"] is False and verdicts["reinit"]["margin"] == pytest.approx(0.0212132, abs=1e-6)
    md = format_matrix(matrix)
    assert "≥own" not in md.split("| rte (layer_shuffle)")[1].split("\n")[0]  # a sanity row is not a transferred ticket


def test_the_sanity_field_keeps_old_cell_ids():
    """A cell id is the sha256 of the spec and context; a spec without a sanity check must hash
    exactly as specs did before the field existed (so older matrix directories still resume)."""
    import hashlib
    from dataclasses import asdict

    from bert_tickets.results.cells import CellSpec

    spec = CellSpec("ticket", "rte", "runs/rte", "rte", "mrpc", 0.5, 1)
    context = {"base_model": "m", "mask": "abc"}
    old_fields = {k: v for k, v in asdict(spec).items() if k != "sanity"}
    before = hashlib.sha256(json.dumps({"spec": old_fields, "context": context}, sort_keys=True, default=str).encode()).hexdigest()[:12]
    assert spec.cell_id(context) == before
    shuffled = CellSpec("ticket", "rte (layer_shuffle)", "runs/rte", "rte", "mrpc", 0.5, 1, "layer_shuffle")
    assert shuffled.cell_id(context) != before


def test_the_selection_scope_and_cap_reach_the_mask(inputs, tmp_path):
    """--pruning_scope and --max_tensor_sparsity select the mask (they were recorded in the
    ticket's spec but not passed to the selection): layer-wise, every tensor is pruned to the
    target (its exact count); globally with a cap, no tensor exceeds it."""
    layer = tmp_path / "layerwise"
    argv = ["--criterion", "magnitude", "--sparsity", "0.5", "--no_finetune"]
    assert main(["prune-at-init", *_argv(inputs, layer, *argv, "--pruning_scope", "layerwise")]) == 0
    ticket = TicketMask.from_pretrained(layer / "ticket")
    assert ticket.metadata.pruning_scope == "layerwise"
    for name, m in ticket.masks.items():
        assert int((~m).sum()) == target_count(0.5, m.numel()), name
    capped = tmp_path / "capped"
    assert main(["prune-at-init", *_argv(inputs, capped, *argv, "--max_tensor_sparsity", "0.51")]) == 0
    ticket = TicketMask.from_pretrained(capped / "ticket")
    assert max(ticket.per_tensor_sparsity().values()) <= 0.51 + 1e-9 and ticket.metadata.max_tensor_sparsity == 0.51
    plain = tmp_path / "plain"
    assert main(["prune-at-init", *_argv(inputs, plain, *argv)]) == 0
    assert max(TicketMask.from_pretrained(plain / "ticket").per_tensor_sparsity().values()) > 0.51  # the cap binds
