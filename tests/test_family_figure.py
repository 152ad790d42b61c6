"""The `<recipe>-families` figure: every tuned family's final test accuracy side by side, from synthetic result files.

Each tuned method is one slot (tuned DBA, then the tuned baselines, then the tuned
peers); its seeds are points, its mean a bar and the 95% t interval of the mean a
vertical line. Only documents made under the declaration in force are drawn.
"""

import itertools
import math
import statistics
import warnings

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from scipy import stats

from dba_cli.recipes.protocol import declaration
from dba_cli.reports.figures import build_figures, panel_title
from dba_cli.results.format import encode_result
from tests.recipe_copies import with_tuned_rows
from tests.synthetic_results import complete

RECIPE = "synthetic-families"  # not a packaged recipe: methods in the order found (by path), nothing warned about
STALE = "0123456789abcdef"  # another declaration's digest
KEPT = {"dba", "dba-random"}  # methods whose result files record kept subset sizes
ROLES = {"sgd": "baseline", "sgd-tuned": "tuned-baseline", "adam-tuned": "tuned-baseline", "dba-tuned": "tuned",
         "dba-random-tuned": "tuned-peer", "ordered-tuned": "tuned-peer", "importance-tuned": "tuned-peer"}
# Final test accuracy (%) per seed, as `dba reproduce` would record them; uneven seed counts on purpose.
ACCURACY = {
    "sgd": {0: 86.1, 1: 86.9},
    "sgd-tuned": {20: 88.4, 21: 88.9, 22: 87.7, 23: 88.2},
    "adam-tuned": {20: 87.9, 21: 88.6, 22: 88.1},
    "dba-tuned": {20: 89.3, 21: 90.1, 22: 88.8, 23: 89.7, 24: 89.0},
    "dba-random-tuned": {20: 87.2, 21: 86.4},
    "ordered-tuned": {20: 88.0, 21: 87.1, 22: 88.5, 23: 86.9, 24: 87.6, 25: 88.3},
    "importance-tuned": {20: 87.5},  # one seed: no interval
}
ORDER = ["dba-tuned", "adam-tuned", "sgd-tuned", "dba-random-tuned", "importance-tuned", "ordered-tuned"]


def write_result(results_dir, recipe, method_name, seed, accuracy, protocol=None, epochs=2):
    """A finished result file as `dba reproduce` writes it; `protocol` overrides the digest ("missing": no field)."""
    method = method_name.removesuffix("-tuned")
    kept = {"0": {"mean": 30.0, "min": 25, "max": 40}} if method in KEPT else None
    history = [
        {"epoch": epoch, "train_loss": 1.0 / epoch, "test_loss": 1.1 / epoch,
         "test_accuracy": accuracy - (epochs - epoch), "train_seconds": 0.4, "eval_seconds": 0.1, "kept": kept}
        for epoch in range(1, epochs + 1)
    ]
    document = complete({
        "recipe": recipe, "method_name": method_name, "role": ROLES[method_name], "seed": seed,
        "config": {"method": method, "batch_size": 50, "epochs": epochs},
        "history": history, "final_test_accuracy": accuracy,
    })
    if protocol == "missing":
        del document["protocol"]
    elif protocol is not None:
        document["protocol"] = protocol
    path = results_dir / recipe / method_name / f"seed-{seed}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(encode_result(document), encoding="utf-8")
    return path


def write_all(results_dir, recipe, accuracy):
    for method_name, seeds in accuracy.items():
        for seed, value in seeds.items():
            write_result(results_dir, recipe, method_name, seed, value)


def artist(ax, kind, gid):
    found = [a for a in getattr(ax, kind) if a.get_gid() == gid]
    assert len(found) == 1, (kind, gid)
    return found[0]


def t_half_width(values):
    return stats.t.ppf(0.975, len(values) - 1) * statistics.stdev(values) / math.sqrt(len(values))


@pytest.fixture
def results(tmp_path):
    write_all(tmp_path, RECIPE, ACCURACY)
    # Stale: made under another declaration, or before there was one; far off, so any leak would show in the means.
    write_result(tmp_path, RECIPE, "dba-tuned", 90, 10.0, protocol=STALE)
    write_result(tmp_path, RECIPE, "sgd-tuned", 91, 99.0, protocol="missing")
    write_result(tmp_path, RECIPE, "adam-tuned", 92, 20.0, protocol=STALE)
    return tmp_path


