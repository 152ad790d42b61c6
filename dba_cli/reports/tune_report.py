"""`dba tune`'s report: how the choice was made, what was chosen with its test accuracy, and every candidate.

Built from result files only (the tuning runs and the reruns of the choices),
through the same plan and choice as the study (studies/tune.py).
"""

from __future__ import annotations

from pathlib import Path

from ..recipes.recipe import Recipe
from ..results.reading import stored_results
from ..settings.run import describe
from ..studies import tune
from ..studies.candidates import Scored, choose
from .markdown import markdown_table, mean_std, number


def describe_candidate(recipe: Recipe, entry: Scored) -> str:
    return describe(recipe.config_for(entry.candidate.method, 0), recipe.defaults.batch_size)


def report_path(results_dir: Path, recipe: Recipe) -> Path:
    return Path(results_dir) / tune.GROUP / f"{recipe.name}.md"


def tune_report(recipe: Recipe, results_dir: Path, command: str, smoke: bool = False) -> str:
    """Markdown: how the choice was made, what was chosen with its test accuracy, and every candidate."""
    spec = tune.tune_spec(recipe)
    scored = tune.score(recipe, results_dir, smoke)
    chosen = choose(scored)
    methods = tune.tuned_methods(chosen)
    reruns = tune.tuned_runs(recipe, methods, smoke=smoke)
    stored = stored_results(results_dir, [planned.key for planned in reruns])
    finals: dict[str, list[float]] = {}
    for planned in reruns:
        if planned.key in stored:
            finals.setdefault(planned.method_name, []).append(stored[planned.key]["final_test_accuracy"])
    seeds = tune.tuning_seeds(recipe, smoke)
    sizes = {family: sum(1 for s in scored if s.candidate.family == family) for family in tune.FAMILIES}
    lines = [
        f"# Tuning: {recipe.name}",
        "",
        f"Made by `{command}`; do not edit by hand. Every candidate trained on tuning seeds "
        f"{seeds[0]}..{seeds[-1]} (not the reported seeds, so the reported runs use subset draws the choice never saw), "
        f"ranked by final-epoch accuracy on a validation split of {spec.validation_size} training images outside the subset. "
        f"The test set was not used for any choice. Grid sizes: SGD {sizes['sgd']}, Adam {sizes['adam']} "
        f"({spec.lr_points} log-spaced learning rates each), DBA {sizes['dba']} "
        f"({spec.lr_points} learning rates x {len(spec.dba_variants)} selection settings x {len(spec.dba_bases)} base optimizers).",
        "",
        "## Chosen settings, reported on the test set",
        "",
    ]
    chosen_rows = []
    for family in tune.FAMILIES:
        if family not in chosen:
            continue
        entry = chosen[family]
        tests = finals.get(f"{family}-tuned", [])
        config = recipe.config_for(entry.candidate.method, 0)
        grid = spec.lr_grid(config.optimizer)
        edge = " (lr at the edge of its grid: a wider lr_range might do better)" if len(grid) > 1 and config.lr in (grid[0], grid[-1]) else ""
        chosen_rows.append([
            f"{family}-tuned", describe_candidate(recipe, entry) + edge, number(-entry.key[0]),
            mean_std(tests, empty="not run yet"), str(len(tests)),
        ])
    lines.append(markdown_table(
        ["method", "chosen setting", "validation accuracy % (tuning seeds)", "test accuracy % (reported seeds, mean ± std)", "n"],
        chosen_rows, "llrrr",
    ))
    every = []
    order = {family: i for i, family in enumerate(tune.FAMILIES)}
    for entry in sorted(scored, key=lambda s: (order.get(s.candidate.family, len(order)), s.key if s.documents else (float("inf"),), s.order)):
        values = tune.val_accuracies(entry)
        every.append([
            entry.candidate.family, describe_candidate(recipe, entry), number(-entry.key[0]) if entry.documents else number(None),
            ", ".join(f"{v:.2f}" for v in values) or "not run",
        ])
    lines += ["", "## Every candidate", "",
              markdown_table(["method", "setting", "validation accuracy % (mean)", "per tuning seed"], every, "llrl")]
    return "\n".join(lines) + "\n"
