"""Recipes compose: `extends:` another recipe and change a few values; `--set` overrides any value from the command line."""

from __future__ import annotations

import pytest
import yaml
from typer.testing import CliRunner

from dba_cli.cli import app
from dba_cli.errors import ConfigError
from dba_cli.recipes.loading import load_recipe, merged
from dba_cli.results.reading import read_result
from tests.test_recipes import TINY, write

runner = CliRunner()

CHILD = """\
extends: recipe.yaml
name: child
model: {hidden: [16]}
methods:
  sgd: {lr: 0.5}
  adam: null
  dba: {method: dba, lr: 0.1, dba: {metric: snr, direction: maximize, min_size: 5}}
"""


def test_merge_rule_mappings_merge_values_replace_null_removes():
    base = {"a": 1, "b": {"c": 2, "d": 3}, "e": [1, 2], "f": 4}
    assert merged(base, {"b": {"c": 9}, "e": [7], "f": None, "g": 5}) == {"a": 1, "b": {"c": 9, "d": 3}, "e": [7], "g": 5}


def test_a_recipe_extends_another_and_changes_a_few_values(tmp_path):
    write(tmp_path, TINY)
    child = load_recipe(write(tmp_path, CHILD, "child.yaml"))
    parent = load_recipe(str(tmp_path / "recipe.yaml"))
    assert child.name == "child" and list(child.methods) == ["sgd", "dba"]  # adam removed, dba added
    sgd = child.runs(methods=["sgd"], seeds=1)[0].config
    assert sgd.lr == 0.5 and sgd.hidden == [16] and sgd.epochs == parent.defaults.epochs  # inherited training
    assert sgd.method == "sgd"  # merged into the parent's sgd, which names the method
    assert child.runs(methods=["dba"], seeds=1)[0].config.dba.metric == "snr"


@pytest.mark.parametrize("text, message", [
    ("extends: recipe.yaml\nseeds: 3\n", "must give its own `name:`"),
    ("extends: nowhere.yaml\nname: x\n", "nowhere.yaml does not exist"),
    ("extends: [a]\nname: x\n", "extends: must be a recipe name"),
    ("extends: loop.yaml\nname: loop\n", "cannot extend itself"),
])
def test_bad_extends_are_one_line_naming_the_file(tmp_path, text, message):
    write(tmp_path, TINY)
    path = write(tmp_path, text, "loop.yaml")
    with pytest.raises(ConfigError, match=message) as error:
        load_recipe(path)
    assert "\n" not in str(error.value)


def test_an_extended_recipe_reports_a_bad_value_at_its_path(tmp_path):
    write(tmp_path, TINY)
    with pytest.raises(ConfigError, match=r"child\.yaml \(method sgd\): methods\.sgd\.lr: Input should be greater than 0"):
        load_recipe(write(tmp_path, CHILD.replace("lr: 0.5", "lr: -1"), "child.yaml"))


def test_the_packaged_beyond_mnist_recipes_extend_the_mnist_ones():
    for name, parent in {"fashion-1pct": "mnist-1pct", "fashion-10-per-class": "mnist-10-per-class",
                         "fashion-full": "mnist-full", "mnist-1pct-cnn": "mnist-1pct"}.items():
        from dba_cli.recipes.loading import find_recipe

        document = yaml.safe_load(find_recipe(name).read_text())
        assert document["extends"] == parent and len(document) <= 12, name  # a few lines, not a copy
        assert load_recipe(name).seeds == load_recipe(parent).seeds


def test_set_overrides_any_value_and_the_runs_record_it(tmp_path):
    path = write(tmp_path, TINY)
    results = tmp_path / "r"
    outcome = runner.invoke(app, ["reproduce", path, "--methods", "sgd", "--seeds", "1", "--results", str(results),
                                  "--set", "methods.sgd.lr=0.05", "--set", "model.hidden=[8]", "--jobs", "1"])
    assert outcome.exit_code == 0, outcome.output
    config = read_result(results / "tiny" / "sgd" / "seed-0.json")["config"]
    assert config["lr"] == 0.05 and config["hidden"] == [8]
    assert load_recipe(path, ["training.epochs=5", "methods.adam=null"]).runs(seeds=1)[0].config.epochs == 5
    assert list(load_recipe(path, ["methods.adam=null"]).methods) == ["sgd"]


@pytest.mark.parametrize("item, message", [
    ("methods.sgd.lr", "expected KEY=VALUE"),
    ("=3", "expected KEY=VALUE"),
    ("methods..lr=3", "expected KEY=VALUE"),
    ("methods.sgd.lr=-1", r"methods\.sgd\.lr: Input should be greater than 0"),
    ("methods.sgd.lrr=1", r"methods\.sgd\.lrr: unknown key; did you mean 'lr'\?"),
    ("seeds=[", "--set seeds: invalid YAML"),
])
def test_a_bad_set_is_one_line_and_trains_nothing(tmp_path, item, message):
    results = tmp_path / "r"
    outcome = runner.invoke(app, ["reproduce", write(tmp_path, TINY), "--results", str(results), "--set", item])
    assert outcome.exit_code == 2, outcome.output
    assert len(outcome.output.strip().splitlines()) == 1 and pytest.importorskip("re").search(message, outcome.output)
    assert not results.exists()


def test_recipes_show_resolved_prints_the_composed_recipe(tmp_path):
    outcome = runner.invoke(app, ["recipes", "show", "fashion-1pct", "--resolved"])
    assert outcome.exit_code == 0, outcome.output
    document = yaml.safe_load(outcome.output)
    assert document["name"] == "fashion-1pct" and "extends" not in document and "claim" not in document
    assert document["methods"]["sgd"] == {"method": "sgd", "lr": 0.1}  # inherited from mnist-1pct
