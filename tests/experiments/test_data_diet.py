"""Data-diet rewinding (Paul et al. 2022): EL2N on known logits, the easy and random subsets, and
``find --rewind_data`` end to end on tiny inputs (scores saved and reused, the rewind point
trained on the subset, the cost in the level-1 ticket, the run hash, bad input)."""

from __future__ import annotations

import json
import math

import pytest
import torch
from safetensors.torch import load_file

from bert_tickets.cli import main
from bert_tickets.ticket import TicketMask
from bert_tickets.training.data_diet import easy_subset, el2n_scores, random_subset

from tiny_assets import IMP_TRAIN_ARGS, write_imp_inputs


def test_el2n_on_known_logits():
    logits = torch.tensor([[0.0, 0.0], [10.0, -10.0], [math.log(3.0), 0.0]])
    labels = torch.tensor([0, 1, 0])
    # softmax: (1/2, 1/2), (~1, ~0), (3/4, 1/4); minus onehot; L2 norm
    expected = torch.tensor([math.sqrt(0.5), math.sqrt(2.0), math.sqrt(2 * 0.25**2)])
    torch.testing.assert_close(el2n_scores(logits, labels, regression=False), expected, atol=1e-6, rtol=0)
    torch.testing.assert_close(
        el2n_scores(torch.tensor([[2.5], [0.0]]), torch.tensor([3.0, -1.0]), regression=True), torch.tensor([0.5, 1.0])
    )
    with pytest.raises(ValueError, match="a label outside"):
        el2n_scores(logits, torch.tensor([0, 2, 0]), regression=False)


def test_easy_subset_is_the_m_lowest_and_random_is_seeded():
    scores = torch.tensor([0.9, 0.1, 0.5, 0.1, 0.3, 0.7])
    assert easy_subset(scores, 3).tolist() == [1, 3, 4]  # 0.1, 0.1 (ties: earlier first), 0.3
    assert easy_subset(scores, 1).tolist() == [1]
    a, b, c = random_subset(100, 10, 1), random_subset(100, 10, 1), random_subset(100, 10, 2)
    assert a.tolist() == b.tolist() != c.tolist() and len(set(a.tolist())) == 10 and a.tolist() == sorted(a.tolist())
    with pytest.raises(ValueError, match=r"--rewind_subset_size must be in \[1, 6\]"):
        easy_subset(scores, 7)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    return write_imp_inputs(tmp_path_factory.mktemp("diet"))


def _find(inputs, out, *extra):
    ckpt, glue = inputs
    argv = ["find", "--task", "rte", "--model", str(ckpt), "--data_dir", str(glue), "--output_dir", str(out), *IMP_TRAIN_ARGS]
    return main([*argv, "--max_levels", "2", *extra])


def test_find_with_an_easy_rewind_subset(inputs, tmp_path, capsys):
    out = tmp_path / "easy"
    diet = ("--rewind_step", "2", "--rewind_data", "easy", "--rewind_subset_size", "8", "--el2n_models", "2", "--el2n_steps", "1")
    assert _find(inputs, out, *diet) == 0
    scores = load_file(out / "data_diet" / "el2n.safetensors")["el2n"]
    n_train = sum(1 for _ in (inputs[1] / "RTE" / "train.tsv").read_text().splitlines()[1:])
    assert scores.shape == (n_train,) and bool((scores >= 0).all())
    subset = json.loads((out / "data_diet" / "subset.json").read_text())
    assert subset["indices"] == easy_subset(scores, 8).tolist() and subset["spent_steps"] == 2 * 1 + 2
    assert json.loads((out / "data_diet" / "el2n.json").read_text())["models"] == 2
    assert (out / "rewind_step2.safetensors").is_file()
    # the level-1 mask cost: level 0's steps after the rewind step (it continues from the
    # pre-training's state at step 2) + the short EL2N runs + the pre-training to step 2
    level0 = json.loads((out / "level_00" / "seed_42" / "log_history.json").read_text())[-1]["step"]
    t1 = TicketMask.from_pretrained(out / "level_01" / "ticket")
    assert t1.metadata.cost["train_steps"] == level0 - 2 + 4
    # a re-run reuses everything
    stamps = {p: p.stat().st_mtime_ns for p in [out / "data_diet" / "el2n.safetensors", out / "rewind_step2.safetensors"]}
    assert _find(inputs, out, *diet) == 0
    assert all(p.stat().st_mtime_ns == t for p, t in stamps.items())
    # the diet is part of the run: the same directory with full-data rewinding is another run
    capsys.readouterr()
    assert _find(inputs, out, "--rewind_step", "2") == 2
    assert "rewind_data" in capsys.readouterr().err


