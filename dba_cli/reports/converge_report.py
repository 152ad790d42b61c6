"""`dba converge`'s reports: time to target of every method tuned for it, and every tuning candidate.

Built from result files only, through the same plan and choice as the study
(studies/converge.py). A run that never reaches a target within the budget is
censored, never dropped: for the comparison it counts as reaching it one epoch
after the budget (steps of budget + 1 epochs). That value is a lower bound,
not the run's time, so the test is the exact sign test of tuned DBA against
the fastest tuned baseline (the baseline fastest on the tuning seeds), over
every reported seed: the Wilcoxon signed-rank test would use the magnitudes of
the differences, which censoring changes; the sign test uses only which of the
pair is faster, which censoring keeps whenever at most one of the pair is
censored (a pair censored on both sides is a tie). The p-values of all targets
are adjusted together (Holm), and "DBA faster" or "DBA slower" is said only
where the adjusted p is below 0.05. A median that depends on a censored run is
printed as "≥ X": X is the median with censored runs at budget + 1 epoch, a
lower bound of the true median.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from pathlib import Path

from ..recipes.protocol import declaration, declaration_line
from ..recipes.recipe import Recipe
from ..results.quantities import reach, steps_per_epoch, steps_to
from ..results.reading import stored_results
from ..settings.run import describe
from ..studies.candidates import choose, ranked
from ..studies.converge import (
    GROUP, budget, convergence_spec, dba_families, fastest_baseline, reported_runs, reported_seeds, score,
)
from .markdown import markdown_table, mean_std, number
from .stats import SignTest, holm, sign_test

ALPHA = 0.05


def describe_method(recipe: Recipe, method) -> str:
    return describe(recipe.config_for(method, 0), recipe.defaults.batch_size)


def report_paths(results_dir: Path, recipe: Recipe) -> tuple[Path, Path]:
    """The time-to-target report and the tuning report of a recipe."""
    folder = Path(results_dir) / GROUP
    return folder / f"{recipe.name}.md", folder / f"{recipe.name}-tuning.md"


def censored_steps(document: dict, target: float, epochs: int) -> float:
    """Steps to `target`; a run that never reached it counts as reaching it one epoch after the budget."""
    found = steps_to(document, target)
    return found if math.isfinite(found) else (epochs + 1) * steps_per_epoch(document)


def censored_median(reached: Sequence[float | None], censored_at: float) -> tuple[float, bool]:
    """Median of per-run values to a target (None: never reached it), and whether it is only a lower bound.

    A run that never reached the target counts as `censored_at` (budget + 1
    epoch), which is at most its true value. The median is exact when it does
    not move as the censored runs move up to infinity (they all lie above the
    middle: fewer than half censored, odd count or both middle runs reached);
    otherwise it is a lower bound of the true median. NaN without runs.
    """
    if not reached:
        return math.nan, False
    value = statistics.median(censored_at if r is None else r for r in reached)
    return value, statistics.median(math.inf if r is None else r for r in reached) != value


def median_text(reached: Sequence[float | None], censored_at: float, epochs: int, digits: int = 0) -> str:
    """A censored median as printed: "X" when exact, "≥ X" when a lower bound, or that no run reached the target."""
    if not reached:
        return "–"
    if all(r is None for r in reached):
        return f"not reached in {epochs} epochs"
    value, bound = censored_median(reached, censored_at)
    return f"≥ {value:.{digits}f}" if bound else f"{value:.{digits}f}"


def median_steps_text(documents: list[dict], target: float, epochs: int) -> str:
    """Median steps to `target` over runs, a run that never reached it counted at budget + 1 epoch ("≥" if that matters)."""
    if not documents:
        return "–"
    reached = [r.steps if (r := reach(d, target)) is not None else None for d in documents]
    return median_text(reached, (epochs + 1) * steps_per_epoch(documents[0]), epochs)


def seed_range(seeds: range) -> str:
    return str(seeds[0]) if len(seeds) == 1 else f"{seeds[0]}..{seeds[-1]}"


def reported_documents(recipe: Recipe, results_dir: Path, smoke: bool) -> tuple[dict, dict[str, list[dict]]]:
    scored = score(recipe, results_dir, smoke)
    runs = reported_runs(recipe, scored, smoke)
    stored = stored_results(results_dir, [planned.key for planned in runs])
    reported: dict[str, list[dict]] = {}
    for planned in runs:  # only runs made under the declaration in force: any other is stale, in no verdict
        if planned.key in stored and declaration().governs(stored[planned.key]):
            reported.setdefault(planned.method_name, []).append(stored[planned.key])
    return choose(scored), reported


def primary_test(recipe: Recipe, results_dir: Path) -> tuple[str, SignTest] | None:
    """The declaration's time-to-target hypothesis for this recipe: tuned DBA against the fastest tuned baseline at
    the last (hardest) target, as one sentence and its sign test; None before both have reported runs."""
    chosen, reported = reported_documents(recipe, results_dir, False)
    spec = convergence_spec(recipe)
    dba_family = next(iter(dba_families(recipe)), None)
    fastest = fastest_baseline(recipe, chosen)
    dba = reported.get(f"{dba_family}-tuned", [])
    base = reported.get(f"{fastest}-tuned", []) if fastest else []
    if not dba or not base:
        return None
    target = spec.targets[-1]
    seeds, _, _, test = comparison(dba, base, target, budget(recipe, False))
    text = (f"{recipe.name}: steps to {target:g}% validation, {dba_family}-tuned against {fastest}-tuned (the fastest "
            f"baseline on the tuning runs), {len(seeds)} pairs: DBA faster on {test.wins_a}, slower on {test.wins_b}, "
            f"tied on {test.ties}; exact sign test p {number(test.p_value, 3)}")
    return text, test


def report(recipe: Recipe, results_dir: Path, command: str, smoke: bool = False) -> tuple[str, list[float]]:
    """The time-to-target table of the tuned methods and the censored paired headline; also the targets nobody reached."""
    spec = convergence_spec(recipe)
    chosen, reported = reported_documents(recipe, results_dir, smoke)
    epochs = budget(recipe, smoke)
    any_document = next((d for documents in reported.values() for d in documents), None)
    epoch_steps = steps_per_epoch(any_document) if any_document else 0
    machine = sorted({d.get("device_name", "?") for documents in reported.values() for d in documents})
    lines = [
        f"# Time to target: {recipe.name}",
        "",
        f"Generated by `{command}`; do not edit by hand. {declaration_line()} Validation split: "
        f"{declaration().validation.holdout_size} images held out of the training set (training on the other "
        f"{any_document['subset_size'] if any_document else '?'}); budget {epochs} epochs (steps per epoch follow the "
        f"batch size each method chose: {epoch_steps} at the first reported run's). Search: {spec.budget_text()}; each family's "
        f"settings ranked by median steps to {spec.targets[-1]:g}% validation accuracy (a run that never reaches it is "
        f"slower than any that does), then run on seeds {seed_range(reported_seeds(recipe, smoke))}. Steps are the "
        "machine-independent figure; training seconds exclude evaluation and were measured side by side in one sitting "
        f"on one machine (each run as recorded: {'; '.join(machine) or '?'}). Accuracy is evaluated after every epoch, "
        "so times to target have a resolution of one epoch. Mean ± std over the runs that reached the target; runs that "
        "did not are counted, not dropped.",
        "",
    ]
    header, align = ["method", "setting", "n"], "llr"
    for target in spec.targets:
        header += [f"reached {target:g}%", f"steps to {target:g}%", f"epochs to {target:g}%", f"train s to {target:g}%"]
        align += "lrrr"
    header += ["final val %", "final test %"]
    align += "rr"
    rows = []
    hits = {target: 0 for target in spec.targets}
    for family, entry in chosen.items():
        documents = sorted(reported.get(f"{family}-tuned", []), key=lambda d: d["seed"])
        if not documents:
            continue
        row = [f"{family}-tuned", describe_method(recipe, entry.candidate.method), str(len(documents))]
        for target in spec.targets:
            found = [r for d in documents if (r := reach(d, target)) is not None]
            hits[target] += len(found)
            row += [f"{len(found)}/{len(documents)}" if found else f"not reached within {epochs} epochs",
                    mean_std([r.steps for r in found], 0), mean_std([r.epoch for r in found], 1), mean_std([r.seconds for r in found], 1)]
        row += [mean_std([d["final_val_accuracy"] for d in documents if d.get("final_val_accuracy") is not None]),
                mean_std([d["final_test_accuracy"] for d in documents])]
        rows.append(row)
    unreached = [target for target, count in hits.items() if count == 0 and rows]
    lines += [markdown_table(header, rows, align), ""]
    lines += headline(recipe, spec.targets, chosen, reported, epochs)
    lines += sensitivity_lines(recipe, spec.targets[-1], chosen, reported, epochs)
    lines += ["", f"Every candidate and its median steps: `{GROUP}/{recipe.name}-tuning.md`.", ""]
    return "\n".join(lines), unreached


def comparison(dba: list[dict], base: list[dict], target: float, epochs: int):
    """The censored, paired comparison of two families' runs at `target`: (seeds, DBA runs, baseline runs, sign test).

    The runs are those of the paired seeds, in seed order; the sign test's
    wins_a counts the seeds where DBA was faster (fewer steps), wins_b where
    the baseline was.
    """
    a = {d["seed"]: d for d in dba}
    b = {d["seed"]: d for d in base}
    seeds = sorted(set(a) & set(b))
    test = sign_test([censored_steps(a[s], target, epochs) for s in seeds],
                     [censored_steps(b[s], target, epochs) for s in seeds], lower_is_better=True)
    return seeds, [a[s] for s in seeds], [b[s] for s in seeds], test


def reached_count(documents: list[dict], target: float) -> int:
    return sum(reach(d, target) is not None for d in documents)


def headline(recipe: Recipe, targets: list[float], chosen: dict, reported: dict[str, list[dict]], epochs: int) -> list[str]:
    """Per target: tuned DBA against the fastest tuned baseline, censored, paired by seed, Holm over the targets."""
    lines = ["## Headline: tuned DBA against the fastest tuned baseline, paired by seed, unreached runs censored", ""]
    dba_family = next(iter(dba_families(recipe)), None)
    fastest = fastest_baseline(recipe, chosen)
    dba = reported.get(f"{dba_family}-tuned", [])
    base = reported.get(f"{fastest}-tuned", []) if fastest else []
    if not dba or not base:
        return lines + ["Not run yet: needs the reported runs of tuned DBA and the tuned baselines."]
    tests = [comparison(dba, base, target, epochs) for target in targets]
    adjusted = holm([test.p_value for *_, test in tests])
    rows, sentences = [], []
    for target, (seeds, dba_runs, base_runs, test), p_holm in zip(targets, tests, adjusted):
        word = verdict_word(test, p_holm)
        dba_hits, base_hits = reached_count(dba_runs, target), reached_count(base_runs, target)
        dba_median, base_median = median_steps_text(dba_runs, target, epochs), median_steps_text(base_runs, target, epochs)
        rows.append([f"{target:g}%", f"{fastest}-tuned", str(len(seeds)), f"{dba_hits}/{len(seeds)}", f"{base_hits}/{len(seeds)}",
                     dba_median, base_median, f"{test.wins_a} / {test.wins_b} / {test.ties}", number(test.p_value, 3),
                     number(p_holm, 3), word])
        sentences.append(
            f"- {target:g}% validation: {word}. DBA was faster on {test.wins_a} of {len(seeds)} seeds, slower on "
            f"{test.wins_b}, tied on {test.ties}; median steps {dba_median} (DBA) against {base_median} ({fastest}-tuned). "
            f"DBA reached it in {dba_hits} of {len(seeds)} seeds within {epochs} epochs, {fastest}-tuned in {base_hits}."
        )
    lines.append(
        f"The fastest baseline is {fastest}-tuned: of the tuned baselines, the one that ranked first on the tuning seeds "
        f"(median steps to the last target). A run that did not reach a target within {epochs} epochs counts as "
        f"reaching it at {epochs + 1} epochs, a lower bound of its time, so the test is the exact two-sided sign test: "
        "the Wilcoxon signed-rank test would use the magnitudes of the differences, which censoring changes; the sign "
        "test uses only which of the pair is faster, which censoring keeps whenever at most one of the pair is censored "
        "(a pair censored on both sides is a tie, and ties are dropped). A median that depends on a censored run is "
        f"printed as \"≥ X\" (a lower bound). p-values adjusted by Holm over the {len(targets)} targets; \"DBA faster\" "
        f"or \"DBA slower\" only where the adjusted p is below {ALPHA}."
    )
    lines += ["", markdown_table(
        ["target", "fastest baseline", "pairs", "DBA reached", "baseline reached", "median steps DBA",
         "median steps baseline", "DBA faster / slower / tied", "p (sign test)", "p (Holm)", "verdict"],
        rows, "llrrrrrrrrl"), "", *sentences]
    return lines


def verdict_word(test: SignTest, p_holm: float) -> str:
    """"DBA faster" or "DBA slower" (the side that won more seeds) where the Holm-adjusted p rejects; NaN never does."""
    if p_holm < ALPHA and test.wins_a != test.wins_b:
        return "DBA faster" if test.wins_a > test.wins_b else "DBA slower"
    return "no difference shown"


def sensitivity_lines(recipe: Recipe, target: float, chosen: dict, reported: dict[str, list[dict]], epochs: int) -> list[str]:
    """The headline's sign counts at the last target for every pair of DBA's and the fastest baseline's top settings."""
    dba_family = next(iter(dba_families(recipe)), None)
    fastest = fastest_baseline(recipe, chosen)
    if dba_family is None or fastest is None:
        return []

    def ranked_runs(family: str) -> dict[int, list[dict]]:
        found = {}
        for name, documents in reported.items():
            if name == f"{family}-tuned":
                found[1] = documents
            elif name.startswith(f"{family}-top") and name.removeprefix(f"{family}-top").isdigit():
                found[int(name.removeprefix(f"{family}-top"))] = documents
        return found

    cells = {(i, j): comparison(a, b, target, epochs)[3]
             for i, a in ranked_runs(dba_family).items() for j, b in ranked_runs(fastest).items() if a and b}
    if len(cells) < 2:
        return []
    return ["", f"Sensitivity at {target:g}%: for every pair of DBA's and {fastest}'s best settings on the tuning seeds, "
            "each run on the reported seeds, the seeds where DBA was faster / slower / tied (censored as above): "
            + ", ".join(f"DBA #{i} vs {fastest} #{j}: {t.wins_a} / {t.wins_b} / {t.ties}" for (i, j), t in sorted(cells.items()))
            + "."]


