"""Ordered SGD (Kawaguchi & Lu, AISTATS 2020) and the small-loss trick: each step learns from the q highest or lowest losses.

One forward pass over the whole batch gives every sample's loss; the q
largest (Ordered SGD) or smallest (small-loss, the single-network form of
Co-teaching's selection against noisy labels) are kept, and the step
differentiates the mean loss over those q alone, so the gradient is exactly
plain SGD's gradient on those q samples (the others' losses are masked out of
the one backward pass). q = max(1, round(f x batch)), f falling from 1 to the
setting's `fraction` over its first `ramp_epochs` epochs (settings/methods.py
OrderedConfig). The reported training loss is the whole batch's mean.
"""

from __future__ import annotations

import torch

from .selection import Selection, StepLoss, sample_losses


def kept_fraction(fraction: float, ramp_epochs: int, epoch: int) -> float:
    """The fraction kept at `epoch` (1-based): 1 at epoch 1, linearly down to `fraction` at epoch `ramp_epochs`, then `fraction`."""
    if ramp_epochs <= 1:
        return fraction
    progress = min(1.0, (epoch - 1) / (ramp_epochs - 1))
    return 1.0 - (1.0 - fraction) * progress


def kept_count(batch: int, fraction: float) -> int:
    """q for a batch of `batch` samples: round(fraction x batch), at least 1."""
    return max(1, min(batch, round(fraction * batch)))


class OrderedSelection(Selection):
    """Uniform batches; the loss is the mean over the batch's q highest (or lowest) losses."""

    def loss(self, model, inputs: torch.Tensor, targets: torch.Tensor, indices: torch.Tensor) -> StepLoss:
        losses = sample_losses(model, inputs, targets)
        q = kept_count(len(targets), kept_fraction(self.settings.fraction, self.settings.ramp_epochs, self.epoch))
        chosen = torch.topk(losses.detach(), q, largest=self.settings.keep == "largest", sorted=False).indices
        return StepLoss(losses[chosen].mean(), losses.detach().mean(), len(targets))
