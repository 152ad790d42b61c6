"""`dba converge`: the paper's convergence claim as time to a target, with every method tuned for it.

In the manner of MLCommons AlgoPerf: a validation split is held out of the
training set, the recipe states target validation accuracies and a budget of
epochs, and each run is measured by the steps, epochs and training seconds
(evaluation excluded) until its validation accuracy first reaches a target.
A run that never reaches it within the budget is reported as such, never
dropped. Accuracy is evaluated after every epoch, so a time to target is the
first epoch's end at or above it: its resolution is one epoch.

Fairness: every family (SGD, SGD with momentum, Adam, and DBA over each base
optimizer with each selection setting) gets the same number of learning rates
from its range (`convergence.lr_points`); DBA additionally searches its
selection settings, which can only favour DBA. Candidates train on tuning
seeds disjoint from the reported seeds and are ranked by the median steps to
the last (hardest) target; the chosen setting of each family is rerun on the
reported seeds, and the headline is the per-seed paired difference between
tuned DBA and the fastest tuned baseline, with a 95% t interval. The test set
is reported (final accuracy), never used to choose.
"""

from __future__ import annotations

import math
import statistics
import warnings
from dataclasses import dataclass
from pathlib import Path

from .evaluation import EvaluationSchedule
from .markdown import markdown_table, mean_std, number
from .recipes import MethodSpec, PlannedRun, Recipe
from .results import stored_results
from .stats import pair_by_seed, paired_difference
from .tuning import dba_label, describe

GROUP = "convergence"
TUNING_GROUP = "convergence/tuning"
FAMILIES = ("sgd", "sgd-momentum", "adam", "dba")
BASELINES = ("sgd", "sgd-momentum", "adam")


@dataclass(frozen=True)
class Candidate:
    family: str
    label: str  # folder name: lr, momentum, and for DBA base and selection
    spec: MethodSpec


@dataclass(frozen=True)
class Reach:
    """When a run first reached a target: at the end of `epoch`, after `steps` steps and `seconds` of training."""

    epoch: int
    steps: int
    seconds: float


def convergence_spec(recipe: Recipe):
    return recipe.section("convergence", "stating the targets, the epoch budget and the grids to tune")


def every_epoch(epochs: int) -> EvaluationSchedule:
    """Validation (and test) after every epoch: a time to target needs each epoch's accuracy."""
    return EvaluationSchedule(every_epoch_until=0, points=max(1, epochs))


def candidates(recipe: Recipe) -> list[Candidate]:
    """Every family's grid, in a fixed order (the order breaks ties)."""
    spec = convergence_spec(recipe)
    found = []
    for family, optimizer, momentum in (("sgd", "sgd", 0.0), ("sgd-momentum", "sgd", spec.momentum), ("adam", "adam", 0.0)):
        for lr in spec.lr_grid(family):
            method = MethodSpec(role="tuned-baseline", method=optimizer, lr=lr, momentum=momentum,
                                validation_size=spec.validation_size)
            found.append(Candidate(family, f"lr-{lr:g}" + (f"-momentum-{momentum:g}" if momentum else ""), method))
    for base in spec.dba_bases:
        for settings in spec.dba_variants:
            for lr in spec.lr_grid(base):
                method = MethodSpec(role="tuned", method="dba", base=base, lr=lr, dba=settings,
                                    validation_size=spec.validation_size)
                found.append(Candidate("dba", f"{dba_label(settings, base)}-lr-{lr:g}", method))
    return found


def budget(recipe: Recipe, smoke: bool) -> int:
    return recipe.smoke.epochs if smoke else convergence_spec(recipe).epochs


def tuning_runs(recipe: Recipe, grid: list[Candidate], smoke: bool = False) -> list[PlannedRun]:
    """Every candidate on every tuning seed, evaluated after every epoch."""
    spec = convergence_spec(recipe)
    epochs = budget(recipe, smoke)
    count = recipe.smoke.seeds if smoke else spec.tuning_seeds
    runs = []
    for candidate in grid:
        for seed in range(spec.first_seed, spec.first_seed + count):
            config = recipe.config_for(candidate.spec, seed, smoke, label=f"converge {candidate.family} {candidate.label}",
                                       epochs=epochs)
            runs.append(PlannedRun(recipe.name, f"{candidate.family}/{candidate.label}", "tuning", config, TUNING_GROUP,
                                   evaluation=every_epoch(epochs)))
    return runs


