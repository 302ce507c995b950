"""Mean +- std over seeds, and whether a difference between two arms decides a claim.

The rule (stated in every report): a claim compares a treated arm with a control arm on one
measure, in an expected direction. With ``n >= 2`` values per arm, the difference of means ``d``
is set against Welch's standard error ``se = sqrt(s1^2 / n1 + s2^2 / n2)`` and the two-sided 95 %
quantile ``t`` of Student's t at the Welch-Satterthwaite degrees of freedom. If ``|d| > t * se``
the data decides: it *supports* the claim when ``d`` has the expected sign and *contradicts* it
otherwise; else the claim *cannot be decided* at this budget. This is one test per claim, not
corrected for the several claims of a report: read a lone "supports" among many with care.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

# Two-sided 95 % quantiles of Student's t for 1..30 degrees of freedom; 1.96 beyond.
_T95 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131)
_T95 += (2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)

SUPPORTS, CONTRADICTS, UNDECIDED = "supports", "contradicts", "cannot decide"
DECISION_RULE = (
    "Rule: a claim is decided when the difference of the arms' means exceeds, in absolute value, the "
    "two-sided 95 % Student-t quantile times Welch's standard error ('needed'); it is then supported when the "
    "difference has the expected sign and contradicted otherwise. One test per claim, not corrected for the "
    "number of claims; with few seeds only large effects can be decided."
)


def finite(values: Sequence[float]) -> list[float]:
    return [float(v) for v in values if v is not None and math.isfinite(v)]


def mean_std(values: Sequence[float]) -> tuple[float, float, int]:
    """Mean, sample standard deviation (0 for one value) and count of the finite values."""
    kept = finite(values)
    if not kept:
        return math.nan, math.nan, 0
    mean = sum(kept) / len(kept)
    variance = sum((v - mean) ** 2 for v in kept) / (len(kept) - 1) if len(kept) > 1 else 0.0
    return mean, math.sqrt(variance), len(kept)


def t95(degrees: float) -> float:
    """The two-sided 95 % quantile of Student's t (degrees rounded down, at least 1)."""
    index = max(1, int(degrees))
    return _T95[index - 1] if index <= len(_T95) else 1.96


@dataclass(frozen=True)
class Decision:
    verdict: str  # SUPPORTS, CONTRADICTS or UNDECIDED
    difference: float  # mean(treated) - mean(control)
    threshold: float  # t * se: the |difference| needed to decide (NaN when undefined)


def decide(treated: Sequence[float], control: Sequence[float], expected: str) -> Decision:
    """Apply the module's rule; ``expected`` is "higher" or "lower" (treated against control)."""
    if expected not in ("higher", "lower"):
        raise ValueError(f"expected must be 'higher' or 'lower', got {expected!r}")
    (m1, s1, n1), (m2, s2, n2) = mean_std(treated), mean_std(control)
    if n1 < 2 or n2 < 2:
        return Decision(UNDECIDED, m1 - m2 if n1 and n2 else math.nan, math.nan)
    difference = m1 - m2
    v1, v2 = s1**2 / n1, s2**2 / n2
    se = math.sqrt(v1 + v2)
    if se == 0:
        threshold = 0.0
    else:
        degrees = (v1 + v2) ** 2 / ((v1**2 / (n1 - 1) if v1 else 0.0) + (v2**2 / (n2 - 1) if v2 else 0.0))
        threshold = t95(degrees) * se
    if abs(difference) <= threshold:
        return Decision(UNDECIDED, difference, threshold)
    agrees = difference > 0 if expected == "higher" else difference < 0
    return Decision(SUPPORTS if agrees else CONTRADICTS, difference, threshold)


def format_mean_std(values: Sequence[float], scale: float = 1.0, digits: int = 2) -> str:
    """``m ± s`` of the finite values times ``scale``; ``n/a`` if there are none."""
    mean, std, count = mean_std(values)
    if not count:
        return "n/a"
    if count == 1:
        return f"{mean * scale:.{digits}f}"
    return f"{mean * scale:.{digits}f} ± {std * scale:.{digits}f}"
