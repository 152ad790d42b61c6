"""What regenerating every result under the confirmatory protocol costs, from the seconds the committed runs recorded.

    .venv/bin/python tests/confirmatory_compute.py [--results results] [--out docs/confirmatory-compute.md]

The protocol declaration (dba_cli/protocol.yaml) makes every committed result
stale, so `make paper-tables` trains everything again, and more than before:
five tuning seeds per candidate on k-fold validation, twenty reported seeds
for every family's top settings, the holdout sensitivity variant of the
primary scarce recipes, the edge rule's extra candidates. Before anyone starts
that, this says how many runs and CPU-core hours it is, from the studies' own
plans (studies/tune.py, converge.py, ablate.py, protocol.py, and each recipe's
untuned rows) and from what the committed runs actually took: core-seconds
per optimizer step as a line in the batch size per architecture, scaled per
recipe and kind (DBA or not), and core-seconds per evaluated image; DBA's
peers, which have no committed runs yet, at a plain step times their measured
cost relative to it (STEP_FACTOR). A cost
model is only as good as its check, so the page also predicts the committed
runs themselves and sets that beside what they recorded, for this model and
for a flat rate per step.
Which study runs on which recipe is read from the Makefile's lists, as
`make paper-tables` reads them. Not a test (pytest collects no function here).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import math
import os
import re
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

from dba_cli.errors import ConfigError
from dba_cli.files import write_text_atomic
from dba_cli.recipes.loading import load_recipe
from dba_cli.recipes.protocol import declaration
from dba_cli.recipes.recipe import Recipe
from dba_cli.results.reading import finished_results
from dba_cli.settings.packing import default_methods, pack_key
from dba_cli.settings.roles import TUNED_ROLES
from dba_cli.settings.run import fold_size
from dba_cli.settings.subsets import TRAIN_SIZE, parse_subset
from dba_cli.studies import ablate, converge, protocol, tune
from dba_cli.studies.candidates import Scored

ROOT = Path(__file__).resolve().parent.parent
TEST_IMAGES = 10_000  # MNIST's and Fashion-MNIST's test sets; every evaluation runs all of it
CORES = (2, os.cpu_count() or 1, 16)
STUDY_FOLDERS = ("tune", "convergence", "ablation", "protocol")


@dataclass(frozen=True)
class Line:
    """Core-seconds per step as a line in the batch size: a fixed cost per step plus one per sample."""

    fixed: float
    per_sample: float

    def at(self, batch: int) -> float:
        return self.fixed + self.per_sample * batch


@dataclass(frozen=True)
class Rate:
    """One recipe and kind: its architecture's line times the recipe's own scale, per evaluated image, and its source."""

    line: Line
    scale: float
    image: float
    runs: int
    source: str

    def step(self, batch: int) -> float:
        return self.scale * self.line.at(batch)


@dataclass
class Row:
    """One study of one recipe: runs, steps, evaluations, core-seconds (typical, and with the costliest settings)."""

    study: str
    runs: int = 0
    steps: int = 0
    evaluations: int = 0
    seconds: float = 0.0
    most: float = 0.0
    note: str = ""


@dataclass
class Cost:
    runs: int
    steps: int
    evaluations: int
    seconds: float


def kind(method: str) -> str:
    """The rate a method's steps are priced at: the DBA engine's (dba, and the random control), or a plain step's."""
    return "DBA" if method in ("dba", "dba-random") else "not DBA"


# DBA's peers have no committed runs to fit: their steps are priced at a plain step times their measured cost
# relative to it (`dba bench step --batch-sizes 50,256 --threads 1`, batch 50, docs/peers.md), the random control
# at DBA's step times its measured cost relative to DBA's (1.26 / 1.13).
STEP_FACTOR = {"ordered": 1.18, "online": 1.58, "importance": 2.13, "dba-random": 1.26 / 1.13}
# Packed training on a CPU (settings/packing.py default_methods: DBA and dba-random only, up to 16 per pack): the
# measured speed-up of a real grid at pack 16, `dba bench pack mnist-1pct --family dba --runs 48 --packs 1,4,16
# --jobs 2` (docs/packing.md). The committed runs trained alone, so their rates are a run alone's.
PACK_SPEEDUP = 1.16


