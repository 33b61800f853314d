"""The ``adversarial`` objective: one-step adversarial training on the word embeddings.

The perturbation is the gradient-sign step of FGSM (Goodfellow, Shlens & Szegedy 2015,
*Explaining and Harnessing Adversarial Examples*, Section 5, Eq. 2 — ``norm=sign``, an L∞ ball),
or the L2-normalised gradient step of Miyato, Dai & Goodfellow 2017 (*Adversarial Training
Methods for Semi-Supervised Text Classification*, Section 3, Eq. 3 — ``norm=l2``, per example),
applied, as they and FreeLB (Zhu et al. 2020, *FreeLB: Enhanced Adversarial Training for Natural
Language Understanding*, Section 2) do for text, to the word embeddings (``inputs_embeds``, before
BERT adds position and token-type embeddings); padding positions are not perturbed. The loss is
Goodfellow et al.'s mixture ``alpha * L(x) + (1 - alpha) * L(x + delta)`` with
``delta = epsilon * g / ||g||`` (``g`` = the gradient of ``L(x)`` w.r.t. the embeddings, held
fixed: no gradient through ``delta``). Our choices: one ascent step (FreeLB takes K steps and
averages their gradients; FGSM is K = 1), ``alpha = 0.5`` as in Goodfellow et al., no random
initialisation of ``delta``. Two forward and two backward passes per batch.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .base import TrainingObjective, register_objective, with_embeddings, word_embeddings

#: ``norm`` choices: gradient sign (FGSM, L∞) or the gradient over its L2 norm per example (Miyato et al.).
NORMS = ("sign", "l2")


@dataclass
class AdversarialOptions:
    """Options of the ``adversarial`` objective."""

    epsilon: float = field(
        default=1e-2, metadata={"help": "size of the perturbation of the word embeddings (L∞ for sign, L2 per example for l2)"}
    )
    alpha: float = field(default=0.5, metadata={"help": "weight of the clean loss, in [0, 1] (Goodfellow et al. 2015: 0.5)"})
    norm: str = field(default="sign", metadata={"help": "sign (FGSM) or l2 (Miyato et al. 2017)"})

    def __post_init__(self):
        if not self.epsilon > 0:
            raise ValueError(f"training objective adversarial: epsilon must be > 0, got {self.epsilon}")
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"training objective adversarial: alpha must be in [0, 1], got {self.alpha}")
        if self.norm not in NORMS:
            raise ValueError(f"training objective adversarial: norm {self.norm!r}: choose one of {', '.join(NORMS)}")


def perturbation(grad: torch.Tensor, attention_mask: torch.Tensor | None, epsilon: float, norm: str) -> torch.Tensor:
    """``delta`` of shape ``grad``'s ``(batch, L, hidden)``: ``epsilon * sign(grad)`` or
    ``epsilon * grad / ||grad||_2`` (norm over each example's unmasked ``(L, hidden)``; 0 for a
    zero gradient), zero at padding positions (``attention_mask`` 0)."""
    keep = None if attention_mask is None else attention_mask.to(grad.dtype).unsqueeze(-1)
    if keep is not None:
        grad = grad * keep
    if norm == "sign":
        delta = grad.sign()
    else:
        size = torch.linalg.vector_norm(grad.flatten(1), dim=1).clamp_min(torch.finfo(grad.dtype).tiny)
        delta = grad / size.view(-1, 1, 1)
    return epsilon * delta


@register_objective
class AdversarialObjective(TrainingObjective):
    """``alpha * L(x) + (1 - alpha) * L(x + delta)``, ``delta`` one FGSM / L2 step on the word embeddings."""

    name = "adversarial"
    summary = "one-step adversarial perturbation of the word embeddings (FGSM / Miyato et al. 2017)"
    Options = AdversarialOptions

    def loss(self, model, inputs, options, base_loss):
        embeds = word_embeddings(model, inputs)
        if not embeds.requires_grad:  # given inputs_embeds, or frozen word embeddings
            embeds = embeds.detach().requires_grad_(True)
        clean, outputs = base_loss(model, with_embeddings(inputs, embeds))
        (grad,) = torch.autograd.grad(clean, embeds, retain_graph=True)
        delta = perturbation(grad.detach(), inputs.get("attention_mask"), options.epsilon, options.norm)
        adv, _ = base_loss(model, with_embeddings(inputs, embeds + delta))
        return options.alpha * clean + (1.0 - options.alpha) * adv, outputs
