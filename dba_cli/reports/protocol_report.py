"""`dba protocol`'s report: how far each protocol choice moves the tuned methods (diagnostics, not results).

Built from result files only, through the study's plan (studies/protocol.py).
The first row of each recipe is our protocol and the only result.
"""

from __future__ import annotations

import statistics
from pathlib import Path

from ..files import write_text_atomic
from ..recipes.loading import list_recipes, load_recipe, recipe_order
from ..recipes.planned import PlannedRun
from ..recipes.recipe import Recipe
from ..recipes.sections import Claim
from ..results.reading import stored_results
from ..settings.run import describe_model
from ..studies.protocol import GROUP, default_runs, protocol_methods, protocol_runs, protocol_variants
from ..recipes.protocol import declaration, declaration_line
from .headline import tuning_comparator
from .markdown import interval, markdown_table, mean_std
from .stats import pair_by_seed, paired_difference


def accuracies(results_dir: Path, runs: list[PlannedRun], best_epoch: bool = False) -> dict[str, dict[int, float]]:
    """Test accuracy per method name (the part before '/') and seed, final epoch or best epoch on the test set.

    The best epoch is chosen among the evaluated epochs (the recipe's schedule,
    last epoch included): unevaluated epochs have no test accuracy to pick.
    """
    found: dict[str, dict[int, float]] = {}
    stored = stored_results(results_dir, [planned.key for planned in runs])
    for planned in runs:
        document = stored.get(planned.key)
        if document is None or not declaration().governs(document):  # stale: in no row
            continue
        if best_epoch:
            values = [e["test_accuracy"] for e in document["history"] if e.get("test_accuracy") is not None]
            value = max(values)
        else:
            value = document["final_test_accuracy"]
        found.setdefault(planned.method_name.split("/")[0], {})[planned.config.seed] = value
    return found


def cell(values: list[float] | None, reference: list[float] | None = None) -> str:
    if not values:
        return "not run"
    text = mean_std(values)
    if reference:
        text += f" ({statistics.fmean(values) - statistics.fmean(reference):+.2f})"
    return text


def gap_cell(values: dict[str, dict[int, float]], dba_name: str, best: str | None) -> str:
    """DBA minus the comparator: mean per-seed difference and its 95% paired t interval."""
    if best is None or not all(values.get(n) for n in [dba_name, best]):
        return "–"
    seeds, dba, base = pair_by_seed(values[dba_name], values[best])
    if not seeds:
        return "no common seeds"
    difference = paired_difference(dba, base)
    text = f"{difference.mean:+.2f}"
    if difference.n > 1:
        text += f" {interval(difference.t_low, difference.t_high)}"
    if any(len(values[n]) != difference.n for n in (dba_name, best)):
        text += f" (n = {difference.n} pairs)"
    return text


def paper_claim(claim: Claim) -> str:
    """The paper's numbers for a recipe, or that it has none (a recipe beyond the paper: Fashion-MNIST, the CNN)."""
    said = []
    if claim.dba_accuracy is not None:
        said.append(f"DBA {claim.dba_accuracy}%")
    if claim.implied_baseline_accuracy is not None:
        said.append(f"baselines ≈ {claim.implied_baseline_accuracy}% (implied)")
    return f"Paper: {' and '.join(said)}." if said else "Paper: no claim (a setting beyond the paper)."


def recipe_section(recipe: Recipe, results_dir: Path, smoke: bool = False) -> list[str]:
    methods = protocol_methods(recipe)
    reported = default_runs(recipe, smoke)
    default = accuracies(results_dir, reported)
    rows = [("ours: fixed stratified subset, final epoch, " + describe_model(recipe.defaults), "result", default)]
    rows.append(("best epoch selected on the test set (among evaluated epochs)", "diagnostic", accuracies(results_dir, reported, best_epoch=True)))
    runs = protocol_runs(recipe, smoke)
    for variant in protocol_variants(recipe):
        chosen = [p for p in runs if p.method_name.endswith(f"/{variant.name}")]
        rows.append((variant.label, "diagnostic", accuracies(results_dir, chosen)))
    claim = recipe.claim
    dba_names = [n for n in methods if recipe.config_for(recipe.methods[n], 0).method == "dba"]
    base_names = [n for n in methods if recipe.config_for(recipe.methods[n], 0).method != "dba"]
    best = tuning_comparator(recipe, results_dir).name
    table = []
    for label, kind, values in rows:
        cells = [
            cell(list(values.get(name, {}).values()), None if kind == "result" else list(default.get(name, {}).values()))
            for name in methods
        ]
        gap = gap_cell(values, dba_names[0], best) if dba_names else "–"
        kind_cell = "**result**" if kind == "result" else "diagnostic, not a result"
        table.append([label, kind_cell, *cells, gap])
    return [
        "",
        f"## {recipe.name}",
        "",
        paper_claim(claim) + " Cells: test accuracy %, mean ± std over seeds, (change vs our protocol). "
        f"DBA − comparator: the mean per-seed difference, in points, to the comparator ({best or 'none yet'}: the tuned "
        "baseline family that ranks best on the tuning runs, as in paper-tables.md, the same in every row; never chosen "
        "on a reported seed or the test set), paired by seed (same seed, same subset), and its 95% paired t interval.",
        "",
        markdown_table(["protocol", "kind", *methods, "DBA − comparator"], table, "ll" + "r" * len(methods) + "r"),
    ]


def protocol_markdown(results_dir: Path, recipes: list[Recipe], smoke: bool = False) -> str:
    lines = [
        "# Protocol sensitivity",
        "",
        "Generated by `dba protocol` from the result files under "
        f"`{results_dir}`; do not edit by hand. {declaration_line()} Every row trains on the declaration's design "
        f"seeds ({declaration().seeds.design.text()}), never a reported one. The first row of each table is our "
        "protocol and the only **result**; "
        "every other row changes one choice and is a **diagnostic**: it shows how much that choice could move a "
        "reported number, not a number to report. \"Best epoch selected on the test set\" peeks at the test set "
        "and is optimistic by construction; it picks among the evaluated epochs (the recipe's `evaluation:` "
        "schedule: every epoch early, then evenly spread ones, and the last), not among every epoch. "
        "Methods: the settings chosen by `dba tune` on the validation split.",
    ]
    for recipe in recipes:
        lines += recipe_section(recipe, results_dir, smoke)
    return "\n".join(lines) + "\n"


def write_protocol_table(results_dir: Path, recipes: list[Recipe], smoke: bool = False) -> tuple[Path, str]:
    markdown = protocol_markdown(results_dir, recipes, smoke)
    path = results_dir / "protocol.md"
    write_text_atomic(path, markdown)
    return path, markdown


def recipes_for_table(results_dir: Path, current: Recipe | None = None, smoke: bool = False) -> list[Recipe]:
    """`current` and, unless smoke, every packaged recipe that has protocol runs, in the paper's order."""
    if smoke and current is not None:
        return [current]
    root = Path(results_dir) / GROUP
    present = {p.name for p in root.iterdir() if p.is_dir()} if root.is_dir() else set()
    known = list_recipes()
    found = {current.name: current} if current is not None else {}
    for name in sorted(present - set(found)):
        if name in known:
            found[name] = load_recipe(name)
    return sorted(found.values(), key=lambda r: recipe_order(r.name))
