"""The command registry and typed configs that round-trip (issue 19, items 4 and 7): a run's
``run_config.json`` records its typed argument groups, which load back through the parser
(``find --config RUN/run_config.json``) to the same run; the model card's reproduce command
parses with the real parser and re-runs to the same masks; ``prune-at-init`` honours every
spelling of ``--output_dir``; every command prints bad input through one helper."""

from __future__ import annotations

import dataclasses
import json
import shlex
import shutil
from pathlib import Path

import pytest
import torch

from bert_tickets import cli
from bert_tickets.arguments import experiment_parser, parse_experiment_args
from bert_tickets.cli import COMMANDS, main, parse_find_args
from bert_tickets.experiments.imp import run_hyperparameters
from bert_tickets.publish import find_command, render_model_card
from bert_tickets.results import hyperparameter_hash, read_run
from bert_tickets.ticket import TicketMask

from tiny_assets import IMP_TRAIN_ARGS, write_imp_inputs

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "v0_1_run"


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    return write_imp_inputs(tmp_path_factory.mktemp("cfg"))


def _argv(inputs, out, *extra):
    ckpt, glue = inputs
    return ["--task", "rte", "--model", str(ckpt), "--data_dir", str(glue), "--output_dir", str(out), *IMP_TRAIN_ARGS, *extra]


def _same_masks(a: Path, b: Path) -> bool:
    x, y = TicketMask.from_pretrained(a), TicketMask.from_pretrained(b)
    return x.masks.keys() == y.masks.keys() and all(torch.equal(x.masks[n], y.masks[n]) for n in x.masks)


def _groups(parsed) -> list[dict]:
    """The parsed dataclasses as dicts (``TrainingArguments`` through its ``to_dict``)."""
    return [p.to_dict() if hasattr(p, "to_dict") else dataclasses.asdict(p) for p in parsed]


@pytest.fixture(scope="module")
def run(inputs, tmp_path_factory):
    """A finished 2-level run with non-default batch split, schedule step and seed."""
    out = tmp_path_factory.mktemp("runs") / "run"
    extra = ("--max_levels", "2", "--prune_step", "0.2", "--gradient_accumulation_steps", "2", "--per_device_train_batch_size", "4")
    assert main(["find", *_argv(inputs, out, *extra)]) == 0
    return out, _argv(inputs, out, *extra)


def test_the_run_config_records_typed_groups_that_parse_back_to_the_same_run(run, capsys):
    out, argv = run
    config = json.loads((out / "run_config.json").read_text())
    original = parse_find_args(argv)
    typed = config["arguments"]
    assert list(typed) == ["ModelArguments", "DataArguments", "IMPArguments", "TrainingArguments"]
    assert typed["IMPArguments"]["schedule_options"] == ["prune_step=0.2"] and typed["IMPArguments"]["max_levels"] == 2
    training = typed["TrainingArguments"]
    assert training["per_device_train_batch_size"] == 4 and training["gradient_accumulation_steps"] == 2
    assert training["output_dir"] == str(out) and "seed" not in training  # at its default: left out
    assert training["warmup_steps"] == 0.0 and isinstance(training["warmup_steps"], float)  # the task's 0.0, not the default 0
    assert not any(k.endswith("_token") for k in training)
    # the hash is that of the hyperparameters alone: the record does not enter it
    assert config["hash"] == hyperparameter_hash(run_hyperparameters(*original)) == hyperparameter_hash(config["hyperparameters"])
    # parse_dict of the flat record, --config and the old single-.json form: the same dataclasses
    flat = {k: v for group in typed.values() for k, v in group.items()}
    for parsed in (
        experiment_parser("find").parse_dict(flat),
        parse_find_args(["--config", str(out / "run_config.json")]),
        parse_find_args([str(out / "run_config.json")]),
    ):
        assert _groups(parsed) == _groups(original)
        assert hyperparameter_hash(run_hyperparameters(*parsed)) == config["hash"]
    # re-running from the config continues the run: nothing is retrained
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("level_*/metrics.json")}
    capsys.readouterr()
    assert main(["find", "--config", str(out / "run_config.json")]) == 0
    assert "already complete: skipped" in capsys.readouterr().err
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    # flags given with --config win over it
    assert parse_find_args(["--config", str(out / "run_config.json"), "--learning_rate", "0.5"])[3].learning_rate == 0.5


