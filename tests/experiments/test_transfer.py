"""The transfer matrix on tiny inputs: cell bookkeeping, resume, each baseline, the criteria on
known numbers, the output files, and one-line errors before any training."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math

import pytest
import torch

from bert_tickets.arguments import ArgumentError, parse_transfer_args
from bert_tickets.cli import main
from bert_tickets.pruning import prune_ticket, target_count
from bert_tickets.results.cells import CellResult, CellSpec, build_matrix, format_matrix
from bert_tickets.tasks import get_task
from bert_tickets.ticket import TicketMask, TicketMetadata
from bert_tickets.training.weights import load_theta0, reinitialize_backbone, shuffle_weights

from tiny_assets import IMP_TRAIN_ARGS, IMP_WORDS, write_imp_inputs


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """Tiny checkpoint, RTE + MRPC data, an RTE IMP run (levels 0-2) and an 'mrpc' ticket dir."""
    root = tmp_path_factory.mktemp("transfer")
    ckpt, glue = write_imp_inputs(root)
    g = torch.Generator().manual_seed(1)
    (glue / "MRPC").mkdir()
    for split, n in (("train", 32), ("dev", 16)):
        lines = ["Quality\t#1 ID\t#2 ID\t#1 String\t#2 String"]
        for i in range(n):
            a = " ".join(IMP_WORDS[j] for j in torch.randint(0, len(IMP_WORDS), (5,), generator=g).tolist())
            b = " ".join(IMP_WORDS[j] for j in torch.randint(0, len(IMP_WORDS), (5,), generator=g).tolist())
            lines.append(f"{int('dog' in a)}\t{i}\t{i + 100}\t{a}\t{b}")
        (glue / "MRPC" / f"{split}.tsv").write_text("\n".join(lines) + "\n")
    assert (
        main(
            [
                "find",
                "--task",
                "rte",
                "--model",
                str(ckpt),
                "--data_dir",
                str(glue),
                "--output_dir",
                str(root / "rte_run"),
                *IMP_TRAIN_ARGS,
                "--max_levels",
                "2",
            ]
        )
        == 0
    )
    model = load_theta0(get_task("mrpc"), str(ckpt), seed=0)
    dense = TicketMask.dense(model, metadata=TicketMetadata(base_model=str(ckpt), task="mrpc"))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p))  # "trained" weights: another mask than one-shot magnitude of θ0
    prune_ticket(dense, model, 0.2).save_pretrained(root / "mrpc_ticket")
    return root, ckpt, glue


def argv(inputs, out, *extra, sparsity="0.2", model=True):
    root, ckpt, glue = inputs
    return [
        *("--tickets", str(root / "rte_run"), str(root / "mrpc_ticket"), "--tasks", "rte", "mrpc", "--seeds", "1", "2"),
        *(("--sparsity", sparsity) if sparsity else ()),
        *(("--model", str(ckpt)) if model else ()),
        *("--data_dir", str(glue), "--output_dir", str(out), *IMP_TRAIN_ARGS, *extra),
    ]


def _old_rule_ids(matrix) -> set[str]:
    """Cell ids by the rule written before rows were registered classes (the reference: saved
    matrices were named by it): rows dense/random/oneshot and the criteria snip/synflow/gem_miner
    carry the prunable set, the criteria their options under "criterion"."""
    criteria = ("snip", "synflow", "gem_miner")
    ids = set()
    for spec in matrix.cells.values():
        context = {
            **({"criterion": matrix.criterion_options[spec.row]} if spec.row in criteria else {}),
            "base_model": matrix.base_model,
            "mask": next((s.mask_hash for s in matrix.sources if s.origin == spec.source), None),
            "prunable": matrix.prunable if spec.row in ("dense", "random", "oneshot", *criteria) else None,
            "training": matrix.spec["training"][spec.target],
            "data": {
                **matrix.spec["data"],
                "max_train_samples": matrix.train_samples[spec.target],
                "data_dirs": matrix.data_dirs[spec.target],
            },
        }
        spec_dict = {k: v for k, v in dataclasses.asdict(spec).items() if k != "sanity" or v is not None}
        ids.add(hashlib.sha256(json.dumps({"spec": spec_dict, "context": context}, sort_keys=True, default=str).encode()).hexdigest()[:12])
    return ids


def test_cells_results_resume_and_files(inputs, tmp_path, capsys):
    out = tmp_path / "matrix"
    from bert_tickets.experiments.transfer import TransferMatrix

    matrix = TransferMatrix(*parse_transfer_args(argv(inputs, out)))
    specs = list(matrix.cells.values())
    # 2 sources x 2 targets x 2 seeds + per target and seed: dense, random, oneshot, and
    # reinit/shuffle (both targets have an own ticket): 8 + 2*2*5 = 28 cells, no duplicates
    assert len(specs) == 28 == len(set(specs))
    # renamed rows keep their old spelling in the specs (magnitude: "oneshot", weight_shuffle: "shuffle")
    assert sum(s.row == "ticket" for s in specs) == 8 and {s.row for s in specs} == {
        "ticket",
        "dense",
        "random",
        "reinit",
        "shuffle",
        "oneshot",
    }
    assert _old_rule_ids(matrix) == set(matrix.cells)
    assert main(["transfer", *argv(inputs, out)]) == 0
    assert len(list((out / "cells").glob("*/result.json"))) == 28
    rows = json.loads((out / "results.json").read_text())
    assert len(rows) == 28 and {"cell_id", "label", "target", "seed", "value", "wall_s", "metric_accuracy"} <= set(rows[0])
    lines = (out / "results.csv").read_text().strip().splitlines()
    assert len(lines) == 29 and lines[0].startswith("cell_id,")
    m = json.loads((out / "matrix.json").read_text())
    assert m["own"] == {"rte": "rte", "mrpc": "mrpc"} and m["targets"] == ["mrpc", "rte"]
    assert m["metric"] == {"rte": "accuracy", "mrpc": "f1"}
    for row in m["entries"].values():  # Δ vs dense and vs own are plain differences of means
        for t, e in row.items():
            assert e["n"] == 2 and e["seeds"] == [1, 2]
            assert math.isclose(e["delta_dense"], e["mean"] - m["entries"]["dense"][t]["mean"], abs_tol=1e-12)
            assert math.isclose(e["delta_own"], e["mean"] - m["entries"][m["own"][t]][t]["mean"], abs_tol=1e-12)
    assert (out / "heatmap.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| dense |" in (out / "matrix.md").read_text()
    # resume: a lost cell is the only one re-trained
    victim = sorted((out / "cells").glob("*/result.json"))[5]
    stamps = {p: p.stat().st_mtime_ns for p in (out / "cells").glob("*/result.json") if p != victim}
    victim.unlink()
    capsys.readouterr()
    assert main(["transfer", *argv(inputs, out)]) == 0
    assert "28 cells, 1 to run" in capsys.readouterr().err
    assert victim.is_file() and all(p.stat().st_mtime_ns == t for p, t in stamps.items())


def test_baselines(inputs):
    root, ckpt, _ = inputs
    task = get_task("rte")
    theta0 = load_theta0(task, str(ckpt), seed=3)
    own = TicketMask.from_pretrained(root / "rte_run" / "level_02" / "ticket")
    names = list(own.masks)
    # shuffle: every tensor keeps its multiset of values, the positions change, reproducibly
    shuffled = shuffle_weights(load_theta0(task, str(ckpt), seed=3), names, seed=7)
    p0, p1 = dict(theta0.bert.named_parameters()), dict(shuffled.bert.named_parameters())
    for n in names:
        assert torch.equal(p0[n].flatten().sort().values, p1[n].flatten().sort().values) and not torch.equal(p0[n], p1[n])
    again = shuffle_weights(load_theta0(task, str(ckpt), seed=3), names, seed=7)
    assert all(torch.equal(p1[n], dict(again.bert.named_parameters())[n]) for n in names)
    assert torch.equal(p0["embeddings.word_embeddings.weight"], p1["embeddings.word_embeddings.weight"])  # only prunable ones
    # reinit: the model's initializer statistics (N(0, initializer_range)), LayerNorm reset
    fresh = reinitialize_backbone(load_theta0(task, str(ckpt), seed=3), seed=5)
    r = dict(fresh.bert.named_parameters())
    std = fresh.config.initializer_range
    for n in names:
        assert not torch.equal(r[n], p0[n])  # a model loaded by from_pretrained really is re-drawn
        assert abs(float(r[n].std()) - std) < 0.1 * std and abs(float(r[n].mean())) < 0.1 * std
    same = dict(reinitialize_backbone(load_theta0(task, str(ckpt), seed=3), seed=5).bert.named_parameters())
    other = dict(reinitialize_backbone(load_theta0(task, str(ckpt), seed=3), seed=6).bert.named_parameters())
    assert all(torch.equal(r[n], same[n]) and not torch.equal(r[n], other[n]) for n in names)
    assert torch.equal(r["embeddings.LayerNorm.weight"], torch.ones_like(r["embeddings.LayerNorm.weight"]))
    # random: exact count, seeded; oneshot: global magnitude pruning of θ0
    dense = TicketMask.dense(theta0)
    rnd = prune_ticket(dense, theta0, 0.2, "random", seed=1)
    assert rnd.num_pruned == target_count(0.2, dense.num_prunable)
    from bert_tickets.pruning import global_magnitude_pruning
    from bert_tickets.ticket import prunable_parameters

    oneshot = prune_ticket(dense, theta0, 0.2, "magnitude")
    reference = global_magnitude_pruning(prunable_parameters(theta0), 0.2)
    assert all(torch.equal(oneshot.masks[n], reference[n]) for n in reference)


def _cell(label, target, seed, value, row="ticket", source_task=None):
    return CellResult(CellSpec(row, label, "", source_task, target, 0.5, seed), f"{label}{target}{seed}", "accuracy", value)


def test_criteria_on_known_numbers():
    cells = [
        _cell("dense", "t", 1, 0.80, "dense"),
        _cell("dense", "t", 2, 0.84, "dense"),  # mean 0.82, std 0.028284
        _cell("t", "t", 1, 0.80, source_task="t"),
        _cell("t", "t", 2, 0.80, source_task="t"),  # own: 0.80, matching
        _cell("mlm", "t", 1, 0.81, source_task="mlm"),
        _cell("mlm", "t", 2, 0.79, source_task="mlm"),  # 0.80 = own
        _cell("random", "t", 1, 0.70, "random"),
        _cell("random", "t", 2, 0.72, "random"),
    ]
    m = build_matrix(cells, tolerance=0.5)
    e = m["entries"]
    assert m["own"] == {"t": "t"} and m["rows"][:2] == ["mlm", "t"]
    assert e["t"]["t"]["matching"] is True and e["mlm"]["t"]["matching"] is True and e["random"]["t"]["matching"] is False
    assert e["mlm"]["t"]["transfer_ge_own"] is True and e["random"]["t"]["transfer_ge_own"] is False
    assert math.isclose(e["random"]["t"]["delta_dense"], 0.71 - 0.82) and math.isclose(e["random"]["t"]["delta_own"], 0.71 - 0.80)
    assert "one standard deviation" in m["rules"]["t"]
    assert e["random"]["t"]["beats_trivial"] is None and m["trivial"] == {}  # no baseline given
    # the trivial baseline (majority class at 0.71): random does not beat it and is flagged
    from bert_tickets.tasks import TrivialBaseline

    m = build_matrix(cells, tolerance=0.5, trivial={"t": TrivialBaseline("accuracy", 0.71, "always 'no'", "above it")})
    e = m["entries"]
    assert [e[r]["t"]["beats_trivial"] for r in ("dense", "t", "mlm", "random")] == [True, True, True, False]
    assert e["t"]["t"]["matching"] is True and "≤trivial" in format_matrix(m) and m["trivial"]["t"]["value"] == 0.71
    # ≥own marks transferred tickets only: the mlm row, not the dense row (which is above own too)
    table = {line.split(" |")[0]: line for line in format_matrix(m).splitlines() if line.startswith("| ")}
    assert "≥own" in table["| mlm"] and "≥own" not in table["| dense"] and e["dense"]["t"]["transfer_ge_own"] is True
    # a dense row at the trivial baseline: the dense model did not learn, matching is undefined
    m = build_matrix(cells, tolerance=0.5, trivial={"t": TrivialBaseline("accuracy", 0.82, "always 'no'", "above it")})
    assert all(m["entries"][r]["t"]["matching"] is None for r in m["rows"]) and "dense did not learn" in m["rules"]["t"]


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--sparsity", "0.35"], "has no level at sparsity 0.35 (it has 0, 0.1, 0.2, 0.3)"),
        (["--baselines", "magic"], "unknown baseline 'magic'"),
        (["--model", "/nonexistent/model"], "is not the tickets' base model"),
    ],
)
def test_bad_input_fails_before_training(inputs, tmp_path, capsys, extra, message):
    out = tmp_path / "bad"
    assert (
        main(["transfer", *argv(inputs, out, *extra, sparsity=None if "--sparsity" in extra else "0.2", model="--model" not in extra)]) == 2
    )
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("bert-tickets transfer: error:") and message in err
    assert not out.exists()


def test_ray_executor_matches_local_on_logical_gpus(inputs, tmp_path, monkeypatch):
    """Ray on this CPU machine with 2 logical GPUs: every cell a task with one GPU
    (CUDA_VISIBLE_DEVICES set per task), a worker killed on each cell's first attempt is
    retried, and the results equal the local executor's."""
    ray = pytest.importorskip("ray")
    from bert_tickets.experiments.transfer import TransferMatrix

    def matrix_args(out, *extra):
        root, ckpt, glue = inputs
        return [
            *("--tickets", str(root / "rte_run"), "--tasks", "rte", "--sparsity", "0.2", "--seeds", "1", "2"),
            *("--baselines", "dense", "random", "--model", str(ckpt), "--data_dir", str(glue)),
            *("--output_dir", str(out), *IMP_TRAIN_ARGS, *extra),
        ]

    local = TransferMatrix(*parse_transfer_args(matrix_args(tmp_path / "local")))
    local.run()
    crashes = tmp_path / "crashes"
    crashes.mkdir()
    crash_dir = str(crashes)

    def crash_once(matrix, cell_id, spec):
        """The shipped task, but the worker dies as on a preempted node on each cell's first attempt
        (a closure: Ray ships it by value, so the fault lives in the test, not in the package)."""
        import os
        from pathlib import Path

        from bert_tickets.experiments.transfer import ray_cell

        marker = Path(crash_dir) / f"{cell_id}.crashed"
        if not marker.exists():
            marker.write_text(str(os.getpid()))
            os._exit(1)
        return ray_cell(matrix, cell_id, spec)

    monkeypatch.setenv("OMP_NUM_THREADS", str(torch.get_num_threads()))  # same threads as the local run
    ray.init(num_cpus=2, num_gpus=2, include_dashboard=False, log_to_driver=False)
    try:
        on_ray = TransferMatrix(*parse_transfer_args(matrix_args(tmp_path / "ray", "--executor", "ray", "--gpus_per_cell", "1")))
        on_ray.ray_task = crash_once
        on_ray.run()
    finally:
        ray.shutdown()
    assert len(on_ray.cells) == 6 and sorted(on_ray.cells) == sorted(local.cells)  # same cell ids
    assert len(list(crashes.glob("*.crashed"))) == 6  # every cell's first worker died; the retries finished
    by_id = {r.cell_id: r for r in local.record.all_results()}
    ray_results = on_ray.record.all_results()
    assert len(ray_results) == 6
    for r in ray_results:
        assert r.placement["executor"] == "ray" and r.placement["cuda_visible_devices"] in ("0", "1")
        assert r.placement["gpu_ids"] == [r.placement["cuda_visible_devices"]]
        assert r.value == by_id[r.cell_id].value and r.metrics["loss"] == by_id[r.cell_id].metrics["loss"]
    assert (
        json.loads((tmp_path / "ray" / "matrix.json").read_text())["entries"]
        == json.loads((tmp_path / "local" / "matrix.json").read_text())["entries"]
    )


