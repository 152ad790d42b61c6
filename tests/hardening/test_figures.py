"""Figures fit for a paper: PDF + 300 dpi PNG, no per-epoch markers, one panel per method family,
the legend below the panels in the table's order, layers named from the model, no time axis,
and `dba table` / `dba plot` both warn about methods of a recipe that have not finished.

Data are real: result files committed under results/, and tiny runs trained here.
"""

import itertools
import json
import re
import shutil
import warnings
from pathlib import Path

import pytest
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from PIL import Image
from torch import nn

from dba_cli.models import build_mlp
from dba_cli.settings.layers import linear_layer_labels
from dba_cli.reports.figures import build_figures, make_figures
from dba_cli.recipes.loading import load_recipe
from dba_cli.run.execute import execute_runs
from dba_cli.reports.paper_tables import build_tables

COMMITTED = Path(__file__).resolve().parents[2] / "results"
ONE_PCT_ORDER = ["sgd", "adam", "dba-literal", "dba", "sgd-tuned", "adam-tuned", "dba-tuned", "ordered-tuned",
                 "small-loss-tuned", "online-tuned", "importance-tuned", "dba-random-tuned"]  # recipes/mnist-1pct.yaml
PEER_PANELS = ["Ordered / small-loss", "Online selection", "Importance sampling", "DBA-random"]
TINY = """\
name: tiny-figures
data: 5-per-class
model: {hidden: [16, 8]}
training: {epochs: 3, batch_size: 10}
seeds: 2
methods:
  sgd: {method: sgd, lr: 0.1}
  adam: {method: adam, lr: 0.001}
  dba: {role: chosen, method: dba, lr: 0.1, dba: {min_size: 5}}
"""


def copy_committed(results, recipe, seeds):
    """Real result files of `recipe` (every method, the given seeds) into a fresh results folder.

    Skips while results/ lacks them (a regeneration commits its results sitting by sitting).
    """
    sources = [path for path in sorted((COMMITTED / recipe).glob("*/seed-*.json"))
               if int(path.stem.removeprefix("seed-")) in seeds]
    if not sources:
        pytest.skip(f"results/{recipe} holds no committed run of seeds {list(seeds)} yet")
    for source in sources:
        if True:
            target = results / recipe / source.parent.name / source.name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
    return results


@pytest.fixture
def full_mnist(tmp_path):
    """Every finished run of mnist-full: the recipe is complete, so nothing should be warned about."""
    return copy_committed(tmp_path / "results", "mnist-full", seeds=range(3))


@pytest.fixture
def one_pct(tmp_path):
    """All twelve methods of mnist-1pct, two seeds each: 0 and 1 of the untuned rows' five, 1000 and 1001 of the
    tuned rows' twenty reported seeds."""
    return copy_committed(tmp_path / "results", "mnist-1pct", seeds=(0, 1, 1000, 1001))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, mnist):
    """Real tiny runs of a 784-16-8-10 MLP: seed 0 of sgd and dba (adam never ran), and a smoke run of sgd."""
    recipes = tmp_path_factory.mktemp("recipes")
    (recipes / "tiny-figures.yaml").write_text(TINY)
    recipe = load_recipe(str(recipes / "tiny-figures.yaml"))
    results, smoke = tmp_path_factory.mktemp("results"), tmp_path_factory.mktemp("smoke")
    execute_runs(recipe.runs(methods=["sgd", "dba"], seeds=1), results)
    execute_runs(recipe.runs(methods=["sgd"], smoke=True), smoke)
    return {"recipes": recipes, "results": results, "smoke": smoke}


def table_order(results, recipe):
    _, frame = build_tables(results)
    return frame[frame.recipe == recipe]["method_name"].tolist()


def data_lines(fig):
    """The plotted curves and the legend's sample lines (tick marks are Line2D too, with markers by design)."""
    return [line for ax in fig.axes for line in ax.get_lines()] + [line for legend in fig.legends for line in legend.get_lines()]


def drawn_texts(fig, renderer):
    """Every text a reader sees: titles, axis labels, tick labels in view, legend entries."""
    texts = [fig._suptitle, *fig.legends[0].get_texts()]
    for ax in fig.axes:
        texts += [ax.title, ax.xaxis.label, ax.yaxis.label]
        for axis, (low, high) in ((ax.xaxis, ax.get_xlim()), (ax.yaxis, ax.get_ylim())):
            texts += [tick.label1 for tick in axis.get_major_ticks() if low <= tick.get_loc() <= high]
    return [(text.get_text(), text.get_window_extent(renderer)) for text in texts if text.get_visible() and text.get_text()]