def tuning_report(recipe: Recipe, results_dir: Path, command: str, smoke: bool = False) -> str:
    """Every candidate with its median steps to each target on the tuning seeds; the chosen one per family marked."""
    spec = convergence_spec(recipe)
    epochs = budget(recipe, smoke)
    scored = score(recipe, results_dir, smoke)
    chosen = {family: entry.candidate for family, entry in choose(scored).items()}
    header = ["family", "rank", "candidate", "n", *[f"median steps to {t:g}%" for t in spec.targets], "final val %", "chosen"]
    rows = []
    for family, entries in ranked(scored).items():
        for position, entry in enumerate(entries, start=1):
            rows.append([
                family, str(position), describe_method(recipe, entry.candidate.method), str(len(entry.documents)),
                *[median_steps_text(entry.documents, target, epochs) for target in spec.targets],
                mean_std([d["final_val_accuracy"] for d in entry.documents if d.get("final_val_accuracy") is not None]),
                "**chosen**" if chosen.get(family) == entry.candidate else "",
            ])
    return "\n".join([
        f"# Convergence tuning: {recipe.name}",
        "",
        f"Generated by `{command}`; do not edit by hand. Search: {spec.budget_text()}; budget {epochs} epochs; ranked "
        f"within each family by median steps to {spec.targets[-1]:g}% validation accuracy (a run that never reaches it "
        "counts as infinitely slow), then to the earlier targets, then final validation accuracy, then grid order. "
        f"A printed median counts such a run at {epochs + 1} epochs; \"≥ X\" where the median depends on one (a lower "
        "bound).",
        "",
        markdown_table(header, rows, "lrlr" + "r" * len(spec.targets) + "rl"),
        "",
    ])