def test_more_bad_input_and_the_plot_command(inputs, tmp_path, capsys, monkeypatch):
    root, ckpt, glue = inputs
    out = tmp_path / "m"
    base = [
        "--tickets",
        str(root / "rte_run"),
        "--tasks",
        "rte",
        "--sparsity",
        "0.2",
        "--baselines",
        "dense",
        "--model",
        str(ckpt),
        "--data_dir",
        str(glue),
        "--output_dir",
        str(out),
        *IMP_TRAIN_ARGS,
    ]
    assert main(["transfer", *base]) == 0
    capsys.readouterr()
    # another spec (budget) in the same directory
    assert main(["transfer", *base, "--learning_rate", "5e-4"]) == 2
    assert "holds a transfer matrix with another spec (changed: training)" in capsys.readouterr().err
    # a source on another base model
    other = TicketMask.from_pretrained(root / "mrpc_ticket")
    other.metadata.base_model = "someone/else"
    other.save_pretrained(tmp_path / "other_ticket")
    two = ["--tickets", str(root / "mrpc_ticket"), str(tmp_path / "other_ticket"), "--tasks", "rte", "--data_dir", str(glue)]
    assert main(["transfer", *two, "--output_dir", str(tmp_path / "o2")]) == 2
    assert "name different base models" in capsys.readouterr().err
    # a mask that does not fit the target model (another architecture's shapes)
    bad = TicketMask(
        {"encoder.layer.0.attention.self.query.weight": torch.ones(3, 3, dtype=torch.bool)},
        TicketMetadata(base_model=str(ckpt), task="rte", target_sparsity=0.2),
    )
    bad.save_pretrained(tmp_path / "bad_ticket")
    assert (
        main(
            [
                "transfer",
                "--tickets",
                str(tmp_path / "bad_ticket"),
                "--tasks",
                "rte",
                "--model",
                str(ckpt),
                "--data_dir",
                str(glue),
                "--output_dir",
                str(tmp_path / "o3"),
            ]
        )
        == 2
    )
    assert "does not fit the rte model" in capsys.readouterr().err
    # --executor ray without Ray installed
    import builtins

    real_import = builtins.__import__
    monkeypatch.setattr(
        builtins,
        "__import__",
        lambda name, *a, **k: (_ for _ in ()).throw(ImportError(name)) if name == "ray" else real_import(name, *a, **k),
    )
    assert main(["transfer", *base[: -len(IMP_TRAIN_ARGS)], "--output_dir", str(tmp_path / "o4"), "--executor", "ray"]) == 2
    assert "pip install 'bert-tickets[ray]'" in capsys.readouterr().err
    monkeypatch.undo()
    assert not any((tmp_path / d).exists() for d in ("o2", "o3", "o4"))
    # plot: the run's curve with the matrix's rows
    assert main(["plot", str(root / "rte_run"), "--transfer", str(out), "--out", str(tmp_path / "curve.png")]) == 0
    assert (tmp_path / "curve.png").read_bytes()[:4] == b"\x89PNG"
    assert main(["plot", str(tmp_path / "nothing")]) == 2
    assert "not a bert-tickets run directory" in capsys.readouterr().err


