"""Recipe files and options that hang, crash or are silently misread: each case as the user found it.

Every one must end, fast, in a one-line ConfigError (exit code 2 on the command
line) that names the file and, where known, the line.
"""

import time

import pytest
import yaml
from typer.testing import CliRunner

from dba_cli.cli import app
from dba_cli.settings.run import run_config
from dba_cli.errors import ConfigError
from dba_cli.recipes.loading import list_recipes, load_recipe
from dba_cli.recipes.safe_yaml import MAX_BYTES, MAX_DEPTH, MAX_VALUES, load_yaml_file

from tests.test_recipes import TINY, write

runner = CliRunner()


def one_error_line(outcome) -> str:
    lines = [line for line in outcome.output.splitlines() if line.strip()]
    assert outcome.exit_code == 2, outcome.output
    assert len(lines) == 1 and lines[0].startswith("error:"), outcome.output
    assert "Traceback" not in outcome.output and "internal error" not in outcome.output
    return lines[0]


def billion_laughs() -> str:
    """`a` holds 9 values, each x_i 9 copies of the previous: `description: *x9` stands for 9^10 values."""
    lines = ["a: &a [x, x, x, x, x, x, x, x, x]"]
    previous = "a"
    for level in range(1, 10):
        lines.append(f"x{level}: &x{level} [" + ", ".join([f"*{previous}"] * 9) + "]")
        previous = f"x{level}"
    return TINY + "\n".join(lines) + "\ndescription: *x9\n"


def test_billion_laughs_fails_fast_with_a_short_message(tmp_path):
    path = write(tmp_path, billion_laughs())
    start = time.perf_counter()
    with pytest.raises(ConfigError, match=rf"holds more than {MAX_VALUES} values at line \d+") as excinfo:
        load_recipe(path)
    assert time.perf_counter() - start < 2
    assert str(excinfo.value).startswith(path) and len(str(excinfo.value)) < 500


def test_a_million_values_behind_one_alias_is_refused_not_quoted(tmp_path):
    """10^6 values in a typed field once printed a 7.2 MB error line."""
    lines = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for level, previous in enumerate(["a", "b", "c", "d", "e"]):
        name = "bcdef"[level]
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{previous}"] * 10) + "]")
    path = write(tmp_path, TINY + "\n".join(lines) + "\ntargets: *f\n")
    start = time.perf_counter()
    with pytest.raises(ConfigError, match="more than") as excinfo:
        load_recipe(path)
    assert time.perf_counter() - start < 2 and len(str(excinfo.value)) < 500


def test_nesting_through_aliases_counts_as_nesting(tmp_path):
    half = MAX_DEPTH // 2 + 2
    text = TINY + "a: &a " + "[" * half + "]" * half + "\nb: " + "[" * half + "*a" + "]" * half + "\n"
    with pytest.raises(ConfigError, match=rf"nested more than {MAX_DEPTH} levels deep at line 10 once alias \*a"):
        load_recipe(write(tmp_path, text))


def test_a_recursive_alias_is_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"alias \*t at line 9 refers to a value that contains it"):
        load_recipe(write(tmp_path, TINY + "targets: &t [1, *t]\n"))


def test_many_bad_values_are_listed_briefly(tmp_path):
    path = write(tmp_path, TINY + "targets: [" + ", ".join(["fast"] * 14) + "]\n")
    with pytest.raises(ConfigError, match=r"and 4 more problems$") as excinfo:
        load_recipe(path)
    assert len(str(excinfo.value)) < 2000


def test_a_huge_value_is_quoted_as_a_short_excerpt(tmp_path):
    path = write(tmp_path, TINY.replace("lr: 0.1}", "lr: '" + "9" * 500_000 + "x'}"))
    with pytest.raises(ConfigError, match=r"methods\.sgd\.lr: must be a number, got '9+\.\.\.9+x'") as excinfo:
        load_recipe(path)
    assert len(str(excinfo.value)) < 500


