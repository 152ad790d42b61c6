"""Training with SGD and Adam: learns, is deterministic, validates its config."""

import pytest
import torch

from dba_cli.settings.run import run_config
from dba_cli.errors import ConfigError
from dba_cli.models import build_mlp
from dba_cli.training.train import train

CPU = torch.device("cpu")


@pytest.mark.parametrize("method, lr", [("sgd", 0.1), ("adam", 1e-3), ("adamw", 1e-3)])
def test_sgd_adam_and_adamw_learn_well_above_chance_on_10_per_class(mnist, method, lr):
    result = train(run_config(data="10-per-class", method=method, lr=lr, epochs=8, batch_size=32), mnist, CPU)
    losses = [record.train_loss for record in result.history]
    assert losses[-1] < 0.5 * losses[0]
    assert result.final_test_accuracy > 55.0  # chance is 10%
    assert result.subset_size == 100 and len(result.subset_indices) == 100


def test_same_seed_same_numbers_other_seed_other_numbers(mnist):
    config = run_config(data="10-per-class", method="sgd", momentum=0.9, lr=0.05, epochs=3, seed=7)
    first, second = train(config, mnist, CPU), train(config, mnist, CPU)
    fields = ("train_loss", "test_loss", "test_accuracy")
    assert [[getattr(r, f) for f in fields] for r in first.history] == [
        [getattr(r, f) for f in fields] for r in second.history
    ]
    other = train(config.replace(seed=8), mnist, CPU)
    assert other.subset_hash != first.subset_hash
    assert [r.train_loss for r in other.history] != [r.train_loss for r in first.history]


def test_partial_last_batch_and_batch_larger_than_the_subset(mnist):
    result = train(run_config(data="10-per-class", epochs=2, batch_size=1000), mnist, CPU)
    assert len(result.history) == 2 and result.history[-1].train_loss > 0


def test_model_shapes_and_seeded_init():
    model = build_mlp((64, 32), "tanh", seed=1)
    assert [tuple(p.shape) for p in model.parameters()] == [(64, 784), (64,), (32, 64), (32,), (10, 32), (10,)]
    state = torch.get_rng_state()
    again = build_mlp((64, 32), "tanh", seed=1)
    assert torch.equal(torch.get_rng_state(), state)  # the global RNG is left alone
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), again.parameters()))


@pytest.mark.parametrize(
    "changes, field",
    [
        ({"method": "rmsprop"}, "method"),
        ({"epochs": 0}, "epochs"),
        ({"batch_size": -4}, "batch_size"),
        ({"lr": -0.1}, "lr"),
        ({"lr": float("nan")}, "lr"),
        ({"epochs": True}, "epochs"),
        ({"dba": {"metric": "snr"}}, "dba"),  # settings given, but method is sgd
        ({"method": "dba", "dba": {"metrc": "snr"}}, r"dba\.metrc"),
        ({"momentum": 1.5}, "momentum"),
        ({"hidden": [512, 0]}, "hidden"),
        ({"activation": "swish"}, "activation"),
        ({"seed": -1}, "seed"),
        ({"data": "lots"}, "data"),
    ],
)
def test_invalid_config_names_the_field(changes, field):
    with pytest.raises(ConfigError, match=rf"^{field}(\.\d+)?:"):
        run_config(**changes)


def test_default_learning_rate_follows_the_optimizer():
    assert run_config(method="sgd").lr == 0.1
    assert run_config(method="adam").lr == 0.001
    assert run_config(method="dba", base="adam").lr == 0.001
    assert run_config(method="dba").lr == 0.1


def test_a_diverging_run_is_recorded_with_its_epoch_and_stops(mnist):
    result = train(run_config(data="10-per-class", epochs=20, lr=1e12), mnist, CPU)
    assert result.diverged_at_epoch is not None and result.diverged_at_epoch <= 3
    assert len(result.history) == result.diverged_at_epoch
    assert result.to_dict()["diverged_at_epoch"] == result.diverged_at_epoch


def test_fresh_subset_every_epoch_trains_on_different_images(mnist):
    from dba_cli.training.train import prepare_data, redraw_subset

    config = run_config(data="10-per-class", resample="every_epoch", validation_size=500)
    data = prepare_data(mnist, config, CPU)
    first = data.x_train.clone()
    redraw_subset(data, mnist, config, epoch=2)
    assert data.x_train.shape == first.shape and not torch.equal(data.x_train, first)
    assert data.y_train.bincount(minlength=10).tolist() == [10] * 10
    result = train(config.replace(epochs=2), mnist, CPU)
    assert result.history[-1].val_accuracy is not None and result.to_dict()["config"]["resample"] == "every_epoch"


def test_each_optimizer_is_torchs_own_with_the_configs_settings():
    from dba_cli.training.optim import make_optimizer

    params = [torch.nn.Parameter(torch.zeros(3))]
    sgd = make_optimizer(params, run_config(method="sgd", lr=0.2, momentum=0.9, nesterov=True, weight_decay=0.01))
    assert type(sgd) is torch.optim.SGD
    assert {k: sgd.defaults[k] for k in ("lr", "momentum", "nesterov", "weight_decay")} == {
        "lr": 0.2, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01}
    adamw = make_optimizer(params, run_config(method="adamw", weight_decay=0.05))
    assert type(adamw) is torch.optim.AdamW and adamw.defaults["lr"] == 0.001 and adamw.defaults["weight_decay"] == 0.05
    dba = make_optimizer(params, run_config(method="dba", base="adamw"))
    assert type(dba) is torch.optim.AdamW  # DBA's base may be any optimizer


def test_adamw_decays_weights_apart_from_the_gradient_unlike_adam(mnist):
    """One epoch at a large weight decay: Adam (L2 in the gradient) and AdamW (decoupled) end at different weights."""
    weights = {}
    for method in ("adam", "adamw"):
        out: dict = {}
        train(run_config(data="10-per-class", method=method, weight_decay=0.5, epochs=1, batch_size=32), mnist, CPU, model_out=out)
        weights[method] = torch.cat([p.detach().flatten() for p in out["model"].parameters()])
    assert not torch.equal(weights["adam"], weights["adamw"])
    # Adam normalises the L2 term with the gradient, so a large decay dominates its steps; AdamW shrinks each
    # weight by lr x decay per step (here 0.05%), apart from the normalised gradient step.
    assert weights["adamw"].norm() > weights["adam"].norm()


def test_nesterov_needs_sgd_with_momentum_and_is_left_out_of_saved_configs_at_its_default():
    with pytest.raises(ConfigError, match="nesterov: needs SGD with momentum > 0"):
        run_config(method="sgd", nesterov=True)
    with pytest.raises(ConfigError, match="nesterov: needs SGD with momentum > 0"):
        run_config(method="adam", momentum=0.9, nesterov=True)
    assert "nesterov" not in run_config(method="sgd").to_dict()  # results made before it stay current
    assert run_config(method="sgd", momentum=0.9, nesterov=True).to_dict()["nesterov"] is True