def makefile_lists(text: str) -> dict[str, list[str]]:
    """The Makefile's `NAME ?= a b c` lists (RECIPES, SCARCE, ...): which studies `make paper-tables` runs where."""
    found = {}
    for line in text.splitlines():
        match = re.match(r"^([A-Z_]+) \?=(.*)$", line)
        if match:
            found[match.group(1)] = match.group(2).split()
    return found


def scope(lists: dict[str, list[str]], makefile: str) -> dict[str, set[str]]:
    """Per recipe, the studies paper-tables runs on it (paper-tables-steps, fair-comparison, beyond-mnist, convergence).

    The holdout sensitivity variant: on the Makefile's HOLDOUT list (its
    data-scarce recipes; a full recipe has no variant).
    """
    studies: dict[str, set[str]] = {}

    def add(names: list[str], *what: str) -> None:
        for name in names:
            studies.setdefault(name, set()).update(what)

    add(lists["RECIPES"] + lists["BEYOND"], "reproduce")
    add(lists["SCARCE"], "tune", "ablate", "protocol")
    add(lists["BEYOND_SCARCE"], "tune", "protocol")
    add(lists["BEYOND_ABLATE"], "ablate")
    add(lists.get("NOISY", []) + lists.get("IMBALANCED", []), "reproduce", "tune")
    add(lists["CONVERGE"], "converge")
    add([recipe for recipe in lists.get("HOLDOUT", []) if tune.scarce(load_recipe(recipe))], "holdout")
    return studies


def validation_images(config) -> int:
    """The images each evaluation adds to the test set: the run's fold, or its held-out split (0 without one)."""
    if getattr(config, "folds", 0):
        return fold_size(config.subset_size, config.folds, config.fold)
    return getattr(config, "validation_size", 0) or 0


def train_images(config) -> int:
    """A planned run's training set: its subset less its validation fold, or the full set less its held-out split."""
    subset = config.subset_size
    if subset is None:
        return TRAIN_SIZE - (config.validation_size or 0)
    return subset - (fold_size(subset, config.folds, config.fold) if config.folds else 0)


def whole_subset(training: int, folds: int, fold: int) -> int:
    """A fold run's whole subset from the training images its file records (subset_size: the subset less its fold).

    Two subset sizes can leave the same training images (600 and 601 both leave 480 with fold 0 of 5): the smaller
    is taken, which is every packaged recipe's; the other would move the cost model's validation images by one.
    """
    if not folds:
        return training
    return next(whole for whole in range(training, 2 * training + folds + 1)
                if whole - fold_size(whole, folds, fold) == training)


class Recorded:
    """A committed result as the cost model reads it (its config as attributes, for validation_images)."""

    def __init__(self, path: Path, document: dict):
        self.path, self.document = path, document
        config = document["config"]
        self.data, self.method, self.batch = config["data"], config["method"], config["batch_size"]
        self.architecture = config.get("architecture", "mlp")  # a result file leaves defaults out
        self.folds, self.fold = config.get("folds") or 0, config.get("fold") or 0
        self.validation_size = config.get("validation_size") or 0
        self.subset_size = whole_subset(document["subset_size"], self.folds, self.fold)
        self.epochs = len(document["history"])
        self.evaluations = sum(1 for record in document["history"] if record["test_accuracy"] is not None)
        self.steps = self.epochs * math.ceil(document["subset_size"] / self.batch)  # subset_size: the training images
        threads = document.get("threads") or 1
        self.train = document["train_seconds"] * threads
        self.eval = document["eval_seconds"] * threads
        self.images = self.evaluations * (TEST_IMAGES + validation_images(self))


def sources(recorded: list[Recorded], recipe: str) -> tuple[list[Recorded], list[Recorded]]:
    """A recipe's committed tuning and convergence runs, and its own rows (RECIPE/): what its rates are fitted from."""
    mine = [r for r in recorded if r.document.get("recipe") == recipe]
    return [r for r in mine if r.path.parts[0] in ("tune", "convergence")], [r for r in mine if r.path.parts[0] == recipe]


