"""vgg_lib.experiments.sweeps and vgg_lib.training.plots: repeated runs, their summary, their
pictures."""

import math

import matplotlib
import numpy as np
import pytest
import torch

from vgg_lib.experiments import runs as runs_module
from vgg_lib.architecture.model import ModelSpec, vgg
from vgg_lib.experiments.studies import RunResult, StudyRun
from vgg_lib.experiments.sweeps import first_step_below, format_sweep_table, summarise, train_grid
from vgg_lib.training.data import CIFAR10Data
from vgg_lib.training.history import History
from vgg_lib.training.plots import moving_average, plot_learning_curves, plot_per_layer, plot_probes
from vgg_lib.training.recipe import TrainConfig

matplotlib.use("Agg")


pytestmark = pytest.mark.usefixtures("one_thread")


def random_data(n_train=64, n_test=32):
    generator = torch.Generator().manual_seed(0)
    return CIFAR10Data(torch.randint(0, 256, (n_train, 3, 32, 32), generator=generator, dtype=torch.uint8),
                       torch.arange(n_train) % 10,
                       torch.randint(0, 256, (n_test, 3, 32, 32), generator=generator, dtype=torch.uint8),
                       torch.arange(n_test) % 10, classes=[str(i) for i in range(10)],
                       source="synthetic", mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))


def fake_run(label, lr, seed, accuracies, diverged_at=None, test=None):
    """A run whose validation accuracies per epoch are ``accuracies`` and whose test accuracy,
    measured once at its end, is ``test`` (default: the last validation accuracy)."""
    history = History({"steps_per_epoch": 2, "epochs": len(accuracies)})
    history.epochs = [dict(epoch=i + 1, train_loss=2.0, train_accuracy=0.1, val_loss=2.0,
                           val_accuracy=a, lr=lr, seconds=1.0, images_per_second=1.0)
                      for i, a in enumerate(accuracies)]
    history.steps = [2.3, 2.2] * len(accuracies)
    if diverged_at is not None:
        history.diverged, history.diverged_at_step = True, diverged_at
        history.steps.append(math.nan)
    else:
        history.test = {"loss": 2.0, "accuracy": accuracies[-1] if test is None else test}
    run = StudyRun(label, ModelSpec("A", head="compact", num_classes=10),
                   TrainConfig(lr=lr, seed=seed, epochs=len(accuracies)))
    return RunResult(run, history)


def test_summary_groups_by_label_and_lr_and_leaves_diverged_runs_out():
    runs = [fake_run("plain", 0.1, 0, [0.2, 0.3], test=0.3),
            fake_run("plain", 0.1, 1, [0.1], diverged_at=3),
            fake_run("plain", 0.1, 2, [0.4, 0.25], test=0.4), fake_run("bn", 0.1, 0, [0.5, 0.6])]
    plain, bn = summarise(runs)
    assert (plain.label, plain.lr, plain.runs, plain.diverged) == ("plain", 0.1, 3, 1)
    assert plain.val == [0.3, 0.25] and plain.test == [0.3, 0.4]
    assert bn.test_mean_std == (0.6, 0.0) and bn.val_mean_std == (0.6, 0.0)
    table = format_sweep_table([plain, bn], title="T")
    lines = table.splitlines()
    assert lines[0] == "T"
    assert "27.5 ±  3.5" in lines[3] and "35.0 ±  7.1" in lines[3] and lines[3].endswith("1/3")
    assert "60.0 ±  0.0" in lines[4]
    assert len({len(line) for line in lines[1:5]}) == 1  # aligned columns
    assert table == format_sweep_table([plain, bn], title="T")


def test_a_setting_whose_runs_all_diverged_says_so():
    runs = [fake_run("plain", 1.0, s, [0.1], diverged_at=2) for s in range(3)]
    (summary,) = summarise(runs)
    line = format_sweep_table([summary]).splitlines()[2]
    assert line.split()[2:] == ["diverged", "diverged", "3/3"]


