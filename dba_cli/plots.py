"""Figures built only from result files, so every curve can be traced to a JSON run.

For each recipe found under `results/<recipe>/<method>/seed-*.json` this writes:

- `<recipe>-accuracy-vs-epoch.png`: test accuracy per epoch, mean over seeds, min..max band;
- `<recipe>-accuracy-vs-time.png`: the same against cumulative *training* seconds
  (evaluation time is excluded, so the comparison is about the optimiser's cost);
- `<recipe>-kept-subset.png`: for DBA runs only, the kept subset size per layer,
  with the batch size as a dashed line (a DBA run that never drops a sample is plain SGD).

Damaged result files are skipped with a warning naming them, as in `tables.py`.
Figures are `matplotlib.figure.Figure` objects, never pyplot's, so no GUI backend is
needed and no global figure state builds up; PNGs are written through Agg.
"""

from __future__ import annotations

import warnings
from collections import defaultdict
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from .io import write_atomic
from .reproduce import finished_results

ROLE_ORDER = {"baseline": 0, "literal": 1, "chosen": 2}
# (marker, line width) per layer: a thick line under a thinner one keeps identical curves both visible.
LAYER_STYLES = (("o", 3.5), ("s", 2.5), ("^", 1.5), ("D", 1.0))
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")

Runs = dict[str, list[dict]]  # method_name -> finished result documents (one per seed)


def load_runs(results_dir: Path, recipes: list[str] | None = None) -> dict[str, Runs]:
    """recipe -> method_name -> documents; damaged files are skipped with a warning naming them."""
    found: dict[str, Runs] = defaultdict(lambda: defaultdict(list))
    for path, document in finished_results(Path(results_dir)):
        if recipes is not None and path.parent.parent.name not in recipes:
            continue
        if document["history"]:
            found[document["recipe"]][document["method_name"]].append(document)
    return {recipe: dict(runs) for recipe, runs in found.items()}


def make_figures(results_dir: Path, out_dir: Path | None = None, recipes: list[str] | None = None) -> list[Path]:
    """Write the figures for every recipe with results (or only `recipes`); return the PNGs written."""
    results_dir = Path(results_dir)
    out_dir = Path(out_dir) if out_dir is not None else results_dir / "figures"
    by_recipe = load_runs(results_dir, recipes)
    for missing in sorted(set(recipes or ()) - set(by_recipe)):
        warnings.warn(f"no finished results for recipe {missing!r} in {results_dir}", stacklevel=2)
    # One colour per method name for the whole call, so "dba" is the same colour in every figure.
    colours = {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(method_order(by_recipe.values()))}
    written = []
    for recipe in sorted(by_recipe):
        runs = by_recipe[recipe]
        written.append(save(accuracy_figure(recipe, runs, colours, x="epoch"), out_dir / f"{recipe}-accuracy-vs-epoch.png"))
        written.append(save(accuracy_figure(recipe, runs, colours, x="time"), out_dir / f"{recipe}-accuracy-vs-time.png"))
        dba_runs = {name: kept for name, documents in runs.items() if (kept := [d for d in documents if is_dba(d)])}
        if dba_runs:
            written.append(save(kept_figure(recipe, dba_runs, colours), out_dir / f"{recipe}-kept-subset.png"))
    return written


def method_order(all_runs) -> list[str]:
    """Baselines first, then the literal DBA, then the chosen one: the order the paper compares them in."""
    roles = {name: documents[0].get("role", "baseline") for runs in all_runs for name, documents in runs.items()}
    return sorted(roles, key=lambda name: (ROLE_ORDER.get(roles[name], 3), name))


def label(name: str, documents: list[dict], runs: Runs) -> str:
    """Method name, its role for DBA variants, and its seed count when methods' counts differ."""
    role = documents[0].get("role", "baseline")
    text = name if role == "baseline" else f"{name} ({role})"
    uneven = len({len(others) for others in runs.values()}) > 1
    return f"{text}, n = {len(documents)}" if uneven else text


def is_dba(document: dict) -> bool:
    """A run is plotted as DBA when every epoch recorded kept subset sizes (SGD/Adam store null)."""
    return all(epoch.get("kept") for epoch in document["history"])


def seeds_text(runs: Runs) -> str:
    counts = sorted({len(documents) for documents in runs.values()})
    n = str(counts[0]) if len(counts) == 1 else f"{counts[0]}–{counts[-1]}"
    return f"n = {n} seed{'' if counts == [1] else 's'}"


