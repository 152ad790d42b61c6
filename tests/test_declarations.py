"""Every setting is declared once; what repeats it elsewhere is derived, and these tests say from where.

DBA's settings: the engine's `DBAConfig`. Activations: `models.ACTIVATIONS`.
Methods and optimizers: `config.METHODS` / `config.OPTIMIZERS`. The recipes'
specs, `RunConfig` and the `dba run` options (choices, defaults, help) follow.
"""

from __future__ import annotations

import dataclasses
from typing import Literal, get_args, get_origin

import pytest
import typer

from dba_cli import config, data, recipes
from dba_cli.cli import DBA_FIELDS, app
from dba_cli.config import METHODS, OPTIMIZERS, RunConfig, fields_of, run_config
from dba_cli.dba.config import DIRECTIONS, METRICS, REDUCTIONS, DBAConfig
from dba_cli.errors import ConfigError
from dba_cli.models import ACTIVATIONS, build_mlp


def literal_values(model: type, name: str) -> tuple:
    annotation = fields_of(model)[name].annotation
    assert get_origin(annotation) is Literal, annotation
    return get_args(annotation)


def run_options() -> dict:
    """The `dba run` options by parameter name, as Click sees them."""
    command = typer.main.get_command(app).commands["run"]
    return {param.name: param for param in command.params}


def test_dba_settings_are_the_engines_config_everywhere():
    assert config.DBASettings is DBAConfig
    assert RunConfig.model_fields["dba"].annotation == DBAConfig | None
    assert recipes.MethodSpec.model_fields["dba"].annotation == DBAConfig | None
    assert isinstance(run_config(method="dba").dba, DBAConfig)
    assert (literal_values(DBAConfig, "metric"), literal_values(DBAConfig, "direction"),
            literal_values(DBAConfig, "reduction")) == (METRICS, DIRECTIONS, REDUCTIONS)


def test_one_activation_list_for_models_configs_recipes_and_the_cli():
    assert literal_values(RunConfig, "activation") == ACTIVATIONS
    assert literal_values(recipes.ModelSpec, "activation") == ACTIVATIONS
    assert ", ".join(ACTIVATIONS) in run_options()["activation"].help
    for name in ACTIVATIONS:  # every name builds
        assert len(build_mlp((4,), name)) == 3


def test_one_list_of_methods_and_optimizers():
    assert literal_values(RunConfig, "method") == literal_values(recipes.MethodSpec, "method") == METHODS
    assert literal_values(RunConfig, "base") == literal_values(recipes.MethodSpec, "base") == OPTIMIZERS
    assert set(config.DEFAULT_LR) == set(OPTIMIZERS)


def test_run_option_defaults_are_run_config_defaults():
    options, defaults = run_options(), RunConfig()
    for name in ("data", "method", "epochs", "batch_size", "momentum", "weight_decay", "activation", "seed"):
        assert options[name].default == getattr(defaults, name), name
    assert options["hidden"].default == ",".join(map(str, defaults.hidden))


@pytest.mark.parametrize("name", list(DBA_FIELDS))
def test_dba_options_state_the_engines_choices_and_default(name):
    options = run_options()
    if name not in options:
        pytest.skip(f"{name} is a recipe setting without a command-line option")
    option, field = options[name], DBA_FIELDS[name]
    assert option.default is None  # not given: no DBA settings, so a baseline run accepts none
    default = dataclasses.asdict(DBAConfig())[name]
    assert option.help.endswith(f"(default: {'no limit' if default is None else default})"), option.help
    if get_origin(field.annotation) is Literal:
        assert ", ".join(get_args(field.annotation)) in option.help


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
    from dba_cli.data import mnist

    assert data.DATA_DIR_ENV == mnist.DATA_DIR_ENV == "DBA_DATA_DIR"
