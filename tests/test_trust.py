"""Results a reviewer can trust: the code version is part of a run's identity, files are compact and checked.

Real tiny runs through the real planner; "another code version" is a valid
schema-2 file that records another source hash (what older code writes), a
hand edit is a byte edit of the file.
"""

import json

import pytest
import torch

from dba_cli.training.code_version import PACKAGE, code_version, source_hash, training_source_files
from dba_cli.recipes.loading import load_recipe
from dba_cli.run.execute import Reporter, execute_runs
from dba_cli.results.format import EDITED, code_label, encode_result
from dba_cli.results.reading import read_result
from tests.test_recipes import TINY, write


class Recorder(Reporter):
    def __init__(self):
        self.stale_runs, self.kept = {}, None

    def stale(self, stale, kept):
        self.stale_runs, self.kept = dict(stale), kept


@pytest.fixture
def tiny_results(tmp_path, mnist):
    runs = load_recipe(write(tmp_path, TINY)).runs()
    results = tmp_path / "results"
    plan = execute_runs(runs, results)
    assert len(plan.done) == 4
    return runs, results


def rerun(runs, mnist, results, **options):
    recorder = Recorder()
    plan = execute_runs(runs, results, reporter=recorder, **options)
    return plan, recorder


def rewrite(path, **changes):
    """Write the file again as other code would have: a valid schema-2 file with `changes` applied."""
    document = read_result(path)
    document.update(changes)
    path.write_text(encode_result(document))


def test_every_result_records_its_code_version(tiny_results):
    _, results = tiny_results
    for path in results.rglob("seed-*.json"):
        document = read_result(path)
        assert document["code"] == code_version() and code_label(document) == source_hash()
        assert len(source_hash()) == 16 and set(document["code"]) == {"hash", "commit", "dirty"}


def test_the_code_hash_covers_the_training_sources_only():
    names = {path.relative_to(PACKAGE).as_posix() for path in training_source_files()}
    assert {"training/train.py", "dba/engine.py", "dba/metrics.py", "data/subsets.py", "data/datasets.py", "models.py"} <= names
    assert not any(name.startswith(("cli/", "reports/", "run/", "bench/", "studies/", "results/")) for name in names)
    assert "data/loading.py" not in names and "data/fetch.py" not in names  # where files are found changes no number


def test_a_run_made_by_other_code_is_stale_said_and_rerun(tiny_results, mnist):
    runs, results = tiny_results
    old = results / "tiny" / "sgd" / "seed-1.json"
    rewrite(old, code={"hash": "0123456789abcdef", "commit": "f" * 40, "dirty": False})
    plan, recorder = rerun(runs, mnist, results)
    assert recorder.stale_runs == {old: "made by code 0123456789abcdef"} and recorder.kept is False
    assert [p.key for p in plan.done] == ["tiny/sgd/seed-1.json"] and len(plan.skipped) == 3
    assert code_label(read_result(old)) == source_hash()


def test_keep_stale_keeps_them_untouched(tiny_results, mnist):
    runs, results = tiny_results
    old = results / "tiny" / "adam" / "seed-0.json"
    rewrite(old, code={"hash": "0123456789abcdef", "commit": None, "dirty": None})
    before = old.read_bytes()
    plan, recorder = rerun(runs, mnist, results, keep_stale=True)
    assert recorder.kept is True and old in recorder.stale_runs
    assert not plan.done and len(plan.skipped) == 4 and old.read_bytes() == before


def test_a_hand_edited_code_version_is_stale_never_current(tiny_results, mnist):
    runs, results = tiny_results
    path = results / "tiny" / "adam" / "seed-1.json"
    document = json.loads(path.read_text())
    document["code"]["hash"] = "feedfacefeedface"  # claims other code ...
    path.write_text(json.dumps(document))
    assert code_label(read_result(path)) == EDITED
    document["code"]["hash"] = source_hash()  # ... or claims to be current: still an edit
    document["final_test_accuracy"] = 99.0
    path.write_text(json.dumps(document))
    assert code_label(read_result(path)) == EDITED
    plan, recorder = rerun(runs, mnist, results)
    assert recorder.stale_runs[path].startswith("edited by hand") and [p.key for p in plan.done] == ["tiny/adam/seed-1.json"]
    assert read_result(path)["final_test_accuracy"] != 99.0


