"""The fast path for nn.Linear: per-sample Gram matrix and subset gradient from
the layer's inputs and output gradients, without per-sample weight gradients.

For z_i = W a_i + b and the per-sample loss l_i, the per-sample gradient is
g_i = (dW, db) = (delta_i a_i^T, delta_i) with delta_i = dl_i/dz_i, so

    <g_i, g_j> = (a_i . a_j)(delta_i . delta_j) + delta_i . delta_j
    K = (A A^T + 1) * (Delta Delta^T)          (elementwise product)

which costs O(B^2 (d_in + d_out)) instead of O(B d_in d_out) memory for the
B copies of the weight matrix. The gradient of a subset S is one matrix
product over the kept rows only, which also replaces the weight-gradient
product of an ordinary backward pass.
"""

from __future__ import annotations

import torch


def _check_2d(inputs: torch.Tensor, output_grads: torch.Tensor) -> None:
    if inputs.dim() != 2 or output_grads.dim() != 2:
        raise ValueError(
            "the nn.Linear fast path needs 2-D inputs (batch x features), got input shape "
            f"{tuple(inputs.shape)} and output shape {tuple(output_grads.shape)}; flatten extra "
            "dimensions before the layer"
        )


def linear_gram(
    inputs: torch.Tensor, output_grads: torch.Tensor, weight: bool = True, bias: bool = True
) -> torch.Tensor:
    """K_ij = <g_i, g_j> over the trainable parameters of an nn.Linear (B x B).

    inputs: A, the layer's input (B x d_in); output_grads: Delta, the gradient of
    each sample's own loss with respect to the layer's output (B x d_out).
    `weight` / `bias` say which of the two parameters are trained.
    """
    _check_2d(inputs, output_grads)
    if not (weight or bias):
        raise ValueError("an nn.Linear with no trainable parameter has no gradient Gram matrix")
    grads = output_grads @ output_grads.T
    if not weight:
        return grads
    gram = inputs @ inputs.T
    if bias:
        gram += 1.0
    return gram.mul_(grads)


def linear_subset_grads(
    inputs: torch.Tensor,
    output_grads: torch.Tensor,
    kept: torch.Tensor | None,
    divisor: float,
    weight: bool = True,
) -> tuple[torch.Tensor | None, torch.Tensor]:
    """(weight grad, bias grad) = (sum over kept i of delta_i a_i^T, sum of delta_i) / divisor.

    kept: indices of the kept samples, or None for the whole batch.
    weight=False skips the weight gradient (a frozen weight): (None, bias grad).
    """
    _check_2d(inputs, output_grads)
    if kept is not None:
        output_grads = output_grads[kept]
    scaled = output_grads * (1.0 / divisor)  # scale the small side before the product
    if not weight:
        return None, scaled.sum(dim=0)
    if kept is not None:
        inputs = inputs[kept]
    return scaled.T @ inputs, scaled.sum(dim=0)
