"""Every setting is declared once; what repeats it elsewhere is derived, and these tests say from where.

A run's settings: `RunConfig` (settings/run.py). DBA's settings: the engine's
`DBAConfig`. A recipe's `model:`, `training:` and `methods:` sections hold
RunConfig's own fields and are validated as RunConfigs; `dba run`'s options are
generated from the same fields; the grid commands share one declaration of
their options.
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Literal, get_args, get_origin

import pytest
import typer

from dba_cli.cli import app
from dba_cli.cli.options import GRID_ANNOTATIONS, option_name
from dba_cli.dba.config import DIRECTIONS, METRICS, REDUCTIONS, DBAConfig
from dba_cli.errors import ConfigError
from dba_cli.models import build_mlp
from dba_cli.recipes.recipe import METHOD_FIELDS, MODEL_FIELDS, TRAINING_FIELDS, Method, ModelSection, TrainingSection
from dba_cli.settings import environment
from dba_cli.settings.methods import SETTINGS_FIELDS, ImportanceConfig, OnlineConfig, OrderedConfig
from dba_cli.settings.run import ACTIVATIONS, DEFAULT_LR, METHODS, OPTIMIZERS, RunConfig, fields_in, run_config
from dba_cli.settings.validation import fields_of


def literal_values(model: type, name: str) -> tuple:
    annotation = fields_of(model)[name].annotation
    assert get_origin(annotation) is Literal, annotation
    return get_args(annotation)


def command_options(name: str) -> dict:
    """A command's options by parameter name, as Click sees them."""
    command = typer.main.get_command(app).commands[name]
    return {param.name: param for param in command.params}


def test_dba_settings_are_the_engines_config():
    assert RunConfig.model_fields["dba"].annotation == DBAConfig | None
    assert isinstance(run_config(method="dba").dba, DBAConfig)
    assert (literal_values(DBAConfig, "metric"), literal_values(DBAConfig, "direction"),
            literal_values(DBAConfig, "reduction")) == (METRICS, DIRECTIONS, REDUCTIONS)


def test_recipe_sections_are_run_config_fields_not_a_second_declaration():
    assert MODEL_FIELDS == tuple(fields_in("model")) and TRAINING_FIELDS == tuple(fields_in("training"))
    assert set(METHOD_FIELDS) == set(RunConfig.model_fields) - {"seed"}
    assert set(ModelSection.model_fields) == set(MODEL_FIELDS)
    assert set(TrainingSection.model_fields) == set(TRAINING_FIELDS)
    assert set(Method.model_fields) == set(METHOD_FIELDS) | {"role", "seeds"}
    # The sections declare no types, bounds or defaults of their own: RunConfig's apply.
    assert all(Method.model_fields[name].default is None for name in METHOD_FIELDS)


def test_one_activation_list_for_models_configs_and_the_cli():
    assert literal_values(RunConfig, "activation") == tuple(ACTIVATIONS)
    assert ", ".join(ACTIVATIONS) in command_options("run")["activation"].help
    for name in ACTIVATIONS:  # every name builds
        assert len(build_mlp((4,), name)) == 3


def test_one_list_of_methods_and_optimizers():
    assert literal_values(RunConfig, "method") == METHODS
    assert literal_values(RunConfig, "base") == OPTIMIZERS
    assert set(DEFAULT_LR) == set(OPTIMIZERS)


def test_every_run_setting_is_a_dba_run_option_with_its_default_and_help():
    options = command_options("run")
    for name, field in RunConfig.model_fields.items():
        if name in SETTINGS_FIELDS:  # a method's own settings: an option each (below, and tests/test_peers.py)
            continue
        assert name in options and option_name(name) in options[name].opts, name
        assert options[name].help.startswith(field.description), name
        assert options[name].default is None  # not given: only what the user types reaches the config
        if name not in ("lr", "base"):
            default = field.get_default(call_default_factory=True)
            shown = ",".join(map(str, default)) if isinstance(default, list) else default
            assert options[name].help.endswith(f"(default: {shown})"), name


