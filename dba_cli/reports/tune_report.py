"""`dba tune`'s report: the search, what was chosen with its test accuracy, the sensitivity, and every candidate.

Built from result files only (the tuning runs, the reruns of the choices and
the runners-up on the reported seeds), through the same plan and choice as
the study (studies/tune.py).
"""

from __future__ import annotations

from pathlib import Path

from ..recipes.recipe import Recipe
from ..results.reading import stored_results
from ..settings.run import describe
from ..studies import tune
from ..studies.candidates import Scored, choose, ranked
from .headline import comparator, paired, sensitivity
from .markdown import interval, markdown_table, mean_std


def describe_candidate(recipe: Recipe, entry: Scored) -> str:
    return describe(recipe.config_for(entry.candidate.method, 0), recipe.defaults.batch_size)


def report_path(results_dir: Path, recipe: Recipe) -> Path:
    return Path(results_dir) / tune.GROUP / f"{recipe.name}.md"


def validation_text(entry: Scored) -> str:
    values = tune.val_accuracies(entry)
    return f"{-entry.key[0]:.2f}" if values else "–"


def tune_report(recipe: Recipe, results_dir: Path, command: str, smoke: bool = False) -> str:
    """Markdown: how the choice was made, what was chosen with its test accuracy, the sensitivity, and every candidate."""
    spec = tune.tune_spec(recipe)
    scored = tune.score(recipe, results_dir, smoke)
    chosen = choose(scored)
    methods = tune.tuned_methods(chosen)
    reruns = tune.tuned_runs(recipe, methods, smoke=smoke)
    stored = stored_results(results_dir, [planned.key for planned in reruns])
    tuned: dict[str, list[dict]] = {}
    for planned in reruns:
        if planned.key in stored:
            tuned.setdefault(planned.method_name, []).append(stored[planned.key])
    seeds = tune.tuning_seeds(recipe, smoke)
    lines = [
        f"# Tuning: {recipe.name}",
        "",
        f"Made by `{command}`; do not edit by hand. Budget: {spec.budget_text()}. "
        "Every candidate trained on the tuning seeds (not the reported seeds, so the reported runs use subset draws the "
        "choice never saw) and is ranked by its mean final-epoch accuracy on a validation split of "
        f"{spec.validation_size} training images outside the subset; ties go to the higher worst seed, then to the "
        "first in the recipe's grid. The test set was not used for any choice.",
        "",
        "## Chosen settings, reported on the test set",
        "",
    ]
    rows = []
    for family, entry in chosen.items():
        tests = [d["final_test_accuracy"] for d in tuned.get(f"{family}-tuned", [])]
        rows.append([f"{family}-tuned", describe_candidate(recipe, entry), validation_text(entry),
                     mean_std(tests, empty="not run yet"), str(len(tests))])
    lines.append(markdown_table(
        ["method", "chosen setting", "validation % (tuning seeds, mean)", "test % (reported seeds, mean ± std)", "n"],
        rows, "llrrr",
    ))
    lines += sensitivity_section(recipe, results_dir, tuned, scored)
    every = []
    for family, entries in ranked(scored).items():
        for position, entry in enumerate(entries, start=1):
            every.append([family, str(position), describe_candidate(recipe, entry), validation_text(entry),
                          ", ".join(f"{v:.2f}" for v in tune.val_accuracies(entry))])
    missing = [entry for entry in scored if not entry.documents]
    every += [[entry.candidate.family, "–", describe_candidate(recipe, entry), "–", "not run"] for entry in missing]
    lines += ["", "## Every candidate, best first within its family", "",
              markdown_table(["family", "rank", "setting", "validation % (mean)", "per tuning seed"], every, "lrlrl")]
    return "\n".join(lines) + "\n"


def sensitivity_section(recipe: Recipe, results_dir: Path, tuned: dict[str, list[dict]], scored: list[Scored]) -> list[str]:
    """The best `top` settings of each family on the reported seeds, and the headline for every pair of DBA's and the comparator's."""
    dba = [name for name in tuned if tuned[name] and tuned[name][0]["config"]["method"] == "dba"]
    baselines = {name: documents for name, documents in tuned.items() if name not in dba}
    best = comparator(baselines)
    lines = ["", f"## Sensitivity: each family's best {tune.tune_spec(recipe).top} settings on the reported seeds", ""]
    if not dba or best is None:
        return lines + ["Not run yet: needs the reruns of the tuned DBA and baselines."]
    _, headline = paired(tuned[dba[0]], baselines[best])
    found = sensitivity(results_dir, recipe.name, (dba[0], tuned[dba[0]]), (best, baselines[best]))
    lines.append(
        f"The comparator is {best}, the tuned baseline with the higher mean validation accuracy on the reported seeds' "
        f"validation splits. Headline: {dba[0]} − {best} = {f'{headline.mean:+.2f} points' if headline.n else '–'} "
        f"(n = {headline.n}, 95% t interval {interval(headline.t_low, headline.t_high)}). Below, the same mean paired "
        f"difference for each of DBA's best settings (rows) against each of {best.removesuffix('-tuned')}'s (columns), "
        "ranked on the tuning seeds, each run on the same reported seeds (final test accuracy)."
    )
    if found is None:
        return lines + ["", "The runners-up have not run on the reported seeds yet."]
    ranks = range(1, found.ranks + 1)
    rows = [[f"DBA #{i}", *[f"{found.cells[i, j]:+.2f}" if (i, j) in found.cells else "–" for j in ranks]] for i in ranks]
    lines += ["", markdown_table(["", *[f"{best.removesuffix('-tuned')} #{j}" for j in ranks]], rows, "l" + "r" * len(ranks)), "",
              f"Range over these {len(found.cells)} pairs: **{found.low:+.2f} to {found.high:+.2f} points**."]
    return lines