@pytest.mark.parametrize("hidden", [(512,), (256, 128)])
def test_linear_layer_labels_name_build_mlps_linear_modules(hidden):
    linear = [name for name, module in build_mlp(hidden).named_modules() if isinstance(module, nn.Linear)]
    labels = linear_layer_labels(hidden)
    assert list(labels) == linear
    widths = [784, *hidden, 10]
    expected = [f"hidden layer {i + 1} ({widths[i]}→{widths[i + 1]})" for i in range(len(hidden))]
    assert list(labels.values()) == [*expected, f"output layer ({hidden[-1]}→10)"]


def test_every_figure_is_a_pdf_and_a_png_of_at_least_200_dpi_and_none_is_against_time(full_mnist, tmp_path):
    out = tmp_path / "figures"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a complete recipe: nothing to warn about
        written = make_figures(full_mnist, out)

    stems = ["mnist-full-accuracy-vs-epoch", "mnist-full-kept-subset"]
    assert [path.name for path in written] == [f"{stem}.{ext}" for stem in stems for ext in ("pdf", "png")]
    assert sorted(path.name for path in out.iterdir()) == sorted(path.name for path in written)  # no temp files
    assert not [path for path in written if "time" in path.name]
    for path in written:
        data = path.read_bytes()
        if path.suffix == ".png":
            with Image.open(path) as image:
                assert image.format == "PNG" and min(image.info["dpi"]) >= 200
                assert image.width >= 7 * 200  # 7 inches, a page's text width
        else:
            assert data.startswith(b"%PDF-") and data.rstrip().endswith(b"%%EOF")
            assert len(re.findall(rb"/Type /Page\b", data)) == 1
            assert b"/FontFile2" in data and b"/Type3" not in data  # TrueType fonts embedded, as journals require
            assert b"/CreationDate" not in data  # an unchanged figure rewrites to the same bytes


def test_accuracy_is_one_panel_per_family_sharing_y_with_unmarked_distinct_lines(one_pct):
    with pytest.warns(UserWarning, match="2 of 5 seeds"):
        fig = build_figures(one_pct)["mnist-1pct-accuracy-vs-epoch"]

    panels = {ax.get_title().replace("\n", " "): [line.get_label() for line in ax.get_lines()] for ax in fig.axes}  # wrapped to fit
    assert panels == {"SGD": ["sgd", "sgd-tuned"], "Adam": ["adam", "adam-tuned"], "DBA": ["dba-literal", "dba", "dba-tuned"],
                      "Ordered / small-loss": ["ordered-tuned", "small-loss-tuned"], "Online selection": ["online-tuned"],
                      "Importance sampling": ["importance-tuned"], "DBA-random": ["dba-random-tuned"]}
    assert list(panels) == ["SGD", "Adam", "DBA", *PEER_PANELS]
    first = fig.axes[0]
    assert all(first.get_shared_y_axes().joined(first, ax) for ax in fig.axes[1:])
    assert all(ax.get_xlabel() == "epoch" for ax in fig.axes)
    assert all(line.get_marker() in (None, "", "None") for line in data_lines(fig))
    style = {line.get_label(): line.get_linestyle() for ax in fig.axes for line in ax.get_lines()}
    assert style == {"sgd": "-", "adam": "-", "dba": "-", "dba-literal": ":",
                     **{name: "--" for name in ONE_PCT_ORDER if name.endswith("-tuned")}}
    colours = [line.get_color() for ax in fig.axes for line in ax.get_lines()]
    assert len(set(colours)) == len(colours)


def test_legends_are_below_the_panels_in_table_order_and_no_text_overlaps(one_pct):
    with pytest.warns(UserWarning, match="mnist-1pct: method"):
        figures = build_figures(one_pct)
    with pytest.warns(UserWarning, match="mnist-1pct: method"):
        assert table_order(one_pct, "mnist-1pct") == ONE_PCT_ORDER

    accuracy_legend = [text.get_text() for text in figures["mnist-1pct-accuracy-vs-epoch"].legends[0].get_texts()]
    assert accuracy_legend == ONE_PCT_ORDER
    assert [ax.get_title() for ax in figures["mnist-1pct-kept-subset"].axes] == ["dba-literal", "dba", "dba-tuned", "dba-random-tuned"]
    for name, fig in figures.items():
        assert_laid_out(name, fig)


def test_long_method_names_of_an_unknown_recipe_still_fit(one_pct, tmp_path, monkeypatch):
    monkeypatch.setenv("DBA_RECIPES_DIR", str(tmp_path / "no-recipes-here"))
    results = tmp_path / "renamed"
    for source in sorted(one_pct.glob("mnist-1pct/*/seed-*.json")):
        document = json.loads(source.read_text())
        document["recipe"], document["method_name"] = "my-recipe", f"{document['method_name']}-with-a-rather-long-name"
        target = results / "my-recipe" / document["method_name"] / source.name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(document))

    figures = build_figures(results)

    accuracy = figures["my-recipe-accuracy-vs-epoch"]
    assert [ax.get_title().replace("\n", " ") for ax in accuracy.axes] == ["SGD", "Adam", "DBA", *PEER_PANELS]  # whatever the names sort as
    assert accuracy.legends[0]._ncols < 7  # too wide for one row: wrapped into several
    for name, fig in figures.items():
        assert_laid_out(name, fig)


