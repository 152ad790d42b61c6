"""The generic path: per-sample gradients with torch.func, for any parameters.

vmap(grad(loss of one sample)) gives G (B x P), the flattened per-sample
gradients of the chosen parameters, and K = G G^T. It costs a second forward
and backward pass and B copies of those parameters' gradients, so DBA uses it
only for modules that are not nn.Linear (LayerNorm, custom modules, ...). With
every parameter requested it is also the oracle the tests check the Linear
fast path against.

The model must treat samples independently (no BatchNorm in training mode) and
be deterministic (no dropout in training mode: vmap refuses random operations).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import nn
from torch.func import functional_call, grad, vmap


def per_sample_grads(
    model: nn.Module,
    names: Iterable[str],
    inputs: torch.Tensor,
    targets: torch.Tensor,
    loss_fn: Callable[..., torch.Tensor],
) -> dict[str, torch.Tensor]:
    """{name: B x *shape} gradients of each sample's own loss for the parameters `names`.

    loss_fn(outputs, targets, reduction="sum") is evaluated on one sample at a
    time; every other parameter and buffer is held fixed at its current value.
    """
    names = list(names)
    every = dict(model.named_parameters())
    missing = [name for name in names if name not in every]
    if missing:
        raise ValueError(f"the model has no parameters named {', '.join(missing)}")
    trained = {name: every[name].detach() for name in names}
    fixed = {name: p.detach() for name, p in every.items() if name not in trained}
    fixed.update(dict(model.named_buffers()))

    def sample_loss(params: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        outputs = functional_call(model, {**fixed, **params}, (x.unsqueeze(0),))
        return loss_fn(outputs, y.unsqueeze(0), reduction="sum")

    return vmap(grad(sample_loss), in_dims=(None, 0, 0))(trained, inputs, targets)


def flatten_grads(grads: dict[str, torch.Tensor], names: Iterable[str]) -> torch.Tensor:
    """G (B x P): the per-sample gradients of `names`, concatenated per sample."""
    return torch.cat([grads[name].flatten(start_dim=1) for name in names], dim=1)


def gram(flat_grads: torch.Tensor) -> torch.Tensor:
    """K = G G^T."""
    return flat_grads @ flat_grads.T
