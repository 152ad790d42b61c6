"""The edge rule (dba_cli/studies/edges.py) on constructed axes: the steps beyond, worked out by hand."""

from __future__ import annotations

from dba_cli.studies.edges import Extension, edge_extensions, extend_axes

SGD_AXES = {"lr": [0.03, 0.1, 0.3], "momentum": [0.9]}  # momentum: one value, no line


def sgd(lr: float, **more) -> dict:
    return {"method": "sgd", "lr": lr, "momentum": 0.9, **more}


def grid(axes: dict) -> list[dict]:
    return [sgd(lr) for lr in axes["lr"]]


def test_best_at_the_top_of_lr_steps_up_by_the_grid_ratio():
    found = edge_extensions(SGD_AXES, sgd(0.3), grid(SGD_AXES))
    # 0.3 / 0.1 = 3, so one step beyond 0.3 is 0.9
    assert found == [Extension("lr", "lr", 0.3, 0.9, sgd(0.9), (0.03, 0.1, 0.3))]
    assert found[0].text == "lr: best 0.3 at the top of [0.03, 0.1, 0.3]; tried 0.9"


def test_best_at_the_bottom_steps_down():
    axes = {"lr": [0.01, 0.03, 0.1]}
    [extension] = edge_extensions(axes, {"lr": 0.01}, [{"lr": lr} for lr in axes["lr"]])
    assert extension.value == 0.00333333  # 0.01 * (0.01 / 0.03), 6 significant digits
    assert extension.text == "lr: best 0.01 at the bottom of [0.01, 0.03, 0.1]; tried 0.00333333"
    [extension] = edge_extensions(SGD_AXES, sgd(0.03), grid(SGD_AXES))
    assert extension.value == 0.009  # 0.03 * (0.03 / 0.1)


def test_a_best_inside_the_line_extends_nothing():
    assert edge_extensions(SGD_AXES, sgd(0.1), grid(SGD_AXES)) == []


def test_a_mapping_axis_extends_only_the_best_line():
    axes = {"optimizer": [{"base": "sgd", "lr": 0.1}, {"base": "sgd", "lr": 0.3},
                          {"base": "adam", "lr": 0.001}, {"base": "adam", "lr": 0.003}]}
    best = {"method": "dba", "base": "adam", "lr": 0.003}
    tried = [{"method": "dba", **mapping} for mapping in axes["optimizer"]]
    # adam's line is [0.001, 0.003]: 0.003 * 3; sgd's 0.3 is no edge of it, and `base` is no number
    assert edge_extensions(axes, best, tried) == [
        Extension("optimizer", "lr", 0.003, 0.009, {"method": "dba", "base": "adam", "lr": 0.009}, (0.001, 0.003))
    ]
    [extension] = edge_extensions(axes, best, tried)
    assert extension.text == "optimizer.lr: best 0.003 at the top of [0.001, 0.003]; tried 0.009"
    extended = extend_axes(axes, extension)
    assert extended["optimizer"] == [*axes["optimizer"], {"base": "adam", "lr": 0.009}]
    assert len(axes["optimizer"]) == 4  # the caller's axes are left as they were


def test_a_line_is_the_mappings_equal_on_every_other_key():
    # the lr line through the best: the momentum-0.9 mappings, [0.1, 0.3]; the momentum-0 one is another line
    axes = {"step": [{"lr": 0.1, "momentum": 0.9}, {"lr": 0.3, "momentum": 0.9}, {"lr": 1.0, "momentum": 0.0}]}
    best = {"lr": 0.3, "momentum": 0.9}
    # momentum's line through the best is [0.9] alone (no other mapping has lr 0.3): no step; lr: 0.3 * 3
    assert [(e.key, e.value) for e in edge_extensions(axes, best, [])] == [("lr", 0.9)]


