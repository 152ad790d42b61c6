"""`dba tune`'s report: the search, what was chosen with its test accuracy, the sensitivity, and every candidate.

Built from result files only (the tuning runs, the reruns of the choices and
the runners-up on the reported seeds), through the same plan and choice as
the study (studies/tune.py).
"""

from __future__ import annotations

from pathlib import Path

from ..recipes.protocol import declaration, declaration_line
from ..recipes.recipe import Recipe
from ..results.quantities import failed
from ..results.reading import stored_results
from ..settings.run import describe
from ..studies import tune
from ..studies.candidates import Scored, choose, ranked
from .headline import current, paired, sensitivity, tuning_comparator
from .markdown import interval, markdown_table, mean_std


def describe_candidate(recipe: Recipe, entry: Scored) -> str:
    return describe(recipe.config_for(entry.candidate.method, 0), recipe.defaults.batch_size)


def report_path(results_dir: Path, recipe: Recipe, variant: str | None = None) -> Path:
    return Path(results_dir) / tune.group(recipe, variant) / f"{recipe.name}.md"


def validation_words(recipe: Recipe, variant: str | None = None) -> str:
    """Where the candidates were validated, in words."""
    if tune.validation_of(recipe, variant) == "folds":
        folds = declaration().validation.folds
        return (f"{folds}-fold cross-validation inside the training subset (tuning seed j holds out fold j mod {folds} "
                "of its own subset and trains on the rest; no labelled image beyond the subset is used)")
    sensitivity = " (the declared sensitivity variant of this data-scarce recipe)" if tune.scarce(recipe) else ""
    return (f"a validation split of {declaration().validation.holdout_size} training images held out of the training "
            f"set{sensitivity}")


def extension_lines(extensions) -> list[str]:
    """The edge rule's log: what it tried beyond each family's grid, and why."""
    if not extensions:
        return ["Edge rule: no family's best setting lay at the end of a numeric line of its grid; nothing was added.", ""]
    rows = [[e.family, e.text, e.label] for e in extensions]
    return ["Edge rule: where a family's best value lay at the end of a numeric line of its grid, one step beyond was "
            "tried (counted beside the budget):", "", markdown_table(["family", "why", "candidate"], rows, "lll"), ""]


def failure_text(documents: list[dict]) -> str:
    """How many of these runs failed by the declaration's rule (chance accuracy, divergence, a loss stuck at chance)."""
    if not documents:
        return "–"
    rule = declaration().failure
    count = sum(failed(d, rule.chance, rule.margin, rule.chance_loss) for d in documents)
    return f"{count}/{len(documents)}"


def validation_text(entry: Scored) -> str:
    """The ranking score (the declared mean − k sd of the validation accuracies), the number the ranking sorts on."""
    values = tune.val_accuracies(entry)
    return f"{-entry.key[0]:.2f}" if values else "–"


def tune_report(recipe: Recipe, results_dir: Path, command: str, smoke: bool = False, variant: str | None = None) -> str:
    """Markdown: how the choice was made, what was chosen with its test accuracy, the sensitivity, and every candidate."""
    spec = tune.tune_spec(recipe)
    scored = tune.score(recipe, results_dir, smoke, variant)
    chosen = choose(scored)
    methods = tune.tuned_methods(chosen)
    reruns = tune.tuned_runs(recipe, methods, smoke=smoke, variant=variant)
    stored = stored_results(results_dir, [planned.key for planned in reruns])
    tuned: dict[str, list[dict]] = {}
    for planned in reruns:
        if planned.key in stored:
            tuned.setdefault(planned.method_name, []).append(stored[planned.key])
    tuned = {name: current(documents)[0] for name, documents in tuned.items()}
    _, extensions, _ = tune.extended_grid(recipe, results_dir, smoke, variant)
    seeds = tune.tuning_seeds(recipe, smoke)
    lines = [
        f"# Tuning: {recipe.name}",
        "",
        f"Made by `{command}`; do not edit by hand. {declaration_line()} Budget: {spec.budget_text()}, "
        f"and at most {declaration().edge.max_extensions} edge extensions per family. "
        "Every candidate trained on the tuning seeds (never a reported seed, so the reported runs use subset draws the "
        f"choice never saw) and is ranked by the mean minus {declaration().ranking.k:g} sd of its final-epoch "
        f"validation accuracies: {validation_words(recipe, variant)}; ties go to the higher worst run, then to the "
        "first in the recipe's grid. The test set was not used for any choice.",
        "",
        *extension_lines(extensions),
        "## Chosen settings, reported on the test set",
        "",
    ]
    rows = []
    for family, entry in chosen.items():
        tests = [d["final_test_accuracy"] for d in tuned.get(f"{family}-tuned", [])]
        reported = tuned.get(f"{family}-tuned", [])
        rows.append([f"{family}-tuned", describe_candidate(recipe, entry), validation_text(entry),
                     failure_text(entry.documents), mean_std(tests, empty="not run yet"), failure_text(reported), str(len(tests))])
    lines.append(markdown_table(
        ["method", "chosen setting", f"score (tuning: mean − {declaration().ranking.k:g} sd)", "failed tuning runs",
         "test % (reported seeds, mean ± std)", "failed reported runs", "n"],
        rows, "llrrrrr",
    ))
    lines += sensitivity_section(recipe, results_dir, tuned, scored, variant)
    every = []
    for family, entries in ranked(scored).items():
        for position, entry in enumerate(entries, start=1):
            every.append([family, str(position), describe_candidate(recipe, entry), validation_text(entry),
                          ", ".join(f"{v:.2f}" for v in tune.val_accuracies(entry))])
    missing = [entry for entry in scored if not entry.documents]
    every += [[entry.candidate.family, "–", describe_candidate(recipe, entry), "–", "not run"] for entry in missing]
    lines += ["", "## Every candidate, best first within its family", "",
              markdown_table(["family", "rank", "setting", f"score (mean − {declaration().ranking.k:g} sd)", "validation % per tuning run"],
                             every, "lrlrl")]
    return "\n".join(lines) + "\n"


def sensitivity_section(
    recipe: Recipe, results_dir: Path, tuned: dict[str, list[dict]], scored: list[Scored], variant: str | None = None
) -> list[str]:
    """The best `top` settings of each family on the reported seeds, and the headline for every pair of DBA's and the comparator's."""
    dba = [name for name in tuned if tuned[name] and tuned[name][0]["config"]["method"] == "dba"]
    baselines = {name: documents for name, documents in tuned.items() if name not in dba}
    best = tuning_comparator(recipe, results_dir, variant).name
    lines = ["", f"## Sensitivity: each family's best {tune.tune_spec(recipe).top} settings on the reported seeds", ""]
    if not dba or best is None or best not in baselines:
        return lines + ["Not run yet: needs the reruns of the tuned DBA and baselines."]
    _, headline = paired(tuned[dba[0]], baselines[best])
    found = sensitivity(results_dir, recipe.name, (dba[0], tuned[dba[0]]), (best, baselines[best]), tune.group(recipe, variant))
    lines.append(
        f"The comparator is {best}, the tuned baseline family whose chosen setting ranks best on the tuning runs "
        f"(fixed before any reported seed ran). Headline: {dba[0]} − {best} = {f'{headline.mean:+.2f} points' if headline.n else '–'} "
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
