"""Figures for the paper, built only from result files, so every curve can be traced to a JSON run.

For each recipe found under `results/<recipe>/<method>/seed-*.json` this writes, each as a PDF
(vector, for the paper) and a 300 dpi PNG (for the README):

- `<recipe>-accuracy-vs-epoch`: test accuracy at the evaluated epochs (the recipe's `evaluation:`
  schedule), mean over seeds, min..max band; one panel per method family (SGD, Adam, DBA, then
  the peers: Ordered SGD / small-loss, online selection, importance sampling, DBA-random) side
  by side on one y axis, because the baselines end within a point of each other and would
  otherwise be drawn on top of one another;
- `<recipe>-kept-subset`: for DBA runs only, the kept subset size of each layer, labelled from
  the model ("hidden layer 1 (784→512)"), with the batch size for scale (a DBA run that never
  drops a sample is plain SGD);
- `<recipe>-noise`: where recipes differ only in their symmetric label-noise rate (mnist-1pct,
  mnist-1pct-sym20, mnist-1pct-sym50), each tuned family's test accuracy against the rate, one
  line each with its 95% t interval (named after the clean recipe);
- `<recipe>-families`: every tuned family's final test accuracy side by side (tuned DBA, the tuned
  baselines, the tuned peers): each seed a point, the mean a bar, the 95% t interval of the mean;
  only from result files made under the protocol declaration in force (others are stale), and only
  when at least two tuned methods have such files.

Methods are listed in the table's order (`paper_tables.table_order`), and a packaged recipe's method
with fewer finished seeds than the recipe runs is named in a warning (`paper_tables.warn_unfinished`),
exactly as `dba table` does.

There is no accuracy-against-time figure, on purpose. A time axis is only fair when the training
seconds were measured side by side on one machine; the runs in a results folder are trained at
different times under different load (other runs, other processes on the same CPU or GPU), so
their seconds describe the machine's contention as much as the method. Epoch is the x axis; for
step cost under controlled conditions use `dba bench step`.

Damaged result files are skipped with a warning naming them, as in `paper_tables.py`.
Figures are `matplotlib.figure.Figure` objects, never pyplot's, so no GUI backend is needed and
no global figure state builds up; files are written through Agg and the PDF backend.
"""

from __future__ import annotations

import math
import textwrap
import warnings
from collections import defaultdict
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.legend import Legend
from matplotlib.ticker import MaxNLocator
from scipy import stats

from ..errors import ResultsNotWritable
from ..files import resolve_inside, write_atomic
from ..recipes.protocol import declaration
from ..results.quantities import steps_per_epoch
from ..results.reading import finished_results
from ..settings.layers import layer_names
from ..settings.names import name_problem
from ..settings.roles import TUNED_ROLES  # the families figure's slot order: tuned DBA, the baselines, the peers
from ..settings.validation import excerpt
from ..studies.converge import GROUP as CONVERGENCE_GROUP
from .paper_tables import packaged_recipe, table_order, warn_unfinished

# Sized for a paper: 7 inches is a two-column page's text width, so 8 pt text prints at 8 pt.
WIDTH = 7.0
PAPER_STYLE = {
    "font.size": 8,
    "axes.titlesize": 9,
    "axes.labelsize": 8,
    "legend.fontsize": 8,
    "xtick.labelsize": 7.5,
    "ytick.labelsize": 7.5,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "savefig.dpi": 300,
    "pdf.fonttype": 42,  # TrueType, not Type 3: journals' PDF checks reject Type 3 fonts
}
FORMATS = ("pdf", "png")
# config method -> panel (AdamW is Adam's family; Ordered SGD and the small-loss trick are both method "ordered")
FAMILIES = {"sgd": "SGD", "adam": "Adam", "adamw": "Adam", "dba": "DBA", "ordered": "Ordered / small-loss",
            "online": "Online selection", "importance": "Importance sampling", "dba-random": "DBA-random"}