def step_lines(recorded: list[Recorded], recipes: list[str]) -> dict[str, Line]:
    """Per architecture, core-seconds per step against the batch size: least squares over the median of each batch size.

    From the runs without DBA of the recipes' fit sources, the only kind
    committed at more than one batch size (25 and 50: per step, a batch of 25
    costs about 0.65 of one of 50, not the same); DBA is assumed to scale alike.
    An architecture seen at one batch size only gets a flat line.
    """
    points: dict[str, dict[int, list[float]]] = {}
    for recipe in recipes:
        studies, own = sources(recorded, recipe)
        for r in studies or own:
            if kind(r.method) == "not DBA":
                points.setdefault(r.architecture, {}).setdefault(r.batch, []).append(r.train / r.steps)
    found = {}
    for architecture, by_batch in points.items():
        xs = sorted(by_batch)
        ys = [statistics.median(by_batch[x]) for x in xs]
        if len(xs) < 2:
            found[architecture] = Line(ys[0], 0.0)
            continue
        slope, intercept = statistics.linear_regression(xs, ys)
        found[architecture] = Line(intercept, slope)
    return found


def extended_recipe(name: str) -> str | None:
    """The packaged recipe that `name` extends (its file's `extends:`), or None."""
    from dba_cli.recipes.loading import find_recipe
    from dba_cli.recipes.safe_yaml import load_yaml_file

    document = load_yaml_file(find_recipe(name))
    parent = document.get("extends") if isinstance(document, dict) else None
    return parent if isinstance(parent, str) else None


def fit(recorded: list[Recorded], recipe: str, shapes: dict[str, Line]) -> dict[str, Rate]:
    """Per kind, the recipe's scale on its architecture's line and its core-seconds per evaluated image (medians).

    From its tuning runs (tune/RECIPE/) and convergence runs where it has
    them, else from its own folders (RECIPE/): the grids the regeneration
    mostly consists of. A kind absent there falls back to the recipe's own
    folders, then to the other kind.
    """
    def of(runs: list[Recorded], what: str) -> Rate | None:
        if not runs:
            return None
        line = shapes[runs[0].architecture]
        evaluated = [r for r in runs if r.images]
        return Rate(line, statistics.median(r.train / r.steps / line.at(r.batch) for r in runs),
                    statistics.median(r.eval / r.images for r in evaluated) if evaluated else 0.0, len(runs), what)

    studies, own = sources(recorded, recipe)
    parent = extended_recipe(recipe)
    if not studies and not own and parent is not None:  # a new recipe (e.g. label noise): priced at the one it extends
        return {name: dataclasses.replace(rate, source=f"{rate.source} of {parent}")
                for name, rate in fit(recorded, parent, shapes).items()}
    rates: dict[str, Rate | None] = {}
    for name in ("DBA", "not DBA"):
        rates[name] = (of([r for r in studies if kind(r.method) == name], "tune/convergence")
                       or of([r for r in own if kind(r.method) == name], "own folders"))
    for name, other in (("DBA", "not DBA"), ("not DBA", "DBA")):
        if rates[name] is None and rates[other] is not None:
            found = rates[other]
            rates[name] = Rate(found.line, found.scale, found.image, 0, f"the {other} fit (no {name} run)")
    if rates["DBA"] is None:
        raise SystemExit(f"no committed run of recipe {recipe} to fit its costs from")
    return rates  # type: ignore[return-value]


def cost(runs: list, rates: dict[str, Rate]) -> Cost:
    """Steps = epochs x ceil(training images / batch); evaluations = the planned evaluated epochs; seconds by the rates."""
    total = Cost(len(runs), 0, 0, 0.0)
    for planned in runs:
        config = planned.config
        rate = rates[kind(config.method)]
        steps = config.epochs * math.ceil(train_images(config) / config.batch_size)
        evaluations = len(planned.evaluated_epochs)
        total.steps += steps
        total.evaluations += evaluations
        images = evaluations * (TEST_IMAGES + validation_images(config))
        seconds = steps * rate.step(config.batch_size) * STEP_FACTOR.get(config.method, 1.0) + images * rate.image
        total.seconds += seconds / (PACK_SPEEDUP if packs_on_cpu(config) else 1.0)
    return total