def test_a_subset_that_no_longer_reproduces_from_its_seed_is_stale(tiny_results, mnist):
    runs, results = tiny_results
    path = results / "tiny" / "sgd" / "seed-0.json"
    rewrite(path, subset_hash="0000000000000000")  # valid digest: only the draw can tell
    plan, recorder = rerun(runs, mnist, results)
    assert "no longer reproduces" in recorder.stale_runs[path] and len(plan.done) == 1


def test_files_are_compact_schema_2(tiny_results):
    _, results = tiny_results
    path = results / "tiny" / "sgd" / "seed-0.json"
    text = path.read_text()
    raw = json.loads(text)
    assert raw["schema_version"] == 2 and text.count("\n") == 1 and ": " not in text
    assert "subset_indices" not in raw and None not in raw.values()
    assert set(raw["history"]) >= {"train_loss", "train_seconds", "evaluated"} and isinstance(raw["history"]["train_loss"], list)
    assert raw["history"]["evaluated"]["epoch"] == [1, 2] and "val_loss" not in raw["history"]["evaluated"]
    document = read_result(path)  # read back in the records shape every reader uses
    assert [record["epoch"] for record in document["history"]] == [1, 2]
    assert document["final_test_accuracy"] == document["history"][-1]["test_accuracy"]


def test_a_file_of_another_schema_is_damaged_and_redone(tiny_results, mnist):
    runs, results = tiny_results
    path = results / "tiny" / "sgd" / "seed-1.json"
    document = json.loads(path.read_text())
    document["schema_version"] = 1
    path.write_text(json.dumps(document))
    with pytest.raises(ValueError, match="schema 1, not 2"):
        read_result(path)
    plan, _ = rerun(runs, mnist, results)
    assert list(plan.damaged) == [path] and [p.key for p in plan.done] == ["tiny/sgd/seed-1.json"]
    assert json.loads(path.read_text())["schema_version"] == 2


def test_the_table_names_its_code_versions_and_refuses_to_mix_them_in_a_row(tiny_results):
    from typer.testing import CliRunner

    from dba_cli.cli import app

    runner = CliRunner()
    _, results = tiny_results
    table = runner.invoke(app, ["table", "--results", str(results)])
    assert table.exit_code == 0, table.output
    assert f"`{source_hash()}`" in (results / "paper-tables.md").read_text() and ": 4 run(s)" in table.output
    rewrite(results / "tiny" / "sgd" / "seed-1.json", code={"hash": "0123456789abcdef", "commit": None, "dirty": None})
    refused = runner.invoke(app, ["table", "--results", str(results)])
    assert refused.exit_code == 2 and "tiny sgd (" in refused.output and "--mixed-versions" in refused.output
    allowed = runner.invoke(app, ["table", "--results", str(results), "--mixed-versions"])
    assert allowed.exit_code == 0 and "Rows mixing versions" in (results / "paper-tables.md").read_text()


def test_a_missing_recipe_folder_is_one_line_naming_where_it_looked(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from dba_cli.cli import app

    monkeypatch.setenv("DBA_RECIPES_DIR", str(tmp_path / "gone"))
    for args in (["recipes", "list"], ["reproduce", "mnist-1pct"]):
        outcome = CliRunner().invoke(app, args)
        lines = [line for line in outcome.output.splitlines() if line.strip()]
        assert outcome.exit_code == 2 and len(lines) == 1, outcome.output
        assert str(tmp_path / "gone") in lines[0] and "DBA_RECIPES_DIR" in lines[0]
