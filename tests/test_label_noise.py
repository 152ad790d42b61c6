"""Label noise and class imbalance on the real MNIST labels: the training subset only, drawn from the seed alone, recorded."""

import math
import statistics
import warnings

import pytest
import torch

from dba_cli.data.subsets import draw_subset, labels_hash, noisy_labels
from dba_cli.recipes.loading import load_recipe
from dba_cli.settings.run import run_config
from dba_cli.settings.subsets import class_counts, parse_subset
from dba_cli.studies.protocol import protocol_runs, protocol_variants
from dba_cli.training.train import draw_indices, draw_split, prepare_data, train

NOISY = {"mnist-1pct-sym20": ("symmetric", 0.2), "mnist-1pct-sym50": ("symmetric", 0.5), "mnist-1pct-pair45": ("pair", 0.45)}


@pytest.mark.parametrize("recipe_name", list(NOISY))
def test_each_recipes_realised_noise_rate_is_within_sampling_error_for_every_seed(mnist, recipe_name):
    recipe = load_recipe(recipe_name)
    kind, rate = NOISY[recipe_name]
    seeds = [*range(recipe.seeds), *range(100, 105), *range(1000, 1020)]  # untuned, tuning and reported seeds
    for seed in seeds:
        config = recipe.config_for(recipe.methods["sgd"], seed)
        assert (config.label_noise, config.noise_rate) == (kind, rate)
        subset, _, labels = draw_split(mnist, config)
        realised = float((labels[subset] != mnist.train_labels[subset]).double().mean())
        bound = 4 * math.sqrt(rate * (1 - rate) / len(subset))  # 4 standard errors of a binomial rate over 600 labels
        assert abs(realised - rate) < bound, (seed, realised)
        outside = torch.ones(len(labels), dtype=torch.bool)
        outside[subset] = False
        assert torch.equal(labels[outside], mnist.train_labels[outside])  # only the subset's labels change


def test_the_test_labels_are_untouched_and_the_run_records_what_it_trained_on(mnist):
    config = run_config(data="1pct", label_noise="symmetric", noise_rate=0.5, epochs=1, seed=4)
    data = prepare_data(mnist, config, torch.device("cpu"))
    assert torch.equal(data.y_test, mnist.test_labels)
    result = train(config, mnist, torch.device("cpu"))
    assert result.train_labels_hash == labels_hash(data.y_train)
    assert result.label_noise_realised == pytest.approx(float((data.y_train != mnist.train_labels[data.indices]).double().mean()))
    assert result.class_counts == [60] * 10 and result.final_class_accuracy is None
    document = result.to_dict()
    clean = train(run_config(data="1pct", epochs=1, seed=4), mnist, torch.device("cpu")).to_dict()
    assert "train_labels_hash" in document and "train_labels_hash" not in clean  # clean runs' files stay as they were


def test_two_methods_with_one_seed_train_on_identical_noisy_labels_folds_included(mnist):
    recipe = load_recipe("mnist-1pct-sym50")
    sgd = recipe.config_for(recipe.methods["sgd"], 1003)
    dba = recipe.config_for(recipe.methods["dba"], 1003)
    first, second = prepare_data(mnist, sgd, torch.device("cpu")), prepare_data(mnist, dba, torch.device("cpu"))
    assert torch.equal(first.indices, second.indices) and torch.equal(first.y_train, second.y_train)
    assert not torch.equal(first.y_train, mnist.train_labels[first.indices])  # they are noisy
    # a tuning run's fold is cut from the same noisy subset: its training and validation labels are those labels
    fold = prepare_data(mnist, sgd.replace(folds=5, fold=2), torch.device("cpu"))
    _, _, whole = draw_split(mnist, sgd)
    assert torch.equal(fold.y_train, whole[fold.indices]) and torch.equal(fold.y_val, whole[fold.val_indices])
    assert len(fold.indices) + len(fold.val_indices) == 600
    other_seed = prepare_data(mnist, recipe.config_for(recipe.methods["sgd"], 1004), torch.device("cpu"))
    assert labels_hash(other_seed.y_train) != labels_hash(first.y_train)