def packs_on_cpu(config) -> bool:
    """Whether a grid on a CPU packs this run by default (`--pack` unset: settings/packing.py)."""
    return config.method in default_methods("cpu") and pack_key(config) is not None


def row(study: str, costs: list[Cost], note: str = "") -> Row:
    """A study whose settings are known in advance: one cost."""
    return Row(study, sum(c.runs for c in costs), sum(c.steps for c in costs), sum(c.evaluations for c in costs),
               sum(c.seconds for c in costs), sum(c.seconds for c in costs), note)


def per_family(study: str, grid: list, plan, rates: dict[str, Rate], note: str = "") -> Row:
    """A study of settings not chosen yet: each family's runs as `plan(candidate)` makes them, for every candidate.

    Which setting wins is not known before the tuning runs exist, so the
    typical cost is the family's mean over its grid and the upper one its
    costliest candidate (in practice: batch 25 rather than 50).
    """
    found = Row(study, note=note)
    for family in dict.fromkeys(c.family for c in grid):
        costs = [cost(plan(c), rates) for c in grid if c.family == family]
        found.runs += costs[0].runs
        found.steps += round(statistics.fmean(c.steps for c in costs))
        found.evaluations += round(statistics.fmean(c.evaluations for c in costs))
        found.seconds += statistics.fmean(c.seconds for c in costs)
        found.most += max(c.seconds for c in costs)
    return found


def ranked_as(candidate, count: int) -> list[Scored]:
    """`count` copies of one candidate ranked 1..count: a study's reported runs as if it had won each place."""
    return [Scored(candidate, [{}], (place,), place) for place in range(count)]


def tuning_rows(recipe: Recipe, variant: str | None, rates: dict[str, Rate]) -> list[Row]:
    """`dba tune` (or its holdout variant): the declared grid on the tuning seeds, its top settings on the reported."""
    label = f"tune ({tune.validation_of(recipe, variant)} validation{', sensitivity variant' if variant else ''})"
    grid = tune.base_grid(recipe)
    top = tune.tune_spec(recipe).top
    seeds = declaration().seeds
    return [
        row(f"{label}: tuning", [cost(tune.candidate_runs(recipe, variant=variant), rates)],
            f"{len(grid)} settings x {seeds.tuning.count} tuning seeds"),
        per_family(f"{label}: reported best", grid,
                   lambda c: tune.tuned_runs(recipe, {f"{c.family}-tuned": c.method}, variant=variant), rates,
                   f"families x {seeds.reported.count} reported seeds, the recipe's evaluation schedule"),
        per_family(f"{label}: reported runners-up", grid,
                   lambda c: tune.runner_up_runs(recipe, ranked_as(c, top), variant=variant), rates,
                   f"families x {top - 1} x {seeds.reported.count} seeds, final evaluation only"),
    ]


def extension_row(recipe: Recipe, studies: set[str], rates: dict[str, Rate]) -> Row:
    """The edge rule's extra candidates, at most `edge.max_extensions` per family of every search, on the tuning seeds."""
    limit = declaration().edge.max_extensions
    found = Row("edge extensions (at most)",
                note=f"<= {limit} per family and search, each costed as one of its family's candidates")
    searches = []
    if "tune" in studies:
        searches.append((tune.base_grid(recipe), lambda c: tune.runs_of(recipe, [c])))
    if "holdout" in studies:
        searches.append((tune.base_grid(recipe), lambda c: tune.runs_of(recipe, [c], variant="holdout")))
    if "converge" in studies:
        searches.append((converge.base_grid(recipe), lambda c: converge.runs_of(recipe, [c])))
    for grid, plan in searches:
        one = per_family("", grid, plan, rates)
        found.runs += one.runs * limit
        found.steps += one.steps * limit
        found.evaluations += one.evaluations * limit
        found.seconds += one.seconds * limit
        found.most += one.most * limit
    return found


