"""`find --mask_data` (issue 21, item 3) on a tiny BERT: each level's mask is searched on a
synthetic set (or the random real control of its size), and every level is judged on the real
training set — checked by intercepting every fine-tune's training data."""

from __future__ import annotations

import json

import pytest
import torch

import bert_tickets.experiments.imp as imp_module
import bert_tickets.experiments.mask_data as mask_module
from bert_tickets.cli import main
from bert_tickets.pruning import prune_ticket, target_count
from bert_tickets.ticket import TicketMask

from conftest import TINY_PRUNABLE
from tiny_assets import IMP_TRAIN_ARGS, write_imp_inputs

SYNTHETIC = [
    {"sentence1": "the cat sat on a mat", "sentence2": "the cat sat", "labels": 0},
    {"sentence1": "a big dog ran fast", "sentence2": "dog ran", "labels": 1},
    {"sentence1": "the small cat is home", "sentence2": "cat is home", "labels": 0},
    {"sentence1": "a red dog was slow", "sentence2": "the dog", "labels": "not_entailment"},
    {"sentence1": "blue mat is not big", "sentence2": "the mat", "labels": 1},
]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("inputs")
    ckpt, glue = write_imp_inputs(root)
    synthetic = root / "synthetic.jsonl"
    synthetic.write_text("\n".join(json.dumps(r) for r in SYNTHETIC) + "\n")
    return ckpt, glue, synthetic


def find(inputs, out, *extra):
    ckpt, glue, _ = inputs
    argv = ["find", "--task", "rte", "--model", str(ckpt), "--data_dir", str(glue), "--output_dir", str(out), *IMP_TRAIN_ARGS]
    return main([*argv, "--num_train_epochs", "2", *extra])


@pytest.fixture
def calls(monkeypatch):
    """Every fine-tune of the run: where it trained, on which source, and the trained weights."""
    seen = []
    real = imp_module.finetune

    def spy(model, ticket, task, data, args, **kw):
        result = real(model, ticket, task, data, args, **kw)
        state = {n: t.detach().clone() for n, t in result.model.state_dict().items()}
        seen.append(
            {
                "source": kw.get("source", "task"),
                "out": kw["output_dir"],
                "draws": kw.get("draws_with_replacement"),
                "objective": (kw.get("objective", "standard"), kw.get("objective_options")),
                "state": state,
            }
        )
        return result

    monkeypatch.setattr(imp_module, "finetune", spy)
    monkeypatch.setattr(mask_module, "finetune", spy)
    return seen


def test_masks_are_searched_on_the_synthetic_set_and_levels_judged_on_real_data(inputs, tmp_path, calls):
    out = tmp_path / "run"
    steps, batch = ["--mask_data_steps", "3"], ["--mask_data_batch_size", "4"]
    assert find(inputs, out, "--max_levels", "2", "--mask_data", str(inputs[2]), *steps, *batch) == 0
    searches = [c for c in calls if c["source"] != "task"]
    judged = [c for c in calls if c["source"] == "task"]
    # every level is judged on the real training split (32 examples, batch 8: 4 steps an epoch, 2 epochs)
    assert [c["out"].rsplit("/", 2)[-2:] for c in judged] == [["level_00", "seed_42"], ["level_01", "seed_42"], ["level_02", "seed_42"]]
    for lv in range(3):
        log = json.loads((out / f"level_{lv:02d}" / "seed_42" / "log_history.json").read_text())
        assert log[-1]["step"] == 8
    # one search per level that gives a mask (none past the schedule's end) on the examples
    # source: 3 steps of 4 examples drawn with replacement
    assert [c["out"].rsplit("/", 2)[-2:] for c in searches] == [[f"level_{lv:02d}", "mask_search"] for lv in range(2)]
    assert all(c["source"] == "examples" and c["draws"] == 12 for c in searches)
    assert not (out / "level_02" / "mask_search.json").exists() and not (out / "level_03").exists()
    for lv in range(2):
        record = json.loads((out / f"level_{lv:02d}" / "mask_search.json").read_text())
        assert record["steps"] == 3 and record["examples"] == 12 and record["source"] == "examples"
        assert record["options"]["path"] == str(inputs[2].resolve())
        # the next mask is magnitude pruning of the *search's* weights, not of the judged ones
        ticket = TicketMask.from_pretrained(out / f"level_{lv:02d}" / "ticket")
        nxt = TicketMask.from_pretrained(out / f"level_{lv + 1:02d}" / "ticket")
        assert nxt.num_pruned == target_count(0.1 * (lv + 1), TINY_PRUNABLE)
        model = imp_module.load_theta0(imp_module.get_task("rte"), str(inputs[0]), 42)
        model.load_state_dict(searches[lv]["state"])
        expected = prune_ticket(ticket, model, 0.1 * (lv + 1))
        assert all(torch.equal(expected.masks[n], nxt.masks[n]) for n in nxt.masks)
        model.load_state_dict(judged[lv]["state"])
        from_judged = prune_ticket(ticket, model, 0.1 * (lv + 1))
        assert any(not torch.equal(from_judged.masks[n], nxt.masks[n]) for n in nxt.masks)
        assert nxt.metadata.cost["train_steps"] == 3 * (lv + 1)  # the searches of its lineage
    summary = json.loads((out / "summary.json").read_text())
    cost = summary["mask_data"]["cost"]
    assert cost == {"search_steps": 6, "search_examples": 24, "judging_steps": 24, "judging_examples": 192}
    # extended by a level: the search for it runs now, from level 2's ticket alone
    calls.clear()
    assert find(inputs, out, "--max_levels", "3", "--mask_data", str(inputs[2]), *steps, *batch) == 0
    assert [c["out"].rsplit("/", 2)[-2:] for c in calls] == [["level_02", "mask_search"], ["level_03", "seed_42"]]
    ticket = TicketMask.from_pretrained(out / "level_02" / "ticket")
    model = imp_module.load_theta0(imp_module.get_task("rte"), str(inputs[0]), 42)
    model.load_state_dict(calls[0]["state"])
    expected = prune_ticket(ticket, model, 0.3)
    nxt = TicketMask.from_pretrained(out / "level_03" / "ticket")
    assert all(torch.equal(expected.masks[n], nxt.masks[n]) for n in nxt.masks) and nxt.metadata.cost["train_steps"] == 9
    cost = json.loads((out / "summary.json").read_text())["mask_data"]["cost"]
    assert cost == {"search_steps": 9, "search_examples": 36, "judging_steps": 32, "judging_examples": 256}


