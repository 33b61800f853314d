"""IMP on other data (``find --mask_data SOURCE``): each level's *mask search* trains on a
synthetic (distilled) set or a small control set, the next mask is pruned from those weights,
and every level is *judged* by fine-tuning its ticket on the real training set, as plain IMP.

Source: McDermott et al. 2023, *Linear Mode Connectivity in Sparse Neural Networks* (their code,
luke-mcdermott-mi/SyntheticDataForIMP, ``prune.py``: IMP on the distilled set, 20% per level,
rewind to initialisation; ``train_pruned.py``: each untrained subnetwork trained on the real
data). Here the level structure, schedule and rewinding are ``find``'s (Chen et al. 2020: rewind
to θ0), and the mask-search schedule defaults to DiLM's evaluation of a synthetic text set
(Maekawa et al. 2024, *DiLM*, ``src/evaluator.py``: 200 steps, batches of 128 drawn with
replacement, AdamW lr 1e-4, weight decay 0.01, linear schedule with warm-up ratio 0.5) — the
schedule its sets were made for. An embedding set distilled for another inner schedule must be
searched with that schedule (give it with the ``--mask_data_*`` options).

What SOURCE may be (:func:`resolve_mask_data`):

* a file: ``.json`` / ``.jsonl`` → the ``examples`` source (DiLM's JSON lines read as is);
  ``.safetensors`` → the ``embeddings`` source;
* ``random_like=FILE`` → the control of the paper: as many random real training examples as
  FILE holds (``subset`` with ``size`` = that count, seeded by the first seed);
* any registered training-data source name, with ``--mask_data_options KEY=VALUE``.

Costs (``summary.json`` → ``mask_data.cost``): search and judging apart, in optimizer steps and
example passes (steps × batch).
"""

from __future__ import annotations

import logging
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from transformers import TrainerCallback

from .._io import file_record
from ..training.finetune import finetune, global_batch_size, plan_training
from ..training.sources import SOURCES
from ..training.sources.examples import read_examples

logger = logging.getLogger("bert_tickets")

#: File suffix -> training-data source of ``--mask_data FILE``.
FILE_SOURCES = {".json": "examples", ".jsonl": "examples", ".safetensors": "embeddings"}
CONTROL_PREFIX = "random_like="


def set_size(path: str | Path, task: Any) -> int:
    """Number of examples in a synthetic set file (JSON lines or an embeddings safetensors file).

    Raises:
        FileNotFoundError / ValueError: a missing or unreadable file (one line).
    """
    path = Path(path)
    if path.suffix == ".safetensors":
        from .._io import read_tensors

        return int(read_tensors(path, "give a readable embeddings file")["inputs_embeds"].shape[0])
    return len(read_examples(path, task)["label"])


def resolve_mask_data(value: str, options: dict[str, Any], task: Any, seed: int) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """``--mask_data`` and its options as ``(source name, source options, provenance)``; the
    provenance (file path, size and sha256; the control's size and seed) goes into the run's
    hash, so another file is another run.

    Raises:
        ValueError: not a file of a known kind, not a registered source, or options given with a
            file shorthand that set the path themselves.
        FileNotFoundError: a file that does not exist.
    """
    if value.startswith(CONTROL_PREFIX):
        like = Path(value[len(CONTROL_PREFIX) :]).expanduser().resolve()
        if not like.is_file():
            raise FileNotFoundError(f"--mask_data {value}: no such file {like}")
        size = set_size(like, task)
        chosen = {"size": size, "seed": seed, **options}
        return "subset", chosen, {"control_for": str(like), "control_for_sha256": file_record(like)["sha256"], "size": size}
    path = Path(value).expanduser()
    if path.suffix in FILE_SOURCES:
        if not path.is_file():
            raise FileNotFoundError(f"--mask_data {value}: no such file")
        if "path" in options:
            raise ValueError("--mask_data FILE sets the source's path: leave path out of --mask_data_options")
        path = path.resolve()
        record = file_record(path)
        return FILE_SOURCES[path.suffix], {"path": str(path), **options}, {"file": str(path), "sha256": record["sha256"]}
    if value not in SOURCES.names():
        raise ValueError(
            f"--mask_data {value!r}: give a synthetic set file (.json, .jsonl, .safetensors), random_like=FILE, or a training-data "
            f"source ({', '.join(SOURCES.names())})"
        )
    chosen, provenance = dict(options), {}
    if isinstance(chosen.get("path"), str | os.PathLike):  # a source named with its file: hash the file's contents too
        file = Path(chosen["path"]).expanduser()
        if not file.is_file():
            raise FileNotFoundError(f"--mask_data {value} path={chosen['path']}: no such file")
        chosen["path"] = str(file.resolve())
        provenance = {"file": chosen["path"], "sha256": file_record(file)["sha256"]}
    return value, chosen, provenance


