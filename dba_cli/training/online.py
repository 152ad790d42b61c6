"""Online batch selection (Loshchilov & Hutter, arXiv:1511.06343): batches drawn by the rank of each sample's latest loss.

Every training sample's latest known loss is kept. At the start of an epoch
whose number is 1 + a multiple of `refresh_epochs`, all N losses are
recomputed in one forward pass (no gradient); in between, each step's forward
pass updates the losses of its own batch. Each batch is drawn without
replacement within itself, with probability p(rank r) ∝ exp(−ln(s_e) r / N),
r = 0 for the highest loss, so the highest-loss sample is about s_e times as
likely as the lowest; s_e decays log-linearly from `pressure` to
`pressure_end` over the epochs (constant without it). An epoch is ceil(N / B)
batches. The draw reads the run's batch generator, on the CPU, where the loss
table lives (N ≤ 60,000 floats).
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch

from .selection import Selection, StepLoss, sample_losses

REFRESH_CHUNK = 10_000  # samples per forward pass when all losses are recomputed


def pressure_at(pressure: float, pressure_end: float | None, epoch: int, epochs: int) -> float:
    """s_e at `epoch` (1-based): `pressure` at epoch 1, log-linearly to `pressure_end` at the last epoch."""
    if pressure_end is None or epochs <= 1:
        return pressure
    return pressure * (pressure_end / pressure) ** ((epoch - 1) / (epochs - 1))


def rank_probabilities(losses: torch.Tensor, pressure: float) -> torch.Tensor:
    """p(rank r) ∝ exp(−ln(s_e) r / N), r = 0 the highest loss (ties: the lower index first), in float64."""
    n = len(losses)
    order = torch.argsort(losses, descending=True, stable=True)
    ranks = torch.empty(n, dtype=torch.float64)
    ranks[order] = torch.arange(n, dtype=torch.float64)
    weights = torch.exp(-math.log(pressure) * ranks / n)
    return weights / weights.sum()


class OnlineBatchSelection(Selection):
    def __init__(self, settings, epochs: int) -> None:
        super().__init__(settings, epochs)
        self.losses: torch.Tensor | None = None  # the latest loss of every training sample, float32 on the CPU

    def refresh(self, model, inputs: torch.Tensor, targets: torch.Tensor) -> None:
        with torch.no_grad():
            parts = [sample_losses(model, inputs[i : i + REFRESH_CHUNK], targets[i : i + REFRESH_CHUNK])
                     for i in range(0, len(targets), REFRESH_CHUNK)]
        self.losses = torch.cat(parts).float().cpu()

    def batches(self, model, inputs, targets, batch_size: int, generator: torch.Generator, epoch: int) -> Iterator[torch.Tensor]:
        self.epoch = epoch
        if self.losses is None or (epoch - 1) % self.settings.refresh_epochs == 0:
            self.refresh(model, inputs, targets)
        return self.draws(len(targets), batch_size, generator, epoch, inputs.device)

    def draws(self, n: int, batch_size: int, generator: torch.Generator, epoch: int, device) -> Iterator[torch.Tensor]:
        pressure = pressure_at(self.settings.pressure, self.settings.pressure_end, epoch, self.epochs)
        for _ in range(0, n, batch_size):  # ceil(n / batch_size) batches, as plain SGD's epoch
            p = rank_probabilities(self.losses, pressure)  # after the previous step's losses were recorded
            yield torch.multinomial(p, min(batch_size, n), replacement=False, generator=generator).to(device)

    def loss(self, model, inputs, targets, indices: torch.Tensor) -> StepLoss:
        losses = sample_losses(model, inputs, targets)
        self.losses[indices.cpu()] = losses.detach().float().cpu()
        mean = losses.mean()
        return StepLoss(mean, mean.detach(), len(targets))

    def state_dict(self) -> dict:
        return {"losses": self.losses}

    def load_state_dict(self, state: dict) -> None:
        self.losses = state["losses"]
