"""Trusted references the DBA tests compare against: explicit per-sample
gradient vectors, from torch.func and from a plain loop over samples."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, vmap


def func_per_sample_grads(model: nn.Module, inputs, targets, loss_fn=F.cross_entropy) -> dict[str, torch.Tensor]:
    """{param name: B x *shape}: vmap(grad) of each sample's loss, every trainable parameter."""
    params = {name: p.detach() for name, p in model.named_parameters() if p.requires_grad}
    fixed = {name: p.detach() for name, p in model.named_parameters() if not p.requires_grad}

    def sample_loss(p, x, y):
        out = functional_call(model, {**fixed, **p}, (x.unsqueeze(0),))
        return loss_fn(out, y.unsqueeze(0), reduction="sum")

    return vmap(grad(sample_loss), in_dims=(None, 0, 0))(params, inputs, targets)


def loop_per_sample_grads(model: nn.Module, inputs, targets, loss_fn=F.cross_entropy) -> dict[str, torch.Tensor]:
    """The same, one sample at a time with ordinary autograd."""
    names = [name for name, p in model.named_parameters() if p.requires_grad]
    params = [p for p in model.parameters() if p.requires_grad]
    rows = []
    for x, y in zip(inputs, targets):
        loss = loss_fn(model(x.unsqueeze(0)), y.unsqueeze(0), reduction="sum")
        rows.append(torch.autograd.grad(loss, params))
    return {name: torch.stack([row[i] for row in rows]) for i, name in enumerate(names)}


def flat(grads: dict[str, torch.Tensor], names) -> torch.Tensor:
    return torch.cat([grads[name].flatten(start_dim=1) for name in names], dim=1)


def mlp(sizes=(5, 7, 3), bias=True, seed=0, dtype=torch.float64, activation=nn.Tanh) -> nn.Sequential:
    torch.manual_seed(seed)
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        if i:
            layers.append(activation())
        layers.append(nn.Linear(n_in, n_out, bias=bias))
    return nn.Sequential(*layers).to(dtype)


def batch(batch_size, n_in=5, n_classes=3, seed=0, dtype=torch.float64):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(batch_size, n_in, generator=generator, dtype=dtype)
    y = torch.randint(0, n_classes, (batch_size,), generator=generator)
    return x, y


# --- subset statistics straight from the vectors (rows of G) ---


def vector_metric(G: np.ndarray, metric: str, unbiased: bool = False) -> float:
    """The metric of the rows of G, computed on the vectors themselves."""
    m = len(G)
    mean = G.mean(axis=0)
    deviations = ((G - mean) ** 2).sum()
    dof = m - 1 if unbiased else m
    if metric == "mean_norm":
        return float(mean @ mean)
    if metric == "variance":
        return float(deviations / dof)
    if metric == "mean_variance":
        return float(deviations / dof / m)
    if metric == "snr":
        return float((mean @ mean) / (deviations / dof / m))
    if metric == "cosine":
        norms = np.linalg.norm(G, axis=1)
        return float(np.mean(G @ mean / (norms * np.linalg.norm(mean))))
    raise ValueError(metric)


def random_gradients(rng: np.random.Generator, batch_size: int, dim: int | None = None) -> np.ndarray:
    """Per-sample gradient vectors with a shared direction, noise and uneven norms."""
    dim = dim if dim is not None else int(rng.integers(2, 12))
    common = rng.normal(size=dim) * rng.uniform(0.0, 2.0)
    noise = rng.normal(size=(batch_size, dim)) * rng.uniform(0.2, 2.0, size=(batch_size, 1))
    return common + noise
