"""`dba tune`: choose every method's setting on a validation split, then report it on the test set.

The comparison a sceptical reviewer accepts gives every method the same
learning-rate grid (the recipe's `tune:` section states its size and ranges);
DBA additionally searches its selection settings, which can only favour DBA.
Candidates train on tuning seeds disjoint from the reported seeds, so the
reported runs use subsets the choice never saw, and are ranked by final-epoch
validation accuracy (training images outside the subset). The test set is
read only for the final report.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from pathlib import Path

import yaml

from .evaluation import FINAL_ONLY
from .markdown import markdown_table, mean_std, number
from .recipes import MethodSpec, PlannedRun, Recipe
from .results import stored_results

GROUP = "tune"
FAMILIES = ("sgd", "adam", "dba")  # each becomes a `<family>-tuned` method


@dataclass(frozen=True)
class Candidate:
    """One point of a method's tuning grid."""

    family: str  # sgd, adam or dba
    label: str  # folder name: lr and, for DBA, base and selection settings
    spec: MethodSpec


@dataclass
class Scored:
    candidate: Candidate
    val_accuracies: list[float]  # one per tuning seed that has finished

    @property
    def val_mean(self) -> float:
        return statistics.fmean(self.val_accuracies) if self.val_accuracies else math.nan


def tune_spec(recipe: Recipe):
    return recipe.section("tune", "stating the learning-rate ranges and DBA's selection settings to search")


def dba_label(settings, base: str) -> str:
    """A short, readable, unique name for a DBA variant (also its folder name)."""
    label = f"{base}-{settings.metric}-{settings.direction}-min{settings.min_size}-{settings.reduction}"
    if settings.max_removals is not None:
        label += f"-maxrm{settings.max_removals}"
    return label + ("-unbiased" if settings.unbiased else "")


def candidates(recipe: Recipe) -> list[Candidate]:
    """Every method's grid, in a fixed order (the order breaks ties)."""
    tune = tune_spec(recipe)
    found = []
    for optimizer in ("sgd", "adam"):
        for lr in tune.lr_grid(optimizer):
            spec = MethodSpec(role="tuned-baseline", method=optimizer, lr=lr, validation_size=tune.validation_size)
            found.append(Candidate(optimizer, f"lr-{lr:g}", spec))
    for base in tune.dba_bases:
        for settings in tune.dba_variants:
            for lr in tune.lr_grid(base):
                spec = MethodSpec(
                    role="tuned", method="dba", base=base, lr=lr, dba=settings, validation_size=tune.validation_size
                )
                found.append(Candidate("dba", f"{dba_label(settings, base)}-lr-{lr:g}", spec))
    return found


def candidate_runs(recipe: Recipe, grid: list[Candidate], smoke: bool = False) -> list[PlannedRun]:
    """The tuning runs: every candidate on every tuning seed, evaluated at the end only."""
    tune = tune_spec(recipe)
    count = recipe.smoke.seeds if smoke else tune.seeds
    runs = []
    for candidate in grid:
        for seed in range(tune.first_seed, tune.first_seed + count):
            config = recipe.config_for(candidate.spec, seed, smoke, label=f"tune {candidate.family} {candidate.label}")
            runs.append(
                PlannedRun(recipe.name, f"{candidate.family}/{candidate.label}", "tuning", config, GROUP, evaluation=FINAL_ONLY)
            )
    return runs


def score(grid: list[Candidate], runs: list[PlannedRun], results_dir: Path) -> list[Scored]:
    """Each candidate's final validation accuracies, read back from the finished tuning runs."""
    by_name: dict[str, list[float]] = {}
    for planned, document in stored_results(results_dir, runs):
        if document.get("final_val_accuracy") is not None:
            by_name.setdefault(planned.method_name, []).append(document["final_val_accuracy"])
    return [Scored(c, by_name.get(f"{c.family}/{c.label}", [])) for c in grid]


def choose(scored: list[Scored]) -> dict[str, Scored]:
    """Per family, the candidate with the highest mean validation accuracy (first in grid order on ties)."""
    best: dict[str, Scored] = {}
    for entry in scored:
        if not entry.val_accuracies:
            continue
        current = best.get(entry.candidate.family)
        if current is None or entry.val_mean > current.val_mean:
            best[entry.candidate.family] = entry
    return best