def test_pair_flip_noise_only_moves_a_class_to_the_next():
    labels = torch.arange(10).repeat(500)
    noisy = noisy_labels(labels, "pair", 0.45, seed=0)
    moved = noisy != labels
    assert torch.equal(noisy[moved], (labels[moved] + 1) % 10)
    assert abs(float(moved.double().mean()) - 0.45) < 4 * math.sqrt(0.45 * 0.55 / 5000)
    symmetric = noisy_labels(labels, "symmetric", 0.5, seed=0)
    changed = symmetric != labels
    assert changed.any() and not torch.equal(symmetric[changed], (labels[changed] + 1) % 10)  # any other class
    counts = torch.bincount((symmetric[changed] - labels[changed]) % 10, minlength=10)
    assert counts[0] == 0 and counts[1:].min() > 0.7 * counts[1:].max()  # the 9 other classes about equally often
    lower = noisy_labels(labels, "symmetric", 0.2, seed=0) != labels
    assert not (lower & ~changed).any()  # with one seed, a lower rate flips a subset of what a higher one flips


def test_the_long_tailed_subset_has_the_declared_counts(mnist):
    recipe = load_recipe("mnist-1pct-imb10")
    expected = [round(60 * 10 ** (-c / 9)) for c in range(10)]
    assert list(class_counts(60, 10.0)) == expected == [60, 46, 36, 28, 22, 17, 13, 10, 8, 6]
    for seed in (0, 1, 1000):
        config = recipe.config_for(recipe.methods["sgd"], seed)
        indices, _ = draw_indices(mnist, config)
        assert torch.bincount(mnist.train_labels[indices], minlength=10).tolist() == expected
        assert config.subset_size == len(indices) == 246
        balanced = draw_subset(mnist.train_labels, parse_subset("1pct"), seed)
        assert set(indices.tolist()) <= set(balanced.tolist())  # each class's first images of the same seeded order
    result = train(recipe.config_for(recipe.methods["sgd"], 0).replace(epochs=1), mnist, torch.device("cpu"))
    assert result.class_counts == expected and result.label_noise_realised == 0.0
    assert len(result.final_class_accuracy) == 10
    overall = sum(a * int((mnist.test_labels == c).sum()) for c, a in enumerate(result.final_class_accuracy)) / 10000
    assert overall == pytest.approx(result.final_test_accuracy, abs=1e-9)  # the per-class accuracies add up


@pytest.mark.parametrize("values, message", [
    ({"noise_rate": 0.2}, "noise_rate: 0.2 is set but label_noise is none"),
    ({"label_noise": "pair"}, "label_noise: pair needs a noise_rate above 0"),
    ({"data": "full", "imbalance": 10.0}, "imbalance: a long-tailed subset is drawn per class, but data is full"),
    ({"label_noise": "symmetric", "noise_rate": 0.2, "resample": "every_epoch"}, "label_noise: the noise is drawn once"),
])
def test_inconsistent_noise_settings_are_one_line_naming_the_field(values, message):
    with pytest.raises(Exception) as caught:
        run_config(**values)
    assert message in str(caught.value)


# --- what the reports make of it: the rarest classes' table and the noise figure, from result files ---

def noisy_result(results_dir, recipe, method_name, role, seed, accuracy, data_settings, class_accuracy=None, counts=None):
    from dba_cli.results.format import encode_result
    from tests.synthetic_results import complete

    method = {"dba-tuned": "dba", "small-loss-tuned": "ordered"}.get(method_name, method_name.removesuffix("-tuned"))
    history = [{"epoch": 1, "train_loss": 1.0, "test_loss": 1.0, "test_accuracy": accuracy, "train_seconds": 0.1,
                "eval_seconds": 0.1, "kept": {"0": {"mean": 30.0, "min": 25, "max": 40}} if method == "dba" else None}]
    counts = counts or [10] * 10
    document = complete({
        "recipe": recipe, "method_name": method_name, "role": role, "seed": seed,
        "config": {"method": method, "batch_size": 50, "epochs": 1, "data": "1pct", **data_settings},
        "history": history, "final_test_accuracy": accuracy, "subset_size": sum(counts),
        "train_labels_hash": "0123456789abcdef", "class_counts": counts,
        "label_noise_realised": data_settings.get("noise_rate", 0.0),
        **({"final_class_accuracy": class_accuracy} if class_accuracy else {}),
    })
    path = results_dir / recipe / method_name / f"seed-{seed}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(encode_result(document), encoding="utf-8")