def test_weight_decay_zero_cannot_be_stepped_geometrically():
    axes = {"lr": [0.1], "weight_decay": [0.0, 1e-4, 1e-3]}
    assert edge_extensions(axes, {"lr": 0.1, "weight_decay": 0.0}, []) == []
    # at the top of [0, 0.01] the neighbour is 0: no ratio either
    assert edge_extensions({"weight_decay": [0.0, 0.01]}, {"weight_decay": 0.01}, []) == []
    # while 1e-3 at the top of [0, 1e-4, 1e-3] steps by 1e-3 / 1e-4 = 10
    [extension] = edge_extensions(axes, {"lr": 0.1, "weight_decay": 1e-3}, [])
    assert extension.value == 0.01


def test_a_second_round_on_the_extended_axes_steps_again():
    axes, best, tried, values = SGD_AXES, sgd(0.3), grid(SGD_AXES), []
    for _ in range(2):
        [extension] = edge_extensions(axes, best, tried)
        values.append(extension.value)
        axes = extend_axes(axes, extension)
        best, tried = extension.settings, [*tried, extension.settings]
    assert values == [0.9, 2.7]  # 0.3 -> 0.9 (ratio 3) -> 2.7 (0.9 / 0.3 = 3 on the extended line)
    assert axes["lr"] == [0.03, 0.1, 0.3, 0.9, 2.7]
    assert SGD_AXES["lr"] == [0.03, 0.1, 0.3]


def test_a_second_round_on_a_mapping_axis_steps_again():
    axes = {"optimizer": [{"base": "sgd", "lr": 0.1}, {"base": "sgd", "lr": 0.3}]}
    [first] = edge_extensions(axes, {"base": "sgd", "lr": 0.3}, [])
    [second] = edge_extensions(extend_axes(axes, first), first.settings, [])
    assert (first.value, second.value) == (0.9, 2.7)
    assert second.line == (0.1, 0.3, 0.9)


def test_never_a_setting_already_tried():
    tried = [*grid(SGD_AXES), sgd(0.9)]  # e.g. another axis already holds lr 0.9
    assert edge_extensions(SGD_AXES, sgd(0.3), tried) == []
    # the same setting proposed by two axes comes once
    axes = {"lr": [0.1, 0.3], "optimizer": [{"lr": 0.1}, {"lr": 0.3}]}
    assert [e.axis for e in edge_extensions(axes, {"lr": 0.3}, [])] == ["lr"]


def test_booleans_strings_and_one_value_lines_are_no_lines():
    axes = {"nesterov": [False, True], "method": ["sgd", "adam"], "momentum": [0.9, 0.9],
            "schedule": ["constant", "cosine"]}  # a name that is no setting, listing no mappings
    best = {"nesterov": True, "method": "sgd", "momentum": 0.9, "schedule": "cosine"}
    assert edge_extensions(axes, best, []) == []


def test_an_integer_line_steps_to_an_integer_and_order_follows_the_axes():
    axes = {"batch_size": [50, 25], "lr": [0.1, 0.3], "optimizer": [{"momentum": 0.5, "weight_decay": 1e-4},
                                                                      {"momentum": 0.9, "weight_decay": 1e-4},
                                                                      {"momentum": 0.9, "weight_decay": 1e-3}]}
    best = {"batch_size": 25, "lr": 0.3, "momentum": 0.9, "weight_decay": 1e-3}
    found = edge_extensions(axes, best, [])
    # 25 * (25 / 50) = 12.5 -> 12; 0.3 * 3; momentum's line at weight decay 1e-3 is [0.9] alone; 1e-3 * 10
    assert [(e.axis, e.key, e.value) for e in found] == [
        ("batch_size", "batch_size", 12), ("lr", "lr", 0.9), ("optimizer", "weight_decay", 0.01)]
    assert isinstance(found[0].value, int)
    # [1, 2] at the bottom: 0.5 rounds to 0, no batch of 0
    assert edge_extensions({"batch_size": [1, 2]}, {"batch_size": 1}, []) == []
