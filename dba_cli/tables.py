"""Paper tables, built only from result files, with the paper's claims beside ours.

Every number in the tables is computed here from `results/<recipe>/<method>/seed-*.json`;
the paper's claims come from the recipe (which quotes docs/dba-method.md). Nothing
is typed by hand. Damaged result files are skipped with a warning.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .errors import ConfigError
from .io import write_text_atomic
from .recipes import Recipe, list_recipes, load_recipe
from .results import finished_results

RECIPE_ORDER = ("mnist-1pct", "mnist-10-per-class", "mnist-full")
ROLE_LABEL = {
    "baseline": "baseline, untuned",
    "literal": "DBA, literal reading",
    "chosen": "DBA, recipe's hand-chosen variant",
    "tuned-baseline": "baseline, tuned on validation",
    "tuned": "DBA, tuned on validation",
}


def load_results(results_dir: Path) -> pd.DataFrame:
    """One row per finished run; damaged files are skipped with a warning naming them."""
    rows = []
    for path, document in finished_results(results_dir):
        history = document["history"]
        rows.append(
            {
                "recipe": document["recipe"],
                "method_name": document["method_name"],
                "role": document.get("role", "baseline"),
                "method": document["config"]["method"],
                "seed": document["seed"],
                "epochs": len(history),
                "final_accuracy": document["final_test_accuracy"],
                "train_seconds": sum(epoch["train_seconds"] for epoch in history),
                "accuracies": [epoch["test_accuracy"] for epoch in history],
                "cumulative_seconds": cumulative([epoch["train_seconds"] for epoch in history]),
                "device": document.get("device", "?"),
                "diverged_at_epoch": document.get("diverged_at_epoch"),
                "path": str(path),
            }
        )
    return pd.DataFrame(rows)


def cumulative(values: list[float]) -> list[float]:
    total, out = 0.0, []
    for value in values:
        total += value
        out.append(total)
    return out


@dataclass
class MethodSummary:
    """Aggregates over the seeds of one method of one recipe."""

    recipe: str
    method_name: str
    role: str
    method: str
    n: int
    mean: float
    std: float  # sample std (n-1); NaN for one seed
    seeds: list[float]
    train_seconds: float
    diverged: int = 0  # seeds whose loss became NaN/inf (their accuracy is the one at divergence)

    @property
    def error(self) -> float:
        return 100.0 - self.mean


def summarise(frame: pd.DataFrame) -> list[MethodSummary]:
    summaries = []
    for (recipe, name), group in frame.groupby(["recipe", "method_name"], sort=False):
        accuracies = group.sort_values("seed")["final_accuracy"].tolist()
        summaries.append(
            MethodSummary(
                recipe=recipe,
                method_name=name,
                role=group["role"].iloc[0],
                method=group["method"].iloc[0],
                n=len(accuracies),
                mean=float(pd.Series(accuracies).mean()),
                std=float(pd.Series(accuracies).std(ddof=1)) if len(accuracies) > 1 else math.nan,
                seeds=accuracies,
                train_seconds=float(group["train_seconds"].mean()),
                diverged=int(group["diverged_at_epoch"].notna().sum()),
            )
        )
    return summaries


def error_reduction(baseline: MethodSummary | None, dba: MethodSummary) -> float | None:
    """(err_baseline - err_dba) / err_baseline, in %, from mean errors."""
    if baseline is None or baseline.error <= 0:
        return None
    return 100.0 * (baseline.error - dba.error) / baseline.error


def baseline_of(summaries: list[MethodSummary], method: str, tuned: bool = False) -> MethodSummary | None:
    """The recipe's SGD or Adam baseline row: the tuned one for tuned DBA, so that like is compared with like."""
    role = "tuned-baseline" if tuned else "baseline"
    for summary in summaries:
        if summary.role == role and summary.method == method:
            return summary
    return None


def fmt(value: float | None, digits: int = 2, suffix: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.{digits}f}{suffix}"


def accuracy_cell(summary: MethodSummary) -> str:
    cell = f"{summary.mean:.2f} ± {fmt(summary.std)}" if summary.n > 1 else f"{summary.mean:.2f}"
    return cell + (f" ({summary.diverged}/{summary.n} diverged)" if summary.diverged else "")