def test_the_imbalance_table_reports_the_three_rarest_classes_accuracy(tmp_path):
    from dba_cli.reports.labels import rarest_classes
    from dba_cli.reports.paper_tables import build_tables

    counts = [60, 46, 36, 28, 22, 17, 13, 10, 8, 6]
    assert rarest_classes(counts) == [7, 8, 9] and rarest_classes([5, 1, 1, 1, 1, 9, 9, 9, 9, 9]) == [2, 3, 4]
    per_class = {0: [99, 98, 90, 90, 88, 70, 60, 40, 20, 10], 1: [99, 98, 92, 91, 89, 72, 64, 46, 26, 14]}
    for seed, accuracy in per_class.items():
        overall = sum(accuracy) / 10
        noisy_result(tmp_path, "mnist-1pct-imb10", "sgd", "baseline", seed, overall, {"imbalance": 10.0}, accuracy, counts)
    markdown, _ = build_tables(tmp_path)
    rare = [statistics.fmean(a[7:]) for a in per_class.values()]  # classes 7, 8, 9: 23.33 and 28.67
    expected = f"| sgd | 2 | {statistics.fmean(rare):.2f} ± {statistics.stdev(rare):.2f} |"
    assert expected in markdown, markdown
    assert "a long-tailed subset, imbalance ratio 10 (training images per class 60, 46, 36, 28, 22, 17, 13, 10, 8, 6" in markdown


def test_the_noise_figure_draws_each_tuned_family_against_the_rate_with_its_interval(tmp_path):
    from scipy import stats

    from dba_cli.reports.figures import build_figures

    accuracy = {  # recipe -> method -> per-seed accuracies
        ("mnist-1pct", 0.0): {"dba-tuned": [90.0, 91.0, 92.0], "sgd-tuned": [91.0, 92.0, 93.0]},
        ("mnist-1pct-sym20", 0.2): {"dba-tuned": [85.0, 86.0], "sgd-tuned": [84.0, 88.0]},
        ("mnist-1pct-sym50", 0.5): {"dba-tuned": [70.0, 74.0, 72.0], "sgd-tuned": [60.0, 61.0, 65.0]},
    }
    for (recipe, rate), methods in accuracy.items():
        settings = {"label_noise": "symmetric", "noise_rate": rate} if rate else {}
        for method_name, values in methods.items():
            role = "tuned" if method_name == "dba-tuned" else "tuned-baseline"
            for seed, value in enumerate(values, start=1000):
                noisy_result(tmp_path, recipe, method_name, role, seed, value, settings)
    noisy_result(tmp_path, "mnist-1pct-pair45", "dba-tuned", "tuned", 1000, 50.0, {"label_noise": "pair", "noise_rate": 0.45})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the packaged recipes' other methods have no runs here
        figures = build_figures(tmp_path)
    assert "mnist-1pct-noise" in figures and not any("pair45-noise" in stem for stem in figures)
    ax = figures["mnist-1pct-noise"].axes[0]
    for name in ("dba-tuned", "sgd-tuned"):
        line = next(c for c in ax.containers if c.get_label() == name.removesuffix("-tuned"))
        xs, ys = line.lines[0].get_data()
        assert list(xs) == [0.0, 20.0, 50.0]  # pair-flip noise is another axis: not on this one
        series = [accuracy[key][name] for key in accuracy]
        assert list(ys) == pytest.approx([statistics.fmean(v) for v in series])
        bars = line.lines[2][0].get_segments()  # each rate's interval: mean ± t(0.975, n-1) sd / sqrt(n)
        for segment, values in zip(bars, series):
            half = stats.t.ppf(0.975, len(values) - 1) * statistics.stdev(values) / math.sqrt(len(values))
            assert segment[1][1] - segment[0][1] == pytest.approx(2 * half)


def test_a_held_out_split_of_the_full_set_keeps_its_clean_labels(mnist):
    config = run_config(data="full", validation_size=5000, label_noise="symmetric", noise_rate=0.2, seed=2)
    indices, validation, labels = draw_split(mnist, config)
    assert torch.equal(labels[validation], mnist.train_labels[validation])  # outside the training subset: clean
    realised = float((labels[indices] != mnist.train_labels[indices]).double().mean())
    assert abs(realised - 0.2) < 4 * math.sqrt(0.2 * 0.8 / len(indices))


@pytest.mark.parametrize("name, variants", [
    ("mnist-1pct", ["every-epoch", "uniform", "width-128", "width-1024"]),
    ("mnist-1pct-sym50", ["uniform", "width-128", "width-1024"]),  # noise drawn once: no fresh subset per epoch
    ("mnist-1pct-pair45", ["uniform", "width-128", "width-1024"]),
    ("mnist-1pct-imb10", ["width-128", "width-1024"]),  # the long tail is drawn once, stratified
])
def test_protocol_plans_only_the_variants_a_recipes_data_allow(name, variants):
    recipe = load_recipe(name)
    assert [variant.name for variant in protocol_variants(recipe)] == variants
    runs = protocol_runs(recipe)
    assert len(runs) == len(variants) * len(recipe.protocol.methods) * 3  # 3 design seeds
    assert {run.key.split("/")[3] for run in runs} == set(variants)  # protocol/RECIPE/METHOD/VARIANT/seed-N.json
