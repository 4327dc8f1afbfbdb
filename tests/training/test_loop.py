"""The training loop: learning, seeding, exact resume, divergence, precision choice, schedules."""

import math

import pytest
import torch
from torch import nn

from support import AIRBENCH, SETTINGS, colour_data, same_weights, tiny_model
from vgg_lib import device as device_module
from vgg_lib.architecture.model import ModelSpec
from vgg_lib.device import resolve_precision
from vgg_lib.evaluation.engine import evaluate
from vgg_lib.training.data import CIFAR10Data
from vgg_lib.training.history import History
from vgg_lib.training.loop import fit, lr_factor, train_eval_data
from vgg_lib.training.reproducibility import seed_everything


pytestmark = pytest.mark.usefixtures("one_thread")


def test_fit_learns_and_records_history():
    data = colour_data()
    model = tiny_model()
    history = fit(model, data, epochs=6, lr=0.1, batch_size=16, progress=False, precision="fp32",
                  tta_flip=True)
    assert len(history.epochs) == 6 and len(history.steps) == 6 * (96 // 16)
    assert all(math.isfinite(v) for v in history.steps)
    first, last = history.epochs[0], history.epochs[-1]
    assert set(first) == {"epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy",
                          "lr", "seconds", "images_per_second"}
    assert last["train_loss"] < first["train_loss"]
    assert history.final_test_accuracy >= 0.5  # chance is 1/9
    assert history.final_val_accuracy >= 0.5
    assert history.best_val_accuracy >= history.final_val_accuracy
    assert all(e["val_accuracy"] is not None for e in history.epochs)  # every epoch, on validation
    assert not history.diverged and "epoch" in history.status and "test accuracy" in history.status
    loss, accuracy = evaluate(model, data, tta_flip=True, precision="fp32")
    assert accuracy == pytest.approx(history.final_test_accuracy)
    assert history.test == {"loss": pytest.approx(loss), "accuracy": accuracy}
    _, val_accuracy = evaluate(model, data, tta_flip=True, precision="fp32", split="val")
    assert val_accuracy == pytest.approx(history.final_val_accuracy)
    figure = history.plot()
    assert len(figure.axes) == 2
    assert History.from_dict(history.to_dict()).to_dict() == history.to_dict()


def test_the_test_set_is_evaluated_once_at_the_end_and_never_for_tuning(monkeypatch):
    data = colour_data()
    from vgg_lib.training import loop

    splits = []
    real = loop.evaluate
    monkeypatch.setattr(loop, "evaluate", lambda *a, **k: splits.append(k.get("split")) or real(*a, **k))
    history = fit(tiny_model(), data, **SETTINGS)
    assert splits == ["val", "val", "val", "test"] and history.test is not None
    splits.clear()
    tuning = fit(tiny_model(), data, test=False, **SETTINGS)
    assert "test" not in splits and tuning.test is None and tuning.final_val_accuracy is not None
    splits.clear()
    stopped = fit(tiny_model(), data, max_steps=4, **SETTINGS)  # unfinished: nothing to report
    assert "test" not in splits and stopped.test is None and stopped.final_test_accuracy is None
    without_val = colour_data(n_val=0)
    splits.clear()
    plain = fit(tiny_model(), without_val, **SETTINGS)
    assert splits == ["test"] and all(e["val_accuracy"] is None for e in plain.epochs)
    with pytest.raises(ValueError, match="no validation split"):
        evaluate(tiny_model(), without_val, split="val")


def test_same_seed_same_history_other_seed_other_history():
    data = colour_data()
    runs = []
    for seed in (0, 0, 1):
        model = tiny_model(seed)
        runs.append((fit(model, data, seed=seed, **SETTINGS), model))
    (h0, m0), (h1, m1), (h2, m2) = runs
    assert h0.steps == h1.steps and same_weights(m0, m1)
    assert [e["val_loss"] for e in h0.epochs] == [e["val_loss"] for e in h1.epochs]
    assert h0.test == h1.test
    assert h0.steps != h2.steps and not same_weights(m0, m2)


# airbench's settings (test_fast_recipe.py): 6 epochs of 3 steps, so that lookahead's average,
# updated at steps 10 and 15, is under way at the interruption
LOOKAHEAD, ALL_TRICKS = dict(epochs=6, lookahead=True), dict(epochs=6, **AIRBENCH)


@pytest.mark.parametrize("changes, stop_after_steps", [
    ({}, 3), ({}, 4),                        # at an epoch boundary, and mid-epoch
    (LOOKAHEAD, 12), (LOOKAHEAD, 13), (ALL_TRICKS, 13)])
def test_resume_ends_with_exactly_the_uninterrupted_weights(tmp_path, changes, stop_after_steps):
    data = colour_data()
    settings = dict(SETTINGS, **changes)
    straight = tiny_model()
    history = fit(straight, data, checkpoint_path=tmp_path / "straight.pt", **settings)

    path = tmp_path / "interrupted.pt"
    first_session = tiny_model()
    partial = fit(first_session, data, checkpoint_path=path, max_steps=stop_after_steps, **settings)
    assert partial.stopped_at_step == stop_after_steps
    if changes.get("lookahead"):  # the checkpoint keeps the average of every floating tensor
        average = torch.load(path, weights_only=True)["training_state"]["lookahead"]
        assert sorted(average) == sorted(k for k, v in straight.state_dict().items()
                                         if v.is_floating_point())

    # a new session: a model with other weights and other global RNG states
    second_session = tiny_model(seed=123)
    torch.manual_seed(999)
    resumed = fit(second_session, data, checkpoint_path=path, resume=True, **settings)
    assert same_weights(straight, second_session)
    assert resumed.steps == history.steps
    assert [e["val_accuracy"] for e in resumed.epochs] == [e["val_accuracy"] for e in history.epochs]
    assert partial.test is None and resumed.test == history.test  # the test set: once, at the end
    # the checkpoint holds only plain data
    torch.load(path, weights_only=True)


def test_resume_without_checkpoint_starts_fresh_and_finished_run_returns(tmp_path):
    data = colour_data()
    path = tmp_path / "new.pt"
    model = tiny_model()
    history = fit(model, data, checkpoint_path=path, resume=True, **SETTINGS)
    assert len(history.epochs) == 3 and path.is_file()
    again = tiny_model(seed=5)
    finished = fit(again, data, checkpoint_path=path, resume=True, **SETTINGS)
    assert finished.steps == history.steps and same_weights(model, again)


def test_resume_with_other_settings_or_model_is_refused(tmp_path):
    data = colour_data()
    path = tmp_path / "run.pt"
    fit(tiny_model(), data, checkpoint_path=path, max_steps=3, **SETTINGS)
    with pytest.raises(ValueError, match="lr: checkpoint 0.05 vs now 0.2"):
        fit(tiny_model(), data, checkpoint_path=path, resume=True, **{**SETTINGS, "lr": 0.2})
    with pytest.raises(ValueError, match=r"another model \(config: checkpoint 'A' vs now 'B'\)"):
        fit(tiny_model(config="B"), data, checkpoint_path=path, resume=True, **SETTINGS)
    unspecified = tiny_model(config="B")
    unspecified.spec = None  # a hand-assembled VGG: the state dict check still names the mismatch
    with pytest.raises(ValueError, match="does not fit the model"):
        fit(unspecified, data, checkpoint_path=path, resume=True, **SETTINGS)
    with pytest.raises(ValueError, match="needs a checkpoint_path"):
        fit(tiny_model(), data, resume=True, **SETTINGS)


class NaNAfter(nn.Module):
    """Wraps a model and returns NaN logits from its ``n``-th training-mode call on."""

    def __init__(self, model, n):
        super().__init__()
        self.model, self.n, self.calls = model, n, 0

    def forward(self, x):
        out = self.model(x)
        if not self.training:
            return out
        self.calls += 1
        return out * float("nan") if self.calls >= self.n else out


def test_injected_nan_stops_the_run_at_that_step():
    data = colour_data()
    model = NaNAfter(tiny_model(), n=5)
    history = fit(model, data, **SETTINGS)
    assert history.diverged and history.diverged_at_step == 5
    assert history.status == "diverged at step 5" and "diverged at step 5" in str(history)
    assert len(history.steps) == 5 and math.isnan(history.steps[-1])
    assert len(history.epochs) == 1  # epoch 1 (3 steps) finished, epoch 2 did not
    assert all(torch.isfinite(p).all() for p in model.parameters())  # the bad step was not taken
    history.plot()


def test_huge_learning_rate_without_batch_norm_diverges():
    history = fit(tiny_model(batch_norm=False), colour_data(), **{**SETTINGS, "lr": 1e3})
    assert history.diverged and 1 <= history.diverged_at_step <= 9
    assert len(history.steps) == history.diverged_at_step


def test_step_callback_sees_gradients_before_the_update():
    data = colour_data()
    model = tiny_model()
    seen = []

    def callback(step, callback_model, loss):
        weight = callback_model.features[0].weight
        seen.append((step, loss, weight.grad.norm().item(), weight.detach().clone()))

    history = fit(model, data, step_callback=callback, **{**SETTINGS, "epochs": 1})
    assert [s for s, *_ in seen] == [1, 2, 3]
    assert [loss for _, loss, *_ in seen] == history.steps
    assert all(norm > 0 for _, _, norm, _ in seen)
    assert not torch.equal(seen[0][3], seen[1][3])  # the weights moved between callbacks


def test_max_steps_stops_early():
    history = fit(tiny_model(), colour_data(), max_steps=2, **SETTINGS)
    assert len(history.steps) == 2 and history.stopped_at_step == 2
    assert "stopped at step 2" in history.status


def test_bf16_autocast_runs_on_cpu():
    history = fit(tiny_model(), colour_data(n_train=32), **{**SETTINGS, "epochs": 1,
                                                           "precision": "bf16"})
    assert all(math.isfinite(v) for v in history.steps)


def test_auto_precision_follows_the_cpu(monkeypatch):
    monkeypatch.delenv("VGG_PRECISION", raising=False)
    monkeypatch.setattr(device_module, "cpu_flags", lambda: frozenset({"avx2", "fma"}))
    assert resolve_precision("auto", "cpu") == "fp32"
    # AVX512-BF16 without AMX trains VGG slower in bf16 than in fp32 (device.cpu_has_native_bf16)
    monkeypatch.setattr(device_module, "cpu_flags", lambda: frozenset({"avx2", "avx512_bf16"}))
    assert resolve_precision("auto", "cpu") == "fp32"
    monkeypatch.setattr(device_module, "cpu_flags", lambda: frozenset({"avx512_bf16", "amx_bf16"}))
    assert resolve_precision("auto", "cpu") == "bf16"
    monkeypatch.setattr(device_module, "cpu_flags", lambda: frozenset({"amx_bf16"}))
    assert resolve_precision("auto", "cpu") == "bf16"
    assert resolve_precision("fp32", "cpu") == "fp32"
    assert resolve_precision("bf16", "cpu") == "bf16"
    with pytest.raises(ValueError, match="choose one of"):
        resolve_precision("half", "cpu")


def test_vgg_precision_replaces_auto_and_nothing_else(monkeypatch):
    monkeypatch.setattr(device_module, "cpu_flags", lambda: frozenset({"amx_bf16"}))
    monkeypatch.setenv("VGG_PRECISION", "fp32")
    assert resolve_precision("auto", "cpu") == "fp32"
    assert resolve_precision("bf16", "cpu") == "bf16"  # an explicit choice stays
    monkeypatch.setenv("VGG_PRECISION", "half")
    with pytest.raises(ValueError, match="VGG_PRECISION='half'; set it to one of fp32, bf16, fp16"):
        resolve_precision("auto", "cpu")


def test_schedules():
    total = 100
    onecycle = [lr_factor(s, total, "onecycle") for s in range(total)]
    assert onecycle[0] == pytest.approx(0.04) and max(onecycle) == pytest.approx(1.0)
    assert onecycle.index(max(onecycle)) == 25 and onecycle[-1] == pytest.approx(1 / 75)
    cosine = [lr_factor(s, total, "cosine") for s in range(total)]
    assert cosine[4] == pytest.approx(1.0) and cosine[-1] < 0.001
    assert all(a >= b for a, b in zip(cosine[4:], cosine[5:]))
    with pytest.raises(ValueError, match="schedule"):
        lr_factor(0, total, "linear")


def test_evaluate_with_flip_averages_posteriors():
    """The paper's test-time flip: the soft-max posteriors of an image and its mirror image are
    averaged (one way for every protocol, vgg_lib.evaluation); the loss is that of the average."""
    data = colour_data()
    model = tiny_model().eval()
    with torch.no_grad():
        x = data.normalize(data.x_test)
        posteriors = (model(x).softmax(1) + model(x.flip(3)).softmax(1)) / 2
    loss, accuracy = evaluate(model, data, tta_flip=True, channels_last=False, precision="fp32")
    assert loss == pytest.approx(nn.functional.nll_loss(posteriors.log(), data.y_test).item(), rel=1e-5)
    assert accuracy == pytest.approx((posteriors.argmax(1) == data.y_test).float().mean().item())
    plain_loss, _ = evaluate(model, data, channels_last=False, precision="fp32")
    with torch.no_grad():
        assert plain_loss == pytest.approx(nn.functional.cross_entropy(model(x), data.y_test).item(),
                                           rel=1e-6)


class CentrePixelReader(nn.Module):
    """Predicts the label written into the centre pixel of each image (value 20 * label + 10)."""

    def __init__(self, mean, std):
        super().__init__()
        self.unused = nn.Parameter(torch.zeros(()))  # SGD needs a parameter
        self.mean, self.std = mean[0], std[0]

    def forward(self, x):
        pixel = (x[:, 0, 16, 16] * self.std + self.mean) * 255
        label = ((pixel - 10) / 20).round().long().clamp(0, 9)
        return nn.functional.one_hot(label, 10).float() * 20 + self.unused


def test_batches_keep_their_labels_through_indexing_and_augmentation():
    labels = torch.arange(200) % 10
    images = (20 * labels + 10).to(torch.uint8).view(-1, 1, 1, 1).expand(-1, 3, 32, 32).contiguous()
    data = CIFAR10Data(images, labels, images[:50], labels[:50], [str(i) for i in range(10)],
                       "synthetic", mean=(0.4, 0.4, 0.4), std=(0.3, 0.3, 0.3))
    model = CentrePixelReader(data.mean, data.std)
    history = fit(model, data, epochs=2, lr=0.1, batch_size=32, progress=False, precision="fp32",
                  channels_last=False)
    assert [e["train_accuracy"] for e in history.epochs] == [1.0, 1.0]
    assert history.final_test_accuracy == 1.0


# --- the end-of-epoch fit: train_eval_images (chapter 10) --------------------------------------

def _residual_run(data, **options):
    seed_everything(0)
    model = ModelSpec(config="A", batch_norm=True, width=0.0625, head="compact", num_classes=10,
                      shortcuts="identity").build()
    history = fit(model, data, epochs=2, batch_size=32, lr=0.05, progress=False, precision="fp32",
                  **options)
    return model, history


def test_train_eval_changes_nothing_the_run_computes_and_measures_the_end_of_each_epoch():
    data = colour_data()
    plain_model, plain_history = _residual_run(data)
    model, history = _residual_run(data, train_eval_images=36)
    assert same_weights(plain_model, model)
    assert plain_history.steps == history.steps
    assert all("train_eval_loss" not in e for e in plain_history.epochs)
    # the last epoch's figures are those of the finished model, evaluated on the same images
    loss, accuracy = evaluate(model, train_eval_data(data, 36), "train", precision="fp32")
    last = history.epochs[-1]
    assert (last["train_eval_loss"], last["train_eval_accuracy"]) == pytest.approx((loss, accuracy))
    assert len({e["train_eval_loss"] for e in history.epochs}) == 2


def test_train_eval_images_are_fixed_and_class_balanced():
    data = colour_data()
    chosen = train_eval_data(data, 36)
    assert torch.equal(chosen.x_train, train_eval_data(data, 36).x_train)
    assert torch.bincount(chosen.y_train, minlength=9).tolist() == [4] * 9  # 9 classes here


@pytest.mark.parametrize("bad, message", [(0, "whole number >= 1"), (2.5, "whole number >= 1"),
                                          (97, "at most that many")])
def test_bad_train_eval_images_are_refused_before_training(bad, message):
    with pytest.raises(ValueError, match=message):
        fit(tiny_model(), colour_data(), epochs=1, progress=False, train_eval_images=bad)