def reported_runs(recipe: Recipe, chosen: dict[str, Candidate], smoke: bool = False) -> list[PlannedRun]:
    """Each family's chosen setting on the reported seeds 0..N-1, as `<family>-tuned`."""
    spec = convergence_spec(recipe)
    epochs = budget(recipe, smoke)
    runs = []
    for family in FAMILIES:
        if family not in chosen:
            continue
        candidate = chosen[family]
        for seed in range(recipe.smoke.seeds if smoke else spec.seeds):
            config = recipe.config_for(candidate.spec, seed, smoke, label=f"converge {family}-tuned", epochs=epochs)
            runs.append(PlannedRun(recipe.name, f"{family}-tuned", candidate.spec.role, config, GROUP,
                                   evaluation=every_epoch(epochs)))
    return runs


def steps_per_epoch(document: dict) -> int:
    """Optimizer steps in one epoch of the run: its training set in batches, the last one possibly short."""
    return math.ceil(document["subset_size"] / document["config"]["batch_size"])


def reach(document: dict, target: float, key: str = "val_accuracy") -> Reach | None:
    """The first evaluated epoch whose accuracy (`key`) is at least `target`, with steps and training seconds to it."""
    seconds = 0.0
    for record in document["history"]:
        seconds += record["train_seconds"]
        accuracy = record.get(key)
        if accuracy is not None and accuracy >= target:
            return Reach(record["epoch"], record["epoch"] * steps_per_epoch(document), seconds)
    return None


def steps_to(document: dict, target: float) -> float:
    """Steps to `target`; infinity for a run that never reaches it (slower than any run that does)."""
    found = reach(document, target)
    return math.inf if found is None else found.steps


def median_steps(documents: list[dict], target: float) -> float:
    """Median steps to `target` over runs, a run that never reaches it counted as infinitely slow."""
    if not documents:
        return math.inf
    return statistics.median(steps_to(d, target) for d in documents)


def final_val(documents: list[dict]) -> float:
    values = [d["final_val_accuracy"] for d in documents if d.get("final_val_accuracy") is not None]
    return statistics.fmean(values) if values else -math.inf


def rank_key(documents: list[dict], targets: list[float], order: int) -> tuple:
    """Fewest median steps to the last target, then to the earlier ones (last first), then best final validation."""
    return (*(median_steps(documents, target) for target in reversed(targets)), -final_val(documents), order)


def choose(recipe: Recipe, grid: list[Candidate], runs: list[PlannedRun], results_dir: Path) -> tuple[dict[str, Candidate], dict[str, list[dict]]]:
    """Per family, the candidate ranked first by `rank_key` on its tuning runs; also every candidate's documents."""
    targets = convergence_spec(recipe).targets
    documents: dict[str, list[dict]] = {}
    for planned, document in stored_results(results_dir, runs):
        documents.setdefault(planned.method_name, []).append(document)
    chosen: dict[str, Candidate] = {}
    best: dict[str, tuple] = {}
    for order, candidate in enumerate(grid):
        found = documents.get(f"{candidate.family}/{candidate.label}", [])
        if not found:
            continue
        key = rank_key(found, targets, order)
        if candidate.family not in best or key < best[candidate.family]:
            best[candidate.family], chosen[candidate.family] = key, candidate
    return chosen, documents


@dataclass
class Outcome:
    chosen: dict[str, Candidate]
    report_path: Path
    tuning_path: Path
    unreached: list[float]  # targets no reported run reached


def converge(recipe: Recipe, mnist, device, results_dir: Path, command: str, smoke: bool = False, overwrite: bool = False,
             reporter=None, keep_stale: bool = False, runner=None) -> Outcome:
    """Tune every family for time to target, rerun the choices on the reported seeds, write both reports."""
    from .io import write_text_atomic
    from .reproduce import reproduce

    grid = candidates(recipe)
    runs = tuning_runs(recipe, grid, smoke)
    reproduce(runs, mnist, device, results_dir, overwrite, reporter, wait_for_busy=True, keep_stale=keep_stale, runner=runner)
    chosen, tuning_documents = choose(recipe, grid, runs, results_dir)
    finals = reported_runs(recipe, chosen, smoke)
    reproduce(finals, mnist, device, results_dir, overwrite, reporter, wait_for_busy=True, keep_stale=keep_stale, runner=runner)
    reported: dict[str, list[dict]] = {}
    for planned, document in stored_results(results_dir, finals):
        reported.setdefault(planned.method_name, []).append(document)
    report_path = results_dir / GROUP / f"{recipe.name}.md"
    tuning_path = results_dir / GROUP / f"{recipe.name}-tuning.md"
    text, unreached = report(recipe, chosen, reported, command, smoke, grid)
    write_text_atomic(report_path, text)
    write_text_atomic(tuning_path, tuning_report(recipe, grid, tuning_documents, chosen, command, smoke))
    for target in unreached:
        warnings.warn(
            f"{recipe.name}: no reported run reached {target:g}% validation accuracy within {budget(recipe, smoke)} epochs; "
            "the table says so for every run", stacklevel=2,
        )
    return Outcome(chosen, report_path, tuning_path, unreached)


