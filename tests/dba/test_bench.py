from __future__ import annotations

import numpy as np
import torch

from dba_cli.dba import DBAConfig
from dba_cli.bench.step import VARIANTS, _naive_greedy_variance, benchmark_steps, format_table
from dba_cli.dba.search import greedy_search

from .oracles import random_gradients


def test_benchmark_rows_and_table():
    rows = benchmark_steps(batch_sizes=(4, 6), hidden=8, warmup=1, repeats=2, naive_repeats=1)
    assert [(row["batch_size"], row["variant"]) for row in rows] == [(b, v) for b in (4, 6) for v in VARIANTS]
    for row in rows:
        assert row["median_ms"] > 0 and row["repeats"] == (1 if row["variant"] == "naive" else 2)
    assert {row["ratio_to_sgd"] for row in rows if row["variant"] == "sgd"} == {1.0}
    table = format_table(rows)
    assert "| 6 | DBA step" in table and "faster than the naive DBA" in table


def test_benchmark_on_given_data_without_the_naive_variant():
    generator = torch.Generator().manual_seed(0)
    inputs, targets = torch.randn(20, 784, generator=generator), torch.randint(0, 10, (20,), generator=generator)
    rows = benchmark_steps(
        batch_sizes=(8,), hidden=8, warmup=0, repeats=3, naive_repeats=0, inputs=inputs, targets=targets, peers=False
    )
    assert [row["variant"] for row in rows] == ["sgd", "gram", "dba"]


def test_every_peer_is_timed_through_its_own_training_step():
    rows = benchmark_steps(batch_sizes=(8,), hidden=8, warmup=1, repeats=3, naive_repeats=0)
    peers = {row["variant"]: row for row in rows if row["variant"] not in ("sgd", "gram", "dba")}
    assert list(peers) == ["ordered", "small-loss", "online", "importance", "dba-random"]
    assert all(row["median_ms"] > 0 and row["repeats"] == 3 for row in peers.values())
    assert "| 8 | importance sampling step" in format_table(rows)


def test_naive_search_makes_the_same_choices_as_the_gram_search():
    rng = np.random.default_rng(3)
    for _ in range(20):
        B = int(rng.integers(2, 20))
        G = random_gradients(rng, B, dim=30)
        min_size = int(rng.integers(2, B + 1))  # (down to one sample, the last two removals tie)
        naive = _naive_greedy_variance(torch.from_numpy(G), min_size).numpy()
        np.testing.assert_array_equal(naive, greedy_search(G @ G.T, DBAConfig(min_size=min_size)))