def assert_laid_out(name, fig):
    """One legend, below every panel; every text inside the figure; no two texts overlapping; no markers."""
    assert len(fig.legends) == 1 and not [ax for ax in fig.axes if ax.get_legend()], name
    assert all(line.get_marker() in (None, "", "None") for line in data_lines(fig)), name
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    legend = fig.legends[0].get_window_extent(renderer)
    for ax in fig.axes:  # below the panels, clear of their tick labels and axis labels
        assert legend.y1 <= ax.get_window_extent(renderer).y0, name
        assert not legend.overlaps(ax.get_tightbbox(renderer)), name
    texts = drawn_texts(fig, renderer)
    for text, box in texts:
        assert fig.bbox.x0 - 1 <= box.x0 and box.x1 <= fig.bbox.x1 + 1, (name, text)
        assert fig.bbox.y0 - 1 <= box.y0 and box.y1 <= fig.bbox.y1 + 1, (name, text)
    for (a, box_a), (b, box_b) in itertools.combinations(texts, 2):
        assert not box_a.overlaps(box_b), (name, a, b)


def test_kept_subset_layers_are_named_from_the_model(tiny, monkeypatch):
    monkeypatch.setenv("DBA_RECIPES_DIR", str(tiny["recipes"]))
    with pytest.warns(UserWarning, match="tiny-figures"):
        figures = build_figures(tiny["results"])

    kept = figures["tiny-figures-kept-subset"]
    assert [ax.get_title() for ax in kept.axes] == ["dba"]
    assert [text.get_text() for text in kept.legends[0].get_texts()] == [
        "hidden layer 1 (784→16)", "hidden layer 2 (16→8)", "output layer (8→10)", "batch size (10)"
    ]
    assert all(line.get_marker() in (None, "", "None") for line in data_lines(kept))
    assert [ax.get_title() for ax in figures["tiny-figures-accuracy-vs-epoch"].axes] == ["SGD", "DBA"]


def test_table_and_plot_both_warn_about_unfinished_methods(tiny, monkeypatch, tmp_path):
    monkeypatch.setenv("DBA_RECIPES_DIR", str(tiny["recipes"]))
    results = tiny["results"]
    fix = re.escape(f"Fix: `dba reproduce tiny-figures --results {results}` runs the missing ones.")
    expected = [
        rf"tiny-figures: method 'sgd' has 1 of 2 seeds finished in {re.escape(str(results))} \(shown with n = 1\)\. {fix}",
        rf"tiny-figures: method 'adam' has 0 of 2 seeds finished in .* \(left out\)\. {fix}",
        rf"tiny-figures: method 'dba' has 1 of 2 seeds finished in .* \(shown with n = 1\)\. {fix}",
    ]
    with pytest.warns(UserWarning) as from_table:
        markdown, _ = build_tables(results)
    with pytest.warns(UserWarning) as from_plot:
        make_figures(results, tmp_path / "figures")

    for caught in (from_table, from_plot):
        messages = [str(warning.message) for warning in caught]
        assert len(messages) == 3 and all(re.fullmatch(pattern, message) for pattern, message in zip(expected, messages))
    assert "| adam |" not in markdown  # what the warning is about


def test_smoke_results_are_held_to_the_smoke_seed_count(tiny, monkeypatch):
    monkeypatch.setenv("DBA_RECIPES_DIR", str(tiny["recipes"]))
    with pytest.warns(UserWarning) as caught:
        build_tables(tiny["smoke"])
    messages = [str(warning.message) for warning in caught]
    assert [message.split(" has ")[0] for message in messages] == ["tiny-figures: method 'adam'", "tiny-figures: method 'dba'"]
    assert all("0 of 1 seeds" in message and "`dba reproduce tiny-figures --smoke --results" in message for message in messages)


def test_no_warning_for_recipes_that_are_not_packaged(one_pct, tmp_path, monkeypatch):
    monkeypatch.setenv("DBA_RECIPES_DIR", str(tmp_path / "no-recipes-here"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        order = table_order(one_pct, "mnist-1pct")
        legend = build_figures(one_pct)["mnist-1pct-accuracy-vs-epoch"].legends[0]
    assert [text.get_text() for text in legend.get_texts()] == order  # unknown recipe: the order found, in both
