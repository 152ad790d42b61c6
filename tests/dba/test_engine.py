"""One DBA step against explicit per-sample gradients from torch.func (float64)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dba_cli.dba import DBA, METRICS, DBAConfig
from dba_cli.dba.search import greedy_search, noise_rtol

from .oracles import batch, flat, func_per_sample_grads, mlp

LR = 0.1


def expected_update(model: nn.Module, x, y, config: DBAConfig, layers: dict[str, list[str]]):
    """-lr x (the layer's per-sample gradients over the subset the search picks on their Gram matrix)."""
    grads = func_per_sample_grads(model, x, y)
    update, kept = {}, {}
    for layer, names in layers.items():
        G = flat(grads, names)
        mask = torch.from_numpy(greedy_search((G @ G.T).numpy(), config, noise_rtol(torch.finfo(G.dtype).eps)))
        divisor = int(mask.sum()) if config.reduction == "mean" else len(x)
        for name in names:
            update[name] = -LR * grads[name][mask].sum(0) / divisor
        kept[layer] = int(mask.sum())
    return update, kept


def linear_layers(model: nn.Sequential) -> dict[str, list[str]]:
    return {
        str(i): [f"{i}.{n}" for n, _ in module.named_parameters()]
        for i, module in enumerate(model)
        if isinstance(module, nn.Linear)
    }


def check_step(model, x, y, config, layers, optimizer=None):
    before = copy.deepcopy(model)
    update, expected_kept = expected_update(before, x, y, config, layers)
    dba = DBA(model, optimizer or torch.optim.SGD(model.parameters(), lr=LR), config)
    result = dba.step(x, y)
    assert result.kept == expected_kept
    assert result.loss.shape == () and not result.loss.requires_grad
    torch.testing.assert_close(result.loss, F.cross_entropy(before(x), y))
    for name, p in model.named_parameters():
        if p.requires_grad:
            moved = p.detach() - dict(before.named_parameters())[name].detach()
            torch.testing.assert_close(moved, update[name], rtol=1e-9, atol=1e-13)
    return result


@pytest.mark.parametrize("reduction", ["mean", "sum_over_batch"])
@pytest.mark.parametrize(
    "config",
    [
        DBAConfig(),  # plain variance, min_size 1: collapses far below the batch
        DBAConfig(min_size=6),
        DBAConfig(metric="snr", direction="maximize", min_size=3),
        DBAConfig(metric="cosine", direction="maximize"),
        DBAConfig(max_removals=0),  # the whole batch: plain SGD
    ],
    ids=["variance", "variance-min6", "snr", "cosine", "whole-batch"],
)
def test_sgd_step_moves_each_parameter_by_the_kept_mean_gradient(config, reduction):
    config = DBAConfig(**{**config.__dict__, "reduction": reduction})
    model = mlp((5, 8, 6, 3), seed=1)
    x, y = batch(12, seed=1)
    result = check_step(model, x, y, config, linear_layers(model))
    if config.max_removals == 0:
        assert set(result.kept.values()) == {12}
    else:
        assert all(size < 12 for size in result.kept.values())
        assert all(size >= config.min_size for size in result.kept.values())


def test_linear_without_bias():
    model = mlp((5, 8, 3), bias=False, seed=2)
    check_step(model, *batch(9, seed=2), DBAConfig(min_size=4), linear_layers(model))


class Scale(nn.Module):
    """A custom module with a parameter of its own: the generic torch.func path."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.gain = nn.Parameter(torch.linspace(0.5, 1.5, n))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gain


def test_non_linear_modules_take_the_generic_path():
    torch.manual_seed(3)
    model = nn.Sequential(nn.Linear(5, 6), nn.LayerNorm(6), nn.Tanh(), Scale(6), nn.Linear(6, 3)).double()
    layers = {
        "0": ["0.weight", "0.bias"],
        "1": ["1.weight", "1.bias"],
        "3": ["3.gain"],
        "4": ["4.weight", "4.bias"],
    }
    result = check_step(model, *batch(10, seed=3), DBAConfig(min_size=4), layers)
    assert set(result.kept) == set(layers)


def test_frozen_parameters_are_left_alone():
    model = mlp((5, 8, 3), seed=4)
    model[0].weight.requires_grad_(False)
    frozen = model[0].weight.detach().clone()
    layers = {"0": ["0.bias"], "2": ["2.weight", "2.bias"]}
    check_step(model, *batch(8, seed=4), DBAConfig(min_size=3), layers)
    assert torch.equal(model[0].weight, frozen)


def test_limits_hold_in_the_engine():
    model = mlp((5, 8, 3), seed=5)
    x, y = batch(16, seed=5)
    dba = DBA(model, torch.optim.SGD(model.parameters(), lr=LR), DBAConfig(min_size=5))
    assert min(dba.step(x, y).kept.values()) >= 5
    dba = DBA(model, torch.optim.SGD(model.parameters(), lr=LR), DBAConfig(max_removals=3))
    assert min(dba.step(x, y).kept.values()) >= 13


def test_batch_of_one():
    model = mlp(seed=6)
    x, y = batch(1, seed=6)
    result = check_step(model, x, y, DBAConfig(), linear_layers(model))
    assert set(result.kept.values()) == {1}


@pytest.mark.parametrize("metric", METRICS)
def test_identical_samples_in_float32(metric):
    """Every per-sample gradient equal: no removal is a real improvement, so the
    float32 rounding noise in K must not make the search drop samples."""
    model = mlp((5, 8, 3), seed=7, dtype=torch.float32)
    x = torch.randn(1, 5).repeat(16, 1)
    y = torch.full((16,), 2)
    config = DBAConfig(metric=metric, direction="minimize" if "variance" in metric else "maximize", min_size=2)
    expected = {name: g[0] for name, g in func_per_sample_grads(model, x, y).items()}
    before = copy.deepcopy(model)
    result = DBA(model, torch.optim.SGD(model.parameters(), lr=LR), config).step(x, y)
    assert set(result.kept.values()) == {16}
    assert torch.isfinite(result.loss)
    for name, p in model.named_parameters():
        moved = p.detach() - dict(before.named_parameters())[name].detach()
        torch.testing.assert_close(moved, -LR * expected[name], rtol=1e-4, atol=1e-6)


def test_adam_base_reduces_the_loss():
    """Full-batch steps on one batch; keeping 3/4 of it. (With min_size = B/2 plain
    variance keeps the samples with the smallest gradients, the ones already fitted,
    and this full-batch loss goes *up*: a property of the metric, not of the step.)"""
    torch.manual_seed(8)
    x = torch.randn(64, 10)
    y = (x[:, :3].argmax(dim=1)).long()
    model = nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 3))
    dba = DBA(model, torch.optim.Adam(model.parameters(), lr=0.01), DBAConfig(min_size=48))
    losses = [dba.step(x, y).loss.item() for _ in range(30)]
    assert losses[-1] < 0.7 * losses[0]


def test_state_dict_round_trip_resumes_identically():
    x, y = batch(12, seed=9)
    config = DBAConfig(min_size=4)
    a = mlp(seed=9)
    dba_a = DBA(a, torch.optim.SGD(a.parameters(), lr=LR, momentum=0.9), config)
    dba_a.step(x, y)
    b = copy.deepcopy(a)
    dba_b = DBA(b, torch.optim.SGD(b.parameters(), lr=LR, momentum=0.9), config)
    dba_b.load_state_dict(copy.deepcopy(dba_a.state_dict()))
    assert dba_b.steps == 1
    dba_a.step(x, y)
    dba_b.step(x, y)
    for pa, pb in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(pa, pb, rtol=0, atol=0)
    other = DBA(b, torch.optim.SGD(b.parameters(), lr=LR, momentum=0.9), DBAConfig(min_size=5))
    with pytest.raises(ValueError, match="min_size"):
        other.load_state_dict(dba_a.state_dict())


def no_hooks(model: nn.Module) -> bool:
    return all(not m._forward_hooks and not m._forward_hooks_with_kwargs for m in model.modules())


def test_hooks_never_outlive_a_step():
    model = mlp(seed=10)
    dba = DBA(model, torch.optim.SGD(model.parameters(), lr=LR))
    dba.step(*batch(4, seed=10))
    assert no_hooks(model)
    with pytest.raises(RuntimeError):
        dba.step(torch.randn(4, 6, dtype=torch.float64), torch.zeros(4, dtype=torch.long))  # wrong width
    assert no_hooks(model)


def test_in_place_activation_is_refused():
    model = nn.Sequential(nn.Linear(5, 4), nn.ReLU(inplace=True), nn.Linear(4, 3)).double()
    dba = DBA(model, torch.optim.SGD(model.parameters(), lr=LR))
    with pytest.raises(RuntimeError, match="in place"):
        dba.step(*batch(4))
    assert no_hooks(model)


def test_a_linear_used_twice_is_refused():
    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.layer = nn.Linear(3, 3)

        def forward(self, x):
            return self.layer(torch.tanh(self.layer(x)))

    model = Twice().double()
    with pytest.raises(RuntimeError, match="twice"):
        DBA(model, torch.optim.SGD(model.parameters(), lr=LR)).step(*batch(4, n_in=3))


def test_zero_grad_and_layer_names():
    model = mlp(seed=11)
    dba = DBA(model, torch.optim.SGD(model.parameters(), lr=LR))
    assert dba.layer_names == ["0", "2"]
    dba.step(*batch(4, seed=11))
    assert model[0].weight.grad is not None
    dba.zero_grad()
    assert model[0].weight.grad is None
    grams = dba.layer_grams(*batch(4, seed=11))
    assert set(grams) == {"0", "2"} and grams["0"].shape == (4, 4)
    assert np.allclose(grams["0"].numpy(), grams["0"].numpy().T)


@pytest.mark.cuda
def test_cuda_step_matches_cpu():
    x, y = batch(32, seed=12)
    config = DBAConfig(min_size=8)
    cpu = mlp((5, 16, 3), seed=12)
    gpu = copy.deepcopy(cpu).cuda()
    kept_cpu = DBA(cpu, torch.optim.SGD(cpu.parameters(), lr=LR), config).step(x, y).kept
    result = DBA(gpu, torch.optim.SGD(gpu.parameters(), lr=LR), config).step(x.cuda(), y.cuda())
    assert result.loss.device.type == "cuda"
    assert result.kept == kept_cpu
    for pc, pg in zip(cpu.parameters(), gpu.parameters()):
        torch.testing.assert_close(pg.cpu(), pc, rtol=1e-9, atol=1e-12)