def test_random_rewind_subset_and_bad_input(inputs, tmp_path, capsys):
    out = tmp_path / "random"
    assert _find(inputs, out, "--max_levels", "1", "--rewind_step", "2", "--rewind_data", "random", "--rewind_subset_size", "8") == 0
    subset = json.loads((out / "data_diet" / "subset.json").read_text())
    assert subset["indices"] == random_subset(32, 8, 42).tolist()  # 32 tiny training examples, the run's seed
    assert not (out / "data_diet" / "el2n.safetensors").exists()
    for extra, message in (
        (("--rewind_data", "easy", "--rewind_subset_size", "8"), "needs a rewind point: --rewind_step >= 1"),
        (("--rewind_data", "easy", "--rewind_step", "2"), "needs --rewind_subset_size >= 1"),
        (("--rewind_data", "hard", "--rewind_step", "2"), "--rewind_data 'hard': choose one of full, random, easy"),
        (("--rewind_data", "random", "--rewind_step", "2", "--rewind_subset_size", "100000"), "exceeds the"),
    ):
        capsys.readouterr()
        assert _find(inputs, tmp_path / "bad", *extra) == 2
        err = capsys.readouterr().err.strip().splitlines()
        # one error line (the last check runs once the data is read, after its progress bars)
        assert sum("error" in line for line in err) == 1 and message in err[-1], err


def test_el2n_scores_after_one_epoch_by_default_and_the_subset_labels_are_recorded(inputs, tmp_path, capsys):
    """Issue 20: without --el2n_steps each short EL2N run trains one epoch (32 examples, batch 8:
    4 steps), not --rewind_step steps; subset.json records the labels of the subset and of all
    training examples, and find prints them."""
    out = tmp_path / "easy"
    diet = ("--rewind_step", "1", "--rewind_data", "easy", "--rewind_subset_size", "8", "--el2n_models", "2")
    assert _find(inputs, out, *diet) == 0
    assert json.loads((out / "data_diet" / "el2n.json").read_text())["steps"] == 4
    subset = json.loads((out / "data_diet" / "subset.json").read_text())
    assert subset["spent_steps"] == 2 * 4 + 1
    lines = (inputs[1] / "RTE" / "train.tsv").read_text().splitlines()[1:]
    labels = [0 if line.split("\t")[-1] == "entailment" else 1 for line in lines]
    chosen = [labels[i] for i in subset["indices"]]
    assert subset["labels"]["subset"] == {"0": chosen.count(0) / 8, "1": chosen.count(1) / 8}
    assert subset["labels"]["all"] == {"0": labels.count(0) / len(labels), "1": labels.count(1) / len(labels)}
    assert "labels of the subset" in capsys.readouterr().err
    config = json.loads((out / "run_config.json").read_text())
    assert config["hyperparameters"]["imp"]["el2n_steps"] == "epoch"  # the new default is another run than the old None


def test_label_distribution_of_a_regression_subset():
    from bert_tickets.training.data_diet import label_distribution

    out = label_distribution([0.0, 1.0, 2.0, 3.0, 5.0], [1, 2], regression=True)
    assert out["subset"] == {"mean": 1.5, "std": 0.5, "min": 1.0, "max": 2.0}
    assert out["all"]["mean"] == 2.2 and out["all"]["max"] == 5.0