def test_the_random_control_has_the_synthetic_set_size(inputs, tmp_path, calls):
    out = tmp_path / "control"
    control = f"random_like={inputs[2]}"
    assert find(inputs, out, "--max_levels", "1", "--mask_data", control, "--mask_data_steps", "2", "--mask_data_batch_size", "4") == 0
    record = json.loads((out / "level_00" / "mask_search.json").read_text())
    assert record["source"] == "subset" and record["options"]["size"] == len(SYNTHETIC) and record["options"]["seed"] == 42
    config = json.loads((out / "run_config.json").read_text())["hyperparameters"]["imp"]["mask_data"]
    assert config["provenance"]["size"] == len(SYNTHETIC) and config["provenance"]["control_for"] == str(inputs[2].resolve())


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--mask_data", "missing.jsonl"], "--mask_data missing.jsonl: no such file"),
        (["--mask_data", "nonsense"], "give a synthetic set file"),
        (["--mask_data_options", "max_seq_length=8"], "--mask_data_options needs --mask_data"),
        (["--mask_data", "SYN", "--early_bird"], "--mask_data rewinds to θ0"),
        (["--mask_data", "SYN", "--mask_data_steps", "0"], "--mask_data_steps and --mask_data_batch_size must be >= 1"),
        (["--mask_data", "SYN", "--schedule", "adaptive"], "use a fixed schedule"),
        (["--mask_data", "BAD"], "bad.jsonl:1: label 7 is not a class id"),
    ],
)
def test_bad_mask_data_fails_before_any_work(inputs, tmp_path, capsys, extra, message):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"sentence1": "a", "sentence2": "b", "labels": 7}) + "\n")
    extra = [str(inputs[2]) if e == "SYN" else str(bad) if e == "BAD" else e for e in extra]
    out = tmp_path / "out"
    assert find(inputs, out, "--max_levels", "1", *extra) == 2
    assert message in capsys.readouterr().err
    assert not out.exists() or not any(out.glob("level_*"))


