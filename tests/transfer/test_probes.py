"""Closed-form ridge probes (vgg_lib/transfer/probes.py)."""

import pytest
import torch
import torch.nn.functional as F

from vgg_lib.experiments.transfer_features import L2_GRID
from vgg_lib.transfer.probes import choose_probe, standardisation, train_probe



def separable(n=200, dims=6, classes=3, noise=0.3, seed=0):
    generator = torch.Generator().manual_seed(seed)
    centres = 3 * torch.randn(classes, dims, generator=generator)
    labels = torch.arange(n) % classes
    return centres[labels] + noise * torch.randn(n, dims, generator=generator), labels

def test_a_probe_learns_a_separable_problem_and_is_deterministic():
    x, y = separable()
    probe = train_probe(x, y, 3, l2=1e-3)
    assert probe.accuracy(x, y) == 1.0
    again = train_probe(x, y, 3, l2=1e-3)
    assert torch.equal(probe.weight, again.weight) and torch.equal(probe.bias, again.bias)

def test_the_probe_minimises_the_penalised_squared_error():
    x, y = separable(noise=3.0)
    probe = train_probe(x, y, 3, l2=0.1)
    standard = (x.double() - probe.mean) / probe.std
    targets = F.one_hot(y, 3).double()

    def objective(weight, bias):
        return ((standard @ weight.T + bias - targets) ** 2).sum(dim=1).mean() \
            + 0.1 * weight.pow(2).sum()

    best = objective(probe.weight, probe.bias)
    generator = torch.Generator().manual_seed(1)
    for _ in range(5):  # every nudge of the solution makes the objective worse
        nudge = 1e-3 * torch.randn(probe.weight.shape, generator=generator, dtype=torch.float64)
        assert objective(probe.weight + nudge, probe.bias) > best
        assert objective(probe.weight, probe.bias + nudge[:, 0]) > best
    # the bias is free: the scores' mean over the training set equals the class frequencies
    torch.testing.assert_close(probe.scores(x).mean(dim=0), targets.mean(dim=0))

def test_a_constant_feature_is_left_at_zero_and_does_not_divide_by_zero():
    x, y = separable()
    x = torch.cat([x, torch.full((len(x), 1), 7.0)], dim=1)
    mean, std = standardisation(x)
    assert std[-1] == 1 and mean[-1] == 7
    probe = train_probe(x, y, 3, l2=1e-2)
    assert torch.isfinite(probe.weight).all() and probe.weight[:, -1].abs().max() < 1e-12

def test_the_penalty_is_chosen_on_validation_and_every_score_is_kept():
    x, y = separable(n=300, noise=4.0, seed=2)
    probe = choose_probe(x[:30], y[:30], x[30:], y[30:], 3)
    assert set(probe.validation) == set(L2_GRID)
    best = max(probe.validation.values())
    assert probe.validation[probe.l2] == best
    # a tie goes to the strongest penalty
    assert probe.l2 == max(l2 for l2, score in probe.validation.items() if score == best)
    assert probe.accuracy(x[30:], y[30:]) == best

def test_fewer_examples_than_features_still_have_a_probe():
    x, y = separable(n=6, dims=50)
    probe = train_probe(x, y, 3, l2=1e-2)
    assert probe.accuracy(x, y) == 1.0

def test_probes_refuse_bad_input():
    x, y = separable()
    with pytest.raises(ValueError, match="NaN"):
        train_probe(torch.full_like(x, float("nan")), y, 3, l2=1.0)
    with pytest.raises(ValueError, match="outside 0..1"):
        train_probe(x, y, 2, l2=1.0)
    with pytest.raises(ValueError, match="l2="):
        train_probe(x, y, 3, l2=0.0)
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        train_probe(x[:, 0], y, 3, l2=1.0)
    with pytest.raises(ValueError, match="empty"):
        choose_probe(x, y, x, y, 3, l2_grid=())