def test_per_target_training_budget(inputs, tmp_path):
    """--max_train_samples N and/or TASK=N: a TASK=N entry changes only that target's cells (their
    ids, and the examples they train on); a bad entry is one line before any work."""
    from bert_tickets.experiments.transfer import TransferMatrix, _train_samples

    assert _train_samples(["4", "mrpc=2"], ["rte", "mrpc"]) == {"rte": 4, "mrpc": 2}
    assert _train_samples(None, ["rte", "mrpc"]) == {"rte": None, "mrpc": None}
    for bad, message in ((["sst2=3"], "'sst2' is not one of the target tasks"), (["0"], "positive"), (["rte=x"], "positive")):
        with pytest.raises(ValueError, match=message):
            _train_samples(bad, ["rte", "mrpc"])
    plain = TransferMatrix(*parse_transfer_args(argv(inputs, tmp_path / "a")))
    budget = TransferMatrix(*parse_transfer_args(argv(inputs, tmp_path / "b", "--max_train_samples", "rte=8")))
    same = {cid for cid, s in plain.cells.items() if s.target == "mrpc"}
    assert same and same == {cid for cid, s in budget.cells.items() if s.target == "mrpc"}
    assert not {cid for cid, s in plain.cells.items() if s.target == "rte"} & set(budget.cells)
    assert len(budget.runner.prepared("rte").train) == 8 and len(budget.runner.prepared("mrpc").train) == len(plain.runner.prepared("mrpc").train) == 32
    # --task_args: one target's TrainingArguments; its cells change, the other target's do not
    _, per_target = parse_transfer_args(argv(inputs, tmp_path / "d", "--task_args", "mrpc:num_train_epochs=3", "mrpc:learning_rate=0.5"))
    assert (per_target["mrpc"].num_train_epochs, per_target["mrpc"].learning_rate) == (3.0, 0.5)
    assert per_target["rte"].num_train_epochs == plain.training_args["rte"].num_train_epochs != 3.0
    for bad in ("mrpc:bogus=1", "sst2:seed=1", "mrpc:output_dir=x", "mrpc=3"):
        with pytest.raises(ArgumentError, match="--task_args"):
            parse_transfer_args(argv(inputs, tmp_path / "e", "--task_args", bad))
    # one value for every target keeps the matrix spec of a directory written before per-target budgets
    assert (
        TransferMatrix(*parse_transfer_args(argv(inputs, tmp_path / "c", "--max_train_samples", "8"))).spec["data"]["max_train_samples"]
        == 8
    )