def test_barrier_figure_per_mask_source_with_overlap_and_sharpness(inputs, tmp_path, capsys):
    real, synthetic, rand = tmp_path / "real", tmp_path / "synthetic", tmp_path / "rand"
    assert find(inputs, real, "--max_levels", "1") == 0
    assert find(inputs, rand, "--max_levels", "1", "--criterion", "random") == 0
    assert find(inputs, synthetic, "--max_levels", "1", "--mask_data", str(inputs[2]), "--mask_data_steps", "2") == 0
    for run in (real, synthetic, rand):
        argv = ["stability", str(run), "--level", "1", "--points", "3", "--sharpness", "--sharpness_iterations", "3"]
        assert main([*argv, "--sharpness_samples", "2"]) == 0
    capsys.readouterr()
    out = tmp_path / "barriers.png"
    assert main(["plot", str(real), "--barriers", str(synthetic), str(rand), "--out", str(out)]) == 0
    assert out.is_file() and out.stat().st_size > 0
    printed = capsys.readouterr().out.splitlines()
    lines = [line for line in printed if line.startswith("| real") or line.startswith("| synthetic")]
    assert len(lines) == 2 and "(real data)" in lines[0] and "(masks on synthetic.jsonl)" in lines[1]
    assert sum(line.startswith("| rand (random pruning) |") for line in printed) == 1
    expected = TicketMask.from_pretrained(synthetic / "level_01" / "ticket").overlap(
        TicketMask.from_pretrained(real / "level_01" / "ticket")
    )
    assert f"{expected['hamming']:.4f} / {expected['jaccard_pruned']:.4f}" in lines[1]
    assert "0.0000 / 1.0000" in lines[0]  # the reference against itself
    saved = json.loads((synthetic / "stability" / "level_01_rewind0" / "stability.json").read_text())
    eig = [c["top_eigenvalue"]["eigenvalue"] for c in saved["sharpness"]["copies"].values()]
    assert f"{sum(eig) / 2:.4g}" in lines[1] and f"{saved['barrier'][saved['metric']]:.4f}" in lines[1]
    traces = [c["trace"]["trace"] for c in saved["sharpness"]["copies"].values()]
    errors = [c["trace"]["stderr"] for c in saved["sharpness"]["copies"].values()]
    assert f"| {sum(traces) / 2:.4g} ± {sum(errors) / 2:.2g} |" in lines[1]
    ends = [m[saved["metric"]] for m in saved["end_metrics"]]
    assert len(ends) == 2 and f"| {ends[0]:.4f} / {ends[1]:.4f} |" in lines[1]


def test_an_embeddings_set_is_searched_with_the_schedule_it_was_distilled_with(inputs, tmp_path, calls):
    from types import SimpleNamespace

    from safetensors.torch import save_file

    from bert_tickets.experiments.mask_data import StepLearningRates

    n, length = 4, 6
    path = tmp_path / "distilled.safetensors"
    save_file(
        {
            "inputs_embeds": torch.randn(n, length, 32),
            "attention_mask": torch.ones(n, length, dtype=torch.long),
            "labels": torch.softmax(torch.randn(n, 2), dim=-1),
            "learning_rates": torch.tensor([0.05, 0.02, 0.01]),
            "attention_labels": torch.softmax(torch.randn(n, 2, 4, 1, length), dim=-1),
            "attention_loss_weight": torch.tensor(0.7),
        },
        str(path),
    )
    out = tmp_path / "emb"
    assert find(inputs, out, "--max_levels", "1", "--mask_data", str(path)) == 0
    record = json.loads((out / "level_00" / "mask_search.json").read_text())
    schedule = record["schedule"]
    assert record["source"] == "embeddings" and record["steps"] == 3 and record["examples"] == 3 * n
    assert schedule["optimizer"] == "sgd" and schedule["batch_size"] == n and not schedule["with_replacement"]
    assert schedule["learning_rates"] == pytest.approx([0.05, 0.02, 0.01]) and schedule["weight_decay"] == 0.0
    assert schedule["max_grad_norm"] == 0.0 and schedule["dropout"] is False  # distill's inner steps: unclipped, no dropout
    search = next(c for c in calls if c["source"] == "embeddings")
    assert search["draws"] is None  # the whole set every step, as distilled
    # with the set's whole inner loss: the attention-label objective at the file's weight
    assert search["objective"] == ("attention_labels", {"weight": pytest.approx(0.7)}) and schedule[
        "attention_loss_weight"
    ] == pytest.approx(0.7)
    # the callback puts step k's rate on the optimizer before step k
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    cb = StepLearningRates([0.05, 0.02, 0.01])
    for k, rate in enumerate([0.05, 0.02, 0.01]):
        cb.on_step_begin(None, SimpleNamespace(global_step=k), None, optimizer=opt)
        assert opt.param_groups[0]["lr"] == rate
    # more steps than step sizes: refused before any work
    assert find(inputs, tmp_path / "long", "--max_levels", "1", "--mask_data", str(path), "--mask_data_steps", "5") == 2


def test_a_source_named_with_its_path_is_hashed_by_the_file_contents(tmp_path):
    from bert_tickets._io import file_record
    from bert_tickets.experiments.mask_data import resolve_mask_data

    f = tmp_path / "set.jsonl"
    f.write_text(json.dumps({"sentence": "good", "labels": 1}) + "\n")
    name, options, provenance = resolve_mask_data("examples", {"path": str(f)}, None, 42)
    assert name == "examples" and options["path"] == str(f.resolve())
    assert provenance == {"file": str(f.resolve()), "sha256": file_record(f)["sha256"]}
    f.write_text(json.dumps({"sentence": "bad", "labels": 0}) + "\n")  # same path, other contents: another run
    assert resolve_mask_data("examples", {"path": str(f)}, None, 42)[2]["sha256"] != provenance["sha256"]
    with pytest.raises(FileNotFoundError, match="path=.*no such file"):
        resolve_mask_data("examples", {"path": str(tmp_path / "nope.jsonl")}, None, 42)