def recipe_rows(recipe: Recipe, studies: set[str], rates: dict[str, Rate]) -> list[Row]:
    rows: list[Row] = []
    if "tune" in studies:
        rows += tuning_rows(recipe, None, rates)
    if "holdout" in studies:
        rows += tuning_rows(recipe, "holdout", rates)
    if "converge" in studies:
        grid = converge.base_grid(recipe)
        top = converge.convergence_spec(recipe).top
        seeds = declaration().seeds
        rows.append(row("converge: tuning", [cost(converge.tuning_runs(recipe), rates)],
                        f"{len(grid)} settings x {seeds.tuning.count} tuning seeds, every epoch evaluated"))
        rows.append(per_family("converge: reported", grid, lambda c: converge.reported_runs(recipe, ranked_as(c, top)),
                               rates, f"families x top {top} x {seeds.reported.count} seeds"))
    if rows and any(r.study.startswith(("tune", "converge")) for r in rows):
        rows.append(extension_row(recipe, studies, rates))
    if "ablate" in studies:
        rows.append(row("ablate", [cost(ablate.ablation_runs(recipe), rates)], "variants x design seeds"))
    if "protocol" in studies:
        try:
            runs = protocol.default_runs(recipe) + protocol.protocol_runs(recipe)
        except ConfigError:  # no tuned methods yet: the diagnostics vary them, so they are planned after the choices
            rows.append(Row("protocol diagnostics", note="not plannable before the tuned methods are chosen"))
        else:
            rows.append(row("protocol diagnostics", [cost(runs, rates)],
                            "the recipe's current tuned methods x variants x design seeds"))
    if "reproduce" in studies:
        tuned = "tune" in studies  # then its tuned rows are the reported best above, not planned twice
        untuned = [p for p in recipe.runs() if p.role not in TUNED_ROLES or not tuned]
        rows.append(row("recipe rows" + (" (untuned)" if tuned else ""), [cost(untuned, rates)],
                        "dba reproduce" + ("; the tuned rows are the reported best above" if tuned else "")))
    return rows


def hours(seconds: float) -> str:
    return f"{seconds / 3600:,.2f}"


def table(rows: list[Row]) -> list[str]:
    lines = ["| study | runs | steps | evaluations | core-h | core-h, costliest settings | what |",
             "|---|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        lines.append(f"| {r.study} | {r.runs:,} | {r.steps:,} | {r.evaluations:,} | {hours(r.seconds)} | "
                     f"{hours(r.most)} | {r.note} |")
    t = total(rows, "**total**")
    lines.append(f"| {t.study} | {t.runs:,} | {t.steps:,} | {t.evaluations:,} | **{hours(t.seconds)}** | "
                 f"{hours(t.most)} | |")
    return lines


def check(recorded: list[Recorded], models: dict[str, dict[str, dict[str, Rate]]]) -> list[str]:
    """Each committed run predicted from its recorded steps and evaluations, by each model, against its seconds."""
    sums: dict[tuple, list[float]] = {}
    for r in recorded:
        recipe = r.document.get("recipe")
        if any(recipe not in rates for rates in models.values()):
            continue
        where = (r.path.parts[0] + "/" if r.path.parts[0] in STUDY_FOLDERS else "recipe rows", r.batch)
        entry = sums.setdefault(where, [0, 0.0] + [0.0] * len(models))
        entry[0] += 1
        entry[1] += r.train + r.eval
        for index, rates in enumerate(models.values()):
            rate = rates[recipe][kind(r.method)]
            entry[2 + index] += r.steps * rate.step(r.batch) + r.images * rate.image
    names = list(models)
    lines = ["| committed runs | batch | files | recorded core-h | "
             + " | ".join(f"{n} / recorded" for n in names) + " |", "|---|---:|---:|---:|" + "---:|" * len(names)]
    for (where, batch), (count, actual, *predicted) in sorted(sums.items()):
        lines.append(f"| {where} | {batch} | {count:,} | {hours(actual)} | "
                     + " | ".join(f"{p / actual:.2f}" for p in predicted) + " |")
    return lines


def steps_text(rate: Rate) -> str:
    """Core-milliseconds per step at the shared axis' batch sizes: "0.95 / 1.42 at batch 25 / 50"."""
    batches = sorted(declaration().shared_axes.get("batch_size", [50]))
    return " / ".join(f"{rate.step(b) * 1e3:.2f}" for b in batches) + " at batch " + " / ".join(map(str, batches))