#: DiLM's evaluation of a synthetic text set (Maekawa et al. 2024, ``src/evaluator.py``).
DILM_SCHEDULE = {
    "steps": 200,
    "batch_size": 128,
    "optimizer": "adamw",
    "learning_rate": 1e-4,
    "learning_rates": None,
    "warmup": 0.5,
    "weight_decay": 0.01,
    "with_replacement": True,
    "attention_loss_weight": None,
    "max_grad_norm": 1.0,
    "dropout": True,
}


def search_schedule(imp_args: Any, source: str, options: dict[str, Any]) -> dict[str, Any]:
    """The mask search's schedule: DiLM's evaluation (:data:`DILM_SCHEDULE`) for text sets and
    real examples; for an embeddings set that carries ``learning_rates`` (``bert-tickets
    distill``), the schedule it was distilled with — ``len(learning_rates)`` plain gradient
    steps (SGD, no momentum or weight decay, no gradient clipping, dropout off: as ``distill``'s
    inner loop) on the whole set, step k at ``learning_rates[k]``
    (Maekawa et al. 2023: a distilled set is made for that inner schedule). Any ``--mask_data_*``
    value given replaces the default.

    A distilled set that carries attention labels is searched with its whole inner loss: the
    label loss + λ · KL to the attention labels (the ``attention_labels`` training objective, λ
    from the file), with eager attention."""
    schedule = dict(DILM_SCHEDULE)
    if source == "embeddings":
        from safetensors import safe_open

        with safe_open(options["path"], "pt") as f:
            keys = set(f.keys())
            if "learning_rates" in keys:
                lrs = f.get_tensor("learning_rates").tolist()
                n = f.get_slice("inputs_embeds").get_shape()[0]
                weight = float(f.get_tensor("attention_loss_weight")) if "attention_loss_weight" in keys else 1.0
                schedule = {
                    "steps": len(lrs),
                    "batch_size": n,
                    "optimizer": "sgd",
                    "learning_rate": lrs[0],
                    "learning_rates": lrs,
                    "warmup": 0.0,
                    "weight_decay": 0.0,
                    "with_replacement": False,
                    "attention_loss_weight": weight if "attention_labels" in keys else None,
                    # distill's inner steps: unclipped, dropout off
                    "max_grad_norm": 0.0,
                    "dropout": False,
                }
    given = {
        "steps": imp_args.mask_data_steps,
        "batch_size": imp_args.mask_data_batch_size,
        "learning_rate": imp_args.mask_data_learning_rate,
        "warmup": imp_args.mask_data_warmup,
        "weight_decay": imp_args.mask_data_weight_decay,
    }
    schedule.update({k: v for k, v in given.items() if v is not None})
    if imp_args.mask_data_learning_rate is not None:
        schedule["learning_rates"] = None  # one given rate replaces the per-step ones
    if schedule["learning_rates"] is not None and len(schedule["learning_rates"]) < schedule["steps"]:
        raise ValueError(
            f"--mask_data_steps {schedule['steps']} exceeds the {len(schedule['learning_rates'])} step sizes the set was distilled with "
            "(give --mask_data_learning_rate to train longer at one rate)"
        )
    return schedule


class StepLearningRates(TrainerCallback):
    """Set the optimizer's learning rate to ``rates[step]`` before every optimizer step (a
    distilled set's learned per-step sizes; the Trainer's scheduler is ``constant``)."""

    def __init__(self, rates: list[float]):
        self.rates = list(rates)

    def on_step_begin(self, args, state, control, optimizer=None, **kwargs):
        if optimizer is not None and state.global_step < len(self.rates):
            for group in optimizer.param_groups:
                group["lr"] = self.rates[state.global_step]
        return control