# Line style by role within a family's panel: untuned solid, tuned dashed, the literal DBA dotted.
ROLE_STYLES = {"baseline": "-", "chosen": "-", "tuned-baseline": "--", "tuned": "--", "tuned-peer": "--", "literal": ":"}
# (line style, width) per layer: a thick solid line under a thinner dashed one keeps identical curves both visible.
LAYER_STYLES = (("-", 2.6), ("--", 1.4), ("-.", 1.2), ((0, (1, 1)), 1.2))
TICK_CHARACTERS = 11  # a families tick label's line, in characters
JITTER = 0.16  # seeds' points spread over ±JITTER of a slot (slots are 1 apart)
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
           "#393b79", "#8c6d31")  # tab10 and two darker ones: a recipe's twelve methods, twelve colours

Runs = dict[str, list[dict]]  # method_name -> finished result documents (one per seed)


def load_runs(results_dir: Path, recipes: list[str] | None = None) -> dict[str, Runs]:
    """recipe -> method_name -> documents; damaged files are skipped with a warning naming them."""
    found: dict[str, Runs] = defaultdict(lambda: defaultdict(list))
    for path, document in finished_results(Path(results_dir)):
        if recipes is not None and path.parent.parent.name not in recipes:
            continue
        if not usable_name(path, document["recipe"]):
            continue
        if document["history"]:
            found[document["recipe"]][document["method_name"]].append(document)
    return {recipe: dict(runs) for recipe, runs in found.items()}


def usable_name(path: Path, recipe: str) -> bool:
    """A recipe name read from a file becomes a figure's file name: only a name that is safe as one (settings/names.py).

    Anything else (a path, '..', a leading dot or dash) is refused with a warning, whatever the file's digest says.
    """
    problem = name_problem(recipe)
    if problem is not None:
        warnings.warn(f"skipped: {path}: unreadable: its recipe name {excerpt(recipe)} {problem}", stacklevel=3)
    return problem is None


def make_figures(results_dir: Path, out_dir: Path | None = None, recipes: list[str] | None = None) -> list[Path]:
    """Write every figure as PDF and PNG for every recipe with results (or only `recipes`); return every file written."""
    results_dir = Path(results_dir)
    out_dir = Path(out_dir) if out_dir is not None else results_dir / "figures"
    check_figures_folder(out_dir)
    written = []
    for stem, fig in build_figures(results_dir, recipes).items():
        for extension in FORMATS:  # a second line of defence: every figure lies inside the figures folder
            resolve_inside(out_dir, f"{stem}.{extension}", "the figures folder")
        try:
            written += save(fig, out_dir / stem)
        except OSError as exc:  # read-only, full, or its folder taken meanwhile
            raise ResultsNotWritable(
                f"could not write a figure into {out_dir}: {exc.filename or stem}: {exc.strerror or exc}. "
                "Fix: pass --out a writable folder (or free some space)."
            ) from None
    return written


def check_figures_folder(out_dir: Path) -> None:
    """Before any figure is drawn: `out_dir` and every folder above it that exists is a folder, not a file."""
    for folder in (out_dir, *out_dir.parents):
        if folder.exists():
            if not folder.is_dir():
                what = "is" if folder == out_dir else f"lies in {folder}, which is"
                raise ResultsNotWritable(
                    f"figures folder {out_dir} {what} a file, not a folder. Fix: pass --out a folder (a new one is created)."
                )
            return


