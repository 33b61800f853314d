"""``bert-tickets distill``: embedding-level dataset distillation against θ0 — a few learned
examples per class (input embeddings, soft labels, attention labels) and learned per-step
learning rates such that ``--steps`` gradient steps from the pre-trained model on them fit the
real training data.

Method: Maekawa et al. 2023, *Dataset Distillation with Attention Labels for Fine-tuning BERT*
(ACL), Section 3 — chosen over gradient / trajectory matching because it is the method designed
for fine-tuning a *pre-trained* BERT from a few synthetic examples (the situation of an IMP level,
which always restarts from θ0), and it needs no expert trajectories (trajectory matching would
need many full fine-tunes stored first). Per outer step:

1. the task head is re-initialised (N(0, ``initializer_range``) weights, zero biases, as BERT's
   ``_init_weights``; a new draw every outer step, so the set does not fit one head);
2. **inner loop**: ``--steps`` steps of plain gradient descent θ ← θ − η_k ∇θ L_inner from θ0
   on the whole distilled set, with the learned step size η_k; ``L_inner`` = cross-entropy
   against the soft labels softmax(ỹ) + λ · the attention loss: KL(ã ‖ A(θ)) between the
   attention labels softmax(ã) and the model's attention probabilities, averaged over layers,
   heads and query positions (eager attention: PyTorch's CPU SDPA backward has no double
   backward);
3. **outer loss**: cross-entropy of the inner-updated model on a batch of real training examples;
   its gradient flows through the inner steps (``torch.func.functional_call``, second order) to
   the embeddings, the label and attention-label logits and the log step sizes, updated by Adam.

Decisions where the paper leaves a choice open or this machine forces one, each an option:
dropout is off in both loops (a deterministic objective; evaluation mode); the synthetic
embeddings start from the word embeddings of random real training examples of each class
(truncated / padded to ``--seq_length`` tokens), the label logits from the one-hot class scaled by
``--label_init_scale``, the attention labels from θ0's own attention on those examples (so
λ · KL starts at 0), η_k from ``--lr_init``. Regression tasks (STS-B) are refused: the method's
labels are distributions over classes.

Output (``--output_dir``): ``distilled.safetensors`` for the ``embeddings`` training-data source
(``inputs_embeds`` float32 ``(n, L, hidden)``, ``attention_mask`` ``(n, L)``, soft ``labels``
``(n, C)``, plus ``learning_rates`` ``(steps,)`` and ``attention_labels``
``(n, layers, heads, L, L)``), its card ``distilled.json`` (provenance, schedule, loss history),
and ``checkpoint.pt`` every ``--save_every`` outer steps: a re-run resumes from it.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from .._io import atomic_write, library_versions, save_tensors, write_json
from ..results import check_output_dir
from ..tasks import get_kind, get_task
from ..ticket import check_model_source, get_backbone, local_checkpoint_revision, resolve_model_path
from ..training.weights import load_theta0
from .common import DataArguments, ModelArguments

logger = logging.getLogger("bert_tickets")

DISTILLED_FILE = "distilled.safetensors"
CARD_FILE = "distilled.json"
CHECKPOINT_FILE = "checkpoint.pt"


@dataclass
class DistillArguments:
    """Arguments of ``bert-tickets distill`` (Maekawa et al. 2023's method; see the module docstring)."""

    output_dir: str = field(default="", metadata={"help": "Where the distilled set, its card and the checkpoint go (required)."})
    per_class: int = field(default=1, metadata={"help": "Synthetic examples per class (the paper: 1)."})
    steps: int = field(default=1, metadata={"help": "Inner gradient steps on the synthetic set (the paper's default: 1)."})
    outer_steps: int = field(default=500, metadata={"help": "Outer optimisation steps."})
    seq_length: int = field(default=32, metadata={"help": "Tokens per synthetic example."})
    real_batch_size: int = field(default=32, metadata={"help": "Real training examples in each outer loss."})
    attention_loss_weight: float = field(default=1.0, metadata={"help": "λ: weight of the attention-label loss in the inner loss."})
    data_learning_rate: float = field(default=1e-2, metadata={"help": "Adam learning rate of the embeddings and label logits."})
    lr_learning_rate: float = field(default=1e-2, metadata={"help": "Adam learning rate of the log step sizes."})
    lr_init: float = field(default=1e-2, metadata={"help": "Initial inner step size η_k."})
    label_init_scale: float = field(default=5.0, metadata={"help": "Initial label logits: this times the one-hot class."})
    seed: int = field(default=42, metadata={"help": "Seed of the initial examples, the heads and the real batches."})
    save_every: int = field(default=50, metadata={"help": "Write checkpoint.pt every this many outer steps."})

    def check(self) -> None:
        """One-line ``ValueError`` for values out of range."""
        if not self.output_dir:
            raise ValueError("--output_dir is required")
        for name in ("per_class", "steps", "outer_steps", "real_batch_size", "save_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name} must be >= 1, got {getattr(self, name)}")
        if self.seq_length < 2:
            raise ValueError(f"--seq_length must be >= 2 (a [CLS] and a [SEP]), got {self.seq_length}")
        for name in ("data_learning_rate", "lr_learning_rate", "lr_init"):
            if not getattr(self, name) > 0:
                raise ValueError(f"--{name} must be > 0, got {getattr(self, name)}")
        if self.attention_loss_weight < 0:
            raise ValueError(f"--attention_loss_weight must be >= 0, got {self.attention_loss_weight}")


def head_names(model: torch.nn.Module) -> list[str]:
    """Names of the task head's parameters (everything outside the backbone)."""
    backbone = {id(p) for p in get_backbone(model).parameters()}
    return [n for n, p in model.named_parameters() if id(p) not in backbone]


def fresh_head(model: torch.nn.Module, names: list[str], generator: torch.Generator) -> dict[str, torch.Tensor]:
    """A new draw of the task head: N(0, ``initializer_range``) matrices, zero vectors (BERT's
    ``_init_weights`` for ``nn.Linear``)."""
    params = dict(model.named_parameters())
    std = float(getattr(model.config, "initializer_range", 0.02))
    out = {}
    for n in names:
        p = params[n]
        out[n] = (torch.randn(p.shape, generator=generator) * std).to(p) if p.dim() > 1 else torch.zeros_like(p)
    return out


def attention_kl(attentions: tuple[torch.Tensor, ...], labels: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """KL(labels ‖ attention), averaged over layers, heads and real query positions.

    Args:
        attentions: per layer ``(n, heads, L, L)`` attention probabilities.
        labels: ``(n, layers, heads, L, L)`` attention-label probabilities (rows sum to 1 over
            the key positions a mask allows).
        mask: ``(n, L)`` 1 = a token.
    """
    att = torch.stack(attentions, dim=1).clamp_min(1e-12)  # (n, layers, heads, L, L)
    kl = (labels * (labels.clamp_min(1e-12).log() - att.log())).sum(-1)  # (n, layers, heads, L)
    weight = mask[:, None, None, :].to(kl.dtype)
    return (kl * weight).sum() / (weight.sum() * kl.shape[1] * kl.shape[2])


class Distiller:
    """The learnable set and both loops (see the module docstring).

    Args:
        model: θ0 with a task head (eager attention), evaluation mode.
        init: ``inputs_embeds`` ``(n, L, hidden)``, ``attention_mask`` ``(n, L)``, class ids
            ``(n,)`` of the starting examples.
        args: :class:`DistillArguments`.
    """

    def __init__(self, model: torch.nn.Module, init: dict[str, torch.Tensor], args: DistillArguments):
        self.model, self.args = model, args
        self.names = [n for n, _ in model.named_parameters()]
        # θ0 as leaves the inner gradients are taken against (their .grad is never filled: the
        # outer gradient is taken w.r.t. the learnable set only)
        self.theta0 = {n: p.detach().clone().requires_grad_(True) for n, p in model.named_parameters()}
        self.head = head_names(model)
        self.num_labels = int(model.config.num_labels)
        self.mask = init["attention_mask"].long()
        self.classes = init["labels"].long()
        self.embeds = torch.nn.Parameter(init["inputs_embeds"].clone().float())
        self.label_logits = torch.nn.Parameter(torch.nn.functional.one_hot(self.classes, self.num_labels).float() * args.label_init_scale)
        with torch.no_grad():
            out = model(inputs_embeds=self.embeds, attention_mask=self.mask, output_attentions=True)
        att = torch.stack(out.attentions, dim=1).clamp_min(1e-12)
        self.attention_logits = torch.nn.Parameter(att.log())  # softmax(log p) = p: starts at θ0's attention
        self.log_lrs = torch.nn.Parameter(torch.full((args.steps,), math.log(args.lr_init)))
        self.optimizer = torch.optim.Adam(
            [
                {"params": [self.embeds, self.label_logits, self.attention_logits], "lr": args.data_learning_rate},
                {"params": [self.log_lrs], "lr": args.lr_learning_rate},
            ]
        )
        self.step = 0
        self.history: list[float] = []

    def tensors(self) -> dict[str, torch.Tensor]:
        """The learnable tensors (for checkpoints)."""
        return {
            "embeds": self.embeds,
            "label_logits": self.label_logits,
            "attention_logits": self.attention_logits,
            "log_lrs": self.log_lrs,
        }

    def attention_labels(self) -> torch.Tensor:
        keys = self.mask[:, None, None, None, :].bool()
        return torch.softmax(self.attention_logits.masked_fill(~keys, -1e9), dim=-1)

    def inner(self, head: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """θ0 with ``head``, after ``--steps`` differentiable gradient steps on the set."""
        from torch.func import functional_call

        params = {**self.theta0, **{n: t.detach().requires_grad_(True) for n, t in head.items()}}
        soft = torch.softmax(self.label_logits, dim=-1)
        targets = self.attention_labels()
        for k in range(self.args.steps):
            out = functional_call(
                self.model, params, (), {"inputs_embeds": self.embeds, "attention_mask": self.mask, "output_attentions": True}
            )
            loss = -(soft * torch.log_softmax(out.logits, dim=-1)).sum(-1).mean()
            if self.args.attention_loss_weight > 0:
                loss = loss + self.args.attention_loss_weight * attention_kl(out.attentions, targets, self.mask)
            # the word embeddings are not used (the set is given as inputs_embeds): no gradient, unchanged
            grads = torch.autograd.grad(loss, list(params.values()), create_graph=True, allow_unused=True)
            lr = self.log_lrs[k].exp()
            params = {n: p if g is None else p - lr * g for (n, p), g in zip(params.items(), grads, strict=True)}
        return params

    def outer_loss(self, batch: dict[str, torch.Tensor], head: dict[str, torch.Tensor]) -> torch.Tensor:
        """Cross-entropy on the real ``batch`` of the model trained by :meth:`inner` from ``head``."""
        from torch.func import functional_call

        params = self.inner(head)
        inputs = {k: v for k, v in batch.items() if k != "labels"}
        out = functional_call(self.model, params, (), inputs)
        return torch.nn.functional.cross_entropy(out.logits, batch["labels"].long())

    def train_step(self, batch: dict[str, torch.Tensor], generator: torch.Generator) -> float:
        """One outer step with a fresh head; returns the outer loss."""
        head = fresh_head(self.model, self.head, generator)
        loss = self.outer_loss(batch, head)
        learnable = list(self.tensors().values())
        for p, g in zip(learnable, torch.autograd.grad(loss, learnable), strict=True):
            p.grad = g
        self.optimizer.step()
        self.step += 1
        self.history.append(float(loss))
        return float(loss)

    def export(self) -> dict[str, torch.Tensor]:
        """The set as the ``embeddings`` source reads it, with the schedule and attention labels."""
        return {
            "inputs_embeds": self.embeds.detach().clone().contiguous(),
            "attention_mask": self.mask.clone().contiguous(),
            "labels": torch.softmax(self.label_logits.detach(), dim=-1).contiguous(),
            "learning_rates": self.log_lrs.detach().exp().contiguous(),
            "attention_labels": self.attention_labels().detach().contiguous(),
        }


def initial_examples(task, data, model, per_class: int, seq_length: int, seed: int) -> dict[str, torch.Tensor]:
    """``per_class`` random real training examples of every class (a generator seeded with
    ``seed``), cut or padded to ``seq_length`` tokens, as word embeddings of θ0.

    Raises:
        ValueError: a class with fewer than ``per_class`` training examples.
    """
    labels = torch.as_tensor(data.train["label"])
    gen = torch.Generator().manual_seed(seed)
    chosen = []
    for c in range(task.num_labels):
        idx = torch.nonzero(labels == c).flatten()
        if len(idx) < per_class:
            raise ValueError(f"--per_class {per_class}: class {c} has only {len(idx)} training examples")
        chosen += idx[torch.randperm(len(idx), generator=gen)[:per_class]].tolist()
    ids = torch.zeros(len(chosen), seq_length, dtype=torch.long)
    mask = torch.zeros(len(chosen), seq_length, dtype=torch.long)
    for i, j in enumerate(chosen):
        row = list(data.train[j]["input_ids"])[:seq_length]
        ids[i, : len(row)] = torch.as_tensor(row)
        mask[i, : len(row)] = 1
    with torch.no_grad():
        embeds = model.get_input_embeddings()(ids)
    return {"inputs_embeds": embeds, "attention_mask": mask, "labels": labels[chosen], "indices": torch.as_tensor(chosen)}


def real_batches(data, tokenizer, batch_size: int, seed: int):
    """An endless stream of real training batches (shuffled each pass with ``seed`` + pass),
    padded by the tokenizer's collator: dicts with ``input_ids``, ``attention_mask``,
    ``token_type_ids`` and ``labels``."""
    from transformers import DataCollatorWithPadding

    collate = DataCollatorWithPadding(tokenizer)
    columns = [c for c in ("input_ids", "attention_mask", "token_type_ids", "label") if c in data.train.column_names]
    n, epoch = len(data.train), 0
    while True:
        order = torch.randperm(n, generator=torch.Generator().manual_seed(seed + epoch)).tolist()
        for start in range(0, n - batch_size + 1 if n >= batch_size else 1, batch_size):
            rows = [data.train[i] for i in order[start : start + batch_size]]
            feats = [{k: r[k] for k in columns} for r in rows]
            batch = collate(feats)
            batch["labels"] = batch.pop("label") if "label" in batch else batch["labels"]
            yield dict(batch)
        epoch += 1


def run(model_args: ModelArguments, data_args: DataArguments, args: DistillArguments) -> dict[str, Any]:
    """Distil (or resume, or read back a finished) set; returns its card.

    Raises:
        ValueError / FileNotFoundError / OSError: bad arguments, a regression task, a model or data
            that cannot be read, an output directory holding another distillation (one line,
            before any optimisation).
    """
    from transformers import AutoTokenizer

    args.check()
    task = get_task(data_args.task)
    if task.kind != "glue":
        raise ValueError(f"distill: GLUE-kind classification tasks only, not {task.kind!r} ({task.name})")
    if task.is_regression:
        raise ValueError(
            f"distill: {task.name} is a regression task; the method learns soft labels over classes (Maekawa et al. 2023 "
            "distil classification sets only): use a classification task"
        )
    out = Path(args.output_dir)
    check_output_dir(out)
    card_path = out / CARD_FILE
    hparams = {
        "task": task.name,
        "model": resolve_model_path(model_args.model_name_or_path),
        "model_revision": local_checkpoint_revision(model_args.model_name_or_path) or model_args.revision,
        "data_dir": data_args.data_dir,
        "max_train_samples": data_args.max_train_samples,
        **{k: v for k, v in asdict(args).items() if k not in ("output_dir", "save_every")},
    }
    if card_path.is_file():
        card = json.loads(card_path.read_text())
        if card.get("hyperparameters") != hparams:
            raise ValueError(f"{out} holds a distillation with other hyperparameters; use another --output_dir")
        if card.get("finished"):
            logger.info("distillation already complete: %s", out / DISTILLED_FILE)
            return card
    check_model_source(model_args.model_name_or_path)
    tokenizer = AutoTokenizer.from_pretrained(model_args.model_name_or_path, revision=model_args.revision, cache_dir=model_args.cache_dir)
    kind = get_kind(task.kind)
    data = kind.prepare(task, tokenizer, data_args.data_dir, model_args.cache_dir, data_args.max_seq_length, data_args.max_train_samples, 1)
    model = load_theta0(task, model_args.model_name_or_path, args.seed, revision=model_args.revision, cache_dir=model_args.cache_dir)
    model.set_attn_implementation("eager")  # double backward through attention (no CPU SDPA double backward)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    init = initial_examples(task, data, model, args.per_class, args.seq_length, args.seed)
    distiller = Distiller(model, init, args)
    generator = torch.Generator().manual_seed(args.seed)
    checkpoint = out / CHECKPOINT_FILE
    out.mkdir(parents=True, exist_ok=True)
    write_json(card_path, {"hyperparameters": hparams, "finished": False})
    if checkpoint.is_file():
        state = torch.load(checkpoint, weights_only=False)
        with torch.no_grad():
            for name, tensor in distiller.tensors().items():
                tensor.copy_(state["tensors"][name])
        distiller.optimizer.load_state_dict(state["optimizer"])
        distiller.step, distiller.history = state["step"], state["history"]
        generator.set_state(state["generator"])
        logger.info("distill: resuming from %s (outer step %d)", checkpoint, distiller.step)
    batches = real_batches(data, tokenizer, args.real_batch_size, args.seed)
    for _ in range(distiller.step):  # the same real batches as an uninterrupted run
        next(batches)
    from tqdm.auto import tqdm

    started = time.perf_counter()
    bar = tqdm(total=args.outer_steps, initial=distiller.step, desc="distill (outer steps)")
    while distiller.step < args.outer_steps:
        loss = distiller.train_step(next(batches), generator)
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.4f}", lr=f"{float(distiller.log_lrs.exp().mean()):.3g}")
        if distiller.step % args.save_every == 0 or distiller.step == args.outer_steps:
            state = {
                "tensors": {k: v.detach().clone() for k, v in distiller.tensors().items()},
                "optimizer": distiller.optimizer.state_dict(),
                "step": distiller.step,
                "history": distiller.history,
                "generator": generator.get_state(),
            }
            atomic_write(checkpoint, lambda tmp, state=state: torch.save(state, tmp))
    bar.close()
    save_tensors(out / DISTILLED_FILE, distiller.export())
    card = {
        "hyperparameters": hparams,
        "finished": True,
        "kind": "distilled_embeddings",
        "method": "attention labels (Maekawa et al. 2023, ACL), embedding-level; head re-initialised every outer step",
        "file": DISTILLED_FILE,
        "examples": int(init["labels"].numel()),
        "classes": init["labels"].tolist(),
        "initial_training_indices": init["indices"].tolist(),
        "inner_steps": args.steps,
        "learning_rates": distiller.log_lrs.detach().exp().tolist(),
        "optimizer": "sgd",
        "loss_history": distiller.history,
        "wall_s": time.perf_counter() - started,
        "versions": library_versions(),
    }
    write_json(card_path, card)
    logger.info(
        "distilled %d examples (%d per class) for %s: outer loss %.4f -> %.4f; learned step sizes %s; %s",
        card["examples"],
        args.per_class,
        task.name,
        distiller.history[0] if distiller.history else float("nan"),
        distiller.history[-1] if distiller.history else float("nan"),
        ", ".join(f"{v:.3g}" for v in card["learning_rates"]),
        out / DISTILLED_FILE,
    )
    return card


#: The argument dataclasses of ``distill``.
ARGUMENTS = (ModelArguments, DataArguments, DistillArguments)