def reached_text(reaches: list[Reach | None], epochs: int) -> str:
    hit = sum(r is not None for r in reaches)
    if hit == 0:
        return f"not reached within {epochs} epoch{'s' if epochs != 1 else ''}"
    return f"{hit}/{len(reaches)}"


def report(recipe: Recipe, chosen: dict[str, Candidate], reported: dict[str, list[dict]], command: str, smoke: bool,
           grid: list[Candidate]) -> tuple[str, list[float]]:
    """The time-to-target table of the tuned methods and the paired headline; also the targets nobody reached."""
    spec = convergence_spec(recipe)
    epochs = budget(recipe, smoke)
    any_document = next((d for documents in reported.values() for d in documents), None)
    epoch_steps = steps_per_epoch(any_document) if any_document else 0
    machine = sorted({d.get("device_name", "?") for documents in reported.values() for d in documents})
    lines = [
        f"# Time to target: {recipe.name}",
        "",
        f"Generated by `{command}`; do not edit by hand. Validation split: {spec.validation_size} images held out of the "
        f"training set (training on the other {any_document['subset_size'] if any_document else '?'}); budget {epochs} epochs "
        f"of {epoch_steps} steps (batch {recipe.training.batch_size}). Each family was tuned on seeds "
        f"{seed_range(spec.first_seed, 1 if smoke else spec.tuning_seeds)} ({spec.lr_points} learning rates each; DBA also "
        f"over {len(spec.dba_bases)} base optimizers x {len(spec.dba_variants)} selection settings) by median steps to "
        f"{spec.targets[-1]:g}% validation accuracy, then run on seeds {seed_range(0, recipe.smoke.seeds if smoke else spec.seeds)} "
        "(below). Steps are the machine-independent figure; training seconds exclude evaluation and were measured side by "
        f"side in one sitting on one machine (each run as recorded: {'; '.join(machine) or '?'}). Accuracy is evaluated after every epoch, so times to target have a resolution "
        "of one epoch. Mean ± std over the runs that reached the target; runs that did not are counted, not dropped.",
        "",
    ]
    header = ["method", "setting", "n"]
    align = "llr"
    for target in spec.targets:
        header += [f"reached {target:g}%", f"steps to {target:g}%", f"epochs to {target:g}%", f"train s to {target:g}%"]
        align += "lrrr"
    header += ["final val %", "final test %"]
    align += "rr"
    rows = []
    per_target_hits = {target: 0 for target in spec.targets}
    for family in FAMILIES:
        documents = sorted(reported.get(f"{family}-tuned", []), key=lambda d: d["seed"])
        if not documents:
            continue
        row = [f"{family}-tuned", describe(chosen[family].spec), str(len(documents))]
        for target in spec.targets:
            reaches = [reach(d, target) for d in documents]
            hits = [r for r in reaches if r is not None]
            per_target_hits[target] += len(hits)
            row += [reached_text(reaches, epochs), mean_std([r.steps for r in hits], 0), mean_std([r.epoch for r in hits], 1),
                    mean_std([r.seconds for r in hits], 1)]
        row += [mean_std([d["final_val_accuracy"] for d in documents if d.get("final_val_accuracy") is not None]),
                mean_std([d["final_test_accuracy"] for d in documents])]
        rows.append(row)
    unreached = [target for target, hits in per_target_hits.items() if hits == 0 and rows]
    lines += [markdown_table(header, rows, align), ""]
    lines += headline(spec.targets, reported, epochs)
    lines += ["", f"Candidates: {count_text(grid)}. Every candidate and its median steps: `{GROUP}/{recipe.name}-tuning.md`.", ""]
    return "\n".join(lines), unreached


def seed_range(first: int, count: int) -> str:
    return str(first) if count == 1 else f"{first}..{first + count - 1}"


def count_text(grid: list[Candidate]) -> str:
    counts = {family: sum(c.family == family for c in grid) for family in FAMILIES}
    return ", ".join(f"{family} {count}" for family, count in counts.items())


def best_baseline(reported: dict[str, list[dict]], target: float) -> str | None:
    """The tuned baseline with the fewest mean steps to `target` on the reported seeds (a run that never reaches it: infinity)."""
    scores = {}
    for family in BASELINES:
        documents = reported.get(f"{family}-tuned", [])
        if documents:
            scores[family] = statistics.fmean(steps_to(d, target) for d in documents)
    return min(scores, key=scores.get) if scores else None


