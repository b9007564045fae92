"""The lift of a campaign and its p-value: treated vs control, per member (pure: no database).

Welch's t-test (``scipy.stats.ttest_ind(equal_var=False)``), two-sided, on each member's total
(spend in minor units, or visits) over the campaign's period, members with nothing counted as
0. Why Welch: the lift is a ratio of MEANS (``(mean treated - mean control) / mean control``)
and Welch's test is a test of a difference of means that does not assume the two groups have
equal variances or sizes (a 10 % control group is small, and an offer changes the spread as
well as the mean). Spend is skewed, with many zeros; with at least
``COALITION_CAMPAIGN_MIN_GROUP_SIZE`` members in each group (default 30) the mean difference is
close enough to normal for the test (``tests/programs/test_lift.py`` checks the false-positive
rate on planted data with no effect). Mann-Whitney would test something else (that one group
tends to be larger), not the lift in money a merchant pays for.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

from scipy import stats


@dataclass(frozen=True)
class Lift:
    percent: float | None
    p_value: float | None


NO_LIFT = Lift(None, None)


def lift(treated: Sequence[int], control: Sequence[int], min_group: int) -> Lift:
    """Percent by which the treated mean exceeds the control mean, and Welch's two-sided p-value.

    Both null below ``min_group`` members in either group; the percent null when the control
    mean is 0 (no base to compare with), the p-value null when neither group varies.
    """
    if len(treated) < max(2, min_group) or len(control) < max(2, min_group):
        return NO_LIFT
    mean_t = sum(treated) / len(treated)
    mean_c = sum(control) / len(control)
    percent = None if mean_c == 0 else round((mean_t - mean_c) / mean_c * 100, 4)
    if len(set(treated)) == 1 and len(set(control)) == 1:
        return Lift(percent, None)  # neither group varies: no test to run
    with warnings.catch_warnings():
        # nearly constant groups: scipy warns about precision and answers nan or a valid p; both are handled
        warnings.simplefilter("ignore", RuntimeWarning)
        result = stats.ttest_ind([float(x) for x in treated], [float(x) for x in control], equal_var=False)
    p = float(result.pvalue)
    return Lift(percent, None if math.isnan(p) else p)