def _losses(path):
    return [(h["step"], h["learning_rate"]) for h in json.loads(path.read_text()) if "loss" in h]


def test_diet_state_every_level_continues_from_each_seeds_pretraining_as_lth_diet(inputs, tmp_path, capsys):
    """Issue 20 fix 5 for data diets (lth_diet, exps/lottery.py): each seed pre-trains on the
    subset to step k with its own head; its whole state at k (head included, schedule position)
    is where every level, level 0 included, continues from on the full data. Cost: seeds x k."""
    from bert_tickets.results import RunPaths, RunRecord

    log = ("--logging_strategy", "steps", "--logging_steps", "1")
    out = tmp_path / "state"
    diet = ("--rewind_step", "2", "--rewind_data", "random", "--rewind_subset_size", "8", "--seeds", "1", "2", *log)
    assert _find(inputs, out, *diet) == 0
    paths, record = RunPaths(out), RunRecord(out)
    plain = tmp_path / "plain"  # full-data level 0: the schedule's learning rates of steps 1-4
    assert _find(inputs, plain, "--max_levels", "0", *log) == 0
    full_lrs = dict(_losses(RunPaths(plain).log_history(0, 42)))
    for seed in (1, 2):
        start = paths.rewind_start(2, seed)
        assert json.loads((start / "trainer_state.json").read_text())["global_step"] == 2
        head = load_file(start / "model.safetensors")["classifier.weight"]
        initial = load_file(paths.initial_head(seed))["classifier.weight"]
        assert not torch.equal(head, initial)  # the head of step 2 of the seed's own pre-training, not of step 0
        for level in (0, 1, 2):
            steps = _losses(paths.log_history(level, seed))
            assert [s for s, _ in steps] == [3, 4]  # level 0 too ran only steps 3-4: the schedule went on from 2
            assert all(lr == pytest.approx(full_lrs[s]) for s, lr in steps)
            assert json.loads(paths.metrics(level).read_text())["per_seed"][str(seed)]["rewound_to_step"] == 2
    one, two = (load_file(paths.rewind_start(2, seed) / "model.safetensors") for seed in (1, 2))
    assert not any(torch.equal(one[n], two[n]) for n in ("classifier.weight", "bert.encoder.layer.0.attention.self.query.weight"))
    subset = json.loads((out / "data_diet" / "subset.json").read_text())
    assert subset["spent_steps"] == 2 * 2  # two seeds' own pre-training to step 2
    assert record.train_steps(0) == 2 * 2  # steps 3-4 of two seeds
    t1 = TicketMask.from_pretrained(out / "level_01" / "ticket")
    assert t1.metadata.cost["train_steps"] == 4 + 4
    assert json.loads(paths.run_config.read_text())["hyperparameters"]["imp"]["rewind_mode"] == "state"
    # a lost start point is re-created by the same computation; the route's recorded cost stays,
    # and nothing else is re-trained
    before = load_file(paths.rewind_start(2, 2) / "model.safetensors")
    import shutil

    kept = [paths.rewind_start(2, 1) / "model.safetensors", paths.metrics(1), paths.rewind_point(2)]
    stamps = {p: p.stat().st_mtime_ns for p in kept}
    shutil.rmtree(paths.rewind_start(2, 2))
    assert _find(inputs, out, *diet) == 0
    after = load_file(paths.rewind_start(2, 2) / "model.safetensors")
    assert before.keys() == after.keys() and all(torch.equal(before[n], after[n]) for n in before)
    assert json.loads((out / "data_diet" / "subset.json").read_text())["spent_steps"] == 4
    assert all(p.stat().st_mtime_ns == t for p, t in stamps.items())
    # a corrupt backbone file is rebuilt from seed 1's intact start point, which is not re-trained
    backbone = {n: t.clone() for n, t in load_file(paths.rewind_point(2)).items()}  # (a copy: the file is overwritten)
    paths.rewind_point(2).write_bytes(paths.rewind_point(2).read_bytes()[:100])
    stamps = {p: p.stat().st_mtime_ns for p in kept[:2]}
    assert _find(inputs, out, *diet) == 0
    rebuilt = load_file(paths.rewind_point(2))
    assert rebuilt.keys() == backbone.keys() and all(torch.equal(rebuilt[n], backbone[n]) for n in backbone)
    assert all(p.stat().st_mtime_ns == t for p, t in stamps.items())
    # the behaviour before session 14, as an explicit option: hashed as diet runs recorded before
    old = tmp_path / "old"
    assert _find(inputs, old, *diet, "--rewind_mode", "backbone_restart") == 0
    assert "rewind_mode" not in json.loads(RunPaths(old).run_config.read_text())["hyperparameters"]["imp"]
    assert [s for s, _ in _losses(RunPaths(old).log_history(0, 1))] == [1, 2, 3, 4]
    assert [s for s, _ in _losses(RunPaths(old).log_history(1, 2))] == [1, 2, 3, 4]
    assert not RunPaths(old).rewind_start(2, 1).exists()
    assert json.loads((old / "data_diet" / "subset.json").read_text())["spent_steps"] == 2
    # diet runs recorded before session 14 recorded rewind_mode "state" among their arguments:
    # find --config and the model card's command give backbone_restart, the run's hash
    config = json.loads(RunPaths(old).run_config.read_text())
    config["arguments"]["IMPArguments"]["rewind_mode"] = "state"
    RunPaths(old).run_config.write_text(json.dumps(config))
    assert main(["find", "--config", str(RunPaths(old).run_config)]) == 0  # the same run: complete, nothing re-trained
    from bert_tickets.publish.card import find_command

    assert "--rewind_mode backbone_restart" in find_command(config)
    # stability continuing from step k of such a run would need a diet state it never made
    capsys.readouterr()
    assert main(["stability", str(old), "--level", "1", "--rewind_step", "2", "--points", "3", "--rewind_mode", "state"]) == 2
    assert "rewinds as backbone_restart" in capsys.readouterr().err