def estimate(recorded: list[Recorded], studies: dict[str, set[str]], shapes: dict[str, Line]):
    """Every recipe's rates and rows under one model of the per-step cost (`shapes`)."""
    rates = {name: fit(recorded, name, shapes) for name in studies}
    rows = {}
    for name in studies:
        try:
            rows[name] = recipe_rows(load_recipe(name), studies[name], rates[name])
        except ConfigError as exc:  # a recipe another engineer is editing: named, not a crash
            rows[name] = [Row("not planned", note=str(exc).replace("|", "/"))]
    return rates, rows


def total(rows: list[Row], name: str = "") -> Row:
    return Row(name, sum(r.runs for r in rows), sum(r.steps for r in rows), sum(r.evaluations for r in rows),
               sum(r.seconds for r in rows), sum(r.most for r in rows))


def page(results: Path, command: str) -> str:
    makefile = (ROOT / "Makefile").read_text()
    lists = makefile_lists(makefile)
    studies = scope(lists, makefile)
    order = sorted(studies, key=lambda n: (n not in lists["RECIPES"], n))
    recorded = [Recorded(path.relative_to(results), document)
                for path, document in finished_results(results, "**/seed-*.json")]
    decl = declaration()
    shapes = step_lines(recorded, order)
    rates, rows = estimate(recorded, studies, shapes)
    flat_rates, flat_rows = estimate(recorded, studies, dict.fromkeys(shapes, Line(1.0, 0.0)))
    out = [
        "# What the confirmatory regeneration costs",
        "",
        f"Made by `{command}` on {datetime.date.today().isoformat()} from the {len(recorded):,} committed result files "
        f"under `{results}`, for protocol declaration `{decl.name}` (digest `{decl.digest}`): how many runs "
        "`make paper-tables` trains under it and how many CPU-core hours they take. An estimate for planning the "
        "rerun, not a result; rerun the command after changing a recipe, the declaration or the Makefile's lists. "
        "Core-seconds per step, by architecture: "
        + "; ".join(f"{a} {line.fixed * 1e3:.3f} ms + {line.per_sample * 1e6:.2f} µs x batch"
                    for a, line in shapes.items())
        + " (times each recipe and kind's scale: the rates below).",
        "",
    ]
    for name in order:
        fits = "; ".join(f"{k} {steps_text(r)} ms/step, {r.image * 1e6:.2f} µs/image ({r.runs} runs, {r.source})"
                         for k, r in rates[name].items())
        out += [f"## {name}", "", f"Studies: {', '.join(sorted(studies[name]))}. Rates: {fits}.", "",
                *table(rows[name]), ""]
    cores = list(dict.fromkeys(CORES))
    out += ["## Total", "",
            "| recipe | runs | core-h | core-h, costliest settings | "
            + " | ".join(f"wall h on {n} cores" for n in cores) + " |",
            "|---|---:|---:|---:|" + "---:|" * len(cores)]
    for t in [*(total(rows[n], n) for n in order), total([r for n in order for r in rows[n]], "**all**")]:
        out.append(f"| {t.study} | {t.runs:,} | {hours(t.seconds)} | {hours(t.most)} | "
                   + " | ".join(f"{hours(t.seconds / n)} – {hours(t.most / n)}" for n in cores) + " |")
    flat = total([r for n in order for r in flat_rows[n]])
    out += ["", "Wall time: typical – costliest, assuming perfect parallelism (one run per core, every core busy to "
            f"the end; {os.cpu_count()} cores is the machine that made this page). With one flat rate per step per "
            f"recipe and kind instead of the batch-size line, the total would read {hours(flat.seconds)} core-h "
            f"({hours(flat.most)} costliest): a step of batch 25 costs about two thirds of one of 50, not the same.", "",
            "## Does the model fit the committed runs?", "",
            "Each committed run predicted from its own recorded steps and evaluations, by the batch-size line and by a "
            "flat rate per step. The rates were fitted on tune/ and convergence/ (and fashion-full's own rows), so "
            "those rows only show that medians sit near means; ablation/, protocol/ and the other recipe rows were not "
            "fitted on: they are the test.", "",
            *check(recorded, {"line": rates, "flat": flat_rates}), "", *assumptions(lists, decl)]
    return "\n".join(out) + "\n"


