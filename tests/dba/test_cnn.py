"""DBA on the small CNN: its convolutions take the Conv2d fast path (gram_conv.py), its Linear the Linear one.

The reference is independent of both: per-sample gradients from a plain autograd
loop over the samples (oracles.loop_per_sample_grads), the subset from the
search run on their Gram matrix, the update the kept samples' mean (float64).
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from dba_cli.dba import DBA, DBAConfig
from dba_cli.bench.step import benchmark_steps
from dba_cli.dba.search import greedy_search, noise_rtol
from dba_cli.models import build_cnn
from dba_cli.settings.layers import cnn_layer_labels

from .oracles import flat, loop_per_sample_grads

LR = 0.1
CNN_LAYERS = {"1": ["1.weight", "1.bias"], "4": ["4.weight", "4.bias"], "8": ["8.weight", "8.bias"]}


def images(count: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(count, 784, generator=generator, dtype=torch.float64), torch.randint(0, 10, (count,), generator=generator)


def test_cnn_shape_layers_and_seeded_initialisation():
    model = build_cnn((4, 6), seed=3)
    assert model(torch.zeros(5, 784)).shape == (5, 10)
    trained = {name.split(".")[0] for name, _ in model.named_parameters()}
    assert trained == set(CNN_LAYERS) == set(cnn_layer_labels([4, 6]))
    again = build_cnn((4, 6), seed=3)
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), again.parameters()))
    assert DBA(model, torch.optim.SGD(model.parameters(), lr=LR), DBAConfig()).layer_names == ["8", "1", "4"]


@pytest.mark.parametrize(
    "config",
    [DBAConfig(min_size=3), DBAConfig(metric="snr", direction="maximize", min_size=4), DBAConfig(max_removals=0)],
    ids=["variance-min3", "snr-min4", "whole-batch"],
)
def test_each_cnn_layer_moves_by_its_kept_samples_mean_gradient(config):
    model = build_cnn((3, 4), seed=1).double()
    x, y = images(10, seed=1)
    before = copy.deepcopy(model)
    grads = loop_per_sample_grads(before, x, y)
    expected, kept = {}, {}
    for layer, names in CNN_LAYERS.items():
        G = flat(grads, names)
        mask = torch.from_numpy(greedy_search((G @ G.T).numpy(), config, noise_rtol(torch.finfo(G.dtype).eps)))
        kept[layer] = int(mask.sum())
        for name in names:
            expected[name] = -LR * grads[name][mask].mean(0)
    result = DBA(model, torch.optim.SGD(model.parameters(), lr=LR), config).step(x, y)
    assert result.kept == kept
    if config.max_removals != 0:
        assert all(config.min_size <= size < 10 for size in kept.values())
    old = dict(before.named_parameters())
    for name, p in model.named_parameters():
        torch.testing.assert_close(p.detach() - old[name].detach(), expected[name], rtol=1e-9, atol=1e-13)


def test_bench_times_the_cnn_against_plain_sgd():
    rows = benchmark_steps(batch_sizes=(16,), warmup=1, repeats=2, naive_repeats=1, architecture="cnn", channels=(4, 6))
    assert {row["variant"] for row in rows} == {"sgd", "gram", "dba", "naive", "ordered", "small-loss", "online", "importance",
                                                "dba-random"}  # DBA's peers step the CNN too
    sgd = next(row for row in rows if row["variant"] == "sgd")
    assert sgd["ratio_to_sgd"] == 1.0 and all(row["median_ms"] > 0 and row["repeats"] >= 1 for row in rows)