def test_copied_el2n_scores_are_reused_and_counted(inputs, tmp_path):
    """EL2N scores already in the run directory (an interrupted run, or copied from a run of the
    same scoring) are not recomputed but still count in the route's cost; scores of another
    scoring (other --el2n_models) are recomputed."""
    import shutil

    first = tmp_path / "first"
    diet = ("--max_levels", "0", "--rewind_step", "1", "--rewind_data", "easy", "--rewind_subset_size", "8", "--el2n_models", "2")
    assert _find(inputs, first, *diet) == 0
    second = tmp_path / "second"
    (second / "data_diet").mkdir(parents=True)
    for name in ("el2n.safetensors", "el2n.json"):
        shutil.copy2(first / "data_diet" / name, second / "data_diet" / name)
    stamp = (second / "data_diet" / "el2n.safetensors").stat().st_mtime_ns
    assert _find(inputs, second, *diet) == 0
    assert (second / "data_diet" / "el2n.safetensors").stat().st_mtime_ns == stamp
    assert json.loads((second / "data_diet" / "subset.json").read_text())["spent_steps"] == 2 * 4 + 1
    third = tmp_path / "third"
    shutil.copytree(second / "data_diet", third / "data_diet", ignore=shutil.ignore_patterns("subset.json", "rewind*"))
    assert _find(inputs, third, *diet[:-1], "3") == 0
    assert json.loads((third / "data_diet" / "el2n.json").read_text())["models"] == 3
    assert json.loads((third / "data_diet" / "subset.json").read_text())["spent_steps"] == 3 * 4 + 1
