"""Fitted rates: how a measured error scales in d, N, T or the sample size (`approx` verdicts)."""

from __future__ import annotations

import numpy as np


def loglog_slope(x, y) -> float:
    """Least-squares slope of log|y| against log x: the exponent a in |y| ~ C x^a."""
    return float(np.polyfit(np.log(np.asarray(x, dtype=float)), np.log(np.abs(np.asarray(y, dtype=float))), 1)[0])
