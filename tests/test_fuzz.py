"""Property-based fuzzing: random recipes and random CLI option values never end in a traceback.

Every input must end in a valid config or in a one-line error with exit code 2.
`DBA_FUZZ_EXAMPLES` raises the number of inputs (`make fuzz` uses 2000); each
test prints how many it tried (`pytest -s`).
"""

import os

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from dba_cli.cli import app
from dba_cli.errors import ConfigError
from dba_cli.recipes.loading import load_recipe
from dba_cli.recipes.recipe import Recipe

from tests.test_recipes import TINY

runner = CliRunner()
EXAMPLES = int(os.environ.get("DBA_FUZZ_EXAMPLES", "150"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-10**12, 10**12), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20), st.sampled_from(["sgd", "adam", "dba", "full", "1pct", "10-per-class", "variance", "1e-3", ""]),
)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4), max_leaves=12)


def mutate(document, path, value):
    """Replace (or, with value None and a 50/50 draw, delete) the entry at `path` of a nested recipe dict."""
    node = document
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return document


def paths(node, prefix=()):
    if isinstance(node, dict):
        for key, child in node.items():
            yield prefix + (key,)
            yield from paths(child, prefix + (key,))


VALID = yaml.safe_load(TINY + "tune: {lr_range: {sgd: [0.01, 1.0], adam: [0.0001, 0.01]}}\n")
VALID["methods"]["dba"] = {"method": "dba", "lr": 0.1, "dba": {"metric": "snr", "direction": "maximize", "min_size": 3}}
PATHS = list(paths(VALID))

recipes = st.one_of(
    st.text(max_size=200),  # any text at all
    values.map(lambda v: yaml.safe_dump(v, allow_unicode=True)),  # any YAML structure
    st.tuples(st.sampled_from(PATHS), values).map(  # a valid recipe with one entry replaced
        lambda change: yaml.safe_dump(mutate(yaml.safe_load(yaml.safe_dump(VALID)), *change), allow_unicode=True)
    ),
    st.tuples(st.text(min_size=1, max_size=12), values).map(  # a valid recipe with an unknown key
        lambda extra: yaml.safe_dump({**VALID, extra[0]: extra[1]}, allow_unicode=True)
    ),
)


def test_random_recipes_load_or_fail_with_one_config_error(tmp_path):
    tried = []
    path = tmp_path / "fuzz.yaml"

    @FUZZ
    @given(text=recipes)
    def check(text):
        tried.append(text)
        path.write_text(text, encoding="utf-8")
        try:
            recipe = load_recipe(str(path))
        except ConfigError as exc:
            assert "\n" not in str(exc) and str(exc).startswith(str(path))
            return
        assert isinstance(recipe, Recipe)
        assert recipe.runs(seeds=1)  # every method makes a valid run config

    check()
    print(f"\nrecipe loader: {len(tried)} random recipes")
    assert len(tried) >= min(EXAMPLES, 100)


OPTION_VALUES = {
    "--data": st.one_of(st.text(max_size=12), st.sampled_from(["1-per-class", "2-per-class", "0pct", "7%", "-1-per-class", "full!"])),
    "--method": st.one_of(st.text(max_size=6), st.sampled_from(["sgd", "adam", "dba"])),
    "--base": st.one_of(st.text(max_size=6), st.sampled_from(["sgd", "adam"])),
    "--lr": st.one_of(st.text(max_size=8), st.sampled_from(["0.1", "1e-3", "0", "-1", "nan", "inf", "1e999"])),
    "--epochs": st.one_of(st.text(max_size=6), st.sampled_from(["1", "0", "-3", "1.5", "99999999999999999999"])),
    "--batch-size": st.one_of(st.text(max_size=6), st.sampled_from(["1", "8", "0", "-2", "100000"])),
    "--hidden": st.one_of(st.text(max_size=10), st.sampled_from(["8", "8,8", "", ",", "0", "-4", "8,,8", "1e2"])),
    "--seed": st.one_of(st.text(max_size=6), st.sampled_from(["0", "-1", "7"])),
    "--metric": st.one_of(st.text(max_size=8), st.sampled_from(["variance", "snr", "cosine"])),
    "--direction": st.one_of(st.text(max_size=8), st.sampled_from(["minimize", "maximize"])),
    "--min-size": st.one_of(st.text(max_size=6), st.sampled_from(["1", "0", "3", "-1"])),
    "--activation": st.one_of(st.text(max_size=6), st.sampled_from(["relu", "tanh"])),
    "--device": st.one_of(st.text(max_size=6), st.sampled_from(["cpu", "cuda", "cuda:7", "tpu"])),
}
# Keep valid runs tiny: a 1- or 2-per-class subset, one epoch, a small hidden layer.
SAFE = ["--data", "1-per-class", "--epochs", "1", "--hidden", "8", "--device", "cpu"]


@st.composite
def command_lines(draw):
    chosen = draw(st.lists(st.sampled_from(sorted(OPTION_VALUES)), max_size=5, unique=True))
    args = []
    for option in chosen:
        args += [option, draw(OPTION_VALUES[option])]
    if draw(st.booleans()):
        args.append(draw(st.sampled_from(["--bogus", "-x", "--lr", "extra-argument"])))
    fixed = [item for pair in zip(SAFE[::2], SAFE[1::2]) if pair[0] not in chosen for item in pair]
    return ["run", *fixed, *args]


def test_random_cli_options_run_or_fail_with_one_line_and_exit_code_2():
    tried = []

    @FUZZ
    @given(args=command_lines())
    def check(args):
        if "--epochs" in args:  # never let the fuzzer start a long run
            try:
                if int(args[args.index("--epochs") + 1]) > 2:
                    return
            except (ValueError, IndexError):
                pass
        tried.append(args)
        outcome = runner.invoke(app, args)
        assert outcome.exit_code in (0, 2), (args, outcome.output, outcome.exception)
        assert "Traceback" not in outcome.output
        assert outcome.exception is None or isinstance(outcome.exception, SystemExit), (args, outcome.exception)
        if outcome.exit_code == 2:
            errors = [line for line in outcome.output.splitlines() if line.startswith("error:")]
            assert len(errors) == 1, (args, outcome.output)
        else:
            assert "final test accuracy" in outcome.output

    check()
    print(f"\nCLI: {len(tried)} random command lines")
    assert len(tried) >= min(EXAMPLES, 100) // 2
