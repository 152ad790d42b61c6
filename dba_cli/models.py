"""The models: the paper's fully connected MLP (784 -> H (-> H2 ...) -> 10) and a small CNN.

The CNN asks whether DBA's verdict is the MLP's doing: two 5x5 convolutions,
each followed by the activation and 2x2 max-pooling, then one Linear
(28x28 -> C1 x 24x24 -> C1 x 12x12 -> C2 x 8x8 -> C2 x 4x4 -> 10). It takes the
same flattened, standardised 784-vectors as the MLP (its first module restores
the 1x28x28 image), so data, subsets and the training loop are shared. DBA
gives its convolutions and its Linear their per-sample Gram matrices through
the engine's fast paths (dba/gram_conv.py, dba/gram_linear.py).

The architecture and activation names are declared in settings/run.py, and the trained
layers' readable names in settings/layers.py (both torch-free, for configs and reports).
"""

from __future__ import annotations

import torch
from torch import nn

from .seeding import derive_seed
from .settings.run import ACTIVATIONS

IMAGE_SIDE = 28  # both data sets: 28x28 grey images


def build_mlp(
    hidden: tuple[int, ...] = (512,),
    activation: str = "relu",
    in_features: int = 784,
    out_features: int = 10,
    seed: int | None = None,
) -> nn.Sequential:
    """An MLP with PyTorch's default initialisation.

    With a seed, the weights come from their own random stream (see `seeding`)
    and the global RNG is left untouched, so the same seed gives the same
    initial weights on every device.
    """
    with torch.random.fork_rng(devices=[], enabled=seed is not None):
        if seed is not None:
            torch.manual_seed(derive_seed(seed, "init"))
        layers: list[nn.Module] = []
        width = in_features
        for size in hidden:
            layers += [nn.Linear(width, size), getattr(nn, ACTIVATIONS[activation])()]
            width = size
        layers.append(nn.Linear(width, out_features))
    return nn.Sequential(*layers)


def build_cnn(
    channels: tuple[int, int] = (8, 16),
    activation: str = "relu",
    out_features: int = 10,
    seed: int | None = None,
) -> nn.Sequential:
    """The small CNN (see the module docstring), with PyTorch's default initialisation and `build_mlp`'s seeding."""
    first, second = channels
    side = ((IMAGE_SIDE - 4) // 2 - 4) // 2  # two valid 5x5 convolutions, each then pooled by 2: 28 -> 4
    with torch.random.fork_rng(devices=[], enabled=seed is not None):
        if seed is not None:
            torch.manual_seed(derive_seed(seed, "init"))
        activation_module = getattr(nn, ACTIVATIONS[activation])
        return nn.Sequential(
            nn.Unflatten(1, (1, IMAGE_SIDE, IMAGE_SIDE)),
            nn.Conv2d(1, first, 5), activation_module(), nn.MaxPool2d(2),
            nn.Conv2d(first, second, 5), activation_module(), nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(second * side * side, out_features),
        )


def build_model(
    architecture: str, hidden: tuple[int, ...], channels: tuple[int, ...], activation: str, seed: int | None
) -> nn.Sequential:
    """The run's model: `build_mlp` (uses `hidden`) or `build_cnn` (uses `channels`)."""
    if architecture == "cnn":
        return build_cnn(tuple(channels), activation, seed=seed)
    return build_mlp(tuple(hidden), activation, seed=seed)