def assumptions(lists: dict[str, list[str]], decl) -> list[str]:
    v = decl.validation
    return [
        "## Assumptions", "",
        f"- Scope: `make paper-tables` as the Makefile's lists set it (RECIPES {' '.join(lists['RECIPES'])}; "
        f"SCARCE {' '.join(lists['SCARCE'])}: tune, ablate, protocol; BEYOND_SCARCE {' '.join(lists['BEYOND_SCARCE'])}: "
        f"tune, protocol; BEYOND_ABLATE {' '.join(lists['BEYOND_ABLATE']) or '(empty)'}; NOISY and IMBALANCED "
        f"{' '.join(lists.get('NOISY', []) + lists.get('IMBALANCED', []))}: reproduce, tune; CONVERGE "
        f"{' '.join(lists['CONVERGE'])}), and the holdout sensitivity variant (`dba tune --validation holdout`: tuning, "
        f"and its own reported best and runners-up, which always train afresh under tune-holdout/) on HOLDOUT "
        f"{' '.join(lists.get('HOLDOUT', [])) or '(empty)'}. `make foundation` "
        "(4 `dba run`s, about a CPU-minute, kept when their files exist) is left out.",
        f"- Plans: the studies' own functions with the declared grids (budget {decl.budget} per family, shared axes "
        f"included), {decl.seeds.tuning.count} tuning, {decl.seeds.design.count} design and {decl.seeds.reported.count} "
        f"reported seeds; {v.folds}-fold validation inside scarce subsets (a tuning run trains on (k-1)/k of it and "
        f"evaluates its fold), a {v.holdout_size:,}-image holdout for full recipes and the variant.",
        "- Settings not chosen yet (reported best, runners-up, convergence reported, edge extensions): each family "
        "costs the mean of its grid's candidates; the costliest column takes each family's costliest candidate "
        "(batch 25 rather than 50 doubles the steps). Edge extensions are counted at their maximum, "
        f"{decl.edge.max_extensions} per family of every search; they never step a shared axis (batch size).",
        "- Protocol diagnostics use the recipes' current tuned methods (none before the choices are pasted: then "
        "they cost nothing here; under the previous protocol they were 0.18 core-h in all); width variants are "
        "costed at the fitted (512-unit) rate, so width 1024 is underestimated and 128 overestimated.",
        f"- Packing (on a CPU, DBA and dba-random runs of MLP recipes up to 10,000 images): their seconds divided by "
        f"{PACK_SPEEDUP}, the measured speed-up at pack 16 (docs/packing.md); every other run trains alone.",
        "- Steps = epochs x ceil(training images / batch size), every planned epoch trained (no run diverges early). "
        f"Training images: the subset, less the validation fold for fold runs; full recipes {TRAIN_SIZE:,} less the "
        "held-out split.",
        "- Rates: core-seconds (recorded seconds x torch threads, 1 in every committed run). Per step: a line in the "
        "batch size per architecture (least squares over the batch sizes' medians of the runs without DBA, the only "
        "kind committed at two batch sizes), times each recipe and kind's median ratio of its runs to that line; DBA "
        "is assumed to scale with the batch like its base optimizer (its committed runs are all at batch 50). Per "
        f"evaluation: the median core-seconds per evaluated image (the {TEST_IMAGES:,}-image test set plus the "
        "validation split, whose size differs between committed and planned runs). Recorded seconds exclude process "
        "start-up, data loading and result writing.",
        "- One thread per run, as committed (`--threads 1`); the machine's speed and load as when the committed runs "
        "were made.",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=Path("results"), help="committed results (default results)")
    parser.add_argument("--out", type=Path, default=Path("docs/confirmatory-compute.md"),
                        help="the page to write (default docs/confirmatory-compute.md)")
    options = parser.parse_args()
    command = " ".join([".venv/bin/python tests/confirmatory_compute.py", *sys.argv[1:]])
    text = page(options.results, command)
    write_text_atomic(options.out, text)
    print(f"wrote {options.out} ({text.count(chr(10))} lines)")


if __name__ == "__main__":
    main()
