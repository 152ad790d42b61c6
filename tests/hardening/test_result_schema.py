"""Hardening, round 4: result files are checked for type, range and place, not only for shape.

Every case of the issue, provoked for real on result files that `dba reproduce`
wrote: a field deleted, a string where a number belongs, a list as a role, a seed
dba can never make, a file whose folder says another method, kept-size statistics
as text, a 5,000-digit number. Before, `dba table` or `dba plot` crashed (exit 1)
on some and tabulated others silently wrong; now each is skipped with a warning
naming the file and the field, and counted nowhere. Then the property test:
Hypothesis mutates fields of real result files and `dba table` and `dba plot`
never exit 1 and never tabulate a mutated file silently.
"""

from __future__ import annotations

import json
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from dba_cli.cli import app
from dba_cli.results.reading import read_result
from tests.test_recipes import write

runner = CliRunner()
EXAMPLES = int(os.environ.get("DBA_FUZZ_EXAMPLES", "150"))
RECIPE = """
name: tiny
data: 5-per-class
model: {hidden: [16]}
training: {epochs: 2, batch_size: 10}
seeds: 2
methods:
  sgd: {method: sgd, lr: 0.1}
  adam: {method: adam, lr: 0.001}
  dba: {method: dba, lr: 0.1, dba: {min_size: 5}}
"""


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Six real result files (sgd, adam, dba; seeds 0 and 1), trained once for the module."""
    folder = tmp_path_factory.mktemp("schema")
    results = folder / "results"
    outcome = runner.invoke(app, ["reproduce", write(folder, RECIPE), "--results", str(results), "--device", "cpu"])
    assert outcome.exit_code == 0, outcome.output
    return {path.relative_to(results).as_posix(): path.read_text() for path in sorted(results.rglob("seed-*.json"))}


def lay_out(files: dict, folder):
    folder.mkdir(parents=True, exist_ok=True)
    for relative, text in files.items():
        (folder / relative).parent.mkdir(parents=True, exist_ok=True)
        (folder / relative).write_text(text)
    return folder


def counts(markdown: str) -> dict:
    """method -> n, from the tiny recipe's table."""
    rows = [line.split(" | ") for line in markdown.splitlines() if line.startswith("| ") and " | baseline" in line]
    return {cells[0].removeprefix("| "): int(cells[2]) for cells in rows}


def set_path(document: dict, path: tuple, value) -> None:
    """document[path] = value; a value of DELETE removes the key."""
    for key in path[:-1]:
        document = document[key]
    if value is DELETE:
        del document[path[-1]]
    else:
        document[path[-1]] = value


DELETE = object()
# (label, file, field path, value): the cases, each a hand edit of a real file.
CASES = [
    ("config without method", "tiny/sgd/seed-0.json", ("config", "method"), DELETE, "config.method"),
    ("threads 'abc'", "tiny/sgd/seed-0.json", ("threads",), "abc", "threads"),
    ("train_seconds 'abc'", "tiny/sgd/seed-0.json", ("train_seconds",), "abc", "train_seconds"),
    ("a list as role", "tiny/sgd/seed-0.json", ("role",), ["baseline"], "role"),
    ("hidden 'abc'", "tiny/sgd/seed-0.json", ("config", "hidden"), "abc", "config.hidden"),
    ("batch_size 'abc'", "tiny/sgd/seed-0.json", ("config", "batch_size"), "abc", "config.batch_size"),
    ("kept sizes as text", "tiny/dba/seed-0.json", ("history", "kept", "0", "mean"), ["a", "b"], "history.kept"),
    ("method_name adam in sgd/", "tiny/sgd/seed-0.json", ("method_name",), "adam", "method_name"),
    ("diverged_at_epoch 'abc'", "tiny/sgd/seed-0.json", ("diverged_at_epoch",), "abc", "diverged_at_epoch"),
    ("seed -5", "tiny/sgd/seed-0.json", ("seed",), -5, "seed"),
    ("final accuracy 250", "tiny/sgd/seed-0.json", ("final_test_accuracy",), 250.0, "final_test_accuracy"),
    ("an extra field", "tiny/sgd/seed-0.json", ("rogue",), 1, "rogue"),
]


@pytest.mark.parametrize("label, relative, field, value, named", CASES, ids=[case[0] for case in CASES])
def test_a_result_file_of_the_wrong_type_or_range_is_skipped_by_table_and_plot_naming_the_file_and_field(
    trained, tmp_path, label, relative, field, value, named
):
    results = lay_out(trained, tmp_path / "results")
    document = json.loads(trained[relative])
    set_path(document, field, value)
    (results / relative).write_text(json.dumps(document))

    table = runner.invoke(app, ["table", "--results", str(results)])
    assert table.exit_code == 0, table.output
    warning = next(line for line in table.output.splitlines() if line.startswith("warning: skipped"))
    assert relative in warning and named in warning, warning
    method = relative.split("/")[1]
    assert counts(table.stdout)[method] == 1  # the other seed only: the damaged one is counted nowhere
    assert counts(table.stdout)["adam" if method != "adam" else "sgd"] == 2


