"""Dynamic Batch Adaptation (arXiv:2208.00815): per layer, train on the subset of
the mini-batch whose per-sample gradients best improve a metric such as their
variance. The specification is docs/dba-method.md; `engine.DBA.step` is the
whole step, read top to bottom.
"""

from .config import DEFAULT_DIRECTION, METRICS, DBAConfig
from .engine import DBA, StepResult

__all__ = ["DBA", "DBAConfig", "DEFAULT_DIRECTION", "METRICS", "StepResult"]