def test_ray_cell_data_parallel_over_its_gpus(inputs, tmp_path):
    """--gpus_per_cell 2 on a Ray with 2 logical GPUs: the cell's task spawns two DDP ranks (gloo
    here, no CUDA), both GPUs visible to it; rank 0 alone writes the result, the mask holds, and
    the global batch is twice the per-device one."""
    ray = pytest.importorskip("ray")
    from bert_tickets.experiments.transfer import TransferMatrix

    root, ckpt, glue = inputs
    out = tmp_path / "dp"
    matrix_args = [
        *("--tickets", str(root / "rte_run"), "--tasks", "rte", "--sparsity", "0.2", "--seeds", "1", "--baselines", "dense"),
        *("--model", str(ckpt), "--data_dir", str(glue), "--output_dir", str(out), *IMP_TRAIN_ARGS),
        *("--executor", "ray", "--gpus_per_cell", "2", "--cpus_per_cell", "2"),
    ]
    ray.init(num_cpus=2, num_gpus=2, include_dashboard=False, log_to_driver=False)
    try:
        matrix = TransferMatrix(*parse_transfer_args(matrix_args))
        matrix.run()
    finally:
        ray.shutdown()
    results = matrix.record.all_results()
    assert len(results) == len(matrix.cells) == 2  # the rte ticket and dense
    for r in results:
        assert r.placement["world_size"] == 2 and r.placement["cuda_visible_devices"] in ("0,1", "1,0")
        assert sorted(r.placement["gpu_ids"]) == ["0", "1"]
        assert r.metrics["nonzero_pruned_weights"] == 0 and math.isfinite(r.value)
        per_device = matrix.training_args["rte"].per_device_train_batch_size
        assert r.placement["global_train_batch_size"] == 2 * per_device
    with pytest.raises(ValueError, match="whole number of GPUs"):
        TransferMatrix(*parse_transfer_args([*matrix_args, "--gpus_per_cell", "1.5"]))
