"""Evaluation: loss and accuracy of a model on a whole set, which never changes training.

The set goes through the model in chunks of EVAL_CHUNK samples under
`torch.inference_mode()` (no autograd bookkeeping). A chunk that fits the
CPU's caches is faster than one forward pass over all 10,000 test images:
the small CNN evaluates about 2.5x faster (one thread), the MLP as fast. Each
sample's logits do not depend on the chunk it is in (checked: bit-identical),
and the loss and accuracy are reduced over the whole set's logits in one call,
exactly as when the set was one batch, so the numbers are the same to the
last digit.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

EVAL_CHUNK = 1024


@torch.inference_mode()
def class_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, classes: int = 10, chunk: int = EVAL_CHUNK) -> list[float]:
    """Accuracy (in %) on each class's samples of a whole set (the rare classes of a long-tailed subset)."""
    predicted = torch.cat([model(x[start : start + chunk]).argmax(dim=1) for start in range(0, len(y), chunk)])
    return accuracy_per_class(predicted, y, classes)


def accuracy_per_class(predicted: torch.Tensor, y: torch.Tensor, classes: int = 10) -> list[float]:
    """Accuracy (in %) on each class's samples, from the predicted classes (a packed run's too: training/packed.py)."""
    return [100.0 * float((predicted[y == c] == c).double().mean()) for c in range(classes)]


@torch.inference_mode()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, chunk: int = EVAL_CHUNK) -> tuple[float, float]:
    """Mean cross-entropy and accuracy (in %) on a whole set."""
    logits = torch.cat([model(x[start : start + chunk]) for start in range(0, len(y), chunk)])
    return loss_and_accuracy(logits, y)


def loss_and_accuracy(logits: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """Mean cross-entropy and accuracy (in %) from a whole set's logits, reduced in one call (a packed run's too)."""
    loss = F.cross_entropy(logits, y, reduction="sum")
    correct = (logits.argmax(dim=1) == y).sum()
    return loss.item() / len(y), 100.0 * correct.item() / len(y)
