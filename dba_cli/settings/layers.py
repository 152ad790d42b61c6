"""Readable names of the models' trained layers, keyed by module name, for figures and reports.

DBA's per-layer statistics in a result file are keyed by the model's
nn.Sequential module names ("0", "2", ...); reports turn them into "hidden
layer 1 (784→512)". models.py builds the modules; this module only names them,
without torch (tests check the names against the built models).
"""

from __future__ import annotations


def cnn_layer_labels(channels: tuple[int, ...] | list[int]) -> dict[str, str]:
    """Readable names of `build_cnn`'s trained layers, keyed by their nn.Sequential module names."""
    first, second = channels
    return {
        "1": f"convolution 1 (1→{first}, 5×5)",
        "4": f"convolution 2 ({first}→{second}, 5×5)",
        "8": f"output layer ({second * 16}→10)",
    }


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


def layer_names(config: dict) -> dict[str, str]:
    """Module name -> readable layer label, from a saved run config (the MLP's or the CNN's layers)."""
    if config.get("architecture") == "cnn":
        return cnn_layer_labels(config["channels"])
    return linear_layer_labels(config["hidden"]) if config.get("hidden") else {}