def test_one_slot_per_tuned_method_with_each_seed_its_mean_and_t_interval(results):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # not a packaged recipe, no damaged file: nothing to warn about
        figures = build_figures(results)

    assert sorted(figures) == [f"{RECIPE}-accuracy-vs-epoch", f"{RECIPE}-families", f"{RECIPE}-kept-subset"]
    fig = figures[f"{RECIPE}-families"]
    (ax,) = fig.axes
    labels = [text.get_text() for text in ax.get_xticklabels()]
    assert labels == [f"{name.removesuffix('-tuned')}\nn={len(ACCURACY[name])}" for name in ORDER]
    assert list(ax.get_xticks()) == list(range(len(ORDER)))
    assert all(text.get_rotation() == 0 for text in ax.get_xticklabels())  # upright, wrapped to a slot where long
    assert ax.get_ylabel() == "test accuracy, %"
    title = f"{RECIPE}: tuned families, test accuracy per seed (mean, 95% t interval)"
    assert fig._suptitle.get_text() == panel_title(title, 1)  # wrapped to the figure's width
    assert not [a for a in ax.get_children() if a.get_gid() and a.get_gid().endswith(":sgd")]  # the untuned baseline

    for slot, name in enumerate(ORDER):
        values = list(ACCURACY[name].values())
        points = artist(ax, "collections", f"seeds:{name}").get_offsets()
        assert sorted(points[:, 1]) == pytest.approx(sorted(values))  # every governed seed, no stale one
        assert np.all(np.abs(points[:, 0] - slot) <= 0.2)
        assert len(set(np.round(points[:, 0], 6))) == len(values)  # jittered apart
        bar = artist(ax, "lines", f"mean:{name}")
        assert bar.get_ydata() == pytest.approx([statistics.mean(values)] * 2)
        assert np.mean(bar.get_xdata()) == pytest.approx(slot)
        intervals = [a for a in ax.collections if a.get_gid() == f"interval:{name}"]
        if len(values) == 1:
            assert not intervals
            continue
        (segment,) = intervals[0].get_segments()
        low, high = sorted(segment[:, 1])
        assert (low + high) / 2 == pytest.approx(statistics.mean(values))
        assert (high - low) / 2 == pytest.approx(t_half_width(values))
        assert segment[:, 0] == pytest.approx([slot, slot])

    dba_line = artist(ax, "lines", "dba-mean")
    assert dba_line.get_ydata() == pytest.approx([statistics.mean(ACCURACY["dba-tuned"].values())] * 2)
    assert dba_line.get_linestyle() == "--"
    colours = {name: artist(ax, "lines", f"mean:{name}").get_color() for name in ORDER}
    assert all(colours["dba-tuned"] != colour for name, colour in colours.items() if name != "dba-tuned")
    assert_readable(fig)

    # Regenerating gives the same jitter: derived from the seed, not a random state.
    again = build_figures(results)[f"{RECIPE}-families"].axes[0]
    for name in ORDER:
        assert np.array_equal(artist(again, "collections", f"seeds:{name}").get_offsets(),
                              artist(ax, "collections", f"seeds:{name}").get_offsets())


def assert_readable(fig):
    """One legend, below the panel; tick labels, title and legend inside the figure and clear of one another."""
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    (ax,), (legend,) = fig.axes, fig.legends
    assert legend.get_window_extent(renderer).y1 <= ax.get_window_extent(renderer).y0
    texts = [fig._suptitle, ax.yaxis.label, *ax.get_xticklabels(), *legend.get_texts()]
    boxes = [(text.get_text(), text.get_window_extent(renderer)) for text in texts if text.get_text()]
    for text, box in boxes:
        assert fig.bbox.x0 - 1 <= box.x0 and box.x1 <= fig.bbox.x1 + 1, text
        assert fig.bbox.y0 - 1 <= box.y0 and box.y1 <= fig.bbox.y1 + 1, text
    for (a, box_a), (b, box_b) in itertools.combinations(boxes, 2):
        assert not box_a.overlaps(box_b), (a, b)


def test_slots_follow_the_packaged_recipes_order_within_each_role(tmp_path, monkeypatch):
    # mnist-1pct declares sgd-tuned before adam-tuned here: not the order their folders sort in.
    with_tuned_rows(tmp_path / "in-force", monkeypatch, "mnist-1pct", """\
  sgd-tuned: {role: tuned-baseline, method: sgd, lr: 0.1}
  adam-tuned: {role: tuned-baseline, method: adam, lr: 0.001}
  dba-tuned: {role: tuned, method: dba, base: sgd, lr: 0.1, dba: {metric: variance, direction: minimize, min_size: 12}}
""")
    write_all(tmp_path, "mnist-1pct", {name: ACCURACY[name] for name in ("sgd", "adam-tuned", "dba-tuned", "sgd-tuned")})
    with pytest.warns(UserWarning, match="mnist-1pct: method"):  # the recipe's other methods have not finished
        fig = build_figures(tmp_path)["mnist-1pct-families"]

    (ax,) = fig.axes
    assert [text.get_text() for text in ax.get_xticklabels()] == ["dba\nn=5", "sgd\nn=4", "adam\nn=3"]
    assert all(text.get_rotation() == 0 for text in ax.get_xticklabels())


def test_no_figure_when_governed_documents_leave_fewer_than_two_tuned_methods(tmp_path):
    # Two tuned methods on disk, but sgd-tuned's files are all stale: one tuned method left.
    write_all(tmp_path, "one-left", {"sgd": ACCURACY["sgd"], "dba-tuned": ACCURACY["dba-tuned"]})
    for seed, value in ACCURACY["sgd-tuned"].items():
        write_result(tmp_path, "one-left", "sgd-tuned", seed, value, protocol=STALE if seed % 2 else "missing")
    # Only untuned methods, however many.
    write_all(tmp_path, "untuned", {"sgd": ACCURACY["sgd"]})
    write_result(tmp_path, "untuned", "sgd", 5, 85.0)

    figures = build_figures(tmp_path)

    assert "one-left-accuracy-vs-epoch" in figures and "untuned-accuracy-vs-epoch" in figures
    assert not [stem for stem in figures if stem.endswith("-families")]
    assert declaration().digest != STALE
