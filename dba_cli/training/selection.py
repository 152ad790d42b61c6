"""What a peer of DBA changes in a training step, behind one interface: which samples form each batch, which loss is differentiated.

DBA's peers (settings/methods.py, docs/peers.md) each decide, from per-sample
losses, what a step learns from; the base optimizer then steps as usual
(training/optim.py Stepper). A `Selection` has two parts:

- `batches`: the epoch's mini-batches, as index tensors into the training
  subset, produced lazily, so that a batch may depend on the steps before it
  (online batch selection ranks by the latest losses; importance sampling
  switches on once its variance-reduction estimate is large enough). The
  default is plain SGD's: one seeded permutation, cut into batches.
- `loss`: the loss to differentiate for one batch, with the batch's mean
  loss as the training loss reports it and the number of samples it covers.

Each method is one module (training/ordered.py, online.py, importance.py) and
one line in training/optim.py's `SELECTIONS`. Randomness comes only from the run's batch
generator, and the state a checkpoint needs is `state_dict`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class StepLoss:
    """One batch's loss to differentiate, its mean loss for the record (detached), and how many samples that mean covers."""

    loss: torch.Tensor
    reported: torch.Tensor
    count: int


def uniform_batches(n: int, batch_size: int, generator: torch.Generator, device: torch.device) -> Iterator[torch.Tensor]:
    """Plain SGD's epoch: a seeded random order of the n samples, cut into batches of `batch_size` (the last may be smaller)."""
    order = torch.randperm(n, generator=generator).to(device)
    for start in range(0, n, batch_size):
        yield order[start : start + batch_size]


def sample_losses(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Each sample's cross-entropy (the loss every method here trains on)."""
    return F.cross_entropy(model(inputs), targets, reduction="none")


class Selection:
    """The default: uniform batches, the mean loss. Peers override one part or both."""

    def __init__(self, settings, epochs: int) -> None:
        self.settings = settings
        self.epochs = epochs
        self.epoch = 1

    def batches(
        self, model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, batch_size: int,
        generator: torch.Generator, epoch: int,
    ) -> Iterator[torch.Tensor]:
        self.epoch = epoch
        return uniform_batches(len(targets), batch_size, generator, inputs.device)

    def loss(self, model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, indices: torch.Tensor) -> StepLoss:
        mean = sample_losses(model, inputs, targets).mean()
        return StepLoss(mean, mean.detach(), len(targets))

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass
