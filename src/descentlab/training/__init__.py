"""descentlab.training — training practice: range test, early stopping, truncated BPTT, batches, noise, fit."""

from .range_test import DEFAULT_RULE, RULES, RangeRun, RangeTest, lr_range_test

__all__ = ["lr_range_test", "RangeTest", "RangeRun", "RULES", "DEFAULT_RULE"]
