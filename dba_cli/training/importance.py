"""Importance sampling by an upper bound of the gradient norm (Katharopoulos & Fleuret, ICML 2018, arXiv:1803.00942).

While on, each step presamples b = min(ceil(presample x B), N) samples
uniformly (without replacement), scores each by the norm of its loss gradient
at the last layer's output, ||softmax(z_i) − onehot(y_i)|| (one forward pass,
no gradient: for cross-entropy that bounds the per-sample gradient norm up to
a constant), draws B of the b with replacement with probability
g_i = score_i / Σ score, and differentiates (1/B) Σ_j w_j ℓ_j with
w_j = 1 / (b g_j): in expectation over the draw, exactly the presample's mean
gradient (tests/test_peers.py checks it over many draws). Switching: with
`switch: variance` it is on once the smoothed estimate τ exceeds `threshold`
(the paper's rule, its code's formula τ_new = 1/sqrt(1 − Σ(g − 1/n)² / Σ g²),
smoothed by `smoothing`); until then batches are plain SGD's and their own
scores update τ. The reported training loss is the presample's mean loss
(uniform batch's, while off).
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
import torch.nn.functional as F

from .selection import Selection, StepLoss, sample_losses, uniform_batches


def gradient_bound(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Per sample, ||softmax(z) − onehot(y)||: the norm of the cross-entropy's gradient at the output z."""
    residual = torch.softmax(logits, dim=1)
    residual[torch.arange(len(targets), device=targets.device), targets] -= 1.0
    return torch.linalg.vector_norm(residual, dim=1)


def draw(scores: torch.Tensor, count: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """`count` indices drawn with replacement in proportion to `scores`, and their weights 1 / (n g_i) (float64, CPU)."""
    scores = scores.detach().double().cpu()
    total = scores.sum()
    g = scores / total if total > 0 else torch.full_like(scores, 1.0 / len(scores))
    g = g.clamp_min(torch.finfo(torch.float64).tiny)  # a zero score (a sample fitted exactly) is never drawn; weight stays finite
    g = g / g.sum()
    drawn = torch.multinomial(g, count, replacement=True, generator=generator)
    return drawn, 1.0 / (len(scores) * g[drawn])


def variance_reduction(scores: torch.Tensor) -> float:
    """The paper's code's estimate: 1 / sqrt(1 − Σ(g − 1/n)² / Σ g²) for g the normalised scores (1: nothing to gain)."""
    scores = scores.detach().double().cpu()
    n = len(scores)
    total = scores.sum()
    if total <= 0:
        return 1.0
    g = scores / total
    ratio = float(((g - 1.0 / n) ** 2).sum() / (g**2).sum())
    return 1.0 / math.sqrt(max(1e-12, 1.0 - ratio))


class ImportanceSampling(Selection):
    def __init__(self, settings, epochs: int) -> None:
        super().__init__(settings, epochs)
        self.tau = 0.0
        self.batch = 1
        self.generator: torch.Generator | None = None
        self.presampled = False  # whether the batch last handed out is a presample

    @property
    def on(self) -> bool:
        return self.settings.switch == "always" or self.tau > self.settings.threshold

    def batches(self, model, inputs, targets, batch_size: int, generator: torch.Generator, epoch: int) -> Iterator[torch.Tensor]:
        self.epoch, self.generator = epoch, generator
        n = len(targets)
        self.batch = min(batch_size, n)
        presample = min(n, math.ceil(self.settings.presample * self.batch))
        for uniform in uniform_batches(n, batch_size, generator, inputs.device):
            self.presampled = self.on  # decided when the batch is asked for: after the step before it updated tau
            yield torch.randperm(n, generator=generator)[:presample].to(inputs.device) if self.presampled else uniform

    def loss(self, model, inputs, targets, indices) -> StepLoss:
        if self.presampled:
            return self.importance_loss(model, inputs, targets)
        logits = model(inputs)
        losses = F.cross_entropy(logits, targets, reduction="none")
        self.update(gradient_bound(logits.detach(), targets))
        mean = losses.mean()
        return StepLoss(mean, mean.detach(), len(targets))

    def importance_loss(self, model, inputs, targets) -> StepLoss:
        with torch.no_grad():
            logits = model(inputs)
            reported = F.cross_entropy(logits, targets)
            scores = gradient_bound(logits, targets)
        drawn, weights = draw(scores, self.batch, self.generator)
        drawn = drawn.to(inputs.device)
        losses = sample_losses(model, inputs[drawn], targets[drawn])
        loss = (weights.to(losses.dtype).to(losses.device) * losses).mean()
        self.update(scores)
        return StepLoss(loss, reported, len(targets))

    def update(self, scores: torch.Tensor) -> None:
        a = self.settings.smoothing
        self.tau = a * self.tau + (1 - a) * variance_reduction(scores)

    def state_dict(self) -> dict:
        return {"tau": self.tau}

    def load_state_dict(self, state: dict) -> None:
        self.tau = float(state["tau"])