def headline(targets: list[float], reported: dict[str, list[dict]], epochs: int) -> list[str]:
    """Per target: tuned DBA minus the fastest tuned baseline, per seed, in steps and in seconds, with 95% t intervals."""
    lines = ["## Headline: tuned DBA minus the fastest tuned baseline, paired by seed", ""]
    dba = {d["seed"]: d for d in reported.get("dba-tuned", [])}
    if not dba:
        return lines + ["No dba-tuned runs yet."]
    rows = []
    sentences = []
    for target in targets:
        baseline = best_baseline(reported, target)
        if baseline is None:
            continue
        base = {d["seed"]: d for d in reported[f"{baseline}-tuned"]}
        seeds = sorted(set(dba) & set(base))
        dba_reach = {s: found for s in seeds if (found := reach(dba[s], target)) is not None}
        base_reach = {s: found for s in seeds if (found := reach(base[s], target)) is not None}
        both = [s for s in seeds if s in dba_reach and s in base_reach]
        cells = [f"{target:g}%", f"{baseline}-tuned", f"{len(both)} of {len(seeds)}"]
        for field, digits in (("steps", 0), ("seconds", 1)):
            _, values_a, values_b = pair_by_seed({s: getattr(dba_reach[s], field) for s in both},
                                                 {s: getattr(base_reach[s], field) for s in both})
            difference = paired_difference(values_a, values_b)
            interval = "—" if difference.n < 2 else f"[{difference.t_low:+.{digits}f}, {difference.t_high:+.{digits}f}]"
            cells += [number(difference.mean, digits), interval]
            if field == "steps":
                hits = (len(dba_reach), len(base_reach))
                sentences.append(verdict(target, baseline, difference, len(seeds) - len(both), epochs, hits, len(seeds)))
        rows.append(cells)
    lines.append(markdown_table(
        ["target", "fastest baseline", "pairs (both reached)", "Δ steps", "95% t interval", "Δ train s", "95% t interval"],
        rows, "llrrrrr",
    ))
    return lines + [""] + sentences


def verdict(target: float, baseline: str, difference, unpaired: int, epochs: int, hits: tuple[int, int], seeds: int) -> str:
    """One sentence per target on the steps difference (negative: DBA is faster), and how often each reached it."""
    reached = f"DBA reached it in {hits[0]} of {seeds} seeds within {epochs} epochs, {baseline}-tuned in {hits[1]} of {seeds}"
    left = f" {unpaired} seed(s) where one of the two did not reach it are not paired." if unpaired else ""
    if difference.n < 2:
        return f"- {target:g}% validation: {reached}; fewer than 2 seeds where both did, so no interval."
    low, high = difference.t_low, difference.t_high
    if high < 0:
        said = f"DBA reaches it in fewer steps than {baseline}-tuned ({-high:.0f} to {-low:.0f} fewer, 95%)"
    elif low > 0:
        said = f"DBA needs more steps than {baseline}-tuned ({low:.0f} to {high:.0f} more, 95%)"
    else:
        said = f"no difference in steps detected against {baseline}-tuned (the interval contains zero)"
    return f"- {target:g}% validation: {said}; {reached}.{left}"


def tuning_report(recipe: Recipe, grid: list[Candidate], documents: dict[str, list[dict]], chosen: dict[str, Candidate],
                  command: str, smoke: bool) -> str:
    """Every candidate with its median steps to each target on the tuning seeds; the chosen one per family marked."""
    spec = convergence_spec(recipe)
    epochs = budget(recipe, smoke)
    header = ["family", "candidate", "n", *[f"median steps to {t:g}%" for t in spec.targets], "final val %", "chosen"]
    rows = []
    for candidate in grid:
        found = documents.get(f"{candidate.family}/{candidate.label}", [])
        medians = [median_steps(found, target) for target in spec.targets]
        rows.append([
            candidate.family, describe(candidate.spec), str(len(found)),
            *[f"not reached in {epochs} epochs" if math.isinf(m) else f"{m:.0f}" for m in medians],
            mean_std([d["final_val_accuracy"] for d in found if d.get("final_val_accuracy") is not None]),
            "**chosen**" if chosen.get(candidate.family) == candidate else "",
        ])
    return "\n".join([
        f"# Convergence tuning: {recipe.name}",
        "",
        f"Generated by `{command}`; do not edit by hand. Seeds {spec.first_seed}..{spec.first_seed + spec.tuning_seeds - 1}, "
        f"budget {epochs} epochs; ranked within each family by median steps to {spec.targets[-1]:g}% validation accuracy "
        "(a run that never reaches it counts as infinitely slow), then to the earlier targets, then final validation accuracy. "
        f"Candidates: {count_text(grid)}.",
        "",
        markdown_table(header, rows, "llr" + "r" * len(spec.targets) + "rl"),
        "",
    ])
