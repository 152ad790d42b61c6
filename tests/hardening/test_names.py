"""Names that become paths (recipe name, method names, protocol methods) can never write outside the results folder.

A recipe whose method was named "" wrote to /seed-0.json, and one named
"../../escaped" wrote beside the results folder. Names are now checked when the
recipe is loaded (config.SafeName), `PlannedRun.key` refuses unsafe parts, and
`result_path` checks the resolved path.
"""

import os

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from dba_cli.studies import ablate as ablation
from dba_cli.studies import protocol, tune
from dba_cli.cli import app
from dba_cli.settings.names import NAME_CHARACTERS
from dba_cli.settings.run import run_config
from dba_cli.errors import ConfigError
from dba_cli.files import resolve_inside as result_path
from dba_cli.recipes.loading import list_recipes, load_recipe
from dba_cli.recipes.planned import PlannedRun

from tests.test_recipes import TINY, write

runner = CliRunner()
EXAMPLES = int(os.environ.get("DBA_FUZZ_EXAMPLES", "150"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)

HOSTILE = ["", ".", "..", "/", "../../escaped", "../m/x", "a/b", "a\\b", "\x00", "a\x00b", "a\nb", "sgd\n", " sgd",
           "x" * 65, ".hidden", "-rf", "a..b", "é", "~", "$HOME", "/etc", "C:x"]
SAFE = ["sgd", "dba-tuned", "a.b_c+d", "A1", "x" * 64, "7"]


def recipe_text(name="tiny", method="sgd", protocol_methods=None) -> str:
    """TINY with its name and first method name replaced, written as YAML would quote them."""
    document = yaml.safe_load(TINY)
    document["name"] = name
    document["methods"] = {method: document["methods"]["sgd"], "adam": document["methods"]["adam"]}
    if protocol_methods is not None:
        document["protocol"] = {"methods": protocol_methods}
    return yaml.safe_dump(document, allow_unicode=True)


def files_under(folder):
    return {path for path in folder.rglob("*")}


@pytest.mark.parametrize("bad", HOSTILE)
@pytest.mark.parametrize("field", ["name", "methods"])
def test_hostile_names_are_rejected_when_the_recipe_is_loaded(tmp_path, field, bad):
    text = recipe_text(name=bad) if field == "name" else recipe_text(method=bad)
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as excinfo:
        load_recipe(path)
    message = str(excinfo.value)
    assert message.startswith(path) and f"{field}:" in message
    assert "letters, digits, '.', '_', '-' or '+'" in message and "\n" not in message


@pytest.mark.parametrize("good", SAFE)
def test_safe_names_load_and_make_keys_inside_the_results_folder(tmp_path, good):
    recipe = load_recipe(write(tmp_path, recipe_text(name=good, method=good if good != "adam" else "sgd")))
    assert recipe.name == good and good in recipe.methods
    for planned in recipe.runs():
        assert result_path(tmp_path / "results", planned.key).resolve().is_relative_to((tmp_path / "results").resolve())


def test_protocol_method_names_are_checked_too(tmp_path):
    with pytest.raises(ConfigError, match=r"protocol\.methods\.0: is not a usable name"):
        load_recipe(write(tmp_path, recipe_text(protocol_methods=["../up"])))


@pytest.mark.parametrize(
    "recipe, method, group",
    [("../x", "sgd", ""), ("", "sgd", ""), ("tiny", "", ""), ("tiny", "a/../b", ""), ("tiny", "/abs", ""),
     ("tiny", "sgd", "../.."), ("tiny", "sgd", "tune//reruns"), ("a/b", "sgd", ""), ("tiny", "a\x00", "")],
)
def test_planned_run_key_refuses_unsafe_parts(recipe, method, group):
    with pytest.raises(ConfigError, match="is not a usable name"):
        PlannedRun(recipe, method, "baseline", run_config(epochs=1), group).key


def test_planned_run_key_refuses_a_key_too_long_for_a_file_name():
    """Each part may be fine and the whole still too long for the flattened lock file name."""
    with pytest.raises(ConfigError, match="characters long; at most 240"):
        PlannedRun("r" * 64, "m" * 64, "baseline", run_config(epochs=1), "tune/" + "g" * 120).key


def test_planned_run_key_accepts_groups_and_generated_labels():
    config = run_config(epochs=1, seed=3)
    planned = PlannedRun("tiny", "dba/sgd-variance-minimize-min1-mean-lr-1e+07", "tuning", config, "tune")
    assert planned.key == "tune/tiny/dba/sgd-variance-minimize-min1-mean-lr-1e+07/seed-3.json"
    assert PlannedRun("tiny", "sgd", "baseline", config, "tune/tiny/reruns").key == "tune/tiny/reruns/tiny/sgd/seed-3.json"


def test_result_path_stays_inside_the_results_folder(tmp_path):
    results = tmp_path / "results"
    assert result_path(results, "tiny/sgd/seed-0.json") == results / "tiny/sgd/seed-0.json"
    for key in ["../seed-0.json", "tiny/../../x.json", "/seed-0.json", "", ".", "tiny/.."]:
        with pytest.raises(ConfigError, match="outside the results folder"):
            result_path(results, key)
    with pytest.raises(ConfigError, match="cannot be used"):
        result_path(results, "tiny/a\x00b/seed-0.json")
    (results / "tiny").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    (results / "tiny" / "link").symlink_to(tmp_path / "elsewhere")  # a link leading out counts as outside
    with pytest.raises(ConfigError, match="outside the results folder"):
        result_path(results, "tiny/link/seed-0.json")


def test_every_packaged_recipe_plans_safe_keys(tmp_path):
    """The second line of defence never refuses what the packaged recipes plan (tuning, ablation, protocol)."""
    results = tmp_path / "results"
    for name in list_recipes():
        recipe = load_recipe(name)
        runs = recipe.runs()
        if recipe.tune is not None:
            runs += tune.candidate_runs(recipe)
        if recipe.ablation is not None:
            runs += ablation.ablation_runs(recipe)
        if all(method in recipe.methods for method in recipe.protocol.methods):
            runs += protocol.protocol_runs(recipe)
        for planned in runs:
            assert result_path(results, planned.key).resolve().is_relative_to(results.resolve())


names = st.one_of(
    st.text(st.characters(exclude_categories=("Cs",)), max_size=80),
    st.text(st.sampled_from("./\\\x00\n a-Z9é~"), max_size=8),
    st.sampled_from(HOSTILE + SAFE),
)


def test_random_names_are_rejected_or_stay_inside_the_results_folder(tmp_path):
    tried = []
    path = tmp_path / "fuzz.yaml"
    results = tmp_path / "inner" / "results"

    @FUZZ
    @given(name=names, method=names, raw=st.booleans())
    def check(name, method, raw):
        tried.append((name, method))
        text = recipe_text(name, method)
        if raw:  # as a careless user types it: unquoted
            text = TINY.replace("name: tiny", f"name: {name}").replace("  sgd:", f"  {method}:")
        path.write_text(text, encoding="utf-8")
        try:
            recipe = load_recipe(str(path))
        except ConfigError as exc:
            assert "\n" not in str(exc) and str(exc).startswith(str(path)) and len(str(exc)) < 1000
            return
        assert NAME_CHARACTERS.fullmatch(recipe.name) and ".." not in recipe.name
        for planned in recipe.runs(seeds=2):
            target = result_path(results, planned.key).resolve()
            assert target.is_relative_to(results.resolve()) and target.parent.parent.parent == results.resolve()

    check()
    print(f"\nnames: {len(tried)} random recipe and method names")
    assert len(tried) >= min(EXAMPLES, 100)


@pytest.mark.parametrize(
    "name, method",
    [("tiny", ""), ("tiny", "../../../escaped"), ("tiny", "../m/x"), ("../../escaped", "sgd"), ("tiny", "/abs")],
)
def test_reproduce_with_a_hostile_name_writes_nothing_anywhere(tmp_path, monkeypatch, name, method):
    (tmp_path / "inner").mkdir()
    monkeypatch.chdir(tmp_path / "inner")  # anything written relative to the working folder would show up too
    monkeypatch.setenv("DBA_CACHE_DIR", str(tmp_path / "inner" / "results" / "cache"))
    recipe = write(tmp_path, recipe_text(name, method))
    before = files_under(tmp_path)
    outcome = runner.invoke(app, ["reproduce", recipe, "--results", str(tmp_path / "inner" / "results"),
                                  "--epochs", "1", "--seeds", "1", "--device", "cpu"])
    assert outcome.exit_code == 2, outcome.output
    errors = [line for line in outcome.output.splitlines() if line.strip()]
    assert len(errors) == 1 and errors[0].startswith("error:") and "is not a usable name" in errors[0]
    written = files_under(tmp_path) - before
    assert all(path.is_relative_to(tmp_path / "inner" / "results") for path in written), written
    assert not (tmp_path / "escaped").exists() and not os.path.exists("/seed-0.json")