def test_the_cards_command_parses_and_reproduces_the_masks(run, tmp_path):
    out, argv = run
    info = read_run(out)
    card = render_model_card(TicketMask.from_pretrained(out / "level_02" / "ticket"), run=info).text
    line = next(x for x in card.splitlines() if x.startswith("bert-tickets find"))
    assert line == find_command(info.config)
    assert "--global_train_batch_size" not in line
    assert "--per_device_train_batch_size 4" in line and "--gradient_accumulation_steps 2" in line
    words = shlex.split(line)[2:]
    assert "--output_dir" not in words  # the command writes where the reader says
    again = tmp_path / "again"
    parsed = parse_find_args([*words, "--output_dir", str(again)])  # the path `bert-tickets find` takes
    assert hyperparameter_hash(run_hyperparameters(*parsed)) == info.config["hash"]
    assert main(["find", *words, "--output_dir", str(again)]) == 0
    for level in (1, 2):
        assert _same_masks(out / f"level_{level:02d}" / "ticket", again / f"level_{level:02d}" / "ticket"), level


def test_a_run_config_without_typed_arguments_still_resumes_and_gives_a_command(run, tmp_path, capsys):
    """A run written before typed arguments were recorded (today's main: the global batch in the
    hash, the per-device batch in ``launch``)."""
    out, argv = run
    old = tmp_path / "old"
    shutil.copytree(out, old)
    config = json.loads((old / "run_config.json").read_text())
    del config["arguments"]
    (old / "run_config.json").write_text(json.dumps(config))
    capsys.readouterr()
    assert main(["find", *[str(old) if a == str(out) else a for a in argv]]) == 0
    assert "already complete: skipped" in capsys.readouterr().err
    words = shlex.split(find_command(config))[2:]
    assert "--global_train_batch_size" not in words
    assert words[words.index("--per_device_train_batch_size") + 1] == "4" and words[words.index("--gradient_accumulation_steps") + 1] == "2"
    assert hyperparameter_hash(run_hyperparameters(*parse_find_args([*words, "--output_dir", str(tmp_path / "x")]))) == config["hash"]
    # launched on 2 processes: the same global batch on one
    two = find_command({**config, "launch": {**config["launch"], "world_size": 2}})
    assert "--gradient_accumulation_steps 4" in two and "--per_device_train_batch_size 4" in two


def test_the_v0_1_command_parses_to_the_same_run(tmp_path, monkeypatch):
    from bert_tickets.results.record import changed_hyperparameters

    write_imp_inputs(tmp_path)
    monkeypatch.chdir(tmp_path)
    old = json.loads((FIXTURE / "run_config.json").read_text())
    words = shlex.split(find_command(old))[2:]
    assert "--schedule_options" in words and "prune_fraction=0.1" not in words  # only the linear schedule's own option
    assert changed_hyperparameters(old["hyperparameters"], run_hyperparameters(*parse_find_args(words))) == []


def test_config_errors_are_one_line(run, tmp_path, capsys):
    out, _ = run
    cases = [
        (["find", "--config", str(tmp_path / "nope.json")], "config file not found"),
        (["prune-at-init", "--config", str(out / "run_config.json")], "records the arguments of another command (IMPArguments)"),
    ]
    (tmp_path / "bad.json").write_text(json.dumps({"task": "rte", "no_such_option": 1}))
    cases.append((["find", str(tmp_path / "bad.json")], "not an option of this command: no_such_option"))
    v01 = tmp_path / "v01.json"
    shutil.copy(FIXTURE / "run_config.json", v01)
    cases.append((["find", "--config", str(v01)], "recorded before typed arguments"))
    for argv, needle in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(f"bert-tickets {argv[0]}: error: ") and needle in err[0], err


# ------------------------------------------------------------------------------ prune-at-init --output_dir
def _pai(inputs, *extra):
    ckpt, glue = inputs
    return ["--task", "rte", "--model", str(ckpt), "--data_dir", str(glue), "--criterion", "magnitude", "--sparsity", "0.3", *extra]


def test_prune_at_init_honours_every_spelling_of_output_dir(inputs, tmp_path, capsys):
    default = parse_experiment_args("prune-at-init", _pai(inputs))[3].output_dir
    assert default == "runs/rte-magnitude-0.3"
    assert parse_experiment_args("prune-at-init", _pai(inputs, "--output_dir", "a"))[3].output_dir == "a"
    assert parse_experiment_args("prune-at-init", _pai(inputs, "--output-dir", "b"))[3].output_dir == "b"
    assert parse_experiment_args("prune-at-init", _pai(inputs, "--output-dir=c"))[3].output_dir == "c"
    ckpt, glue = inputs
    config = {
        "task": "rte",
        "model_name_or_path": str(ckpt),
        "data_dir": str(glue),
        "criterion": "magnitude",
        "sparsity": 0.3,
        "no_finetune": True,
        "use_cpu": True,
    }
    (tmp_path / "with.json").write_text(json.dumps({**config, "output_dir": str(tmp_path / "from_json")}))
    (tmp_path / "without.json").write_text(json.dumps(config))
    assert parse_experiment_args("prune-at-init", [str(tmp_path / "with.json")])[3].output_dir == str(tmp_path / "from_json")
    assert parse_experiment_args("prune-at-init", ["--config", str(tmp_path / "without.json")])[3].output_dir == default
    # end to end: the ticket lands where --output-dir and the config say
    assert main(["prune-at-init", *_pai(inputs, "--output-dir", str(tmp_path / "dashed"), *IMP_TRAIN_ARGS, "--no_finetune")]) == 0
    assert main(["prune-at-init", str(tmp_path / "with.json")]) == 0
    for out in ("dashed", "from_json"):
        assert (tmp_path / out / "ticket" / "ticket_config.json").is_file(), out