def build_figures(results_dir: Path, recipes: list[str] | None = None) -> dict[str, Figure]:
    """File stem ("mnist-1pct-accuracy-vs-epoch") -> figure, methods in table order; unfinished methods are warned about."""
    by_recipe = load_runs(results_dir, recipes)
    for missing in sorted(set(recipes or ()) - set(by_recipe)):
        warnings.warn(f"no finished results for recipe {missing!r} in {results_dir}", stacklevel=3)
    ordered = {}
    for name, runs in sorted(by_recipe.items()):
        recipe = packaged_recipe(name)
        ordered[name] = {method: runs[method] for method in table_order(recipe, runs)}
        finished = [(method, d["seed"], len(d["history"])) for method, documents in runs.items() for d in documents]
        warn_unfinished(recipe, finished, results_dir)
    # One colour per method name for the whole call, so "dba" is the same colour in every figure.
    names = list(dict.fromkeys(method for runs in ordered.values() for method in runs))
    colours = {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(names)}
    figures = {}
    with matplotlib.rc_context(PAPER_STYLE):  # font sizes are fixed when the artists are made
        for recipe, runs in ordered.items():
            figures[f"{recipe}-accuracy-vs-epoch"] = accuracy_figure(recipe, runs, colours)
            if len(tuned := tuned_runs(runs)) >= 2:
                figures[f"{recipe}-families"] = families_figure(recipe, tuned, colours)
            dba_runs = {name: kept for name, documents in runs.items() if (kept := [d for d in documents if is_dba(d)])}
            if dba_runs:
                figures[f"{recipe}-kept-subset"] = kept_figure(recipe, dba_runs, colours)
        for stem, by_rate in noise_groups(ordered).items():
            figures[f"{stem}-noise"] = noise_figure(stem, by_rate, colours)
        for recipe, runs in sorted(load_convergence_runs(results_dir, recipes).items()):
            figures[f"{recipe}-convergence"] = convergence_figure(recipe, runs)
    return figures


def load_convergence_runs(results_dir: Path, recipes: list[str] | None = None) -> dict[str, Runs]:
    """`dba converge`'s reported runs (results/convergence/RECIPE/<family>-tuned/seed-K.json), per recipe, in family order."""
    found: dict[str, Runs] = defaultdict(dict)
    for path, document in finished_results(results_dir / CONVERGENCE_GROUP, "*/*-tuned/seed-*.json"):
        recipe = path.parent.parent.name
        if not usable_name(path, recipe):
            continue
        if recipes is None or recipe in recipes:
            found[recipe].setdefault(path.parent.name, []).append(document)
    return {recipe: dict(sorted(runs.items(), key=lambda item: convergence_order(recipe, item[0]))) for recipe, runs in found.items()}


def convergence_order(recipe: str, method: str) -> tuple[int, str]:
    """A family's place in its packaged recipe's `convergence:` section (DBA's last as written), else by name."""
    known = packaged_recipe(recipe)
    families = list(known.convergence.families) if known is not None and known.convergence is not None else []
    family = method.removesuffix("-tuned")
    return (families.index(family) if family in families else len(families), method)


def convergence_figure(recipe: str, runs: Runs) -> Figure:
    """Validation accuracy against training steps and against training seconds: mean over seeds, band min..max.

    Seconds exclude evaluation; each seed's epochs sit at its own cumulative
    training time, and the line joins the seeds' mean time and mean accuracy
    per epoch (the band spans the seeds' accuracies). The recipe's targets are
    drawn as horizontal lines.
    """
    fig = Figure(figsize=(WIDTH, 3.1), layout="constrained")
    by_steps, by_seconds = fig.subplots(1, 2, sharey=True)
    lines = []
    for index, (name, documents) in enumerate(runs.items()):
        colour = PALETTE[index % len(PALETTE)]
        accuracy = per_epoch(documents, lambda epoch: epoch["val_accuracy"])
        steps = per_epoch(documents, lambda epoch: epoch["epoch"])[0] * steps_per_epoch(documents[0])
        seconds = np.cumsum(per_epoch(documents, lambda epoch: epoch["train_seconds"]), axis=1).mean(axis=0)
        mean, low, high = np.nanmean(accuracy, axis=0), np.nanmin(accuracy, axis=0), np.nanmax(accuracy, axis=0)
        for ax, x in ((by_steps, steps), (by_seconds, seconds)):
            (line,) = ax.plot(x, mean, color=colour, linestyle="--" if name.startswith("dba") else "-",
                              label=f"{name} (n = {len(documents)})")
            ax.fill_between(x, low, high, color=colour, alpha=0.15, linewidth=0)
        lines.append(line)
    known = packaged_recipe(recipe)
    targets = known.convergence.targets if known is not None and known.convergence is not None else []
    for ax, xlabel in ((by_steps, "training steps"), (by_seconds, "training seconds (evaluation excluded)")):
        for target in targets:
            ax.axhline(target, color="0.4", linewidth=0.8, linestyle=":")
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
    by_steps.set_ylabel("validation accuracy (%)")
    if targets:  # zoom on the targets: the first epochs' low accuracies would squash the part that decides
        by_steps.set_ylim(bottom=min(targets) - 3)
    fig.suptitle(f"{recipe}: validation accuracy, every method tuned for time to target\n"
                 f"line: mean over seeds; band: min–max over seeds; dotted: targets {', '.join(f'{t:g}%' for t in targets)}")
    legend_below(fig, lines)
    return fig


