"""DBA's peers (settings/methods.py, training/ordered.py, online.py, importance.py, the engine's random control),
each against an obviously-correct per-sample reference, on real MNIST images."""

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dba_cli.dba.config import DBAConfig
from dba_cli.dba.engine import DBA
from dba_cli.settings.run import run_config
from dba_cli.training.importance import ImportanceSampling, draw, gradient_bound, variance_reduction
from dba_cli.training.online import OnlineBatchSelection, pressure_at, rank_probabilities
from dba_cli.training.optim import Stepper
from dba_cli.training.ordered import kept_count, kept_fraction
from dba_cli.training.train import train


def small_mlp(seed: int = 0, hidden: int = 16) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(784, hidden), nn.ReLU(), nn.Linear(hidden, 10))


def images(mnist, count: int, offset: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    x = mnist.features(mnist.train_images[offset : offset + count])
    return x, mnist.train_labels[offset : offset + count]


def one_by_one_losses(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> list[float]:
    """The reference: each sample's loss from its own forward pass."""
    with torch.no_grad():
        return [F.cross_entropy(model(x[i : i + 1]), y[i : i + 1]).item() for i in range(len(y))]


@pytest.mark.parametrize("keep", ["largest", "smallest"])
def test_ordered_sgd_steps_exactly_as_sgd_on_the_q_chosen_samples(mnist, keep):
    x, y = images(mnist, 40)
    model = small_mlp()
    reference = copy.deepcopy(model)
    config = run_config(method="ordered", base="sgd", lr=0.1, batch_size=40, ordered={"keep": keep, "fraction": 0.3})
    Stepper(model, config)(x, y, torch.arange(40))
    losses = one_by_one_losses(reference, x, y)
    q = round(0.3 * 40)
    chosen = sorted(range(40), key=lambda i: losses[i], reverse=keep == "largest")[:q]
    optimizer = torch.optim.SGD(reference.parameters(), lr=0.1)
    F.cross_entropy(reference(x[chosen]), y[chosen]).backward()
    optimizer.step()
    largest = max((a - b).abs().max().item() for a, b in zip(model.parameters(), reference.parameters()))
    assert largest < 1e-6, largest


def test_ordered_keeps_round_fraction_of_the_batch_and_ramps_down_as_co_teaching():
    assert kept_count(50, 0.5) == 25 and kept_count(25, 0.5) == 12 and kept_count(3, 0.01) == 1
    assert kept_fraction(0.55, 0, 1) == 0.55  # no ramp: the fraction from the start
    assert kept_fraction(0.55, 10, 1) == 1.0  # epoch 1 keeps all
    assert kept_fraction(0.55, 10, 10) == pytest.approx(0.55) and kept_fraction(0.55, 10, 200) == pytest.approx(0.55)
    assert kept_fraction(0.55, 10, 4) == pytest.approx(1 - 0.45 * 3 / 9)


def test_importance_weights_make_the_gradient_unbiased(mnist):
    """Averaged over many draws from one presample, the reweighted gradient equals the presample's mean gradient.

    Each draw's gradient, from the method's own loss, is first checked against
    the reference sum over the drawn samples' per-sample gradients (one
    backward pass per sample); the many-draw average then uses that reference.
    """
    x, y = images(mnist, 30, offset=500)
    model = small_mlp(seed=3)
    settings = run_config(method="importance", batch_size=10, importance={"switch": "always"}).importance
    sampling = ImportanceSampling(settings, epochs=1)
    sampling.batch, sampling.presampled = 10, True

    def gradient(loss: torch.Tensor) -> torch.Tensor:
        model.zero_grad(set_to_none=True)
        loss.backward()
        return torch.cat([p.grad.flatten() for p in model.parameters()]).double()

    per_sample = torch.stack([gradient(F.cross_entropy(model(x[i : i + 1]), y[i : i + 1])) for i in range(30)])
    target = per_sample.mean(dim=0)
    with torch.no_grad():
        scores = gradient_bound(model(x), y)
    for seed in range(5):  # the method's gradient for a draw is (1/B) sum_j w_j grad l_j over that draw
        sampling.generator = torch.Generator().manual_seed(seed)
        got = gradient(sampling.loss(model, x, y, torch.arange(30)).loss)
        drawn, weights = draw(scores, 10, torch.Generator().manual_seed(seed))
        expected = (weights[:, None] * per_sample[drawn]).mean(dim=0)
        assert (got - expected).abs().max().item() < 1e-6
    draws = 1_000_000
    drawn, weights = draw(scores, 10 * draws, torch.Generator().manual_seed(0))  # a million batches of 10, one call
    counts = torch.bincount(drawn, minlength=30).double()
    weight_of = torch.zeros(30, dtype=torch.float64).index_put_((drawn,), weights)
    weighted = (counts * weight_of) @ per_sample / (10 * draws)
    unweighted = counts @ per_sample / (10 * draws)  # the same draws without the weights 1 / (b g_i)
    error = ((weighted - target).norm() / target.norm()).item()
    bias = ((unweighted - target).norm() / target.norm()).item()
    assert error < 0.005, error  # Monte Carlo error of a million draws (measured 0.0010; unweighted 0.041)
    assert bias > 5 * error, (bias, error)  # and the test tells a biased estimator apart


def test_the_gradient_bound_is_the_output_gradient_norm_of_each_samples_loss(mnist):
    x, y = images(mnist, 12)
    model = small_mlp()
    logits = model(x).detach()
    expected = []
    for i in range(12):
        z = logits[i : i + 1].clone().requires_grad_(True)
        (g,) = torch.autograd.grad(F.cross_entropy(z, y[i : i + 1]), z)
        expected.append(g.norm().item())
    assert torch.allclose(gradient_bound(logits, y), torch.tensor(expected), atol=1e-6)


def test_variance_reduction_is_one_for_uniform_scores_and_grows_with_their_spread():
    assert variance_reduction(torch.ones(20)) == pytest.approx(1.0)
    scores = torch.tensor([1.0, 1.0, 1.0, 5.0])
    g = scores / scores.sum()
    assert variance_reduction(scores) == pytest.approx(math.sqrt(len(g) * float((g**2).sum())))  # the closed form


def test_online_selection_draws_by_loss_rank_with_the_declared_pressure():
    losses = torch.tensor([0.3, 2.0, 0.1, 1.0, 0.7])
    p = rank_probabilities(losses, 100.0)
    ranks = {1: 0, 3: 1, 4: 2, 0: 3, 2: 4}  # by loss, highest first
    for index, rank in ranks.items():  # the reference: the formula, term by term
        assert p[index].item() == pytest.approx(math.exp(-math.log(100) * rank / 5) / sum(math.exp(-math.log(100) * r / 5) for r in range(5)))
    assert (p[1] / p[2]).item() == pytest.approx(100 ** (4 / 5))
    assert pressure_at(100, 1, 1, 11) == 100 and pressure_at(100, 1, 11, 11) == pytest.approx(1)
    assert pressure_at(100, 1, 6, 11) == pytest.approx(10)
    assert pressure_at(100, None, 6, 11) == 100


def test_online_selection_refreshes_every_loss_and_records_each_steps_batch(mnist):
    x, y = images(mnist, 60)
    model = small_mlp()
    config = run_config(method="online", batch_size=20, epochs=3, online={"pressure": 1e4, "refresh_epochs": 2})
    step = Stepper(model, config)
    generator = torch.Generator().manual_seed(0)
    batches = list(step.batches(x, y, 20, generator, 1))  # drawing all three batches before any step: fine for counting
    assert len(batches) == 3 and all(len(b) == 20 and len(set(b.tolist())) == 20 for b in batches)
    assert step.selection.losses.tolist() == pytest.approx(one_by_one_losses(model, x, y), abs=1e-5)
    step(x[batches[0]], y[batches[0]], batches[0])
    stepped = step.selection.losses.clone()
    before = one_by_one_losses(small_mlp(), x, y)  # the batch's losses are the ones its forward pass saw (pre-step)
    for i in batches[0].tolist():
        assert stepped[i].item() == pytest.approx(before[i], abs=1e-5)
    list(step.batches(x, y, 20, generator, 2))  # epoch 2: no refresh (every 2 epochs from epoch 1)
    assert torch.equal(step.selection.losses, stepped)
    list(step.batches(x, y, 20, generator, 3))
    assert step.selection.losses.tolist() == pytest.approx(one_by_one_losses(model, x, y), abs=1e-5)


def test_the_random_control_keeps_exactly_dbas_sizes_with_other_samples(mnist):
    x, y = images(mnist, 50, offset=1000)
    config = DBAConfig(metric="variance", direction="minimize", min_size=10)
    model = small_mlp(hidden=32)
    search = DBA(copy.deepcopy(model), torch.optim.SGD(model.parameters(), lr=0.1), config)
    random = DBA(copy.deepcopy(model), torch.optim.SGD(model.parameters(), lr=0.1), config, composition="random", seed=7)
    chosen_by = {}
    for name, engine in (("search", search), ("random", random)):
        _, _, layers = engine._per_sample_gradients(x, y)
        with torch.no_grad():
            chosen_by[name] = engine._select_all([layer.gram() for layer in layers])
    sizes = [size for _, size in chosen_by["search"]]
    assert sizes == [size for _, size in chosen_by["random"]] and min(sizes) < 50  # the search removed samples
    for (a, size), (b, _) in zip(chosen_by["search"], chosen_by["random"]):
        if size < 50:
            assert set(a.tolist()) != set(b.tolist())
    assert search.step(x, y).kept == random.step(x, y).kept


def test_the_random_controls_draws_are_uniform_over_the_batch():
    engine = DBA(small_mlp(), torch.optim.SGD(small_mlp().parameters(), lr=0.1), DBAConfig(), composition="random", seed=0)
    counts = sum(torch.from_numpy(engine._random_mask(20, 5)).int() for _ in range(4000))
    assert counts.sum() == 4000 * 5
    assert (counts.float() / 4000 - 0.25).abs().max() < 0.03  # each sample kept about 5/20 of the time


@pytest.mark.parametrize("method, settings", [
    ("ordered", {"ordered": {"keep": "smallest", "fraction": 0.6, "ramp_epochs": 3}}),
    ("online", {"online": {"pressure": 50.0, "pressure_end": 2.0}}),
    ("importance", {"importance": {"threshold": 1.01}}),
    ("dba-random", {"dba": {"min_size": 5}}),
])
def test_each_peer_resumes_from_a_checkpoint_exactly(mnist, tmp_path, method, settings):
    config = run_config(method=method, data="10-per-class", epochs=4, batch_size=25, hidden=[32], seed=3, **settings)
    whole = train(config, mnist, torch.device("cpu"))

    class Stop(Exception):
        pass

    def stop_at_three(record):
        if record.epoch == 3:
            raise Stop

    checkpoint = tmp_path / "run.ckpt"
    with pytest.raises(Stop):
        train(config, mnist, torch.device("cpu"), on_epoch=stop_at_three, checkpoint=checkpoint, checkpoint_interval=0)
    resumed = train(config, mnist, torch.device("cpu"), checkpoint=checkpoint, checkpoint_interval=0)
    assert [r.train_loss for r in resumed.history] == [r.train_loss for r in whole.history]
    assert resumed.final_test_accuracy == whole.final_test_accuracy
    assert (whole.history[-1].kept is not None) == (method == "dba-random")


def test_importance_sampling_switches_on_once_tau_passes_the_threshold(mnist):
    x, y = images(mnist, 100)
    config = run_config(method="importance", batch_size=10, epochs=1, importance={"threshold": 1.0, "smoothing": 0.0, "presample": 3.0})
    step = Stepper(small_mlp(), config)
    sizes = []
    for batch in step.batches(x, y, 10, torch.Generator().manual_seed(0), 1):
        sizes.append(len(batch))
        step(x[batch], y[batch], batch)
    assert sizes[0] == 10 and set(sizes[1:]) == {30}  # a uniform batch first (tau 0), presamples of 3 B once tau > 1
    assert step.selection.tau > 1.0
