"""vgg_lib.experiments.statistics: seed statistics and the claims rule, against the standard
library, scipy-free references worked by hand, and the notebooks' former helpers."""

import math
import statistics as reference

import pytest

from vgg_lib.experiments.statistics import (CLAIM_T, GUARD_T, WITHIN, mean, mean_std, paired,
                                            plus_minus, standard_error, std, welch)


def test_mean_and_sample_std_agree_with_the_standard_library():
    values = [0.31, 0.35, 0.42]
    assert mean(values) == pytest.approx(reference.mean(values))
    assert std(values) == pytest.approx(reference.stdev(values))
    assert mean_std(values) == (mean(values), std(values))
    assert mean_std([0.5]) == (0.5, 0.0)
    assert all(math.isnan(v) for v in mean_std([]))
    assert standard_error(values) == pytest.approx(reference.stdev(values) / math.sqrt(3))
    assert math.isnan(standard_error([]))
    assert mean(v for v in (1, 2, 3)) == 2  # any iterable


def test_welch_difference_is_the_difference_of_means_with_welch_s_standard_error():
    a, b = [0.80, 0.82, 0.81], [0.70, 0.74, 0.72]
    d = welch(a, b)
    assert d.value == pytest.approx(mean(a) - mean(b))
    assert d.error == pytest.approx(math.sqrt(reference.variance(a) / 3 + reference.variance(b) / 3))
    assert d.kind == "welch" and d.t == pytest.approx(d.value / d.error)
    # the notebooks' former helpers: chapter 5's standard_error(a, b) and chapter 8's difference()
    assert d.error == pytest.approx((reference.variance(a) / 3 + reference.variance(b) / 3) ** 0.5)
    with pytest.raises(ValueError, match="at least one value"):
        welch([], b)


def test_paired_difference_works_seed_by_seed():
    a, b = [0.80, 0.70, 0.75], [0.78, 0.68, 0.72]
    d = paired(a, b)
    differences = [x - y for x, y in zip(a, b)]
    assert d.values == pytest.approx(tuple(differences))
    assert d.value == pytest.approx(reference.mean(differences))
    assert d.error == pytest.approx(reference.stdev(differences) / math.sqrt(3))
    assert d.spread == pytest.approx(reference.stdev(differences))
    assert d.every_seed() == "higher in every seed"
    assert paired(b, a).every_seed() == "lower in every seed"
    assert paired([1, 2], [2, 1]).every_seed() == "mixed"
    # pairing removes what the seeds share: here the seeds' own spread is large, the
    # differences are steady, so the paired difference is settled and the Welch one is not
    assert d.settled(GUARD_T) and not welch(a, b).settled(GUARD_T)
    with pytest.raises(ValueError, match="seed by seed"):
        paired([1, 2], [1])
    with pytest.raises(ValueError, match="paired"):
        welch(a, b).every_seed()


@pytest.mark.parametrize("a, b, threshold, verdict", [
    ([0.80, 0.81, 0.82], [0.70, 0.71, 0.72], GUARD_T, "A better"),
    ([0.70, 0.71, 0.72], [0.80, 0.81, 0.82], GUARD_T, "B better"),
    ([0.70, 0.75, 0.80], [0.72, 0.74, 0.79], GUARD_T, WITHIN),
])
def test_verdicts(a, b, threshold, verdict):
    assert welch(a, b).verdict("A", "B", threshold) == verdict


def test_the_two_thresholds_of_the_claims_rule():
    """A difference of 3 standard errors is settled for a hidden guard (2.78) but not for the
    prose (4): the prose then gives the number and says the seeds do not settle it."""
    assert (GUARD_T, CLAIM_T) == (2.78, 4.0)
    a = [1.0, 1.1, 0.9]  # std 0.1: the difference's standard error is sqrt(2) * 0.1 / sqrt(3)
    error = math.sqrt(2 * 0.01 / 3)
    b = [v - 3 * error for v in a]
    d = welch(a, b)
    assert d.t == pytest.approx(3.0)
    assert d.verdict("a", "b", GUARD_T) == "a better" and d.verdict("a", "b", CLAIM_T) == WITHIN
    exact = welch([1.0, 1.0], [0.0, 0.0])  # no spread at all: any difference is settled
    assert exact.t == math.inf and exact.settled(CLAIM_T)
    assert welch([1.0], [1.0]).t == 0.0


def test_plus_minus_text():
    assert plus_minus([0.80, 0.82, 0.81]) == "81.0 ± 1.0"
    assert plus_minus([12.0, 14.0], scale=1, digits=0) == "13 ± 1"
    assert plus_minus([0.275, 0.275], widths=(5, 4)) == " 27.5 ±  0.0"  # the sweep table's columns
    assert plus_minus([]) == "-"
    assert welch([0.80, 0.82, 0.81], [0.70, 0.74, 0.72]).text() == "+9.0 ± 1.3"


def test_seeds_to_settle_scales_the_standard_error_with_the_root_of_the_seeds():
    a, b = [0.80, 0.81, 0.82], [0.79, 0.80, 0.80]   # +0.0133, standard error 0.0067 (t 2.0)
    d = welch(a, b)
    n = d.seeds_to_settle(3)
    assert n == math.ceil(3 * (4.0 / d.t) ** 2) == 12
    # with n seeds and the same spreads the difference reaches 4 standard errors, with n - 1 not
    spread2 = std(a) ** 2 + std(b) ** 2
    assert d.value / math.sqrt(spread2 / n) >= 4.0 > d.value / math.sqrt(spread2 / (n - 1))
    assert welch(b, a).seeds_to_settle(3) == n                    # the sign does not matter
    assert welch([0.9, 0.91, 0.92], b).seeds_to_settle(3) == 3    # settled already: no more seeds
    assert welch(a, a).seeds_to_settle(3) == math.inf
    with pytest.raises(ValueError, match="welch"):
        paired(a, b).seeds_to_settle(3)
