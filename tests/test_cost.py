"""results/cost.md: CPU-minutes per recipe and phase, summed from real result files wherever each phase keeps them."""

import json

import pytest

from dba_cli.recipes.loading import load_recipe
from dba_cli.reports.cost import FOUNDATION_ROW, cost_markdown
from dba_cli.results.format import encode_result
from dba_cli.results.reading import read_result
from dba_cli.run.execute import execute_runs
from tests.test_recipes import TINY, write

# Where each phase keeps its runs (the layouts of dba tune, ablate, protocol, converge and make foundation).
PLACES = {
    "reproduce": "tiny/sgd/seed-0.json",
    "tune": "tune/tiny/sgd/lr-0.1/seed-100.json",
    "tune-top": "tune/tiny/top/tiny/sgd-top2/seed-0.json",
    "ablate": "ablation/tiny/sgd-variant/seed-0.json",
    "protocol": "protocol/tiny/sgd-tuned/width-16/seed-0.json",
    "converge-tuning": "convergence/tuning/tiny/sgd/lr-0.1/seed-100.json",
    "converge": "convergence/tiny/sgd-tuned/seed-0.json",
}


def place(source, results, relative, train_seconds, eval_seconds, threads, recipe="tiny"):
    """A copy of a real result at `relative`, saying what its place says (recipe, method, seed), with these seconds."""
    document = read_result(source)
    document.update(train_seconds=train_seconds, eval_seconds=eval_seconds, threads=threads, recipe=recipe)
    parts = relative.split("/")
    if parts[-1].startswith("seed-"):
        seed = int(parts[-1].removeprefix("seed-").removesuffix(".json"))
        start = len(parts) - 1 - parts[::-1].index(recipe)
        document.update(seed=seed, method_name="/".join(parts[start + 1:-1]))
        document["config"] = {**document["config"], "seed": seed}
    target = results / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(encode_result(document))


def row(markdown, name):
    return next(line for line in markdown.splitlines() if line.startswith(f"| {name} |")).split(" | ")


def test_every_phase_is_summed_from_where_it_keeps_its_runs_times_threads(tmp_path, mnist):
    runs = load_recipe(write(tmp_path, TINY)).runs(seeds=1, methods=["sgd"])
    made = tmp_path / "made"
    execute_runs(runs, made)
    source = made / "tiny" / "sgd" / "seed-0.json"
    results = tmp_path / "results"
    for index, relative in enumerate(PLACES.values()):  # each phase its own seconds: 60 s x 2 threads = 2.0 CPU-min, ...
        place(source, results, relative, train_seconds=60.0 * (index + 1), eval_seconds=30.0, threads=2)
    place(source, results, "foundation/1pct-sgd.json", train_seconds=90.0, eval_seconds=0.0, threads=1, recipe="run")
    (results / "paper-tables-sittings.jsonl").write_text(
        json.dumps({"started": 1000, "finished": 1000 + 3600, "jobs": "2", "machine": "x86_64, 2 cores"}) + "\nnot json\n")

    markdown = cost_markdown(results)

    cells = row(markdown, "tiny")
    #           reproduce     tune (candidates 4 + runners-up 6 CPU-min)  ablate        protocol       converge (12 + 14)
    assert cells[1:6] == ["2.0 / 1.0", "10.0 / 2.0", "8.0 / 1.0", "10.0 / 1.0", "26.0 / 2.0"]
    assert cells[7] == "56.0 / 7.0" and cells[8].startswith("11%")  # all phases; evaluation's share 7 / 63
    assert row(markdown, FOUNDATION_ROW)[6] == "1.5 / –"
    assert "from the 8 result files" in markdown and "60 minutes of wall time** (3,600 s) in 1 sitting(s)" in markdown
    assert "| 1 | paper-tables | 1970-01-01 00:16 UTC | 60.0 | 2 | finished |" in markdown  # the sittings, one row each


def test_a_tuning_runner_up_is_not_counted_twice_and_damaged_files_are_skipped(tmp_path, mnist):
    runs = load_recipe(write(tmp_path, TINY)).runs(seeds=1, methods=["sgd"])
    execute_runs(runs, tmp_path / "made")
    results = tmp_path / "results"
    place(tmp_path / "made" / "tiny" / "sgd" / "seed-0.json", results, PLACES["tune-top"], 120.0, 0.0, 1)
    place(tmp_path / "made" / "tiny" / "sgd" / "seed-0.json", results, "tune/tiny/top/tiny/sgd-top2/seed-1.json", 120.0, 0.0, 1)
    (results / "tune" / "tiny" / "top" / "tiny" / "sgd-top2" / "seed-2.json").write_text("{not a result")
    with pytest.warns(UserWarning, match="seed-2.json: unreadable"):
        markdown = cost_markdown(results)
    assert row(markdown, "tiny")[2] == "4.0 / –" and "from the 2 result files" in markdown


def test_the_holdout_variant_counts_under_tune_and_a_stopped_sitting_says_so(tmp_path, mnist):
    runs = load_recipe(write(tmp_path, TINY)).runs(seeds=1, methods=["sgd"])
    execute_runs(runs, tmp_path / "made")
    results = tmp_path / "results"
    source = tmp_path / "made" / "tiny" / "sgd" / "seed-0.json"
    place(source, results, "tune-holdout/tiny/sgd/lr-0.1/seed-100.json", 60.0, 0.0, 1)  # a variant's candidate
    place(source, results, "tune-holdout/tiny/top/tiny/sgd-top2/seed-0.json", 120.0, 0.0, 1)  # and runner-up
    (results / "paper-tables-sittings.jsonl").write_text(json.dumps(
        {"started": 0, "finished": 90, "jobs": "2", "machine": "x86_64, 2 cores", "step": "choices", "status": 2}) + "\n" + json.dumps(
        {"started": 60, "finished": 120, "jobs": "2", "machine": "x86_64, 2 cores", "step": "convergence",
         "ended": "cut off | the session ended; end = the log's last write"}) + "\n")
    markdown = cost_markdown(results)
    assert row(markdown, "tiny")[1:3] == ["–", "3.0 / –"]  # not under reproduce: 1 + 2 CPU-minutes of tuning
    assert "| 1 | choices | 1970-01-01 00:00 UTC | 1.5 | 2 | stopped (exit 2) |" in markdown
    assert "| 2 | convergence | 1970-01-01 00:01 UTC | 1.0 | 2 | cut off \\| the session ended; end = the log's last write |" in markdown