def tuned_methods(chosen: dict[str, Scored]) -> dict[str, MethodSpec]:
    """The chosen settings as recipe methods named `<family>-tuned`."""
    return {f"{family}-tuned": chosen[family].candidate.spec for family in FAMILIES if family in chosen}


def tuned_runs(recipe: Recipe, methods: dict[str, MethodSpec], seeds: int | None = None, smoke: bool = False) -> list[PlannedRun]:
    """The chosen settings on the recipe's reported seeds, evaluated on the recipe's schedule like every paper-table run.

    Where the recipe already holds the same setting under the same name, the
    reruns are the recipe's own runs (`results/RECIPE/NAME/`, shared with
    `dba reproduce`, never trained twice). Where it does not (a new choice,
    e.g. on another machine), they go to `results/tune/RECIPE/reruns/` so
    that tuning never collides with the recipe's results; paste chosen.yaml
    into the recipe to make the choice the recipe's. Each runs as many seeds as the
    recipe plans for that name (`Recipe.seed_count`), unless `seeds` is given.
    """
    runs = []
    for name, spec in methods.items():
        group = "" if spec.same_setting(recipe.methods.get(name)) else f"{GROUP}/{recipe.name}/reruns"
        for seed in range(seeds if seeds is not None else recipe.seed_count(name, smoke)):
            config = recipe.config_for(spec, seed, smoke, label=f"method {name}")
            runs.append(PlannedRun(recipe.name, name, spec.role, config, group, evaluation=recipe.evaluation))
    return runs


def recipe_differences(recipe: Recipe, methods: dict[str, MethodSpec]) -> list[str]:
    """Where the recipe's `<family>-tuned` methods disagree with what tuning chose (missing or different)."""
    missing = [name for name in methods if name not in recipe.methods]
    different = [name for name, spec in methods.items() if name in recipe.methods and not spec.same_setting(recipe.methods[name])]
    notes = []
    if missing:
        notes.append(f"recipe {recipe.name} has no method {', '.join(missing)} yet")
    if different:
        notes.append(f"recipe {recipe.name}'s {', '.join(different)} differ from the settings tuning chose")
    return notes


def chosen_yaml(recipe: Recipe, methods: dict[str, MethodSpec], command: str) -> str:
    """A `methods:` snippet to paste into the recipe, saying where its values came from."""
    body = {name: spec.model_dump(exclude_none=True, exclude_defaults=False) for name, spec in methods.items()}
    for values in body.values():
        if values["method"] != "dba":
            values.pop("base", None)
    header = (
        f"# Chosen by `{command}` on a validation split (final-epoch validation accuracy,\n"
        f"# tuning seeds {recipe.tune.first_seed}..{recipe.tune.first_seed + recipe.tune.seeds - 1}); "
        "paste under the recipe's `methods:`\n"
        "# (keep any `seeds:` the recipe gives a method: how many seeds it runs is not part of its setting).\n"
    )
    return header + yaml.safe_dump(body, sort_keys=False)


def describe(spec: MethodSpec) -> str:
    if spec.method != "dba":
        return f"{spec.method}, lr {spec.lr:g}" + (f", momentum {spec.momentum:g}" if spec.momentum else "")
    s = spec.dba
    return f"DBA over {spec.base}, lr {spec.lr:g}; {s.metric} {s.direction}, min_size {s.min_size}, {s.reduction}"


