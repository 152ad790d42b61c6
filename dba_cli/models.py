"""The paper's model family: a fully connected MLP, 784 -> H (-> H2 ...) -> 10.

torch is imported inside `build_mlp`: the activation names are read by the
config, the recipes and `dba run --help`, none of which should load torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .seeding import derive_seed

if TYPE_CHECKING:
    from torch import nn

# Hidden activations: the name a config or recipe uses -> its torch.nn module's class name.
# The one list of activations: RunConfig, the recipes' ModelSpec and `dba run` derive theirs from it.
ACTIVATION_MODULES = {"relu": "ReLU", "tanh": "Tanh", "sigmoid": "Sigmoid", "gelu": "GELU"}
ACTIVATIONS = tuple(ACTIVATION_MODULES)


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
    import torch
    from torch import nn

    with torch.random.fork_rng(devices=[], enabled=seed is not None):
        if seed is not None:
            torch.manual_seed(derive_seed(seed, "init"))
        layers: list[nn.Module] = []
        width = in_features
        for size in hidden:
            layers += [nn.Linear(width, size), getattr(nn, ACTIVATION_MODULES[activation])()]
            width = size
        layers.append(nn.Linear(width, out_features))
    return nn.Sequential(*layers)


def linear_layer_labels(hidden: tuple[int, ...] | list[int], in_features: int = 784, out_features: int = 10) -> dict[str, str]:
    """Readable names of `build_mlp`'s Linear layers, keyed by their nn.Sequential module names.

    `build_mlp` puts an activation after every hidden Linear, so Linear i is module "2i":
    hidden=(512,) gives {"0": "hidden layer 1 (784→512)", "2": "output layer (512→10)"}.
    DBA's per-layer statistics are keyed by those module names.
    """
    widths = [in_features, *hidden, out_features]
    labels = {}
    for index, (fan_in, fan_out) in enumerate(zip(widths, widths[1:])):
        kind = "output layer" if index == len(hidden) else f"hidden layer {index + 1}"
        labels[str(2 * index)] = f"{kind} ({fan_in}→{fan_out})"
    return labels
