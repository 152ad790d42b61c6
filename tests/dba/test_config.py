from __future__ import annotations

import pytest

from dba_cli.dba import DEFAULT_DIRECTION, METRICS, DBAConfig


def test_defaults_are_the_literal_reading():
    config = DBAConfig()
    assert (config.metric, config.direction, config.reduction) == ("variance", "minimize", "mean")
    assert set(DEFAULT_DIRECTION) == set(METRICS)


@pytest.mark.parametrize(
    "kwargs,field",
    [
        ({"metric": "varience"}, "metric must be one of variance, mean_variance"),
        ({"direction": "up"}, "direction must be one of minimize, maximize"),
        ({"reduction": "sum"}, "reduction must be one of mean, sum_over_batch"),
        ({"min_size": 0}, "min_size"),
        ({"min_size": 0.5}, "min_size"),
        ({"min_size": True}, "min_size"),
        ({"max_removals": -1}, "max_removals"),
        ({"unbiased": 1}, "unbiased"),
        ({"metric": "cosine", "unbiased": True}, "unbiased=True only applies"),
    ],
)
def test_bad_values_name_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        DBAConfig(**kwargs)