def report(
    recipe: Recipe, scored: list[Scored], chosen: dict[str, Scored], finals: dict[str, list[float]], command: str,
    smoke: bool = False,
) -> str:
    """Markdown: how the choice was made, what was chosen with its test accuracy, and every candidate."""
    tune = tune_spec(recipe)
    last_seed = tune.first_seed + (recipe.smoke.seeds if smoke else tune.seeds) - 1
    sizes = {family: sum(1 for s in scored if s.candidate.family == family) for family in FAMILIES}
    lines = [
        f"# Tuning: {recipe.name}",
        "",
        f"Made by `{command}`; do not edit by hand. Every candidate trained on tuning seeds "
        f"{tune.first_seed}..{last_seed} (not the reported seeds, so the reported runs use subset draws the choice never saw), "
        f"ranked by final-epoch accuracy on a validation split of {tune.validation_size} training images outside the subset. "
        f"The test set was not used for any choice. Grid sizes: SGD {sizes['sgd']}, Adam {sizes['adam']} "
        f"({tune.lr_points} log-spaced learning rates each), DBA {sizes['dba']} "
        f"({tune.lr_points} learning rates x {len(tune.dba_variants)} selection settings x {len(tune.dba_bases)} base optimizers).",
        "",
        "## Chosen settings, reported on the test set",
        "",
    ]
    chosen_rows = []
    for family in FAMILIES:
        if family not in chosen:
            continue
        entry = chosen[family]
        tests = finals.get(f"{family}-tuned", [])
        edge = ""
        spec = entry.candidate.spec
        grid = tune.lr_grid(spec.base if spec.method == "dba" else spec.method)
        if len(grid) > 1 and spec.lr in (grid[0], grid[-1]):
            edge = " (lr at the edge of its grid: a wider lr_range might do better)"
        chosen_rows.append(
            [f"{family}-tuned", describe(spec) + edge, f"{entry.val_mean:.2f}", mean_std(tests, empty="not run yet"), str(len(tests))]
        )
    lines.append(markdown_table(
        ["method", "chosen setting", "validation accuracy % (tuning seeds)", "test accuracy % (reported seeds, mean ± std)", "n"],
        chosen_rows, "llrrr",
    ))
    every = []
    for entry in sorted(scored, key=lambda s: (FAMILIES.index(s.candidate.family), -(s.val_mean if s.val_accuracies else -1))):
        per_seed = ", ".join(f"{v:.2f}" for v in entry.val_accuracies) or "not run"
        every.append([entry.candidate.family, describe(entry.candidate.spec), number(entry.val_mean), per_seed])
    lines += ["", "## Every candidate", "",
              markdown_table(["method", "setting", "validation accuracy % (mean)", "per tuning seed"], every, "llrl")]
    return "\n".join(lines) + "\n"


@dataclass
class TuneOutcome:
    chosen: dict[str, Scored]
    methods: dict[str, MethodSpec]
    report_path: Path
    chosen_path: Path
    differences: list[str]


def tune(
    recipe: Recipe,
    mnist,
    device,
    results_dir: Path,
    command: str,
    smoke: bool = False,
    overwrite: bool = False,
    reporter=None,
    keep_stale: bool = False,
    runner=None,
) -> TuneOutcome:
    """Run the grid (finished candidates are kept), choose on validation, rerun the choices on the reported seeds.

    Writes `<results>/tune/<recipe>/chosen.yaml` (paste into the recipe) and
    `<results>/tune/<recipe>.md` (the choice and every candidate).
    """
    from .io import write_text_atomic
    from .reproduce import reproduce

    grid = candidates(recipe)
    runs = candidate_runs(recipe, grid, smoke)
    reproduce(runs, mnist, device, results_dir, overwrite, reporter, wait_for_busy=True, keep_stale=keep_stale, runner=runner)  # the choice needs every candidate
    scored = score(grid, runs, results_dir)
    chosen = choose(scored)
    methods = tuned_methods(chosen)
    folder = results_dir / GROUP / recipe.name
    chosen_path = folder / "chosen.yaml"
    write_text_atomic(chosen_path, chosen_yaml(recipe, methods, command))
    finals_runs = tuned_runs(recipe, methods, smoke=smoke)
    reproduce(finals_runs, mnist, device, results_dir, overwrite, reporter, wait_for_busy=True, keep_stale=keep_stale, runner=runner)
    finals: dict[str, list[float]] = {}
    for planned, document in stored_results(results_dir, finals_runs):
        finals.setdefault(planned.method_name, []).append(document["final_test_accuracy"])
    report_path = results_dir / GROUP / f"{recipe.name}.md"
    write_text_atomic(report_path, report(recipe, scored, chosen, finals, command, smoke))
    return TuneOutcome(chosen, methods, report_path, chosen_path, recipe_differences(recipe, methods))