@pytest.mark.parametrize("name", [field.name for field in dataclasses.fields(DBAConfig)])
def test_every_dba_setting_is_an_option_stating_the_engines_choices_and_default(name):
    option, field = command_options("run")[name], fields_of(DBAConfig)[name]
    assert option.default is None  # not given: no DBA settings, so a baseline run accepts none
    default = dataclasses.asdict(DBAConfig())[name]
    assert option.help.endswith(f"(default: {'no limit' if default is None else default})"), option.help
    if get_origin(field.annotation) is Literal:
        assert ", ".join(get_args(field.annotation)) in option.help


def test_the_grid_options_are_declared_once_and_every_grid_command_has_them():
    for command in ("reproduce", "tune", "ablate", "protocol", "converge"):
        options = command_options(command)
        assert set(GRID_ANNOTATIONS) <= set(options), command
    import dba_cli.cli.grids as grids

    source = inspect.getsource(grids)
    for name in GRID_ANNOTATIONS:  # no grid command lists a shared option itself
        assert f"{name}:" not in source.replace("options: GridOptions", ""), name


def test_a_bad_option_value_names_the_option():
    from dba_cli.cli.options import option_path, run_values
    from dba_cli.settings.validation import make_config

    with pytest.raises(ConfigError, match=r"^--hidden\.0: Input should be greater than or equal to 1"):
        make_config(RunConfig, run_values({"hidden": "0"}), where=option_path)
    with pytest.raises(ConfigError, match=r"^--min-size: Input should be greater than or equal to 1"):
        make_config(RunConfig, run_values({"method": "dba", "min_size": 0}), where=option_path)


def test_a_dba_typo_is_named_with_the_nearest_key():
    with pytest.raises(ConfigError, match=r"^dba\.metrc: unknown key; did you mean 'metric'\? Known keys here: metric, direction"):
        run_config(method="dba", dba={"metrc": "snr"})
    with pytest.raises(ConfigError, match=r"^dba\.min_size: Input should be greater than or equal to 1"):
        run_config(method="dba", dba={"min_size": 0})
    with pytest.raises(ConfigError, match=r"^dba: unbiased=True only applies"):
        run_config(method="dba", dba={"metric": "cosine", "unbiased": True})


def test_saved_dba_settings_keep_their_shape():
    saved = run_config(method="dba", dba={"metric": "snr", "direction": "maximize", "min_size": 3}).to_dict()["dba"]
    assert saved == {"metric": "snr", "direction": "maximize", "min_size": 3, "max_removals": None, "reduction": "mean", "unbiased": False}
    assert run_config(method="dba", dba=saved).dba == DBAConfig(**saved)


def test_the_data_folder_variable_is_one_name():
    from dba_cli.data import loading

    assert loading.DATA_DIR_ENV == environment.DATA_DIR == "DBA_DATA_DIR"
    assert command_options("run")["data_dir"].envvar == environment.DATA_DIR


@pytest.mark.parametrize("settings", [OrderedConfig, OnlineConfig, ImportanceConfig])
def test_every_peer_setting_is_an_option_stating_its_default_and_nests_under_its_method(settings):
    options = command_options("run")
    for name, field in fields_of(settings).items():
        default = dataclasses.asdict(settings())[name]
        assert options[name].default is None
        assert options[name].help.endswith(f"(default: {'none' if default is None else default})"), options[name].help
        if get_origin(field.annotation) is Literal:
            assert ", ".join(get_args(field.annotation)) in options[name].help
    from dba_cli.cli.options import run_values

    owner = {OrderedConfig: "ordered", OnlineConfig: "online", ImportanceConfig: "importance"}[settings]
    first = next(iter(fields_of(settings)))
    value = dataclasses.asdict(settings())[first]
    assert run_values({"method": owner, first: value}) == {"method": owner, owner: {first: value}}
