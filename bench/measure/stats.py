"""Order statistics for timing samples: percentiles, IQR and a distribution-free CI of the median."""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np


def percentile(samples: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100), linear interpolation between order statistics."""
    return float(np.percentile(np.asarray(samples, dtype=np.float64), q))


def median_ci(samples: Sequence[float], confidence: float = 0.95) -> tuple[float, float]:
    """Distribution-free CI of the median from order statistics (binomial method).

    With ``n`` sorted samples, ``(x_(l), x_(n+1-l))`` covers the true median with probability
    ``1 - 2 * P(Binom(n, 1/2) < l)``; ``l`` is the largest index keeping that >= ``confidence``.
    No resampling, no normality assumption (latency is skewed). For n < 6 no pair reaches 95 %: the
    sample range is returned (its coverage is ``1 - 2^(1-n)``).
    """
    xs = sorted(float(x) for x in samples)
    n = len(xs)
    if n == 0:
        return (math.nan, math.nan)
    alpha = 1.0 - confidence
    # cdf[k] = P(Binom(n, 1/2) <= k), accumulated in log space so large n does not overflow.
    log_half_n = -n * math.log(2.0)
    cdf = 0.0
    l = 0  # 0 -> fall back to the sample range
    for k in range(0, n // 2 + 1):
        cdf += math.exp(math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1) + log_half_n)
        # interval (x_(k+1), x_(n-k)) (1-based) has coverage 1 - 2 * P(B <= k)
        if 2.0 * cdf <= alpha:
            l = k + 1
        else:
            break
    if l == 0:
        return (xs[0], xs[-1])
    return (xs[l - 1], xs[n - l])
