"""A study's runs summarised per row (a label: "D", "B-5x5"): ``summarise_study`` gives one
``StudyRow`` per label with its seeds' accuracies, ``compare`` Welch's difference of two rows,
``format_study_table`` the plain-text table (mean ± std over seeds). ``experiments.studies``
re-exports them, where the chapters import them from."""

from dataclasses import dataclass

from ..architecture.configs import weight_layer_count
from ..architecture.model import ModelSpec
from ..tables import text_table
from .statistics import mean_std, plus_minus, welch


@dataclass
class StudyRow:
    label: str
    spec: ModelSpec
    seeds: list
    test: list            # test accuracy of each run that did not diverge
    val: list             # final validation accuracy of each run that did not diverge
    diverged: int
    parameters: int
    macs: int
    images_seen: int      # the mean over the seeds where the plateau schedule decided each run's length
    seconds: list         # wall time of each run
    train_accuracy: list = None  # final-epoch training accuracy of each run that did not diverge
    epochs: list = None   # epochs each run trained (they differ where the plateau schedule ended them)

    @property
    def test_mean_std(self):
        return mean_std(self.test)

    @property
    def val_mean_std(self):
        return mean_std(self.val)

    @property
    def compute(self):
        return self.macs * self.images_seen

    @property
    def depth(self):
        return weight_layer_count(self.spec.config)


def summarise_study(results, labels=None):
    """One ``StudyRow`` per label (in the order of ``labels``, default first appearance). The
    runs of one label must share model and number of images seen (seeds differ), unless the
    plateau schedule decided how long each ran (``TrainConfig(schedule="plateau")``): then they
    must share model, recipe and images, and the row's ``images_seen`` is their mean."""
    groups = {}
    for result in results:
        groups.setdefault(result.label, []).append(result)
    rows = []
    for label in labels or list(groups):
        members = groups.get(label)
        if not members:
            raise KeyError(f"No runs labelled {label!r}; the results have {', '.join(groups)}.")
        self_timed = all(r.run.recipe.schedule == "plateau" for r in members)
        setting = ((lambda r: (r.spec, r.run.recipe.replace(seed=0), r.run.train_images))
                   if self_timed else (lambda r: (r.spec, r.images_seen)))
        if len({setting(r) for r in members}) > 1:
            raise ValueError(f"The runs labelled {label!r} differ in model or images seen; a row "
                             "averages seeds of one setting only.")
        finished = [r for r in members if not r.diverged]
        rows.append(StudyRow(label, members[0].spec, [r.seed for r in members],
                             [r.test_accuracy for r in finished],
                             [r.val_accuracy[-1] for r in finished if r.val_accuracy
                              and r.val_accuracy[-1] is not None],
                             len(members) - len(finished), members[0].parameters,
                             members[0].macs,
                             round(sum(r.images_seen for r in members) / len(members)),
                             [r.seconds for r in members],
                             [r.train_accuracy[-1] for r in finished if r.train_accuracy],
                             [len(r.history.epochs) for r in members]))
    return rows


def row_of(rows, label):
    """The ``StudyRow`` labelled ``label`` among ``rows``."""
    found = [row for row in rows if row.label == label]
    if len(found) != 1:
        raise KeyError(f"{len(found)} rows labelled {label!r}; the rows are {', '.join(r.label for r in rows)}.")
    return found[0]


def compare(rows, a, b, which="test"):
    """Welch's ``Difference`` (``vgg_lib.experiments.statistics``) of rows ``a`` and ``b``
    (``a`` minus ``b``) in ``which``: "test", "val", "train_accuracy" or "seconds", over the
    seeds: its ``.value``, ``.error``, ``.t``, ``.verdict(a, b)``, ``.text()``."""
    return welch(getattr(row_of(rows, a), which), getattr(row_of(rows, b), which))


def format_study_table(rows, title=None, paper=None):
    """Plain text: configuration, weight layers, parameters, multiply-adds, images seen, compute,
    test and validation accuracy (mean ± std over seeds), wall time per run; ``paper``: a dict
    label -> text, shown as a last column (e.g. the paper's top-1/top-5 error)."""
    header = ["config", "layers", "params", "MMACs", "images seen", "GMAC", "test acc. %",
              "val acc. %", "s / run"]
    body = []
    for row in rows:
        line = [row.label, str(row.depth), f"{row.parameters:,}", f"{row.macs / 1e6:.2f}",
                f"{row.images_seen:,}", f"{row.compute / 1e9:,.0f}", plus_minus(row.test),
                plus_minus(row.val), plus_minus(row.seconds, scale=1, digits=0)]
        if paper is not None:
            line.append(paper.get(row.label, "-"))
        body.append(line)
    if paper is not None:
        header.append("paper top-1 / top-5 err. %")
    seeds = sorted({len(row.seeds) for row in rows})
    notes = [f"mean ± std over {'/'.join(map(str, seeds))} seeds; MMACs: forward multiply-adds per "
             "image / 1e6; GMAC: training compute, MMACs x images seen / 1e3"]
    if any(row.epochs and len(set(row.epochs)) > 1 for row in rows):
        notes.append("images seen: the mean over the seeds, each run as long as the plateau "
                     "schedule let it train")
    if any(row.diverged for row in rows):
        notes.append("diverged runs: " + ", ".join(f"{r.label} {r.diverged}" for r in rows if r.diverged))
    return "\n".join([text_table(header, body, title=title)] + notes)
