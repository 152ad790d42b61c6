"""`dba ablate`: which reading of DBA works? A full grid of its selection settings.

Every combination of the recipe's `ablation:` lists (metric, direction,
min_size, reduction, base optimizer) trains on the first N reported seeds with
a validation split, evaluated at the last epoch. `results/ablation.md` has one
row per variant, ranked by validation accuracy (the test column is reported,
never used to rank).
"""

from __future__ import annotations

import itertools
import math
import statistics
from dataclasses import dataclass
from pathlib import Path

from .config import DBASettings
from .errors import ConfigError
from .io import write_text_atomic
from .recipes import MethodSpec, PlannedRun, Recipe
from .reproduce import read_result
from .tuning import dba_label

GROUP = "ablation"


def ablation_spec(recipe: Recipe):
    if recipe.ablation is None:
        raise ConfigError(
            f"recipe {recipe.name} has no `ablation:` section. Fix: add one (see recipes/mnist-1pct.yaml) "
            "listing the metrics, directions, min_sizes, reductions and bases to combine."
        )
    return recipe.ablation


def variants(recipe: Recipe) -> dict[str, MethodSpec]:
    """Every combination of the ablation lists, by label, in grid order."""
    grid = ablation_spec(recipe)
    found = {}
    for base, metric, direction, min_size, reduction in itertools.product(
        grid.base, grid.metric, grid.direction, grid.min_size, grid.reduction
    ):
        settings = DBASettings(metric=metric, direction=direction, min_size=min_size, reduction=reduction)
        spec = MethodSpec(method="dba", base=base, lr=grid.lr[base], dba=settings,
                          validation_size=grid.validation_size)
        found[dba_label(settings, base)] = spec
    return found


def ablation_runs(recipe: Recipe, smoke: bool = False, seeds: int | None = None) -> list[PlannedRun]:
    grid = ablation_spec(recipe)
    count = seeds if seeds is not None else (recipe.smoke.seeds if smoke else grid.seeds)
    return [
        PlannedRun(recipe.name, label, "ablation", recipe.config_for(spec, seed, smoke, label=f"ablation {label}"),
                   GROUP, eval_every_epoch=False)
        for label, spec in variants(recipe).items()
        for seed in range(count)
    ]


@dataclass
class VariantSummary:
    recipe: str
    label: str
    config: dict
    val: list[float]
    test: list[float]
    kept: dict[str, float]  # layer -> mean kept subset size over steps and seeds
    seconds_per_epoch: float
    diverged: int


def mean_std(values: list[float]) -> str:
    if not values:
        return "–"
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.fmean(values):.2f} ± {statistics.stdev(values):.2f}"


def summarise_folder(folder: Path) -> list[VariantSummary]:
    """One summary per variant folder under results/ablation/<recipe>/; damaged files are skipped."""
    import warnings

    summaries = []
    for variant_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
        documents = []
        for path in sorted(variant_dir.glob("seed-*.json")):
            try:
                document = read_result(path)
            except ValueError as exc:
                warnings.warn(f"skipped: {exc}", stacklevel=2)
                continue
            if document is not None:
                documents.append(document)
        if not documents:
            continue
        kept: dict[str, list[float]] = {}
        for document in documents:
            for epoch in document["history"]:
                for layer, sizes in (epoch.get("kept") or {}).items():
                    kept.setdefault(layer, []).append(sizes["mean"])
        epochs = sum(len(d["history"]) for d in documents)
        summaries.append(
            VariantSummary(
                recipe=folder.name,
                label=variant_dir.name,
                config=documents[0]["config"],
                val=[d["final_val_accuracy"] for d in documents if d.get("final_val_accuracy") is not None],
                test=[d["final_test_accuracy"] for d in documents],
                kept={layer: statistics.fmean(sizes) for layer, sizes in kept.items()},
                seconds_per_epoch=sum(d["train_seconds"] for d in documents) / max(1, epochs),
                diverged=sum(1 for d in documents if d.get("diverged_at_epoch") is not None),
            )
        )
    summaries.sort(key=lambda s: -(statistics.fmean(s.val) if s.val else -math.inf))
    return summaries


def ablation_markdown(results_dir: Path) -> str:
    root = results_dir / GROUP
    order = ("mnist-1pct", "mnist-10-per-class", "mnist-full")
    recipes = sorted(
        (p for p in root.iterdir() if p.is_dir()) if root.is_dir() else [],
        key=lambda p: (order.index(p.name) if p.name in order else len(order), p.name),
    )
    if not recipes:
        raise ConfigError(f"no ablation results under {root}. Fix: run `dba ablate RECIPE` first.")
    lines = [
        "# DBA ablation",
        "",
        "Generated by `dba ablate` from the result files under "
        f"`{root}`; do not edit by hand. One row per DBA variant, ranked by final-epoch **validation** accuracy "
        "(training images outside the subset); the test column is reported, never used to rank. "
        "Each variant uses its base optimizer's fixed learning rate from the recipe's `ablation:` section. "
        "Kept = mean kept subset size per layer over all steps (batch size in the recipe). "
        "s/epoch = training seconds per epoch on the machine that ran it.",
    ]
    for folder in recipes:
        summaries = summarise_folder(folder)
        seeds = max((len(s.test) for s in summaries), default=0)
        lines += ["", f"## {folder.name}", "", baseline_reference(results_dir, folder.name, seeds), ""]
        lines += [
            "| rank | base | lr | metric | direction | min_size | reduction | n | validation % | test % | kept per layer | s/epoch |",
            "|---:|---|---:|---|---|---:|---|---:|---:|---:|---|---:|",
        ]
        for rank, s in enumerate(summaries, 1):
            dba = s.config.get("dba") or {}
            kept = ", ".join(f"{layer}: {size:.1f}" for layer, size in s.kept.items())
            diverged = f" ({s.diverged} diverged)" if s.diverged else ""
            lines.append(
                f"| {rank} | {s.config.get('base')} | {s.config.get('lr'):g} | {dba.get('metric')} | {dba.get('direction')} "
                f"| {dba.get('min_size')} | {dba.get('reduction')} | {len(s.test)} | {mean_std(s.val)} "
                f"| {mean_std(s.test)}{diverged} | {kept} | {s.seconds_per_epoch:.3f} |"
            )
    return "\n".join(lines) + "\n"


def baseline_reference(results_dir: Path, recipe: str, seeds: int) -> str:
    """The untuned SGD and Adam baselines of the same recipe on the same seeds, for scale."""
    parts = []
    for name in ("sgd", "adam"):
        tests = []
        for seed in range(seeds):
            try:
                document = read_result(results_dir / recipe / name / f"seed-{seed}.json")
            except ValueError:
                document = None
            if document is not None:
                tests.append(document["final_test_accuracy"])
        if len(tests) == seeds and seeds:
            lr = document["config"]["lr"]
            parts.append(f"{name} (lr {lr:g}) {mean_std(tests)}")
    if not parts:
        return "For scale: no baseline results of this recipe on the same seeds yet (`dba reproduce`)."
    return f"For scale, the untuned baselines on the same seeds, test %: {'; '.join(parts)}."


def write_ablation_table(results_dir: Path) -> tuple[Path, str]:
    markdown = ablation_markdown(results_dir)
    path = results_dir / "ablation.md"
    write_text_atomic(path, markdown)
    return path, markdown
