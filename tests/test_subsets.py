"""Training subsets: class counts, determinism, and no test image in training."""

import pytest
import torch

from dba_cli.settings.run import run_config
from dba_cli.data.datasets import to_features
from dba_cli.data.subsets import draw_subset, indices_hash
from dba_cli.settings.subsets import parse_subset
from dba_cli.errors import ConfigError
from dba_cli.training.train import prepare_data


@pytest.mark.parametrize(
    "name, per_class", [("10-per-class", 10), ("1pct", 60), ("1%", 60), ("0.01", 60), ("5-per-class", 5)]
)
def test_stratified_subsets_have_equal_class_counts(mnist, name, per_class):
    indices = draw_subset(mnist.train_labels, parse_subset(name), seed=3)
    assert len(indices) == 10 * per_class
    assert mnist.train_labels[indices].bincount(minlength=10).tolist() == [per_class] * 10
    assert len(set(indices.tolist())) == len(indices)
    assert torch.equal(indices, indices.sort().values)


def test_full_is_the_whole_training_set(mnist):
    assert torch.equal(draw_subset(mnist.train_labels, parse_subset("full"), seed=0), torch.arange(60000))


@pytest.mark.parametrize("name", ["10-per-class", "1pct"])
def test_subsets_are_deterministic_per_seed_and_differ_across_seeds(mnist, name):
    spec = parse_subset(name)
    first = draw_subset(mnist.train_labels, spec, seed=0)
    assert torch.equal(first, draw_subset(mnist.train_labels, spec, seed=0))
    assert indices_hash(first) == indices_hash(draw_subset(mnist.train_labels, spec, seed=0))
    other = draw_subset(mnist.train_labels, spec, seed=1)
    assert not torch.equal(first, other)
    assert indices_hash(first) != indices_hash(other)


def test_training_tensors_are_exactly_the_recorded_training_images(mnist):
    data = prepare_data(mnist, run_config(data="10-per-class", seed=5), torch.device("cpu"))
    assert data.indices.max() < 60000
    assert torch.equal(data.x_train, to_features(mnist.train_images[data.indices]))
    assert torch.equal(data.y_train, mnist.train_labels[data.indices])
    # No training row is a test image: compare raw pixels of every training row with the test set.
    train_rows = mnist.train_images[data.indices].reshape(len(data.indices), -1).to(torch.int32)
    test_rows = mnist.test_images.reshape(10000, -1).to(torch.int32)
    distances = torch.cdist(train_rows.float(), test_rows.float())
    assert distances.min() > 0
    assert torch.equal(data.x_test, to_features(mnist.test_images))


@pytest.mark.parametrize("bad", ["", "half", "0-per-class", "0pct", "150pct", "2.5", "-1"])
def test_bad_subset_names_are_rejected_with_the_accepted_forms(bad):
    with pytest.raises(ConfigError, match="per-class"):
        parse_subset(bad)


def test_validation_split_is_disjoint_deterministic_and_leaves_the_subset_unchanged(mnist):
    cpu = torch.device("cpu")
    plain = prepare_data(mnist, run_config(data="1pct", seed=2), cpu)
    with_val = prepare_data(mnist, run_config(data="1pct", seed=2, validation_size=1000), cpu)
    assert torch.equal(plain.indices, with_val.indices)
    assert len(with_val.val_indices) == 1000 and len(with_val.x_val) == 1000
    assert not set(with_val.val_indices.tolist()) & set(with_val.indices.tolist())
    again = prepare_data(mnist, run_config(data="1pct", seed=2, validation_size=1000), cpu)
    assert torch.equal(again.val_indices, with_val.val_indices)
    assert torch.equal(with_val.x_val, to_features(mnist.train_images[with_val.val_indices]))


def test_full_with_validation_holds_the_validation_images_out(mnist):
    data = prepare_data(mnist, run_config(data="full", validation_size=5000), torch.device("cpu"))
    assert len(data.indices) == 55000 and len(data.val_indices) == 5000
    assert not set(data.val_indices.tolist()) & set(data.indices.tolist())


def test_uniform_draw_has_the_same_size_but_ignores_classes(mnist):
    spec = parse_subset("10-per-class")
    uniform = draw_subset(mnist.train_labels, spec, seed=0, draw="uniform")
    assert len(uniform) == 100 and len(set(uniform.tolist())) == 100
    assert torch.equal(uniform, draw_subset(mnist.train_labels, spec, seed=0, draw="uniform"))
    counts = [draw_subset(mnist.train_labels, spec, seed=s, draw="uniform") for s in range(5)]
    assert any(mnist.train_labels[c].bincount(minlength=10).tolist() != [10] * 10 for c in counts)
