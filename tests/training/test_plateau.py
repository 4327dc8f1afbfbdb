"""The paper's schedule (vgg_lib/training/plateau.py): the learning rate divided by 10 when the
validation accuracy stops improving, the run ending at the stall after the last decrease."""

import pytest
import torch

from support import SETTINGS, colour_data, same_weights, tiny_model
from vgg_lib.training.history import History
from vgg_lib.training.loop import fit, lr_factor
from vgg_lib.training.plateau import Plateau
from vgg_lib.training.recipe import TrainConfig

pytestmark = pytest.mark.usefixtures("one_thread")

# patience 1, one decrease: the first epoch without a new best divides the rate by 10, the next
# ends the run; at most 40 epochs (colour_data's 40 validation images stop improving long before)
PLATEAU = dict(SETTINGS, epochs=40, lr=0.1, schedule="plateau", plateau_patience=1,
               plateau_decreases=1)


def test_the_multiplier_warms_up_then_drops_tenfold_at_each_stall_and_the_last_stall_ends_it():
    schedule = Plateau(steps_per_epoch=10, patience=2, decreases=2)
    assert schedule(0) == pytest.approx(0.04) and schedule(5) == pytest.approx(0.52)
    assert schedule(10) == schedule(500) == 1.0
    decisions = []
    for accuracy in [0.5, 0.6, 0.6, 0.55,   # two epochs without a new best: the first decrease
                     0.7, 0.7, 0.6,         # a new best, then two more stalls: the second
                     0.65, 0.7]:            # after the last decrease, two stalls end the run
        decisions.append(schedule.end_of_epoch(accuracy))
        if accuracy == 0.55:
            assert schedule.decreased == 1 and schedule(500) == pytest.approx(0.1)
    assert decisions == [False] * 8 + [True]
    assert schedule.decreased == 2 and schedule(500) == pytest.approx(0.01)
    with pytest.raises(ValueError, match="validation accuracy after every epoch"):
        schedule.end_of_epoch(None)
    with pytest.raises(ValueError, match="follows the validation accuracy"):
        lr_factor(0, 100, "plateau")


def test_fit_ends_the_run_when_validation_stops_improving_and_reports_it():
    data = colour_data()
    history = fit(tiny_model(), data, **PLATEAU)
    epochs = history.epochs
    assert history.stopped_by_schedule and history.finished and len(epochs) < 40
    assert history.test is not None  # a finished run reports its test accuracy, once
    rates = [e["lr"] for e in epochs]
    assert rates[1] == pytest.approx(0.1)          # after the warm-up epoch: the peak
    assert rates[-1] == pytest.approx(0.01)        # one decrease, the run's last epoch
    dropped = rates.index(rates[-1])
    best_before = max(e["val_accuracy"] for e in epochs[:dropped - 1])
    assert epochs[dropped - 1]["val_accuracy"] <= best_before  # the stall that caused it
    assert epochs[-1]["val_accuracy"] <= max(e["val_accuracy"] for e in epochs[:-1])  # and the end
    assert "plateau schedule ended it" in history.status
    again = History.from_dict(history.to_dict())
    assert again.stopped_by_schedule and again.finished and again.to_dict() == history.to_dict()


def test_a_run_the_schedule_did_not_stop_keeps_the_history_format_of_earlier_runs():
    history = fit(tiny_model(), colour_data(), **SETTINGS)
    assert "stopped_by_schedule" not in history.to_dict() and not history.stopped_by_schedule
    assert "plateau" not in repr(TrainConfig(epochs=3)) and "plateau_patience" not in TrainConfig().to_dict()


def test_resume_after_a_decrease_ends_with_exactly_the_uninterrupted_run(tmp_path):
    data = colour_data()
    straight = tiny_model()
    history = fit(straight, data, checkpoint_path=tmp_path / "straight.pt", **PLATEAU)
    rates = [e["lr"] for e in history.epochs]
    dropped = rates.index(rates[-1])                     # the first epoch at the lower rate
    steps_per_epoch = len(history.steps) // len(history.epochs)
    stop_after = dropped * steps_per_epoch + 2           # mid-epoch, after the decrease
    path = tmp_path / "interrupted.pt"
    partial = fit(tiny_model(), data, checkpoint_path=path, max_steps=stop_after, **PLATEAU)
    assert partial.stopped_at_step == stop_after and not partial.stopped_by_schedule
    saved = torch.load(path, weights_only=True)  # plain data: the schedule's state included
    assert saved["scheduler"]["lr_lambdas"][0]["decreased"] == 1

    second_session = tiny_model(seed=123)
    torch.manual_seed(999)
    resumed = fit(second_session, data, checkpoint_path=path, resume=True, **PLATEAU)
    assert same_weights(straight, second_session)
    assert resumed.steps == history.steps and resumed.stopped_by_schedule
    assert [e["lr"] for e in resumed.epochs] == rates and resumed.test == history.test
    # resuming the finished run trains nothing more
    finished = fit(tiny_model(seed=5), data, checkpoint_path=tmp_path / "straight.pt",
                   resume=True, **PLATEAU)
    assert finished.steps == history.steps and len(finished.epochs) == len(history.epochs)


def test_the_schedule_refuses_runs_without_a_validation_accuracy_to_follow():
    with pytest.raises(ValueError, match="load the data with a validation split"):
        fit(tiny_model(), colour_data(n_val=0), **PLATEAU)
    with pytest.raises(ValueError, match="set eval_every_epoch=True"):
        fit(tiny_model(), colour_data(), eval_every_epoch=False, **PLATEAU)
    with pytest.raises(ValueError, match="schedule='plateau' with lookahead=True"):
        TrainConfig(schedule="plateau", lookahead=True)
    with pytest.raises(ValueError, match="plateau_patience=0"):
        TrainConfig(schedule="plateau", plateau_patience=0)
