"""Linear probes: a linear classifier fitted in closed form on frozen features.

The paper (Appendix B) trains a linear SVM on the L2-normalised penultimate features of a frozen
network. A linear probe asks the same question: how much of a new task can a *linear* read-out
of these features solve? The probe here is the oldest linear classifier, least squares on one-hot
targets with a ridge penalty, because it has a closed form: no learning rate, no epochs, no seed,
no solver tolerance; the same features always give the same probe, and every penalty of the grid
costs one small linear solve. The recipe:

1. standardise every feature with the mean and standard deviation of the training features (a
   feature that never varies becomes 0 and gets weight 0);
2. with ``X`` the standardised features and a column of ones, ``Y`` the one-hot labels and ``n``
   the number of training images, minimise ``|X W - Y|^2 / n + l2 |W|^2`` (the bias row free):
   ``W = (X^T X / n + l2 I)^-1 X^T Y / n``; the predicted class is the largest of ``X W``;
3. choose ``l2`` from a grid on the validation split (the highest validation accuracy; a tie
   goes to the stronger penalty).

On the chapter's features (one pretrained network, seed 0, all 18,000 labelled target images)
this probe came within 1.5 points of a multinomial logistic regression fitted with L-BFGS on the
same standardised features and grid (block by block, test accuracy 70.2 against 71.5 % at block
4, 62.1 against 62.6 % at block 5, the same ranking of blocks), at a hundredth of the time:
1.7 s against 150 s for block 4's seven penalties, on one thread of the busy 2-core machine,
fp32 features, 2026-12-04.
"""

from dataclasses import dataclass, field

import torch

from ..experiments.transfer_features import L2_GRID  # the penalties tried, strongest first


@dataclass
class LinearProbe:
    """A fitted probe: ``scores = ((x - mean) / std) @ weight.T + bias``; the class is the
    highest score."""

    weight: torch.Tensor   # (classes, features) float64
    bias: torch.Tensor     # (classes,)
    mean: torch.Tensor     # (features,) of the training features
    std: torch.Tensor      # (features,); 1 where a training feature is constant
    l2: float
    validation: dict = field(default_factory=dict)  # l2 -> validation accuracy, when chosen

    def scores(self, features):
        x = (torch.as_tensor(features, dtype=torch.float64) - self.mean) / self.std
        return x @ self.weight.T + self.bias

    def predict(self, features):
        return self.scores(features).argmax(dim=1)

    def accuracy(self, features, labels):
        return (self.predict(features) == torch.as_tensor(labels)).double().mean().item()


def _check(features, labels, name):
    if features.dim() != 2 or labels.dim() != 1 or len(features) != len(labels):
        raise ValueError(f"{name}: features must be (N, D) and labels (N,), got "
                         f"{tuple(features.shape)} and {tuple(labels.shape)}.")
    if len(labels) == 0:
        raise ValueError(f"{name}: no examples.")
    if not torch.isfinite(features).all():
        raise ValueError(f"{name}: the features hold NaN or infinite values; check the network "
                         "that produced them (a diverged run?).")


def standardisation(features):
    """Mean and standard deviation per feature (float64); constant features get std 1."""
    x = features.double()
    mean, std = x.mean(dim=0), x.std(dim=0, unbiased=False)
    return mean, torch.where(std > 1e-12, std, torch.ones_like(std))


class _NormalEquations:
    """``X^T X / n`` and ``X^T Y / n`` of one training set, computed once for every penalty."""

    def __init__(self, features, labels, num_classes):
        features, labels = torch.as_tensor(features), torch.as_tensor(labels).long()
        _check(features, labels, "train_probe")
        if int(labels.max()) >= num_classes or int(labels.min()) < 0:
            raise ValueError(f"labels run from {int(labels.min())} to {int(labels.max())}, "
                             f"outside 0..{num_classes - 1} for num_classes={num_classes}.")
        self.mean, self.std = standardisation(features)
        x = (features.double() - self.mean) / self.std
        x = torch.cat([x, torch.ones(len(x), 1, dtype=torch.float64)], dim=1)
        y = torch.nn.functional.one_hot(labels, num_classes).double()
        self.gram, self.cross = x.T @ x / len(x), x.T @ y / len(x)

    def solve(self, l2):
        if not (isinstance(l2, (int, float)) and l2 > 0 and l2 < float("inf")):
            raise ValueError(f"l2={l2!r}: a finite penalty > 0.")
        penalty = torch.full((len(self.gram),), float(l2), dtype=torch.float64)
        penalty[-1] = 0.0  # the bias is not penalised
        solution = torch.linalg.solve(self.gram + torch.diag(penalty), self.cross)
        return LinearProbe(solution[:-1].T.contiguous(), solution[-1].clone(), self.mean,
                           self.std, float(l2))


def train_probe(features, labels, num_classes, l2):
    """The ``LinearProbe`` with penalty ``l2`` for ``features`` ``(N, D)`` and integer
    ``labels`` ``(N,)`` in 0..num_classes-1."""
    return _NormalEquations(features, labels, num_classes).solve(l2)


def choose_probe(train_features, train_labels, val_features, val_labels, num_classes,
                 l2_grid=L2_GRID):
    """The probe of ``l2_grid`` with the highest validation accuracy (a tie: the strongest
    penalty); ``probe.validation`` keeps every penalty's validation accuracy."""
    if not l2_grid:
        raise ValueError("l2_grid is empty: give at least one penalty.")
    val_features, val_labels = torch.as_tensor(val_features), torch.as_tensor(val_labels).long()
    _check(val_features, val_labels, "choose_probe (validation)")
    equations = _NormalEquations(train_features, train_labels, num_classes)
    scores, best = {}, None
    for l2 in sorted(l2_grid, reverse=True):
        probe = equations.solve(l2)
        scores[l2] = probe.accuracy(val_features, val_labels)
        if best is None or scores[l2] > scores[best.l2]:
            best = probe
    best.validation = scores
    return best