def test_deep_nesting_is_a_config_error_not_a_recursion_error(tmp_path):
    path = write(tmp_path, "[" * 100_000)
    start = time.perf_counter()
    with pytest.raises(ConfigError, match=rf"^{path}: nested more than {MAX_DEPTH} levels deep at line 1"):
        load_recipe(path)
    assert time.perf_counter() - start < 2
    line = one_error_line(runner.invoke(app, ["reproduce", path]))
    assert f"nested more than {MAX_DEPTH} levels deep at line 1" in line


def test_nesting_up_to_the_limit_is_still_read(tmp_path):
    text = "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1)
    path = tmp_path / "deep.yaml"
    path.write_text(f"x: {text}\n")
    assert load_yaml_file(path) is not None


@pytest.mark.parametrize(
    "text, key, lines",
    [
        (TINY.replace("seeds: 2\n", "seeds: 2\nseeds: 3\n"), "seeds", (6, 5)),
        (TINY.replace("{method: sgd, lr: 0.1}", "{method: sgd, lr: 0.1, lr: 0.3}"), "lr", (7, 7)),
        (TINY.replace("  adam: {method: adam", "  sgd: {method: adam"), "sgd", (8, 7)),
        (TINY + "targets: []\n'targets': [1]\n", "targets", (10, 9)),
    ],
)
def test_a_duplicate_key_names_the_key_and_both_lines(tmp_path, text, key, lines):
    path = write(tmp_path, text)
    second, first = lines
    with pytest.raises(ConfigError, match=rf"duplicate key '{key}' at line {second} \(first at line {first}\)") as excinfo:
        load_recipe(path)
    assert str(excinfo.value).startswith(path)


def test_merge_keys_may_still_be_overridden(tmp_path):
    text = TINY.replace("  adam: {method: adam, lr: 0.001}", "  adam: {<<: *sgd, method: adam, lr: 0.001}")
    recipe = load_recipe(write(tmp_path, text.replace("  sgd: {", "  sgd: &sgd {")))
    assert recipe.methods["adam"].method == "adam" and recipe.methods["adam"].lr == 0.001


def test_a_folder_named_like_a_recipe_is_called_a_folder(tmp_path):
    folder = tmp_path / "dir.yaml"
    folder.mkdir()
    with pytest.raises(ConfigError, match="is a folder, not a recipe file"):
        load_recipe(str(folder))
    assert "is a folder" in one_error_line(runner.invoke(app, ["reproduce", str(folder)]))


def test_a_file_over_the_size_limit_is_refused_before_parsing(tmp_path):
    path = write(tmp_path, TINY + "description: '" + "x" * MAX_BYTES + "'\n")
    with pytest.raises(ConfigError, match=r"is larger than 1 MiB"):
        load_recipe(path)


def test_every_packaged_recipe_reads_as_plain_yaml_does():
    for path in list_recipes().values():
        assert load_yaml_file(path) == yaml.safe_load(path.read_text(encoding="utf-8"))


def test_an_unknown_method_is_the_only_error():
    with pytest.raises(ConfigError) as excinfo:
        run_config(method="nonexistent", lr=None)
    assert str(excinfo.value).startswith("method: ") and "lr" not in str(excinfo.value)
    with pytest.raises(ConfigError) as excinfo:
        run_config(method="dba", base="nonexistent", lr=None)
    assert str(excinfo.value).startswith("base: ") and "lr" not in str(excinfo.value)
    assert run_config(method="adam", lr=None).lr == 0.001  # the default is still filled in


@pytest.mark.parametrize("args", [["--method", "nonexistent"], ["--method", "dba", "--base", "nonexistent"]])
def test_cli_unknown_method_reports_one_error(args):
    line = one_error_line(runner.invoke(app, ["run", *args, "--epochs", "1", "--device", "cpu"]))
    assert "nonexistent" in line and "lr:" not in line