class MaskDataSearch:
    """The mask search of every level on ``--mask_data`` (see the module docstring).

    Args:
        runner: the IMP runner (task, data, records, level trainer, training arguments).
        source, options: the resolved training-data source and its options.
    """

    def __init__(self, runner: Any, source: str, options: dict[str, Any]):
        self.runner, self.source, self.options = runner, source, options
        self.record = runner.record
        self.schedule = search_schedule(runner.imp_args, source, options)

    def training_args(self):
        """The search's ``TrainingArguments``: the run's, with the search schedule (steps, batch,
        optimizer, learning rate, warm-up, weight decay; linear decay; no checkpoints)."""
        t, sch = self.runner.training_args, self.schedule
        return replace(
            t,
            max_steps=sch["steps"],
            per_device_train_batch_size=sch["batch_size"],
            gradient_accumulation_steps=1,
            learning_rate=sch["learning_rate"],
            warmup_steps=sch["warmup"],
            weight_decay=sch["weight_decay"],
            lr_scheduler_type="linear" if sch["learning_rates"] is None else "constant",
            optim="adamw_torch" if sch["optimizer"] == "adamw" else "sgd",
            save_strategy="no",
            max_grad_norm=sch["max_grad_norm"],
            # the attention labels are a dataset column the model does not take: keep it for the objective
            remove_unused_columns=sch["attention_loss_weight"] is None,
        )

    def check(self) -> None:
        """The source's own checks against the task and data (before any training)."""
        plan_training(self.runner.task, self.runner.data, source=self.source, source_options=self.options)

    def search(self, level: int, ticket):
        """Train ticket ``level`` from its start weights on the mask data (first seed); returns
        the trained model and writes ``level_LL/mask_search.json``."""
        r = self.runner
        seed = r.seeds[0]
        model = r._levels()._start_weights(level, seed)
        args, sch = self.training_args(), self.schedule
        draws = sch["steps"] * sch["batch_size"] * max(1, args.world_size) if sch["with_replacement"] else None
        callbacks = [StepLearningRates(sch["learning_rates"])] if sch["learning_rates"] is not None else []
        if not sch["dropout"]:  # a distilled set's inner steps ran with dropout off
            for module in model.modules():
                if isinstance(module, torch.nn.Dropout):
                    module.p = 0.0
        source_options, objective = dict(self.options), {}
        if sch["attention_loss_weight"] is not None:  # the distilled set's whole inner loss
            model.set_attn_implementation("eager")
            source_options["attention_labels"] = True
            objective = {"objective": "attention_labels", "objective_options": {"weight": sch["attention_loss_weight"]}}
        result = finetune(
            model,
            ticket,
            r.task,
            r.data,
            args,
            seed=seed,
            output_dir=str(self.record.paths.mask_search(level)),
            tokenizer=r.tokenizer,
            source=self.source,
            source_options=source_options,
            draws_with_replacement=draws,
            callbacks=callbacks,
            **objective,
        )
        record = {
            "level": level,
            "source": self.source,
            "options": dict(self.options),
            "steps": result.global_step,
            "batch_size": global_batch_size(args),
            "examples": result.global_step * global_batch_size(args),
            "seed": seed,
            "schedule": sch,
            "train_loss": result.metrics.get("train_loss"),
            "metric_after_search": result.metrics.get(r.task.primary_metric),
        }
        self.record.write_mask_search(level, record)
        logger.info(
            "level %d: mask search on %s: %d steps of %d examples (drawn with replacement), %s %.4f on the real evaluation split",
            level,
            self.source,
            result.global_step,
            record["batch_size"],
            r.task.primary_metric,
            record["metric_after_search"] if record["metric_after_search"] is not None else float("nan"),
        )
        return result.model, record

    def summary(self, levels: list[int]) -> dict:
        """``summary.json``'s ``mask_data`` entry: the searches of ``levels`` and both costs."""
        r = self.runner
        searches = [s for s in (self.record.completed_mask_search(lv) for lv in levels) if s is not None]
        search_steps = sum(int(s["steps"]) for s in searches)
        search_examples = sum(int(s["examples"]) for s in searches)
        judging_steps = sum(self.record.train_steps(lv) for lv in levels)
        batch = global_batch_size(r.training_args)
        return {
            "mask_data": {
                "source": self.source,
                "options": self.options,
                "searches": searches,
                "cost": {
                    "search_steps": search_steps,
                    "search_examples": search_examples,
                    "judging_steps": judging_steps,
                    "judging_examples": judging_steps * batch,
                },
            }
        }
