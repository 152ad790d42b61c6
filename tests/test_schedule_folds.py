"""The cosine learning-rate schedule and k-fold cross-validation inside the subset, on real tiny MNIST runs.

The schedule is checked at every optimizer step against the formula, written
out here (lr x 0.5 x (1 + cos(pi t / T))), for the optimizer that takes the
step (DBA's base included); a run resumed from a checkpoint must be
bit-identical to one never interrupted. The folds are checked against plain
set arithmetic on the subset and per-class counts, and the validation
accuracy against the trained model evaluated on the fold's images by hand.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch.optim.optimizer import register_optimizer_step_pre_hook

from dba_cli.data.subsets import draw_subset, indices_hash, split_folds
from dba_cli.errors import ConfigError
from dba_cli.settings.run import RunConfig, fold_size, run_config
from dba_cli.settings.subsets import parse_subset
from dba_cli.settings.validation import make_config
from dba_cli.training.train import draw_indices, subset_hashes, train

CPU = torch.device("cpu")
TINY = {"hidden": [16], "data": "2-per-class", "batch_size": 10}  # 20 images: 2 steps per epoch


def cosine(lr: float, t: int, total: int) -> float:
    return lr * 0.5 * (1 + math.cos(math.pi * t / total))


def learning_rates(config, **kwargs) -> list[float]:
    """The lr of the optimizer at each of its steps in a real run (a global step pre-hook, read-only)."""
    return traced(config, **kwargs)[0]


def traced(config, **kwargs):
    """(the lr at each optimizer step, the run's result)."""
    seen = []
    handle = register_optimizer_step_pre_hook(lambda optimizer, args, kw: seen.append(optimizer.param_groups[0]["lr"]))
    try:
        result = train(config, **kwargs)
    finally:
        handle.remove()
    return seen, result


@pytest.mark.parametrize(
    "method",
    [{"method": "sgd", "lr": 0.1, "momentum": 0.9}, {"method": "adam"}, {"method": "dba", "base": "adamw", "dba": {"min_size": 5}}],
)
def test_cosine_lr_at_every_step_is_the_formula_for_the_stepping_optimizer(mnist, method):
    config = run_config(**TINY, **method, epochs=2, schedule="cosine")
    seen = learning_rates(config, dataset=mnist, device=CPU)
    # 2 epochs x 2 steps: T = 4, t = 0..3 (no warm-up; the last step is not yet at 0)
    assert seen == [cosine(config.lr, t, 4) for t in range(4)]
    assert seen[0] == config.lr and seen[2] == config.lr * 0.5


def test_cosine_decays_over_all_steps_of_a_partial_last_batch(mnist):
    config = run_config(**{**TINY, "batch_size": 8}, epochs=3, schedule="cosine")  # 20 images: batches 8, 8, 4
    assert learning_rates(config, dataset=mnist, device=CPU) == [cosine(0.1, t, 9) for t in range(9)]


def test_constant_is_the_default_and_unchanged(mnist):
    default = run_config(**TINY, epochs=2)
    explicit = run_config(**TINY, epochs=2, schedule="constant")
    saved = default.to_dict()
    assert "schedule" not in saved and "folds" not in saved and "fold" not in saved  # older results stay current
    assert explicit.to_dict() == saved
    assert learning_rates(default, dataset=mnist, device=CPU) == [0.1] * 4
    first, second = train(default, mnist, CPU), train(explicit, mnist, CPU)
    assert [r.train_loss for r in first.history] == [r.train_loss for r in second.history]
    cosine_run = train(default.replace(schedule="cosine"), mnist, CPU)
    assert cosine_run.config["schedule"] == "cosine"
    assert cosine_run.history[-1].train_loss != first.history[-1].train_loss


class Interrupted(Exception):
    pass


@pytest.mark.parametrize(
    "method", [{"method": "sgd", "momentum": 0.9}, {"method": "dba", "base": "adam", "dba": {"min_size": 5}}]
)
def test_a_run_resumed_under_cosine_is_bit_identical_to_one_never_interrupted(mnist, tmp_path, method):
    config = run_config(**{**TINY, "data": "5-per-class"}, **method, epochs=3, schedule="cosine")  # 5 steps per epoch
    whole_out: dict = {}
    whole = train(config, mnist, CPU, model_out=whole_out)

    def stop_at_epoch_2(record):
        if record.epoch == 2:
            raise Interrupted  # after epoch 1's checkpoint, before epoch 2's

    checkpoint = tmp_path / "seed-0.ckpt"
    with pytest.raises(Interrupted):
        train(config, mnist, CPU, on_epoch=stop_at_epoch_2, checkpoint=checkpoint, checkpoint_interval=0)
    assert checkpoint.exists()
    resumed_out: dict = {}
    seen, resumed = traced(config, dataset=mnist, device=CPU, checkpoint=checkpoint, model_out=resumed_out)
    assert seen == [cosine(config.lr, t, 15) for t in range(5, 15)]  # the schedule continues at step 5 of 15
    fields = ("train_loss", "test_loss", "test_accuracy", "kept")
    assert [[getattr(r, f) for f in fields] for r in resumed.history] == [[getattr(r, f) for f in fields] for r in whole.history]
    for a, b in zip(whole_out["model"].parameters(), resumed_out["model"].parameters(), strict=True):
        assert torch.equal(a, b)


def test_folds_are_disjoint_cover_the_subset_and_are_stratified(mnist):
    labels = mnist.train_labels
    subset = draw_subset(labels, parse_subset("10-per-class"), seed=3)
    folds = split_folds(labels, subset, 3, seed=3)
    members = [set(fold.tolist()) for fold in folds]
    assert sum(map(len, members)) == 100 and set().union(*members) == set(subset.tolist())  # disjoint, union the subset
    assert [len(fold) for fold in folds] == [34, 33, 33] == [fold_size(100, 3, k) for k in range(3)]
    counts = torch.stack([labels[fold].bincount(minlength=10) for fold in folds])  # fold x class
    assert (counts.max(dim=0).values - counts.min(dim=0).values).max() <= 1 and counts.sum(dim=0).tolist() == [10] * 10
    assert all(torch.equal(fold, fold.sort().values) for fold in folds)
    assert all(torch.equal(a, b) for a, b in zip(folds, split_folds(labels, subset, 3, seed=3)))  # seeded
    assert not torch.equal(folds[0], split_folds(labels, subset, 3, seed=4)[0])


def test_a_fold_run_trains_on_the_subset_less_the_fold_and_validates_on_the_fold(mnist):
    from dba_cli.training.evaluate import evaluate

    config = run_config(**{**TINY, "data": "5-per-class"}, epochs=2, folds=5, fold=2, seed=1)
    subset = draw_indices(mnist, config.replace(folds=0, fold=0))[0]  # the subset a run without folds draws
    fold = split_folds(mnist.train_labels, subset, 5, seed=1)[2]
    training, validation = draw_indices(mnist, config)
    assert torch.equal(validation, fold)
    assert training.tolist() == sorted(set(subset.tolist()) - set(fold.tolist())) and len(training) == 40
    out: dict = {}
    result = train(config, mnist, CPU, model_out=out)
    assert result.subset_indices == training.tolist() and result.subset_size == 40
    assert (result.subset_hash, result.validation_hash) == (indices_hash(training), indices_hash(fold))
    assert (result.subset_hash, result.validation_hash) == subset_hashes(mnist, config)  # what run/plan.py checks
    model = out["model"].eval()
    with torch.no_grad():
        logits = model(mnist.features(mnist.train_images[fold]))
    by_hand = 100.0 * (logits.argmax(dim=1) == mnist.train_labels[fold]).sum().item() / len(fold)
    evaluated = evaluate(model, mnist.features(mnist.train_images[fold]), mnist.train_labels[fold])[1]
    assert result.history[-1].val_accuracy == by_hand == evaluated
    assert result.to_dict()["final_val_accuracy"] == by_hand and len(fold) == 10


def test_configs_with_the_new_settings_are_in_the_canonical_form_the_result_schema_checks():
    config = run_config(data="10-per-class", schedule="cosine", folds=5, fold=4)
    saved = config.to_dict()
    assert {k: saved[k] for k in ("schedule", "folds", "fold")} == {"schedule": "cosine", "folds": 5, "fold": 4}
    assert make_config(RunConfig, saved).to_dict() == saved


@pytest.mark.parametrize(
    "values, message",
    [
        ({"folds": 5, "validation_size": 500},
         "folds: 5 and validation_size: 500 are two validation splits; use one: set validation_size to 0"),
        ({"folds": 5, "fold": 5}, "fold: 5 is not a fold of 5"),
        ({"fold": 1}, "fold: 1 is set but folds is 0"),
        ({"folds": 1}, "folds: 1 leaves nothing to train on"),
        ({"folds": 21}, "folds: Input should be less than or equal to 20"),
        ({"data": "full", "folds": 5}, "folds: cross-validation splits a subset, but data is full"),
        ({"data": "1-per-class", "folds": 11}, "folds: 11 is more than the 10 images of the subset"),
        ({"folds": 5, "resample": "every_epoch"}, "folds: cross-validation splits one subset, but resample is every_epoch"),
        ({"schedule": "linear"}, "schedule: Input should be 'constant' or 'cosine'"),
    ],
)
def test_invalid_combinations_are_one_line_errors_naming_the_field_and_the_fix(values, message):
    with pytest.raises(ConfigError, match="^" + message.replace("(", r"\(").replace(".", r"\.")) as caught:
        run_config(**values)
    assert "\n" not in str(caught.value)