def test_train_grid_is_reproducible_and_probes_only_the_first_seed():
    data = random_data()

    def build(seed):
        return vgg("A", num_classes=10, head="compact", width=1 / 16)

    options = dict(epochs=1, batch_size=16, precision="fp32", augment=False)
    lines = []
    runs = train_grid(build, data, "tiny", (0.01, 0.05), (3, 4), probe_steps={1, 4}, log=lines.append,
                      **options)
    again = train_grid(build, data, "tiny", (0.01,), (3,), log=None, **options)
    assert [(r.lr, r.seed) for r in runs] == [(0.01, 3), (0.01, 4), (0.05, 3), (0.05, 4)]
    assert runs[0].history.steps == again[0].history.steps
    assert runs[0].history.steps != runs[1].history.steps
    assert [r.probe is not None for r in runs] == [True, False, True, False]
    assert [rec["step"] for rec in runs[0].probe.records] == [1, 4]
    assert len(lines) == 4 and lines[0].strip().startswith("tiny  lr 0.01   seed 3:")
    for run in runs:
        assert all(len(m._forward_hooks) + len(m._forward_pre_hooks) == 0 for m in run.model.modules())
    with pytest.raises(ValueError, match="at least one"):
        train_grid(build, data, "tiny", (), (0,))

    fig = plot_learning_curves(runs + [fake_run("tiny", 0.05, 9, [0.1], diverged_at=3)], smooth=2)
    assert len(fig.axes) == 4
    fig = plot_probes({"a": runs[0].probe, "b": runs[2].probe}, steps={1, 4})
    assert len(fig.axes) == 6
    with pytest.raises(ValueError, match="none of the steps"):
        plot_probes({"a": runs[0].probe}, steps={2})


def test_train_grid_keeps_each_run_as_a_record_probe_included(tmp_path):
    """With a folder, every grid point is a run record: run again, the grid reads them (nothing
    is built or trained) and gives back the same numbers and the first seed's probe; a recorded
    run's network is its run trained again (``retrained``)."""
    from vgg_lib.experiments.studies import relabel
    from vgg_lib.experiments.sweeps import retrained
    from vgg_lib.training.diagnostics import TrainingProbe

    data, spec = random_data(), ModelSpec("A", num_classes=10, head="compact", width=1 / 16)
    built = []

    def build(seed):
        built.append(seed)
        return vgg("A", num_classes=10, head="compact", width=1 / 16)

    options = dict(epochs=1, batch_size=16, precision="fp32", augment=False, log=None)
    first = train_grid(build, data, "E, plain", (0.05,), (3, 4), probe_steps=[1, 4], spec=spec,
                       folder=tmp_path, **options)
    assert sorted(p.name for p in tmp_path.glob("*.json")) == [
        "E-plain_allimg_1ep_lr0.05_seed3.json", "E-plain_allimg_1ep_lr0.05_seed4.json"]
    again = train_grid(build, data, "E, plain", (0.05,), (3, 4), probe_steps=[1, 4], spec=spec,
                       folder=tmp_path, **options)
    assert built == [3, 4] and [r.source for r in again] == ["stored", "stored"]
    assert [r.model is None for r in again] == [True, True]
    assert [r.history.steps for r in again] == [r.history.steps for r in first]
    assert isinstance(again[0].probe, TrainingProbe) and again[1].probe is None
    assert again[0].probe.series("grad_norm") == first[0].probe.series("grad_norm")
    # another set of probed steps is not what the record holds: no probe, rather than a wrong one
    other = train_grid(build, data, "E, plain", (0.05,), (3,), probe_steps=[2], spec=spec,
                       folder=tmp_path, **options)
    assert other[0].source == "stored" and other[0].probe is None
    assert relabel(again, "Kaiming init, ", replacing="E, ")[0].label == "Kaiming init, plain"
    network = retrained(again[0], data, precision="fp32")
    assert built == [3, 4, 3] and network.history.steps == first[0].history.steps
    assert retrained(first[0], data) is first[0]   # trained in this call: its network is kept
    # a build that makes another network than the spec the record would name is refused
    with pytest.raises(ValueError, match="its build function made a VGG-11"):
        train_grid(build, data, "E, plain", (0.05,), (5,), spec=spec.replace(config="E"),
                   folder=tmp_path, **options)