def per_epoch(documents: list[dict], value) -> np.ndarray:
    """seeds x epochs array of `value(epoch_record)`, cut to the shortest history so seeds line up."""
    length = min(len(document["history"]) for document in documents)
    return np.array([[value(epoch) for epoch in document["history"][:length]] for document in documents], dtype=float)


def accuracy_figure(recipe: str, runs: Runs, colours: dict[str, str], x: str) -> Figure:
    """Accuracy curves, mean over seeds with a min..max band; x is 'epoch' or cumulative train 'time'."""
    fig = Figure(figsize=(7, 4.5), layout="constrained")
    ax = fig.add_subplot()
    for name in method_order([runs]):
        documents = runs[name]
        accuracy = per_epoch(documents, lambda epoch: epoch["test_accuracy"])
        if x == "epoch":
            xs = per_epoch(documents, lambda epoch: epoch["epoch"])[0]
        else:  # seeds differ in speed, so x is the mean cumulative time as well
            xs = np.cumsum(per_epoch(documents, lambda epoch: epoch["train_seconds"]), axis=1).mean(axis=0)
        colour = colours[name]
        ax.plot(xs, accuracy.mean(axis=0), color=colour, marker="o", markersize=3, label=label(name, documents, runs))
        ax.fill_between(xs, accuracy.min(axis=0), accuracy.max(axis=0), color=colour, alpha=0.2, linewidth=0)
    if x == "epoch":
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(f"{recipe}: test accuracy vs {'epoch' if x == 'epoch' else 'training time'}\n"
                 f"mean over {seeds_text(runs)}, band = min–max over seeds", fontsize=10)
    ax.set_xlabel("epoch" if x == "epoch" else "cumulative training seconds (evaluation excluded)")
    ax.set_ylabel("test accuracy (%)")
    ax.grid(alpha=0.3)
    fig.legend(title="method", loc="outside right upper")  # outside, so it never hides a curve
    return fig


def kept_figure(recipe: str, dba_runs: Runs, colours: dict[str, str]) -> Figure:
    """Kept subset size per layer and epoch, one panel per DBA method, batch size dashed for scale."""
    names = method_order([dba_runs])
    fig = Figure(figsize=(1 + 5.5 * len(names), 4.5), layout="constrained")
    axes = fig.subplots(1, len(names), squeeze=False)[0]
    for ax, name in zip(axes, names):
        documents = dba_runs[name]
        epochs = per_epoch(documents, lambda epoch: epoch["epoch"])[0]
        layers = sorted({layer for d in documents for e in d["history"] for layer in e["kept"]}, key=layer_key)
        for i, layer in enumerate(layers):
            colour = colormaps["Dark2"](i % 8)  # not the method palette: these colours mean layers
            marker, width = LAYER_STYLES[min(i, len(LAYER_STYLES) - 1)]
            mean = per_epoch(documents, lambda epoch: epoch["kept"].get(layer, {}).get("mean", np.nan))
            low = per_epoch(documents, lambda epoch: epoch["kept"].get(layer, {}).get("min", np.nan))
            high = per_epoch(documents, lambda epoch: epoch["kept"].get(layer, {}).get("max", np.nan))
            ax.plot(epochs, np.nanmean(mean, axis=0), color=colour, marker=marker, markersize=2 + width,
                    linewidth=width, label=f"layer {layer}")
            ax.fill_between(epochs, np.nanmin(low, axis=0), np.nanmax(high, axis=0), color=colour, alpha=0.2, linewidth=0)
        batch_size = documents[0]["config"]["batch_size"]
        ax.axhline(batch_size, color="black", linestyle="--", linewidth=1, label=f"batch size ({batch_size})")
        ax.set_ylim(0, batch_size * 1.08)
        ax.set_title(label(name, documents, dba_runs), color=colours[name])
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_ylabel("kept subset size (samples)")
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right")
    fig.suptitle(f"{recipe}: DBA kept subset size per layer\n"
                 f"line = mean over steps and {seeds_text(dba_runs)}, band = min–max over steps and seeds", fontsize=10)
    return fig


def layer_key(layer: str):
    """Sort nn.Sequential names numerically ("2" before "10"), other names after, alphabetically."""
    return (0, int(layer), "") if layer.isdigit() else (1, 0, layer)


def save(fig: Figure, path: Path) -> Path:
    """Write the PNG beside its final name, then rename, so a crash never leaves half a figure."""
    try:
        write_atomic(path, lambda handle: fig.savefig(handle, format="png", dpi=120))
    finally:
        fig.clear()  # Figure objects are not held by pyplot; clearing frees the artists at once
    return path