# ------------------------------------------------------------------------------ the registry
def test_one_registry_one_run_per_command():
    import importlib

    assert list(COMMANDS) == ["find", "info", "push", "transfer", "plot", "stability", "export", "prune-at-init", "distill"]
    modules = {
        "find": "bert_tickets.experiments.imp",
        "transfer": "bert_tickets.experiments.transfer",
        "stability": "bert_tickets.experiments.stability",
        "prune-at-init": "bert_tickets.experiments.prune_at_init",
        "export": "bert_tickets.publish.export",
        "push": "bert_tickets.publish.push",
        "info": "bert_tickets.publish.info",
        "plot": "bert_tickets.publish.plot",
        "distill": "bert_tickets.experiments.distill",
    }
    for name, module in modules.items():
        mod = importlib.import_module(module)
        assert COMMANDS[name].run is mod.run and COMMANDS[name].arguments == mod.ARGUMENTS, name
        assert all(dataclasses.is_dataclass(a) for a in mod.ARGUMENTS), name
    assert not hasattr(cli, "find_defaults") and not hasattr(cli, "find_main")


def test_every_command_prints_bad_input_as_one_line(tmp_path, capsys, monkeypatch):
    cases = [
        (["info", str(tmp_path / "nothing")], "is neither a ticket directory nor a bert-tickets run directory"),
        (["export", str(tmp_path), "--output_dir", str(tmp_path / "x")], "give one of --level L (a find run) or --cell ID"),
        (["push", str(tmp_path), "--repo-id", "a/b", "--level", "1", "--all-levels"], "give --level N or --all-levels, not both"),
        (["plot", str(tmp_path / "nothing")], "not a bert-tickets run directory"),
        (["stability", str(tmp_path / "nothing"), "--level", "1"], "not a bert-tickets run directory"),
        (["find", "--task", "nosuchtask", "--output_dir", str(tmp_path / "o")], "nosuchtask"),
    ]
    for argv, needle in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(f"bert-tickets {argv[0]}: error: ") and needle in err[0], err
    # an error without a message is named by its type (first_line), not an IndexError
    import bert_tickets.publish.info as info

    monkeypatch.setattr(info, "run", lambda args: (_ for _ in ()).throw(ValueError()))
    assert main(["info", str(tmp_path)]) == 2
    assert capsys.readouterr().err == "bert-tickets info: error: ValueError\n"
    # argparse usage errors exit 2, --help 0
    assert main(["info"]) == 2 and main(["export", "--help"]) == 0
    assert "--level" in capsys.readouterr().out


def test_a_transfer_matrix_records_its_arguments_and_reruns_from_them(run, inputs, tmp_path, capsys):
    from bert_tickets.arguments import parse_transfer_args

    out, _ = run
    ckpt, glue = inputs
    matrix = tmp_path / "matrix"
    argv = ["--tickets", str(out / "level_01" / "ticket"), "--tasks", "rte", "--baselines", "dense", "--data_dir", str(glue)]
    argv += ["--output_dir", str(matrix), "--max_steps", "2", "--per_device_train_batch_size", "4", "--use_cpu", "true"]
    assert main(["transfer", *argv]) == 0
    recorded = json.loads((matrix / "arguments.json").read_text())["arguments"]
    assert recorded["TransferArguments"]["baselines"] == ["dense"] and recorded["TrainingArguments"]["rte"]["max_steps"] == 2
    args, per_target = parse_transfer_args(argv)
    again, again_targets = parse_transfer_args(["--config", str(matrix / "arguments.json")])
    # recorded as the matrix resolved them: --sparsity from the source ticket's level (0.2)
    assert dataclasses.asdict(again) == {**dataclasses.asdict(args), "sparsity": 0.2}
    assert {t: a.to_dict() for t, a in again_targets.items()} == {t: a.to_dict() for t, a in per_target.items()}
    stamps = {p: p.stat().st_mtime_ns for p in matrix.glob("cells/*/result.json")}
    assert len(stamps) == 2  # the ticket row and dense
    assert main(["transfer", "--config", str(matrix / "arguments.json")]) == 0  # the same matrix: every cell done
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    capsys.readouterr()
    assert main(["transfer", "--config", str(matrix / "arguments.json"), "--seeds", "1"]) == 2
    assert "takes no other option" in capsys.readouterr().err