def test_the_files_that_crashed_plot_are_skipped_by_it_naming_each(trained, tmp_path):
    """hidden 'abc', batch_size 'abc' and kept sizes as text, one in each method's seed 0, in one folder."""
    results = lay_out(trained, tmp_path / "results")
    cases = {case[0]: case for case in CASES}
    edits = [("tiny/sgd/seed-0.json", "hidden 'abc'"), ("tiny/adam/seed-0.json", "batch_size 'abc'"),
             ("tiny/dba/seed-0.json", "kept sizes as text")]
    for relative, label in edits:
        document = json.loads(trained[relative])
        set_path(document, cases[label][2], cases[label][3])
        (results / relative).write_text(json.dumps(document))
    plot = runner.invoke(app, ["plot", "--results", str(results)])
    assert plot.exit_code == 0, plot.output
    assert "internal error" not in plot.output
    for relative, label in edits:
        assert any(relative in line and cases[label][4] in line for line in plot.output.splitlines()), (label, plot.output)
    assert (results / "figures" / "tiny-accuracy-vs-epoch.png").is_file()  # drawn from the other seed


def test_a_5000_digit_number_is_named_with_its_file(trained, tmp_path):
    results = lay_out(trained, tmp_path / "results")
    target = results / "tiny" / "adam" / "seed-1.json"
    target.write_text(trained["tiny/adam/seed-1.json"].replace('"threads":1', '"threads":' + "9" * 5000))
    outcome = runner.invoke(app, ["table", "--results", str(results)])
    assert outcome.exit_code == 0, outcome.output
    assert f"skipped: {target}: unreadable: not valid JSON (a whole number of 5,000 digits is too large" in outcome.output
    assert counts(outcome.stdout)["adam"] == 1


def test_every_committed_result_file_fits_the_schema():
    """The schema describes what dba writes: every file of results/ reads back (and none is edited)."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "results"
    files = sorted(root.rglob("seed-*.json"))
    assert files, f"{root} holds no result file"  # any number: a regeneration commits its results sitting by sitting
    for path in files:
        assert read_result(path, inside=root)["_edited"] is False, path


def stored_fields(document: dict, prefix: tuple = ()) -> list[tuple]:
    """Every field path of a stored document, lists' items included (at most 3 per list)."""
    paths = []
    for key, value in document.items():
        path = (*prefix, key)
        paths.append(path)
        if isinstance(value, dict):
            paths += stored_fields(value, path)
        elif isinstance(value, list):
            paths += [(*path, index) for index in range(min(3, len(value)))]
    return paths


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-10**40, 10**40) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=6,
)


def mutate(document: dict, data) -> str:
    """One random mutation of a stored document (a field deleted, replaced, added, or a number moved out of range)."""
    fields = stored_fields(document)
    path = data.draw(st.sampled_from(fields), label="field")
    kind = data.draw(st.sampled_from(["delete", "replace", "add", "nudge"]), label="kind")
    parent = document
    for key in path[:-1]:
        parent = parent[key]
    old = parent[path[-1]]
    if kind == "delete" and isinstance(parent, dict):
        del parent[path[-1]]
    elif kind == "add" and isinstance(old, dict):
        old[data.draw(st.text(min_size=1, max_size=8), label="new key")] = data.draw(JSON_VALUES, label="new value")
    elif kind == "nudge" and isinstance(old, (int, float)) and not isinstance(old, bool):
        parent[path[-1]] = data.draw(st.sampled_from([-1, -old, old + 1000, old * 1e6, -1e-9]), label="nudged")
    else:
        parent[path[-1]] = data.draw(JSON_VALUES, label="value")
    return json.dumps(document)


@pytest.mark.parametrize("command", ["table", "plot"])
def test_mutated_result_files_never_crash_a_report_and_are_never_tabulated_silently(trained, tmp_path, command):
    """Property test: a mutated file is skipped with a warning naming it, or (valid, but edited) refused as 'edited'."""
    tried = []
    examples = EXAMPLES // 3 if command == "table" else max(4, EXAMPLES // 40)  # 50 and 4 by default; make fuzz: 666 and 50

    @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(relative=st.sampled_from(sorted(trained)), data=st.data())
    def check(relative, data):
        results = lay_out(trained, tmp_path / f"case-{len(tried)}" / "results")
        original = json.loads(trained[relative])
        mutated = mutate(json.loads(trained[relative]), data)
        if json.loads(mutated) == original:
            return
        (results / relative).write_text(mutated)
        tried.append(relative)
        outcome = runner.invoke(app, [command, "--results", str(results)])
        assert outcome.exit_code in (0, 2), outcome.output
        assert "internal error" not in outcome.output
        if command == "plot":
            return
        skipped = f"skipped: {results / relative}" in outcome.output
        refused = outcome.exit_code == 2 and "edited" in outcome.output  # valid but edited: the row would mix versions
        assert skipped or refused, outcome.output
        if skipped:
            assert counts(outcome.stdout)[relative.split("/")[1]] == 1

    check()
    print(f"{command}: {len(tried)} mutated result files tried")
    assert len(tried) >= examples // 2
