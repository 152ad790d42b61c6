"""The pack's model (training/packed.py): every run's MLP as stacked weights, its linear layers as batched products.

Each slice computes what the run's own `nn.Linear` computes alone, in the same
floating-point order (training/packed.py says how that is checked).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class PackedLinear(torch.autograd.Function):
    """y[p] = x[p] W[p]^T + b[p] for every run p, with the backward `F.linear`'s autograd computes per run."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        return torch.baddbmm(bias.unsqueeze(1), x, weight.transpose(1, 2))

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        x, weight = ctx.saved_tensors
        needs_x, needs_weight, needs_bias = ctx.needs_input_grad
        grad_x = torch.bmm(grad, weight) if needs_x else None
        grad_weight = torch.bmm(grad.transpose(1, 2), x) if needs_weight else None
        return grad_x, grad_weight, grad.sum(1) if needs_bias else None


class PackedMLP:
    """The pack's MLPs as stacked weights [P, out, in] and biases [P, out], from each run's own `build_model`."""

    def __init__(self, models: Sequence[nn.Sequential]) -> None:
        linears = [[m for m in model if isinstance(m, nn.Linear)] for model in models]
        self.weights = [torch.stack([run[k].weight.detach() for run in linears]).requires_grad_() for k in range(len(linears[0]))]
        self.biases = [torch.stack([run[k].bias.detach() for run in linears]).requires_grad_() for k in range(len(linears[0]))]
        self.activations = [m for m in models[0] if not isinstance(m, nn.Linear)]

    def parameters(self) -> list[torch.Tensor]:
        """In each run's own order (weight, bias per layer), as its optimizer sees them."""
        return [t for pair in zip(self.weights, self.biases) for t in pair]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        for k, (weight, bias) in enumerate(zip(self.weights, self.biases)):
            x = PackedLinear.apply(x, weight, bias)
            if k < len(self.activations):
                x = self.activations[k](x)
        return x

    def write_back(self, models: Sequence[nn.Sequential]) -> None:
        """Each run's trained weights into its own model (tests compare them with the run trained alone)."""
        params = self.parameters()
        with torch.no_grad():
            for p, model in enumerate(models):
                for own, packed in zip(model.parameters(), params):
                    own.copy_(packed[p])