def label(name: str, documents: list[dict], runs: Runs) -> str:
    """The method name (as in the table), and its seed count when methods' counts differ."""
    uneven = len({len(others) for others in runs.values()}) > 1
    return f"{name} (n = {len(documents)})" if uneven else name


def family(documents: list[dict]) -> str:
    method = documents[0]["config"]["method"]
    return FAMILIES.get(method, method)


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


def evaluated_accuracy(documents: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    """(epochs, seeds x epochs test accuracy) at the evaluated epochs only, so curves join evaluated points.

    A recipe's `evaluation:` schedule evaluates some epochs and not others
    (None in the history); the seeds of one method share the schedule, so the
    epochs kept are those every seed evaluated (with none in common, e.g.
    results made under different schedules, those any seed evaluated, the
    mean then over the seeds that have a value).
    """
    accuracy = per_epoch(documents, lambda epoch: epoch["test_accuracy"])  # None -> NaN
    epochs = per_epoch(documents, lambda epoch: epoch["epoch"])[0]
    shown = ~np.isnan(accuracy).any(axis=0)
    if not shown.any():
        shown = ~np.isnan(accuracy).all(axis=0)
    return epochs[shown], accuracy[:, shown]


def accuracy_figure(recipe: str, runs: Runs, colours: dict[str, str]) -> Figure:
    """Test accuracy against epoch (evaluated epochs only), mean over seeds with a min..max band; one panel per method family.

    `runs` is in table order, and so is the legend; the panels are SGD, Adam, DBA, then the peers' (FAMILIES' order).
    """
    by_family: dict[str, list[str]] = defaultdict(list)
    for name, documents in runs.items():
        by_family[family(documents)].append(name)
    known = list(dict.fromkeys(FAMILIES.values()))  # SGD, Adam, DBA, whatever the method names; other methods after
    panels = dict(sorted(by_family.items(), key=lambda item: known.index(item[0]) if item[0] in known else len(known)))
    fig = Figure(figsize=(WIDTH, 3.1), layout="constrained")
    axes = fig.subplots(1, len(panels), sharey=True, squeeze=False)[0]
    lines = {}
    for ax, (title, names) in zip(axes, panels.items()):
        for name in names:
            documents = runs[name]
            epochs, accuracy = evaluated_accuracy(documents)
            colour, style = colours[name], ROLE_STYLES.get(documents[0].get("role", "baseline"), "-.")
            (lines[name],) = ax.plot(epochs, np.nanmean(accuracy, axis=0), color=colour, linestyle=style, label=label(name, documents, runs))
            ax.fill_between(epochs, np.nanmin(accuracy, axis=0), np.nanmax(accuracy, axis=0), color=colour, alpha=0.15, linewidth=0)
        ax.set_title(panel_title(title, len(panels)))
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(epoch_ticks())
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("test accuracy (%)")
    fig.suptitle(f"{recipe}: test accuracy\nline: mean over {seeds_text(runs)}; band: min–max over seeds")
    legend_below(fig, [lines[name] for name in runs])  # table order, outside the data
    return fig


def tuned_runs(runs: Runs) -> Runs:
    """The tuned methods' documents made under the declaration in force, slots in order: tuned DBA, baselines, peers.

    Within each role the methods keep `runs`' (table) order. A document of
    another protocol, or of none, is stale and left out; so is a method left
    with none.
    """
    governed = declaration()
    kept = {name: current for name, documents in runs.items()
            if (current := [d for d in documents if d.get("role") in TUNED_ROLES and governed.governs(d)])}
    return dict(sorted(kept.items(), key=lambda item: TUNED_ROLES.index(item[1][0]["role"])))  # stable: table order kept


def noise_groups(by_recipe: dict[str, Runs]) -> dict[str, dict[float, Runs]]:
    """Recipes that differ only in their symmetric label-noise rate, by the clean one's name: rate -> tuned runs.

    A group needs at least two rates with tuned runs made under the
    declaration in force; the recipe without noise names it (else the first).
    """
    groups: dict[tuple, dict[float, tuple[str, Runs]]] = defaultdict(dict)
    for name, runs in by_recipe.items():
        tuned = tuned_runs(runs)
        if not tuned:
            continue
        config = next(iter(tuned.values()))[0]["config"]
        if config.get("label_noise", "none") not in ("none", "symmetric") or config.get("imbalance", 1.0) != 1.0:
            continue
        key = (config.get("dataset", "mnist"), config["data"], config.get("architecture", "mlp"))
        groups[key][float(config.get("noise_rate", 0.0))] = (name, tuned)
    found = {}
    for rates in groups.values():
        if len(rates) >= 2:
            stem = rates[min(rates)][0]
            found[stem] = {rate: tuned for rate, (_, tuned) in sorted(rates.items())}
    return found


def noise_figure(recipe: str, by_rate: dict[float, Runs], colours: dict[str, str]) -> Figure:
    """Test accuracy against the symmetric noise rate, one line per tuned family with its 95% t interval per rate."""
    fig = Figure(figsize=(WIDTH, 3.1), layout="constrained")
    ax = fig.subplots()
    families = list(dict.fromkeys(name for tuned in by_rate.values() for name in tuned))
    handles = []
    for name in families:
        rates = [rate for rate, tuned in by_rate.items() if name in tuned]
        values = [np.array([d["final_test_accuracy"] for d in by_rate[rate][name]], dtype=float) for rate in rates]
        means = [float(v.mean()) for v in values]
        halves = [t_interval(v) or 0.0 for v in values]
        dba = by_rate[rates[0]][name][0]["role"] == "tuned"
        line = ax.errorbar([100 * r for r in rates], means, yerr=halves, color=colours.get(name, "0.3"), capsize=2,
                           linewidth=2.2 if dba else 1.2, marker="o", markersize=3,
                           label=name.removesuffix("-tuned"))
        handles.append(line)
    ax.set_xticks([100 * rate for rate in by_rate])
    ax.set_xlabel("symmetric label noise on the training subset, %")
    ax.set_ylabel("test accuracy, %")
    ax.grid(axis="y", alpha=0.3)
    fig.suptitle(panel_title(f"{recipe}: tuned families against label noise (mean, 95% t interval)", 1))
    legend_below(fig, handles)
    return fig


def seed_offset(seed: int) -> float:
    """A seed's horizontal offset within its slot, in ±JITTER: the golden-ratio sequence, so neighbouring seeds spread evenly."""
    return ((seed * 0.6180339887498949) % 1.0 - 0.5) * 2 * JITTER


def t_interval(values: np.ndarray) -> float | None:
    """Half-width of the 95% t interval of the mean of `values`: t(0.975, n-1) x sd / sqrt(n); None for one value."""
    n = len(values)
    if n < 2:
        return None
    return float(stats.t.ppf(0.975, n - 1) * np.std(values, ddof=1) / math.sqrt(n))


def families_figure(recipe: str, tuned: Runs, colours: dict[str, str]) -> Figure:
    """Final test accuracy of every tuned method, one slot each in `tuned`'s order: seeds as points, mean and 95% t interval.

    A dashed grey line at tuned DBA's mean reads the others against it. Each
    artist carries a gid ("seeds:NAME", "mean:NAME", "interval:NAME",
    "dba-mean") so it can be found again.
    """
    fig = Figure(figsize=(WIDTH, 3.1), layout="constrained")
    ax = fig.subplots()
    handles = {}
    for x, (name, documents) in enumerate(tuned.items()):
        colour = colours[name]
        seeds = [d["seed"] for d in documents]
        accuracy = np.array([d["final_test_accuracy"] for d in documents], dtype=float)
        mean, half = float(accuracy.mean()), t_interval(accuracy)
        points = ax.scatter([x + seed_offset(seed) for seed in seeds], accuracy, s=9, color=colour, alpha=0.55,
                            linewidths=0, zorder=2, gid=f"seeds:{name}", label="one seed")
        (bar,) = ax.plot([x - 0.3, x + 0.3], [mean, mean], color=colour, linewidth=2.2, solid_capstyle="butt", zorder=3,
                         gid=f"mean:{name}", label="mean over seeds")
        handles.setdefault("points", points)
        handles.setdefault("mean", bar)
        if half is not None:
            interval = ax.vlines(x, mean - half, mean + half, color=colour, linewidth=1.2, zorder=3,
                                 gid=f"interval:{name}", label="95% t interval of the mean")
            handles.setdefault("interval", interval)
    dba = [name for name, documents in tuned.items() if documents[0]["role"] == "tuned"]
    if dba:
        level = float(np.mean([d["final_test_accuracy"] for d in tuned[dba[0]]]))
        line = ax.axhline(level, color="0.5", linestyle="--", linewidth=0.8, zorder=1, gid="dba-mean",
                          label=f"{dba[0]} mean ({level:.2f}%)")
        handles["dba-mean"] = line
    ax.set_xticks(range(len(tuned)))
    # Upright and wrapped at hyphens to a slot's width (eight slots fit "small-loss"), so no label reaches its neighbour's.
    ax.set_xticklabels(["\n".join([*textwrap.wrap(name.removesuffix("-tuned"), TICK_CHARACTERS), f"n={len(documents)}"])
                        for name, documents in tuned.items()])
    for tick, name in zip(ax.get_xticklabels(), tuned):
        if name in dba:
            tick.set_color(colours[name])
    ax.set_xlim(-0.6, len(tuned) - 0.4)
    ax.set_ylabel("test accuracy, %")
    ax.grid(axis="y", alpha=0.3)
    fig.suptitle(panel_title(f"{recipe}: tuned families, test accuracy per seed (mean, 95% t interval)", 1))
    legend_below(fig, list(handles.values()))
    return fig


def kept_figure(recipe: str, dba_runs: Runs, colours: dict[str, str]) -> Figure:
    """Kept subset size per layer and epoch, one panel per DBA method (table order), batch size for scale."""
    fig = Figure(figsize=(WIDTH, 2.9), layout="constrained")
    axes = fig.subplots(1, len(dba_runs), sharey=True, squeeze=False)[0]
    handles = {}  # legend label -> line, the same layers in every panel listed once
    for ax, (name, documents) in zip(axes, dba_runs.items()):
        epochs = per_epoch(documents, lambda epoch: epoch["epoch"])[0]
        layers = sorted({layer for d in documents for e in d["history"] for layer in e["kept"]}, key=layer_key)
        names = layer_names(documents[0]["config"])
        for i, layer in enumerate(layers):
            colour = colormaps["Dark2"](i % 8)  # not the method palette: these colours mean layers
            style, width = LAYER_STYLES[min(i, len(LAYER_STYLES) - 1)]
            mean = per_epoch(documents, lambda epoch: epoch["kept"].get(layer, {}).get("mean", np.nan))
            low = per_epoch(documents, lambda epoch: epoch["kept"].get(layer, {}).get("min", np.nan))
            high = per_epoch(documents, lambda epoch: epoch["kept"].get(layer, {}).get("max", np.nan))
            text = names.get(layer, f"module {layer}")
            (line,) = ax.plot(epochs, np.nanmean(mean, axis=0), color=colour, linestyle=style, linewidth=width, label=text)
            handles.setdefault(text, line)
            ax.fill_between(epochs, np.nanmin(low, axis=0), np.nanmax(high, axis=0), color=colour, alpha=0.15, linewidth=0)
        batch_size = documents[0]["config"]["batch_size"]
        line = ax.axhline(batch_size, color="black", linestyle=":", linewidth=1, label=f"batch size ({batch_size})")
        handles.setdefault(line.get_label(), line)
        ax.set_ylim(0, max(d["config"]["batch_size"] for ds in dba_runs.values() for d in ds) * 1.08)
        ax.set_title(panel_title(label(name, documents, dba_runs), len(dba_runs)), color=colours[name])
        ax.xaxis.set_major_locator(epoch_ticks())
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("kept subset size (samples)")
    fig.suptitle(f"{recipe}: DBA's kept subset size per layer\nline: mean over steps and {seeds_text(dba_runs)}; "
                 "band: min–max over steps and seeds")
    legend_below(fig, list(handles.values()))
    return fig


def panel_title(text: str, panels: int) -> str:
    """`text` wrapped (at spaces and hyphens) to the width of one of `panels` side-by-side panels, so titles never meet."""
    return textwrap.fill(text, width=max(12, int(WIDTH / panels * 11)))


def epoch_ticks() -> MaxNLocator:
    """Whole epochs at round steps: 0, 50, 100, ... rather than 0, 40, 80, ..."""
    return MaxNLocator(nbins=5, integer=True, steps=[1, 2, 5, 10])


def layer_key(layer: str):
    """Sort nn.Sequential names numerically ("2" before "10"), other names after, alphabetically."""
    return (0, int(layer), "") if layer.isdigit() else (1, 0, layer)


def legend_below(fig: Figure, handles: list) -> Legend:
    """One legend under the panels, in `handles`' order, in as few rows as fit the figure's width.

    Several columns fill column by column (matplotlib's reading order), so the order still reads down then across.
    """
    renderer = FigureCanvasAgg(fig).get_renderer()
    for rows in range(1, len(handles) + 1):
        columns = math.ceil(len(handles) / rows)
        legend = fig.legend(handles=handles, loc="outside lower center", ncols=columns, frameon=False,
                            handlelength=2.5, columnspacing=1.5)
        if columns == 1 or legend.get_window_extent(renderer).width <= 0.98 * fig.bbox.width:
            break
        legend.remove()
    return legend


def save(fig: Figure, stem: Path) -> list[Path]:
    """Write `stem`.pdf and `stem`.png, each beside its final name then renamed, so a crash never leaves half a figure."""
    paths = [stem.with_name(f"{stem.name}.{extension}") for extension in FORMATS]
    try:
        with matplotlib.rc_context(PAPER_STYLE):  # the dpi and the PDF font type are read when saving
            for path, extension in zip(paths, FORMATS):
                # No creation date in the PDF, so regenerating an unchanged figure leaves the file byte-identical.
                metadata = {"CreationDate": None} if extension == "pdf" else None
                write_atomic(path, lambda handle: fig.savefig(handle, format=extension, metadata=metadata))
    finally:
        fig.clear()  # Figure objects are not held by pyplot; clearing frees the artists at once
    return paths
