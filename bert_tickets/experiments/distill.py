"""``bert-tickets distill``: embedding-level dataset distillation against θ0 — a few learned
examples per class (input embeddings, soft labels, attention labels) and learned per-step
learning rates such that ``--steps`` gradient steps from the pre-trained model on them fit the
real training data.

Method: Maekawa et al. 2023, *Dataset Distillation with Attention Labels for Fine-tuning BERT*
(ACL), as their code implements it (arumaekawa/dataset-distillation-with-attention-labels,
``src/distilled_data.py``, ``src/trainer.py``, ``configs/default.yaml``) — chosen over gradient /
trajectory matching because it is the method designed for fine-tuning a *pre-trained* BERT from
a few synthetic examples (the situation of an IMP level, which always restarts from θ0), and it
needs no expert trajectories. Per outer step:

1. the encoder restarts from θ0 and the task head is re-drawn (N(0, ``initializer_range``)
   weights, zero biases: their ``model.init_weights()``);
2. **inner loop**: ``--steps`` (their default 1) steps of plain gradient descent on *all*
   parameters, θ ← θ − η_k ∇θ L_inner, on the whole distilled set, η_k = softplus(learned scalar),
   one per step, initialised at ``--lr_init`` (1e-2); L_inner = cross-entropy against the labels
   + λ · KL(attention labels ‖ the model's attention probabilities) summed over keys and averaged
   over examples, layers, heads and query rows (λ = 1; ``--attention_labels cls``: the [CLS]
   query row of every layer and head, their SST-2 example; ``all``: every row; ``none``);
   dropout off; eager attention (PyTorch's CPU SDPA backward has no double backward);
3. **outer loss**: cross-entropy of the inner-updated model on a batch of 32 real training
   examples; its gradient flows through the inner steps (``torch.func.functional_call``, second
   order) to the embeddings, labels, attention labels and step sizes, updated by AdamW (lr 1e-2,
   no weight decay, linear schedule with 10% warm-up, gradient norm clipped to 1.0 over all of
   them together).

Initialisation as theirs: embeddings N(0, 1) of shape ``(per_class · C, --seq_length, hidden)``
with no padding (every position attended), label logits one-hot, attention labels N(0, 1)
logits. Labels: ``--label_type soft`` (learned logits read through softmax; default here) or
``hard`` (fixed one-hot: their yaml default); their third mode, ``unrestricted`` targets, is not
offered because the ``embeddings`` source takes distributions.

Changed for this machine (each an option): their run is 30 epochs over the whole real training
set with 512-token synthetic examples on a GPU; ``--outer_steps`` (default 500) and
``--seq_length`` (default 128; theirs 512) are reduced for CPU, and the best-epoch selection on
the validation split is not done (it selects on the split it reports). Evaluation as theirs
(``src/evaluator.py``): ``--eval_models`` fresh models (theirs 100; default 5 here) are trained
on the set with its own inner steps and step sizes and scored on the real validation split;
mean ± std in the card. Regression tasks (STS-B) are refused: the labels are distributions over
classes.

Device: a CUDA device when one is present (``--use_cpu`` stays on the CPU); the random draws
(initial set, heads, real batches) come from CPU generators, so they are the same on either.

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
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from .._io import atomic_write, library_versions, save_tensors, write_json
from ..results import check_output_dir
from ..tasks import get_kind, get_task
from ..ticket import check_model_source, get_backbone, local_checkpoint_revision, resolve_model_path
from ..training.objectives.attention_labels import attention_kl
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
    per_class: int = field(default=1, metadata={"help": "Synthetic examples per class (their default: 1)."})
    steps: int = field(default=1, metadata={"help": "Inner gradient steps on the synthetic set (their default: 1)."})
    outer_steps: int = field(default=500, metadata={"help": "Outer optimisation steps (theirs: 30 epochs of the real training set)."})
    seq_length: int = field(default=128, metadata={"help": "Tokens per synthetic example (theirs: 512)."})
    real_batch_size: int = field(default=32, metadata={"help": "Real training examples in each outer loss (theirs: 32)."})
    label_type: str = field(default="soft", metadata={"help": "soft: learned label distributions; hard: fixed one-hot labels."})
    attention_labels: str = field(default="cls", metadata={"help": "cls: the [CLS] query row; all: every row; none."})
    attention_loss_weight: float = field(default=1.0, metadata={"help": "λ of the attention-label loss (theirs: 1.0)."})
    distill_learning_rate: float = field(default=1e-2, metadata={"help": "AdamW learning rate of every distilled tensor (theirs: 1e-2)."})
    warmup_ratio: float = field(default=0.1, metadata={"help": "Warm-up share of the outer linear schedule (theirs: 0.1)."})
    max_grad_norm: float = field(default=1.0, metadata={"help": "Clip of the distilled tensors' gradient norm (theirs: 1.0)."})
    lr_init: float = field(default=1e-2, metadata={"help": "Initial inner step size η_k (theirs: 1e-2)."})
    eval_models: int = field(default=5, metadata={"help": "Fresh models trained on the set and scored at the end (theirs: 100)."})
    seed: int = field(default=42, metadata={"help": "Seed of the initial tensors, the heads and the real batches."})
    save_every: int = field(default=50, metadata={"help": "Write checkpoint.pt every this many outer steps."})
    use_cpu: bool = field(
        default=False,
        metadata={
            "help": "Stay on the CPU even when a CUDA device is present (as TrainingArguments.use_cpu; "
            "the device is not a hyperparameter of the set: a run resumes on either)."
        },
    )

    def check(self) -> None:
        """One-line ``ValueError`` for values out of range."""
        if not self.output_dir:
            raise ValueError("--output_dir is required")
        for name in ("per_class", "steps", "outer_steps", "real_batch_size", "save_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name} must be >= 1, got {getattr(self, name)}")
        if self.eval_models < 0:
            raise ValueError(f"--eval_models must be >= 0, got {self.eval_models}")
        if self.seq_length < 2:
            raise ValueError(f"--seq_length must be >= 2, got {self.seq_length}")
        for name in ("distill_learning_rate", "lr_init", "max_grad_norm"):
            if not getattr(self, name) > 0:
                raise ValueError(f"--{name} must be > 0, got {getattr(self, name)}")
        if self.attention_loss_weight < 0 or not 0 <= self.warmup_ratio < 1:
            raise ValueError("--attention_loss_weight must be >= 0 and --warmup_ratio in [0, 1)")
        if self.label_type not in ("soft", "hard"):
            raise ValueError(f"--label_type {self.label_type!r}: choose soft or hard")
        if self.attention_labels not in ("cls", "all", "none"):
            raise ValueError(f"--attention_labels {self.attention_labels!r}: choose cls, all or none")


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


class Distiller:
    """The learnable set and both loops (see the module docstring).

    Args:
        model: θ0 with a task head (eager attention), evaluation mode.
        init: ``inputs_embeds`` ``(n, L, hidden)``, ``attention_mask`` ``(n, L)``, class ids
            ``(n,)`` of the starting examples.
        args: :class:`DistillArguments`.
    """

    def __init__(self, model: torch.nn.Module, init: dict[str, torch.Tensor], args: DistillArguments, generator: torch.Generator):
        self.model, self.args = model, args
        # θ0 as leaves the inner gradients are taken against (their .grad is never filled: the
        # outer gradient is taken w.r.t. the distilled tensors only)
        self.theta0 = {n: p.detach().clone().requires_grad_(True) for n, p in model.named_parameters()}
        self.head = head_names(model)
        self.num_labels = int(model.config.num_labels)
        self.mask = init["attention_mask"].long()
        self.classes = init["labels"].long()
        self.embeds = torch.nn.Parameter(init["inputs_embeds"].clone().float())
        self.label_logits = torch.nn.Parameter(
            torch.nn.functional.one_hot(self.classes, self.num_labels).float(), requires_grad=args.label_type == "soft"
        )
        n, length = self.mask.shape
        cfg = model.config
        rows = {"cls": 1, "all": length, "none": 0}[args.attention_labels]
        shape = (n, cfg.num_hidden_layers, cfg.num_attention_heads, rows, length)
        self.attention_logits = torch.nn.Parameter(
            torch.randn(shape, generator=generator).to(self.embeds.device), requires_grad=rows > 0 and args.attention_loss_weight > 0
        )
        # η_k = softplus(raw_k), raw initialised so that softplus(raw) = lr_init (their parametrisation)
        raw = math.log(math.expm1(args.lr_init))
        self.raw_lrs = torch.nn.Parameter(torch.full((args.steps,), raw, device=self.embeds.device))
        learnable = [t for t in self.tensors().values() if t.requires_grad]
        self.optimizer = torch.optim.AdamW(learnable, lr=args.distill_learning_rate, weight_decay=0.0)
        warm = int(args.warmup_ratio * args.outer_steps)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer,
            lambda s: (s + 1) / max(1, warm) if s < warm else max(0.0, (args.outer_steps - s) / max(1, args.outer_steps - warm)),
        )
        self.step = 0
        self.history: list[float] = []

    def tensors(self) -> dict[str, torch.Tensor]:
        """The learnable tensors (for checkpoints)."""
        return {
            "embeds": self.embeds,
            "label_logits": self.label_logits,
            "attention_logits": self.attention_logits,
            "raw_lrs": self.raw_lrs,
        }

    def learning_rates(self) -> torch.Tensor:
        """The inner step sizes η_k = softplus(raw_k), ``(steps,)``."""
        return torch.nn.functional.softplus(self.raw_lrs)

    def labels(self) -> torch.Tensor:
        """The label distributions ``(n, C)``: softmax of the learned logits (soft), or one-hot (hard)."""
        return torch.softmax(self.label_logits, dim=-1) if self.args.label_type == "soft" else self.label_logits

    def attention_labels(self) -> torch.Tensor:
        """``(n, layers, heads, R, L)`` attention-label probabilities (R = 0 without them)."""
        return torch.softmax(self.attention_logits, dim=-1)

    def inner(self, head: dict[str, torch.Tensor], create_graph: bool = True) -> dict[str, torch.Tensor]:
        """θ0 with ``head``, after ``--steps`` gradient steps on the set: differentiable (for the
        outer loss) with ``create_graph``, else first-order only (evaluation: no second-order
        graph is kept in memory)."""
        from torch.func import functional_call

        params = {**self.theta0, **{n: t.detach().requires_grad_(True) for n, t in head.items()}}
        soft = self.labels()
        targets = self.attention_labels()
        use_attention = targets.shape[-2] > 0 and self.args.attention_loss_weight > 0
        lrs = self.learning_rates()
        for k in range(self.args.steps):
            inputs = {"inputs_embeds": self.embeds, "attention_mask": self.mask, "output_attentions": use_attention}
            out = functional_call(self.model, params, (), inputs)
            loss = -(soft * torch.log_softmax(out.logits, dim=-1)).sum(-1).mean()
            if use_attention:
                loss = loss + self.args.attention_loss_weight * attention_kl(out.attentions, targets)
            # the word embeddings are not used (the set is given as inputs_embeds): no gradient, unchanged
            grads = torch.autograd.grad(loss, list(params.values()), create_graph=create_graph, allow_unused=True)
            lr = lrs[k]
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
        learnable = [t for t in self.tensors().values() if t.requires_grad]
        for p, g in zip(learnable, torch.autograd.grad(loss, learnable), strict=True):
            p.grad = g
        torch.nn.utils.clip_grad_norm_(learnable, self.args.max_grad_norm)
        self.optimizer.step()
        self.scheduler.step()
        self.step += 1
        self.history.append(float(loss))
        return float(loss)

    def export(self) -> dict[str, torch.Tensor]:
        """The set as the ``embeddings`` source reads it, with the schedule and attention labels
        (CPU tensors, whatever device the set was distilled on)."""
        out = {
            "inputs_embeds": self.embeds.detach().cpu().clone().contiguous(),
            "attention_mask": self.mask.cpu().clone().contiguous(),
            "labels": self.labels().detach().cpu().clone().contiguous(),
            "learning_rates": self.learning_rates().detach().cpu().contiguous(),
            "attention_loss_weight": torch.tensor(float(self.args.attention_loss_weight)),
        }
        if self.attention_logits.shape[-2] > 0:
            out["attention_labels"] = self.attention_labels().detach().cpu().contiguous()
        return out

    def evaluate(self, data, task, models: int, generator: torch.Generator, evaluate_fn) -> list[float]:
        """Their evaluation (``src/evaluator.py``): ``models`` times, θ0 with a fresh head trained
        on the set with its own inner steps and step sizes (no graph), scored by
        ``evaluate_fn(params)`` on the real validation split."""
        scores = []
        for _ in range(models):
            head = fresh_head(self.model, self.head, generator)
            params = {n: t.detach() for n, t in self.inner(head, create_graph=False).items()}
            scores.append(evaluate_fn(params))
        return scores


def initial_set(task, model, per_class: int, seq_length: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """Their initialisation (``src/distilled_data.py``): ``inputs_embeds`` N(0, 1) of shape
    ``(per_class · C, seq_length, hidden)``, every position attended (no padding), classes
    ``0 … C−1`` each ``per_class`` times."""
    n = per_class * task.num_labels
    hidden = model.get_input_embeddings().embedding_dim
    return {
        "inputs_embeds": torch.randn(n, seq_length, hidden, generator=generator),
        "attention_mask": torch.ones(n, seq_length, dtype=torch.long),
        "labels": torch.arange(task.num_labels).repeat_interleave(per_class),
    }


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


def _evaluate(distiller: Distiller, model, task, data, tokenizer, args: DistillArguments, out: Path) -> list[float]:
    """``--eval_models`` scores of fresh models trained on the set (:meth:`Distiller.evaluate`)."""
    import copy

    from transformers import TrainingArguments

    from ..training.finetune import evaluate_model

    on_cpu = next(model.parameters()).device.type == "cpu"
    eval_args = TrainingArguments(output_dir=str(out), per_device_eval_batch_size=64, report_to=[], disable_tqdm=True, use_cpu=on_cpu)

    def score(params: dict[str, torch.Tensor]) -> float:
        probe = copy.deepcopy(model)
        probe.load_state_dict(params, strict=False)
        return float(evaluate_model(probe, task, data, eval_args, output_dir=str(out), tokenizer=tokenizer)[task.primary_metric])

    return distiller.evaluate(data, task, args.eval_models, torch.Generator().manual_seed(args.seed + 1), score)


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
        raise ValueError(f"GLUE-kind classification tasks only, not {task.kind!r} ({task.name})")
    if task.is_regression:
        raise ValueError(
            f"{task.name} is a regression task; the method learns soft labels over classes (Maekawa et al. 2023 "
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
        **{k: v for k, v in asdict(args).items() if k not in ("output_dir", "save_every", "use_cpu")},
    }
    if card_path.is_file():
        card = json.loads(card_path.read_text())
        if card.get("hyperparameters") != hparams:
            raise ValueError(f"{out} holds a distillation with other hyperparameters; use another --output_dir")
        if card.get("finished"):
            logger.info("distillation already complete: %s", out / DISTILLED_FILE)
            return card
    check_model_source(model_args.model_name_or_path)
    from transformers import AutoConfig

    positions = AutoConfig.from_pretrained(model_args.model_name_or_path, revision=model_args.revision).max_position_embeddings
    if args.seq_length > positions:
        raise ValueError(f"--seq_length {args.seq_length} exceeds the model's {positions} positions")
    tokenizer = AutoTokenizer.from_pretrained(model_args.model_name_or_path, revision=model_args.revision, cache_dir=model_args.cache_dir)
    kind = get_kind(task.kind)
    data = kind.prepare(
        task,
        tokenizer,
        data_args.data_dir,
        model_args.cache_dir,
        data_args.max_seq_length,
        data_args.max_train_samples,
        data_args.max_eval_samples,
    )
    model = load_theta0(task, model_args.model_name_or_path, args.seed, revision=model_args.revision, cache_dir=model_args.cache_dir)
    model.set_attn_implementation("eager")  # double backward through attention (no CPU SDPA double backward)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    device = torch.device("cpu" if args.use_cpu or not torch.cuda.is_available() else "cuda")
    model.to(device)
    generator = torch.Generator().manual_seed(args.seed)  # on the CPU: the same draws on every device
    init = {k: v.to(device) for k, v in initial_set(task, model, args.per_class, args.seq_length, generator).items()}
    distiller = Distiller(model, init, args, generator)
    checkpoint = out / CHECKPOINT_FILE
    out.mkdir(parents=True, exist_ok=True)
    write_json(card_path, {"hyperparameters": hparams, "finished": False})
    if checkpoint.is_file():
        state = torch.load(checkpoint, weights_only=False, map_location="cpu")
        with torch.no_grad():
            for name, tensor in distiller.tensors().items():
                tensor.copy_(state["tensors"][name])
        distiller.optimizer.load_state_dict(state["optimizer"])
        distiller.scheduler.load_state_dict(state["scheduler"])
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
        loss = distiller.train_step({k: v.to(device) for k, v in next(batches).items()}, generator)
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.4f}", lr=f"{float(distiller.learning_rates().mean()):.3g}")
        if distiller.step % args.save_every == 0 or distiller.step == args.outer_steps:
            state = {
                "tensors": {k: v.detach().cpu().clone() for k, v in distiller.tensors().items()},
                "optimizer": distiller.optimizer.state_dict(),
                "scheduler": distiller.scheduler.state_dict(),
                "step": distiller.step,
                "history": distiller.history,
                "generator": generator.get_state(),
            }
            atomic_write(checkpoint, lambda tmp, state=state: torch.save(state, tmp))
    bar.close()
    save_tensors(out / DISTILLED_FILE, distiller.export())
    scores = _evaluate(distiller, model, task, data, tokenizer, args, out / "eval")
    card = {
        "hyperparameters": hparams,
        "finished": True,
        "kind": "distilled_embeddings",
        "method": "attention labels (Maekawa et al. 2023, ACL), embedding-level; head re-initialised every outer step",
        "file": DISTILLED_FILE,
        "examples": int(init["labels"].numel()),
        "classes": init["labels"].tolist(),
        "label_type": args.label_type,
        "attention_labels": args.attention_labels,
        "inner_steps": args.steps,
        "learning_rates": distiller.learning_rates().detach().tolist(),
        "optimizer": "sgd",
        "evaluation": {
            "models": args.eval_models,
            "metric": task.primary_metric,
            "scores": scores,
            "mean": sum(scores) / len(scores) if scores else None,
            "std": statistics.stdev(scores) if len(scores) > 1 else None,
            "protocol": "θ0 + a fresh head, the set's inner steps and step sizes, scored on the real validation split",
        },
        "loss_history": distiller.history,
        "wall_s": time.perf_counter() - started,
        "versions": library_versions(),
    }
    write_json(card_path, card)
    logger.info(
        "distilled %d examples (%d per class) for %s: outer loss %.4f -> %.4f; learned step sizes %s; %s of %d fresh models "
        "trained on it: %s; %s",
        card["examples"],
        args.per_class,
        task.name,
        distiller.history[0] if distiller.history else float("nan"),
        distiller.history[-1] if distiller.history else float("nan"),
        ", ".join(f"{v:.3g}" for v in card["learning_rates"]),
        task.primary_metric,
        len(scores),
        ", ".join(f"{v:.4f}" for v in scores) or "not evaluated",
        out / DISTILLED_FILE,
    )
    return card


#: The argument dataclasses of ``distill``.
ARGUMENTS = (ModelArguments, DataArguments, DistillArguments)
