"""The Linear fast-path Gram matrix and the generic torch.func path against
explicit per-sample gradients (float64)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dba_cli.dba.gram_generic import flatten_grads, gram, per_sample_grads
from dba_cli.dba.gram_linear import linear_gram, linear_subset_grads

from .oracles import batch, flat, func_per_sample_grads, loop_per_sample_grads, mlp


def capture(model: nn.Sequential, x, y):
    """Each Linear's input and per-sample output gradient, by running the layers by hand."""
    inputs, outputs = [], []
    h = x
    for module in model:
        if isinstance(module, nn.Linear):
            inputs.append(h)
            h = module(h)
            outputs.append(h)
        else:
            h = module(h)
    deltas = torch.autograd.grad(F.cross_entropy(h, y, reduction="sum"), outputs)
    return inputs, deltas


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm().clamp_min(1e-300))


@pytest.mark.parametrize("batch_size", [1, 2, 7, 64])
@pytest.mark.parametrize("bias", [True, False])
def test_linear_gram_matches_torch_func(batch_size, bias):
    model = mlp((5, 8, 6, 3), bias=bias, seed=batch_size)
    x, y = batch(batch_size, seed=batch_size)
    oracle = func_per_sample_grads(model, x, y)
    inputs, deltas = capture(model, x, y)
    for index, (a, delta) in zip((0, 2, 4), zip(inputs, deltas)):
        names = [f"{index}.weight"] + ([f"{index}.bias"] if bias else [])
        G = flat(oracle, names)
        K = linear_gram(a.detach(), delta, weight=True, bias=bias)
        assert relative_error(K, G @ G.T) < 1e-10


def test_linear_gram_bias_only():
    model = mlp((5, 4, 3), seed=1)
    x, y = batch(6, seed=1)
    oracle = func_per_sample_grads(model, x, y)
    _, deltas = capture(model, x, y)
    G = flat(oracle, ["2.bias"])
    assert relative_error(linear_gram(x, deltas[1], weight=False, bias=True), G @ G.T) < 1e-10


def test_linear_subset_grads_are_the_mean_of_kept_per_sample_grads():
    model = mlp((5, 4, 3), seed=2)
    x, y = batch(9, seed=2)
    oracle = func_per_sample_grads(model, x, y)
    inputs, deltas = capture(model, x, y)
    kept = torch.tensor([0, 3, 4, 8])
    weight, bias = linear_subset_grads(inputs[1].detach(), deltas[1], kept, divisor=4)
    torch.testing.assert_close(weight, oracle["2.weight"][kept].mean(0), rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(bias, oracle["2.bias"][kept].mean(0), rtol=1e-12, atol=1e-14)
    weight, bias = linear_subset_grads(inputs[1].detach(), deltas[1], None, divisor=9)
    torch.testing.assert_close(weight, oracle["2.weight"].mean(0), rtol=1e-12, atol=1e-14)


def test_linear_gram_rejects_extra_dimensions():
    with pytest.raises(ValueError, match="2-D inputs"):
        linear_gram(torch.zeros(2, 3, 4), torch.zeros(2, 3, 5))


def test_generic_path_matches_a_plain_loop_over_samples():
    torch.manual_seed(3)
    model = nn.Sequential(nn.Linear(5, 6), nn.LayerNorm(6), nn.Tanh(), nn.Linear(6, 3)).double()
    x, y = batch(7, seed=3)
    names = ["1.weight", "1.bias", "3.weight"]
    grads = per_sample_grads(model, names, x, y, F.cross_entropy)
    oracle = loop_per_sample_grads(model, x, y)
    for name in names:
        torch.testing.assert_close(grads[name], oracle[name], rtol=1e-12, atol=1e-14)
    G = flatten_grads(grads, names)
    assert relative_error(gram(G), flat(oracle, names) @ flat(oracle, names).T) < 1e-10


def test_generic_path_names_a_missing_parameter():
    with pytest.raises(ValueError, match="nope"):
        per_sample_grads(mlp(), ["nope"], *batch(2), F.cross_entropy)
