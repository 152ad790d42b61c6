from __future__ import annotations

import dataclasses

import pytest
from pydantic import ValidationError

from dba_cli.dba import DEFAULT_DIRECTION, METRICS, DBAConfig


def test_defaults_are_the_literal_reading():
    config = DBAConfig()
    assert (config.metric, config.direction, config.reduction) == ("variance", "minimize", "mean")
    assert set(DEFAULT_DIRECTION) == set(METRICS)


def test_it_stays_a_frozen_dataclass_the_engine_can_save():
    config = DBAConfig(metric="variance", min_size=32)  # as in the README
    assert dataclasses.asdict(config) == {
        "metric": "variance", "direction": "minimize", "min_size": 32, "max_removals": None, "reduction": "mean", "unbiased": False,
    }
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.min_size = 1
    assert DBAConfig(**dataclasses.asdict(config)) == config


@pytest.mark.parametrize(
    "kwargs,field,message",
    [
        ({"metric": "varience"}, "metric", "Input should be 'variance', 'mean_variance', 'snr', 'mean_norm' or 'cosine'"),
        ({"direction": "up"}, "direction", "Input should be 'minimize' or 'maximize'"),
        ({"reduction": "sum"}, "reduction", "Input should be 'mean' or 'sum_over_batch'"),
        ({"min_size": 0}, "min_size", "greater than or equal to 1"),
        ({"min_size": 0.5}, "min_size", "valid integer"),
        ({"min_size": True}, "min_size", "valid integer"),  # strict: a boolean is no size
        ({"max_removals": -1}, "max_removals", "greater than or equal to 0"),
        ({"unbiased": 1}, "unbiased", "valid boolean"),  # strict: 1 is not True
        ({"metric": "cosine", "unbiased": True}, "", "unbiased=True only applies to metrics variance, mean_variance, snr"),
        ({"metrc": "snr"}, "metrc", "Unexpected keyword argument"),
    ],
)
def test_bad_values_name_the_field(kwargs, field, message):
    with pytest.raises(ValueError, match=message) as caught:  # pydantic's ValidationError is a ValueError
        DBAConfig(**kwargs)
    assert isinstance(caught.value, ValidationError)
    (error,) = caught.value.errors()
    assert ".".join(map(str, error["loc"])) == field
