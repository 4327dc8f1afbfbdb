"""Seed statistics, and the one rule for what a chapter may claim from them.

A training run is one draw: its seed decides the initial weights, the data order and the
augmentation, and two runs that differ only in their seed can end points apart. So every
comparison in the book is between groups of seeds, and this module holds the arithmetic:

* ``mean``, ``std`` (the sample standard deviation, n - 1), ``mean_std``, ``standard_error``;
* ``welch(a, b)``: the difference of two groups' means and its standard error
  ``sqrt(s_a^2 / n_a + s_b^2 / n_b)`` (Welch), for groups trained independently;
* ``paired(a, b)``: seed-by-seed differences (the same seeds, the same test images) and the
  standard error of their mean ``s_d / sqrt(n)``;
* a ``Difference`` knows its ``t`` (difference / standard error) and gives the verdicts;
  ``seeds_to_settle`` says how many seeds per group would put a difference at a threshold.

The claims rule (``book/contributing.md``): the prose states a direction only where the runs show
it at ``CLAIM_T`` = 4 standard errors or more; the hidden guards assert it at ``GUARD_T`` = 2.78
(the two-sided 95% quantile of Student's t with 4 degrees of freedom, two groups of three seeds),
so that a regenerated set of runs has margin; anything smaller is written as its number and
"the seeds do not settle it".
"""

import math
from dataclasses import dataclass

GUARD_T = 2.78  # hidden guards: two-sided 95% of Student's t, 4 degrees of freedom (3 + 3 seeds - 2)
CLAIM_T = 4.0   # the prose: a direction is stated only at 4 standard errors or more
WITHIN = "within the spread"


def mean(values):
    """The arithmetic mean (NaN for no values)."""
    values = list(values)
    return sum(values) / len(values) if values else math.nan


def std(values):
    """The sample standard deviation (n - 1 in the denominator; 0 for a single value, NaN for none)."""
    values = list(values)
    if len(values) < 2:
        return 0.0 if values else math.nan
    centre = mean(values)
    return math.sqrt(sum((v - centre) ** 2 for v in values) / (len(values) - 1))


def mean_std(values):
    """(mean, sample standard deviation)."""
    values = list(values)
    return mean(values), std(values)


def standard_error(values):
    """The standard error of the mean, ``std / sqrt(n)``."""
    values = list(values)
    return std(values) / math.sqrt(len(values)) if values else math.nan


def plus_minus(values, scale=100, digits=1, widths=(0, 0)):
    """"75.3 ± 0.4": mean ± sample standard deviation of ``values`` times ``scale`` (100:
    fractions as percent), each padded to ``widths``; "-" for no values."""
    centre, spread = mean_std(values)
    if math.isnan(centre):
        return "-"
    return f"{scale * centre:{widths[0]}.{digits}f} ± {scale * spread:{widths[1]}.{digits}f}"


@dataclass(frozen=True)
class Difference:
    """The difference of two groups' means (``a`` minus ``b``) and its standard error."""

    value: float
    error: float
    kind: str             # "welch" (independent groups) or "paired" (seed by seed)
    values: tuple = ()    # paired: the seed-by-seed differences

    @property
    def t(self):
        """The difference in standard errors (infinite when they agree exactly and differ)."""
        if self.error > 0:
            return self.value / self.error
        return 0.0 if self.value == 0 else math.copysign(math.inf, self.value)

    def settled(self, threshold=GUARD_T):
        """True when the difference is at least ``threshold`` standard errors from zero."""
        return abs(self.t) >= threshold

    def verdict(self, a, b, threshold=GUARD_T):
        """"<a> better", "<b> better" or "within the spread", at ``threshold`` standard errors
        (``GUARD_T`` for guards, ``CLAIM_T`` for what the prose may state)."""
        if self.t >= threshold:
            return f"{a} better"
        if -self.t >= threshold:
            return f"{b} better"
        return WITHIN

    @property
    def spread(self):
        """Paired only: the sample standard deviation of the seed-by-seed differences."""
        if self.kind != "paired":
            raise ValueError("spread is that of seed-by-seed differences: make them with paired().")
        return std(self.values)

    def every_seed(self):
        """Paired differences only: "higher in every seed", "lower in every seed" or "mixed"."""
        if self.kind != "paired":
            raise ValueError("every_seed compares seed by seed: make the difference with paired().")
        if all(v > 0 for v in self.values):
            return "higher in every seed"
        return "lower in every seed" if all(v < 0 for v in self.values) else "mixed"

    def seeds_to_settle(self, seeds, threshold=CLAIM_T):
        """Welch only: how many seeds per group (``seeds`` now, the same in both) would put this
        difference at ``threshold`` standard errors if its value and the groups' spreads stayed
        as measured (the standard error falls as one over the root of the seeds); infinite for
        a difference of zero. A forecast from three seeds' spreads, so an order of magnitude."""
        if self.kind != "welch":
            raise ValueError("seeds_to_settle scales Welch's standard error: make the difference with welch().")
        if self.value == 0:
            return math.inf
        return max(seeds, math.ceil(seeds * (threshold * self.error / self.value) ** 2))

    def text(self, scale=100, digits=1):
        """"+1.2 ± 0.5": the difference (signed) ± its standard error, times ``scale``."""
        return f"{scale * self.value:+.{digits}f} ± {scale * self.error:.{digits}f}"


def welch(a, b):
    """``Difference`` of the means of two independent groups ``a`` and ``b`` (e.g. the test
    accuracies of two configurations over their seeds), with Welch's standard error."""
    a, b = list(a), list(b)
    if not a or not b:
        raise ValueError("welch needs at least one value in each group.")
    return Difference(mean(a) - mean(b), math.sqrt(std(a) ** 2 / len(a) + std(b) ** 2 / len(b)),
                      "welch")


def paired(a, b):
    """``Difference`` of two groups measured on the same seeds (and the same test images):
    the mean of the seed-by-seed differences ``a[i] - b[i]`` and its standard error."""
    a, b = list(a), list(b)
    if len(a) != len(b) or not a:
        raise ValueError(f"paired compares seed by seed: give two equally long, non-empty lists "
                         f"(got {len(a)} and {len(b)} values).")
    differences = [x - y for x, y in zip(a, b)]
    return Difference(mean(differences), standard_error(differences), "paired", tuple(differences))
