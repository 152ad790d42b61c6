"""Label noise and class imbalance on the real MNIST labels: the training subset only, drawn from the seed alone, recorded."""

import math

import pytest
import torch

from dba_cli.data.subsets import draw_subset, labels_hash, noisy_labels
from dba_cli.recipes.loading import load_recipe
from dba_cli.settings.run import run_config
from dba_cli.settings.subsets import class_counts, parse_subset
from dba_cli.training.train import draw_indices, prepare_data, run_labels, subset_of, train

NOISY = {"mnist-1pct-sym20": ("symmetric", 0.2), "mnist-1pct-sym50": ("symmetric", 0.5), "mnist-1pct-pair45": ("pair", 0.45)}


@pytest.mark.parametrize("recipe_name", list(NOISY))
def test_each_recipes_realised_noise_rate_is_within_sampling_error_for_every_seed(mnist, recipe_name):
    recipe = load_recipe(recipe_name)
    kind, rate = NOISY[recipe_name]
    seeds = [*range(recipe.seeds), *range(100, 105), *range(1000, 1020)]  # untuned, tuning and reported seeds
    for seed in seeds:
        config = recipe.config_for(recipe.methods["sgd"], seed)
        assert (config.label_noise, config.noise_rate) == (kind, rate)
        subset = subset_of(mnist, config)
        labels = run_labels(mnist, config, subset)
        realised = float((labels[subset] != mnist.train_labels[subset]).double().mean())
        bound = 4 * math.sqrt(rate * (1 - rate) / len(subset))  # 4 standard errors of a binomial rate over 600 labels
        assert abs(realised - rate) < bound, (seed, realised)
        outside = torch.ones(len(labels), dtype=torch.bool)
        outside[subset] = False
        assert torch.equal(labels[outside], mnist.train_labels[outside])  # only the subset's labels change


def test_the_test_labels_are_untouched_and_the_run_records_what_it_trained_on(mnist):
    config = run_config(data="1pct", label_noise="symmetric", noise_rate=0.5, epochs=1, seed=4)
    data = prepare_data(mnist, config, torch.device("cpu"))
    assert torch.equal(data.y_test, mnist.test_labels)
    result = train(config, mnist, torch.device("cpu"))
    assert result.train_labels_hash == labels_hash(data.y_train)
    assert result.label_noise_realised == pytest.approx(float((data.y_train != mnist.train_labels[data.indices]).double().mean()))
    assert result.class_counts == [60] * 10 and result.final_class_accuracy is None
    document = result.to_dict()
    clean = train(run_config(data="1pct", epochs=1, seed=4), mnist, torch.device("cpu")).to_dict()
    assert "train_labels_hash" in document and "train_labels_hash" not in clean  # clean runs' files stay as they were


def test_two_methods_with_one_seed_train_on_identical_noisy_labels_folds_included(mnist):
    recipe = load_recipe("mnist-1pct-sym50")
    sgd = recipe.config_for(recipe.methods["sgd"], 1003)
    dba = recipe.config_for(recipe.methods["dba"], 1003)
    first, second = prepare_data(mnist, sgd, torch.device("cpu")), prepare_data(mnist, dba, torch.device("cpu"))
    assert torch.equal(first.indices, second.indices) and torch.equal(first.y_train, second.y_train)
    assert not torch.equal(first.y_train, mnist.train_labels[first.indices])  # they are noisy
    # a tuning run's fold is cut from the same noisy subset: its training and validation labels are those labels
    fold = prepare_data(mnist, sgd.replace(folds=5, fold=2), torch.device("cpu"))
    whole = run_labels(mnist, sgd, subset_of(mnist, sgd))
    assert torch.equal(fold.y_train, whole[fold.indices]) and torch.equal(fold.y_val, whole[fold.val_indices])
    assert len(fold.indices) + len(fold.val_indices) == 600
    other_seed = prepare_data(mnist, recipe.config_for(recipe.methods["sgd"], 1004), torch.device("cpu"))
    assert labels_hash(other_seed.y_train) != labels_hash(first.y_train)


def test_pair_flip_noise_only_moves_a_class_to_the_next():
    labels = torch.arange(10).repeat(500)
    noisy = noisy_labels(labels, "pair", 0.45, seed=0)
    moved = noisy != labels
    assert torch.equal(noisy[moved], (labels[moved] + 1) % 10)
    assert abs(float(moved.double().mean()) - 0.45) < 4 * math.sqrt(0.45 * 0.55 / 5000)
    symmetric = noisy_labels(labels, "symmetric", 0.5, seed=0)
    changed = symmetric != labels
    assert changed.any() and not torch.equal(symmetric[changed], (labels[changed] + 1) % 10)  # any other class
    counts = torch.bincount((symmetric[changed] - labels[changed]) % 10, minlength=10)
    assert counts[0] == 0 and counts[1:].min() > 0.7 * counts[1:].max()  # the 9 other classes about equally often
    lower = noisy_labels(labels, "symmetric", 0.2, seed=0) != labels
    assert not (lower & ~changed).any()  # with one seed, a lower rate flips a subset of what a higher one flips


def test_the_long_tailed_subset_has_the_declared_counts(mnist):
    recipe = load_recipe("mnist-1pct-imb10")
    expected = [round(60 * 10 ** (-c / 9)) for c in range(10)]
    assert list(class_counts(60, 10.0)) == expected == [60, 46, 36, 28, 22, 17, 13, 10, 8, 6]
    for seed in (0, 1, 1000):
        config = recipe.config_for(recipe.methods["sgd"], seed)
        indices, _ = draw_indices(mnist, config)
        assert torch.bincount(mnist.train_labels[indices], minlength=10).tolist() == expected
        assert config.subset_size == len(indices) == 246
        balanced = draw_subset(mnist.train_labels, parse_subset("1pct"), seed)
        assert set(indices.tolist()) <= set(balanced.tolist())  # each class's first images of the same seeded order
    result = train(recipe.config_for(recipe.methods["sgd"], 0).replace(epochs=1), mnist, torch.device("cpu"))
    assert result.class_counts == expected and result.label_noise_realised == 0.0
    assert len(result.final_class_accuracy) == 10
    overall = sum(a * int((mnist.test_labels == c).sum()) for c, a in enumerate(result.final_class_accuracy)) / 10000
    assert overall == pytest.approx(result.final_test_accuracy, abs=1e-9)  # the per-class accuracies add up


@pytest.mark.parametrize("values, message", [
    ({"noise_rate": 0.2}, "noise_rate: 0.2 is set but label_noise is none"),
    ({"label_noise": "pair"}, "label_noise: pair needs a noise_rate above 0"),
    ({"data": "full", "imbalance": 10.0}, "imbalance: a long-tailed subset is drawn per class, but data is full"),
    ({"label_noise": "symmetric", "noise_rate": 0.2, "resample": "every_epoch"}, "label_noise: the noise is drawn once"),
])
def test_inconsistent_noise_settings_are_one_line_naming_the_field(values, message):
    with pytest.raises(Exception) as caught:
        run_config(**values)
    assert message in str(caught.value)