def test_a_run_is_retrained_on_the_threads_of_its_record(tmp_path, monkeypatch):
    # a CPU's kernels split their sums by thread: on the record's threads the run is the same
    from vgg_lib.experiments import sweeps
    from vgg_lib.experiments.sweeps import retrained

    data, spec = random_data(), ModelSpec("A", num_classes=10, head="compact", width=1 / 16)
    options = dict(epochs=1, batch_size=16, precision="fp32", augment=False, log=None)
    (stored,) = train_grid(None, data, "A", (0.05,), (0,), spec=spec, folder=tmp_path, **options)
    (read,) = train_grid(None, data, "A", (0.05,), (0,), spec=spec, folder=tmp_path, **options)
    assert read.record.threads == 1 and read.model is None
    used, real = [], sweeps.run_study
    monkeypatch.setattr(sweeps, "run_study", lambda *a, **k: used.append(torch.get_num_threads()) or real(*a, **k))
    monkeypatch.setattr(runs_module.os, "cpu_count", lambda: 4)
    torch.set_num_threads(2)
    try:
        again = retrained(read, data, precision="fp32")
        assert used == [1] and torch.get_num_threads() == 2   # the record's threads, then restored
    finally:
        torch.set_num_threads(1)
    assert again.history.steps == stored.history.steps and again.model is not None


def test_moving_average_against_numpy():
    values = [3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0]
    window = 3
    reference = [np.mean(values[max(0, i - window + 1):i + 1]) for i in range(len(values))]
    assert np.allclose(moving_average(values, window), reference)
    assert np.allclose(moving_average(values + [math.inf], window), reference)  # diverged: dropped
    assert len(moving_average([], 5)) == 0


def test_first_step_below_uses_the_trailing_mean_of_the_curves():
    history = History()
    history.steps = [2.30, 2.31, 2.29, 2.25, 2.0, 1.9, 1.8]
    reference = moving_average(history.steps, 3)
    expected = next(i + 1 for i, v in enumerate(reference) if v < 2.2)
    assert first_step_below(history, 2.2, window=3) == expected == 5  # (2.29 + 2.25 + 2.0) / 3
    assert first_step_below(history, 1.0, window=3) is None
    history.steps = [2.3, 2.3, math.nan]
    assert first_step_below(history, 2.2) is None


def test_table_lists_each_seeds_step_off_the_plateau():
    runs = [fake_run("plain", 0.1, 0, [0.2]), fake_run("plain", 0.1, 1, [0.2])]
    runs[0].history.steps = [2.3] * 5 + [1.0] * 20
    summary = summarise(runs, loss_below=2.0, window=4)
    assert summary[0].below == [6, None]  # step 6: (3 * 2.3 + 1.0) / 4 = 1.975
    table = format_sweep_table(summary)
    assert table.splitlines()[0].endswith("steps to loss < 2")
    assert table.splitlines()[2].endswith("6 / never")
    assert "last 4 steps is below 2" in table


def test_log_plots_leave_out_zeros_instead_of_clipping_them():
    import matplotlib.pyplot as plt  # after matplotlib.use("Agg") above

    fig, ax = plt.subplots()
    names = plot_per_layer(ax, {"a": {"grad_norm": 1e-3}, "b": {"grad_norm": 0.0}, "c": {"pre_std": 1.0}},
                           "grad_norm", log=True)
    assert names == ["a", "b"]
    y = ax.lines[0].get_ydata()
    assert y[0] == 1e-3 and math.isnan(y[1])
    plt.close(fig)