def scarce_table(recipe: Recipe | None, summaries: list[MethodSummary]) -> tuple[str, list[dict]]:
    """Markdown and CSV rows for a data-scarce setting."""
    claim = recipe.claim if recipe else None
    lines = [
        "| method | what it is | n | test accuracy % (mean ± std) | per seed | test error % "
        "| error reduction vs SGD | vs Adam | paper's accuracy % | ours − paper |",
        "|---|---|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    rows = []
    for summary in summaries:
        is_dba = summary.method == "dba"
        paper = None
        if claim is not None:
            paper = claim.dba_accuracy if is_dba else claim.implied_baseline_accuracy
        tuned = summary.role == "tuned"
        vs_sgd = error_reduction(baseline_of(summaries, "sgd", tuned), summary) if is_dba else None
        vs_adam = error_reduction(baseline_of(summaries, "adam", tuned), summary) if is_dba else None
        claimed_reduction = f" (paper {claim.error_reduction:.2f})" if is_dba and claim and claim.error_reduction else ""
        paper_cell = fmt(paper) + ("" if is_dba or paper is None else " (implied)")
        lines.append(
            f"| {summary.method_name} | {ROLE_LABEL.get(summary.role, summary.role)} | {summary.n} "
            f"| {accuracy_cell(summary)} | {', '.join(f'{a:.2f}' for a in summary.seeds)} | {summary.error:.2f} "
            f"| {fmt(vs_sgd, suffix='%')}{claimed_reduction if vs_sgd is not None else ''} "
            f"| {fmt(vs_adam, suffix='%')}{claimed_reduction if vs_adam is not None else ''} "
            f"| {paper_cell} | {fmt(None if paper is None else summary.mean - paper, suffix=' pts')} |"
        )
        rows.append(
            {
                **summary_row(summary),
                "error_reduction_vs_sgd": vs_sgd,
                "error_reduction_vs_adam": vs_adam,
                "paper_accuracy": paper,
                "paper_error_reduction": claim.error_reduction if is_dba and claim else None,
                "ours_minus_paper": None if paper is None else summary.mean - paper,
            }
        )
    return "\n".join(lines), rows


def summary_row(summary: MethodSummary) -> dict:
    return {
        "recipe": summary.recipe,
        "method_name": summary.method_name,
        "role": summary.role,
        "n": summary.n,
        "accuracy_mean": summary.mean,
        "accuracy_std": summary.std,
        "accuracy_per_seed": " ".join(f"{a:.2f}" for a in summary.seeds),
        "train_seconds_mean": summary.train_seconds,
        "diverged": summary.diverged,
    }


def time_to_target(frame: pd.DataFrame, target: float) -> tuple[float | None, float | None, int]:
    """Mean epochs and training seconds to first reach `target`, over the seeds that did, and how many did."""
    epochs, seconds = [], []
    for accuracies, cumulative_seconds in zip(frame["accuracies"], frame["cumulative_seconds"]):
        hit = next((i for i, accuracy in enumerate(accuracies) if accuracy is not None and accuracy >= target), None)
        if hit is not None:
            epochs.append(hit + 1)
            seconds.append(cumulative_seconds[hit])
    if not epochs:
        return None, None, 0
    return sum(epochs) / len(epochs), sum(seconds) / len(seconds), len(epochs)


def convergence_table(recipe: Recipe | None, frame: pd.DataFrame, summaries: list[MethodSummary]) -> tuple[str, list[dict]]:
    """Markdown and CSV rows for full MNIST: final accuracy and time to each target accuracy."""
    targets = recipe.targets if recipe and recipe.targets else [97.0, 98.0]
    header = "| method | what it is | n | final test accuracy % | train s / epoch |"
    rule = "|---|---|---:|---:|---:|"
    for target in targets:
        header += f" epochs to {target:g}% | train s to {target:g}% |"
        rule += "---:|---:|"
    lines, rows = [header, rule], []
    for summary in summaries:
        group = frame[(frame["recipe"] == summary.recipe) & (frame["method_name"] == summary.method_name)]
        per_epoch = summary.train_seconds / max(1, int(group["epochs"].mean()))
        line = (
            f"| {summary.method_name} | {ROLE_LABEL.get(summary.role, summary.role)} | {summary.n} "
            f"| {accuracy_cell(summary)} | {per_epoch:.2f} |"
        )
        row = {**summary_row(summary), "train_seconds_per_epoch": per_epoch}
        for target in targets:
            epochs, seconds, reached = time_to_target(group, target)
            note = "" if reached == summary.n else f" ({reached}/{summary.n} reached)"
            line += (f" {fmt(epochs, 1)}{note} | {fmt(seconds, 1)}{note} |") if reached else " not reached | not reached |"
            row[f"epochs_to_{target:g}"] = epochs
            row[f"seconds_to_{target:g}"] = seconds
            row[f"reached_{target:g}"] = f"{reached}/{summary.n}"
        lines.append(line)
        rows.append(row)
    return "\n".join(lines), rows


def verdict(recipe: Recipe | None, summaries: list[MethodSummary]) -> str:
    """One plain sentence per DBA row comparing ours with the paper's claim."""
    if recipe is None or recipe.claim.dba_accuracy is None:
        return ""
    sentences = []
    for summary in summaries:
        if summary.method != "dba":
            continue
        gap = summary.mean - recipe.claim.dba_accuracy
        status = "matches or beats" if gap >= -0.5 else "does not reach"
        sentences.append(
            f"- **{summary.method_name}** ({ROLE_LABEL.get(summary.role, summary.role)}): {summary.mean:.2f}% "
            f"{status} the paper's {recipe.claim.dba_accuracy:.2f}% ({gap:+.2f} points, n = {summary.n})."
        )
    return "\n".join(sentences)


def packaged_recipe(name: str) -> Recipe | None:
    """The recipe of that name in recipes/ (or DBA_RECIPES_DIR), else None: results of other recipes are shown as found."""
    return load_recipe(name) if name in list_recipes() else None


def table_order(recipe: Recipe | None, method_names: Iterable[str]) -> list[str]:
    """The recipe's own method order (baselines first), names it does not know after, as given.

    Tables and figures both use it, so a figure's legend reads in the table's order.
    """
    names = list(method_names)
    if recipe is None:
        return names
    position = {method: index for index, method in enumerate(recipe.methods)}
    return sorted(names, key=lambda name: position.get(name, len(position)))


def warn_unfinished(recipe: Recipe | None, finished: Iterable[tuple[str, int, int]], results_dir: Path) -> None:
    """Warn, per method of a packaged recipe, when fewer seeds finished than the recipe runs.

    `finished` holds (method_name, seed, epochs trained) per finished run. Runs that all trained
    the recipe's smoke epochs (`dba reproduce --smoke`) are held to the smoke seed count instead.
    Tables and figures call it, so neither leaves a method out without saying so.
    """
    if recipe is None:
        return
    finished = list(finished)
    smoke = recipe.smoke.epochs != recipe.training.epochs and all(epochs == recipe.smoke.epochs for *_, epochs in finished)
    expected = recipe.smoke.seeds if smoke else recipe.seeds
    command = f"dba reproduce {recipe.name}" + (" --smoke" if smoke else "")
    if Path(results_dir) != Path("results/smoke" if smoke else "results"):
        command += f" --results {results_dir}"
    for method in recipe.methods:
        found = len({seed for name, seed, _ in finished if name == method and 0 <= seed < expected})
        if found < expected:
            shown = "left out" if found == 0 else f"shown with n = {found}"
            warnings.warn(
                f"{recipe.name}: method {method!r} has {found} of {expected} seeds finished in {results_dir} "
                f"({shown}). Fix: `{command}` runs the missing ones.",
                stacklevel=3,
            )


def build_tables(results_dir: Path, recipes: list[str] | None = None) -> tuple[str, pd.DataFrame]:
    """The markdown document and a CSV-ready frame for every recipe with results."""
    frame = load_results(results_dir)
    if frame.empty:
        raise ConfigError(f"no result files under {results_dir}. Fix: run `dba reproduce RECIPE` first.")
    present = list(dict.fromkeys(frame["recipe"]))
    ordered = [name for name in RECIPE_ORDER if name in present] + [n for n in present if n not in RECIPE_ORDER]
    if recipes:
        ordered = [name for name in ordered if name in recipes]
    sections = [
        "# Paper tables",
        "",
        "Generated by `dba table` from the result files under "
        f"`{results_dir}`; do not edit by hand. Accuracy is the final-epoch test accuracy "
        "(never a best epoch), mean ± sample std over seeds. The paper's numbers are from its abstract "
        "(see docs/dba-method.md); \"implied\" baseline accuracies are derived from its two claimed numbers. "
        "Error reductions compare like with like: DBA tuned on the validation split against the tuned baselines "
        "(`dba tune`, results/tune/), the other DBA rows against the untuned baselines.",
    ]
    csv_rows: list[dict] = []
    for name in ordered:
        recipe = packaged_recipe(name)
        subset = frame[frame["recipe"] == name]
        summaries = summarise(subset)
        order = table_order(recipe, [summary.method_name for summary in summaries])
        summaries.sort(key=lambda summary: order.index(summary.method_name))
        warn_unfinished(recipe, zip(subset["method_name"], subset["seed"], subset["epochs"]), results_dir)
        devices = ", ".join(sorted(set(subset["device"])))
        sections += ["", f"## {name}", "", (recipe.description if recipe else ""), ""]
        if recipe and recipe.data == "full":
            table, rows = convergence_table(recipe, subset, summaries)
            sections += [table, "", f"Trained on: {devices}. The paper claims faster convergence with DBA, without a figure."]
        else:
            table, rows = scarce_table(recipe, summaries)
            sections += [table, ""]
            if recipe and recipe.claim.dba_accuracy is not None:
                sections.append(
                    f"Paper: DBA {recipe.claim.dba_accuracy:.2f}%, {recipe.claim.error_reduction:.2f}% less error "
                    f"than SGD/Adam (implied baseline ≈ {recipe.claim.implied_baseline_accuracy:.2f}%). Trained on: {devices}."
                )
                sections += ["", verdict(recipe, summaries)]
        csv_rows += rows
    return "\n".join(sections).rstrip() + "\n", pd.DataFrame(csv_rows)


def write_tables(results_dir: Path, recipes: list[str] | None = None) -> tuple[Path, Path, str]:
    """Write results/paper-tables.md and .csv atomically; return their paths and the markdown."""
    markdown, frame = build_tables(results_dir, recipes)
    md_path, csv_path = results_dir / "paper-tables.md", results_dir / "paper-tables.csv"
    write_text_atomic(md_path, markdown)
    write_text_atomic(csv_path, frame.to_csv(index=False, float_format="%.4f"))
    return md_path, csv_path, markdown
