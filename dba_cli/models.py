"""The paper's model family: a fully connected MLP, 784 -> H (-> H2 ...) -> 10."""

from __future__ import annotations

import torch
from torch import nn

from .seeding import derive_seed

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "gelu": nn.GELU}


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
            layers += [nn.Linear(width, size), ACTIVATIONS[activation]()]
            width = size
        layers.append(nn.Linear(width, out_features))
    return nn.Sequential(*layers)
