"""Recipes: the packaged ones are valid; bad ones fail with one clear message naming file and field."""

import pytest
from typer.testing import CliRunner

from dba_cli.cli import app
from dba_cli.errors import ConfigError
from dba_cli.recipes.loading import list_recipes, load_recipe

runner = CliRunner()

TINY = """\
name: tiny
data: 5-per-class
model: {hidden: [32]}
training: {epochs: 2, batch_size: 10}
seeds: 2
methods:
  sgd: {method: sgd, lr: 0.1}
  adam: {method: adam, lr: 0.001}
"""


def write(tmp_path, text, name="recipe.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_packaged_recipes_are_valid_and_state_the_claims():
    assert set(list_recipes()) == {
        "mnist-full", "mnist-1pct", "mnist-10-per-class", "mnist-1pct-cnn", "fashion-1pct", "fashion-10-per-class", "fashion-full",
        "mnist-1pct-sym20", "mnist-1pct-sym50", "mnist-1pct-pair45", "mnist-1pct-imb10",
    }
    one_pct = load_recipe("mnist-1pct")
    assert one_pct.claim.dba_accuracy == 97.79 and one_pct.claim.error_reduction == 81.78
    assert load_recipe("mnist-10-per-class").claim.dba_accuracy == 97.44
    for name in list_recipes():
        recipe = load_recipe(name)
        roles = {spec.role for spec in recipe.methods.values()}
        assert {"baseline", "literal", "chosen"} <= roles
        runs = recipe.runs()
        assert len(runs) == sum(recipe.seed_count(name) for name in recipe.methods)
        assert len({run.key for run in runs}) == len(runs)
        assert {run.config.dataset for run in runs} == {recipe.defaults.dataset}


def test_beyond_mnist_recipes_change_one_thing_from_their_mnist_recipe():
    """Each new recipe is its MNIST-MLP counterpart with only the data set or the model changed."""
    pairs = {"fashion-1pct": "mnist-1pct", "fashion-10-per-class": "mnist-10-per-class", "fashion-full": "mnist-full",
             "mnist-1pct-cnn": "mnist-1pct"}
    for name, original in pairs.items():
        new, old = load_recipe(name), load_recipe(original)
        assert new.claim.dba_accuracy is None and new.claim.convergence is None  # the paper claims nothing here
        assert (new.data, new.training, new.seeds) == (old.data, old.training, old.seeds)
        for method in ("sgd", "adam", "dba-literal", "dba"):
            assert new.methods[method] == old.methods[method]
        if name.startswith("fashion"):
            assert new.defaults.dataset == "fashion-mnist" and new.model == old.model
        else:
            assert new.defaults.dataset == "mnist" and new.defaults.architecture == "cnn"
            assert all(run.config.to_dict()["architecture"] == "cnn" for run in new.runs())


def test_runs_apply_overrides_and_smoke(tmp_path):
    recipe = load_recipe(write(tmp_path, TINY))
    runs = recipe.runs(seeds=3, methods=["adam"], epochs=7, batch_size=4)
    assert [run.config.seed for run in runs] == [0, 1, 2]
    assert {(run.config.method, run.config.epochs, run.config.batch_size, run.config.lr) for run in runs} == {
        ("adam", 7, 4, 0.001)
    }
    assert runs[0].key == "tiny/adam/seed-0.json"
    smoke = recipe.runs(smoke=True)
    assert {run.config.epochs for run in smoke} == {2} and {run.config.seed for run in smoke} == {0}


@pytest.mark.parametrize(
    "text, expected",
    [
        (TINY.replace("lr: 0.1}", "lr: fast}"), r"methods\.sgd\.lr: .*number.*'fast'"),
        (TINY.replace("epochs: 2", "epochs: -3"), r"training\.epochs: .*greater than or equal to 1"),
        (TINY.replace("seeds: 2", "sedes: 2"), r"sedes: unknown key; did you mean 'seeds'\?"),
        (TINY.replace("{method: sgd, lr: 0.1}", "{method: sgd, lr: 0.1, momentm: 0.9}"),
         r"methods\.sgd\.momentm: unknown key; did you mean 'momentum'\?"),
        (TINY.replace("data: 5-per-class", "data: lots"), r"data: .*not a training subset"),
        (TINY.replace("{method: adam, lr: 0.001}", "{method: rmsprop, lr: 0.001}"), r"methods\.adam\.method: "),
        (TINY.replace("seeds: 2\n", ""), r"seeds: Field required"),
        ("methods: [sgd\n", r"invalid YAML at line"),
        ("- just\n- a list\n", r"must be a YAML mapping"),
    ],
)
def test_bad_recipes_name_the_file_and_field(tmp_path, text, expected):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=expected) as excinfo:
        load_recipe(path)
    assert path in str(excinfo.value)


def test_missing_and_unknown_recipes(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_recipe(str(tmp_path / "nope.yaml"))
    with pytest.raises(ConfigError, match="Did you mean 'mnist-1pct'"):
        load_recipe("mnist-1pc")


def test_cli_lists_shows_and_rejects_recipes(tmp_path):
    listed = runner.invoke(app, ["recipes", "list"])
    assert listed.exit_code == 0 and "mnist-10-per-class" in listed.output
    shown = runner.invoke(app, ["recipes", "show", "mnist-1pct"])
    assert shown.exit_code == 0 and "assumed: not in the paper" in shown.output
    bad = runner.invoke(app, ["reproduce", write(tmp_path, TINY.replace("seeds: 2", "seeds: two"))])
    assert bad.exit_code == 2 and "seeds:" in bad.output and "Traceback" not in bad.output
    assert not (tmp_path / "results").exists()
