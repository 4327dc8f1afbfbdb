"""Chapter 11's results, summarised over seeds: tables of mean ± standard deviation and
seed-by-seed (paired) differences between two methods.

Every seed shares one pretraining run, one label subset per budget and one random start between
the methods it compares, so two methods are compared through their difference *per seed*: its
mean, its standard error and their ratio t (``vgg_lib.experiments.statistics.paired``). The
chapter states a direction only where |t| >= ``CLAIM_T`` (4); its hidden guards check
``GUARD_T`` (2.78), the book's one claims rule.
"""

import math

from ..experiments.statistics import CLAIM_T, paired, plus_minus
from ..tables import text_table
from .study import PIXELS, budget_name


def probe_accuracies(results, network, layer, budget, split="test"):
    """Per seed (in the results' order), the probe's accuracy for one network, layer and budget."""
    budget = budget_name(budget) if not isinstance(budget, str) else budget
    if layer == PIXELS:
        network = "none"
    found = []
    for result in results:
        rows = [r for r in result["probes"] if (r["network"], r["layer"], r["budget"])
                == (network, layer, budget)]
        if len(rows) != 1:
            raise KeyError(f"Seed {result['seed']} has {len(rows)} probe(s) for {network} "
                           f"{layer} at budget {budget}.")
        found.append(rows[0][split])
    return found


def best_probe_accuracies(results, network, budget, layers):
    """Per seed, the test accuracy of the probe whose layer (of ``layers``) had the highest
    validation accuracy: the block is a choice made on validation, like the penalty."""
    found = []
    for index, result in enumerate(results):
        one = [result]
        best = max(layers, key=lambda layer: (probe_accuracies(one, network, layer, budget, "val")[0],
                                              -layers.index(layer)))
        found.append(probe_accuracies(one, network, best, budget)[0])
    return found


def training_accuracies(results, method, budget, split="test"):
    """Per seed, the accuracy of fine-tuning or training from scratch at one budget."""
    budget = budget_name(budget) if not isinstance(budget, str) else budget
    found = []
    for result in results:
        rows = [r for r in result["training"] if (r["method"], r["budget"]) == (method, budget)]
        if len(rows) != 1:
            raise KeyError(f"Seed {result['seed']} has {len(rows)} run(s) of {method} at budget "
                           f"{budget}.")
        found.append(rows[0][split])
    return found


def verdict(first, second, names=("first", "second"), threshold=CLAIM_T):
    """"<first> better", "<second> better" or "within the spread" (the seeds do not settle
    it), at ``threshold`` standard errors of the seed-by-seed difference."""
    return paired(first, second).verdict(*names, threshold=threshold)


def probe_table(results, layers, budgets):
    """Plain text: one row per layer, test accuracy (%) of the probe on the trained and on the
    untrained network at every budget, mean ± std over the seeds."""
    header = ["layer"] + [f"{budget_name(b)}/class {n}" for b in budgets
                          for n in ("trained", "random")]
    rows = []
    for layer in layers:
        row = [layer]
        for budget in budgets:
            for network in ("trained", "random"):
                if layer == PIXELS and network == "random":
                    row.append("(same)")
                else:
                    row.append(plus_minus(probe_accuracies(results, network, layer, budget)))
        rows.append(row)
    seeds = ", ".join(str(r["seed"]) for r in results)
    return (text_table(header, rows) + f"\ntest accuracy %, mean ± std over seeds {seeds}; "
            f"{PIXELS}: the probe on the mean colour of the image")


def method_table(results, budgets, layers, paper_layer):
    """Plain text: test accuracy (%) at every budget of the probe on the paper's layer, the
    probe on the block chosen on validation, fine-tuning and training from scratch."""
    methods = {
        f"probe on {paper_layer} (the paper's layer)":
            lambda b: probe_accuracies(results, "trained", paper_layer, b),
        "probe on the best block (chosen on validation)":
            lambda b: best_probe_accuracies(results, "trained", b, layers),
        "fine-tune": lambda b: training_accuracies(results, "fine-tune", b),
        "from scratch": lambda b: training_accuracies(results, "scratch", b),
    }
    header = ["method"] + [f"{budget_name(b)}/class" for b in budgets]
    rows = [[name] + [plus_minus(accuracies(b)) for b in budgets]
            for name, accuracies in methods.items()]
    seeds = ", ".join(str(r["seed"]) for r in results)
    return text_table(header, rows) + f"\ntest accuracy %, mean ± std over seeds {seeds}"


def _sides(label):
    """"10/class: fine-tune - scratch" -> ("fine-tune", "scratch"); else ("first", "second")."""
    sides = label.split(": ", 1)[-1].split(" - ")
    return tuple(sides) if len(sides) == 2 else ("first", "second")


def difference_table(comparisons, names=None):
    """Plain text: one row per ``(label, first, second)`` (per-seed accuracies): the mean
    difference first - second in points, its standard error, t, and the verdict at
    ``CLAIM_T``, naming the side ahead: ``names`` for every row, or by default the two sides of
    the label ("<anything>: <first> - <second>")."""
    rows = []
    for label, first, second in comparisons:
        difference = paired(first, second)
        rows.append([label, f"{100 * difference.value:+.1f}", f"{100 * difference.error:.1f}",
                     "inf" if math.isinf(difference.t) else f"{difference.t:+.1f}",
                     verdict(first, second, names or _sides(label))])
    seeds = sorted({len(first) for _, first, _ in comparisons})
    return (text_table(["difference", "mean (points)", "std. error", "t", f"|t| >= {CLAIM_T:g}"],
                       rows)
            + f"\nper-seed differences of test accuracy over {'/'.join(map(str, seeds))} seeds")
