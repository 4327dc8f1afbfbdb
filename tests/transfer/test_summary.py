"""The summaries chapter 11's claims rest on (vgg_lib/transfer/summary.py)."""

import math

import pytest

import vgg_lib.transfer.study as study
from vgg_lib.experiments.statistics import CLAIM_T, GUARD_T, paired, plus_minus
from vgg_lib.transfer.summary import (best_probe_accuracies, difference_table, method_table,
                                      probe_accuracies, probe_table, training_accuracies, verdict)


def test_summaries_pick_the_rows_of_every_seed(finished):
    _, results = finished
    values = probe_accuracies(results, "trained", "pool3", None)
    assert len(values) == 2
    assert probe_accuracies(results, "random", study.PIXELS, 2) == \
        probe_accuracies(results, "trained", study.PIXELS, 2)   # the pixels have no network
    layers = [study.PIXELS, "pool1", "pool2", "pool3", "pool4", "pool5"]
    best = best_probe_accuracies(results, "trained", 2, layers)
    assert all(b in [probe_accuracies([r], "trained", layer, 2)[0] for layer in layers]
               for b, r in zip(best, results))
    assert len(training_accuracies(results, "scratch", "all")) == 2
    table = probe_table(results, layers, (2, None))
    assert "pool5" in table and "seeds 0, 1" in table
    assert "fine-tune" in method_table(results, (2, None), layers, "pool5")
    with pytest.raises(KeyError, match="budget 7"):
        training_accuracies(results, "scratch", 7)

def test_paired_differences_and_verdicts():
    difference = paired([3.0, 4.0, 5.0], [2.0, 3.0, 4.0])
    assert difference.value == 1 and difference.error == 0 and difference.t == math.inf
    assert paired([0.5, 0.25], [0.5, 0.25]).t == 0.0
    difference = paired([0.70, 0.72, 0.74, 0.71], [0.60, 0.66, 0.61, 0.64])
    assert difference.error > 0
    assert difference.t == pytest.approx(difference.value / difference.error)
    assert verdict([0.70, 0.72, 0.74, 0.71], [0.60, 0.66, 0.61, 0.64], ("A", "B")) == "A better"
    assert verdict([0.6, 0.7, 0.5], [0.65, 0.55, 0.6], ("A", "B")) == "within the spread"
    assert GUARD_T < CLAIM_T
    assert plus_minus([0.5, 0.7]) == "60.0 ± 14.1"
    table = difference_table([("x - y", [0.70, 0.72, 0.74, 0.71], [0.60, 0.66, 0.61, 0.64]),
                              ("same", [0.5, 0.6], [0.5, 0.6])], names=("x", "y"))
    assert "x better" in table and "within the spread" in table and "+9.0" in table
    table = difference_table([("10/class: fine-tune - scratch", [0.6, 0.5, 0.55], [0.7, 0.6, 0.64])])
    assert "scratch better" in table
