"""Profiles: which one is picked, what it builds, and that its settings fit fit()."""

import inspect

import pytest
import torch

from vgg_lib.training import profiles
from vgg_lib.architecture.configs import CONFIGS
from vgg_lib.measure.counting import count_parameters
from vgg_lib.training.cifar10 import load_cifar10
from vgg_lib.architecture.model import vgg
from vgg_lib.architecture.model import ModelSpec
from vgg_lib.device import choose_device
from vgg_lib.training.profiles import get_profile, train_flop_per_image
from vgg_lib.training.recipe import TrainConfig
from vgg_lib.training.loop import fit


def test_default_follows_the_device_and_env_overrides(monkeypatch):
    monkeypatch.delenv("VGG_PROFILE", raising=False)
    assert get_profile(device="cpu").name == "quick"
    assert get_profile(device="cuda").name == "full"
    monkeypatch.setenv("VGG_PROFILE", "full")
    assert get_profile(device="cpu").name == "full"
    monkeypatch.setenv("VGG_PROFILE", "fast")
    with pytest.raises(ValueError, match="Unknown profile 'fast'"):
        get_profile(device="cpu")


def test_choose_device_prefers_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert choose_device() == torch.device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert choose_device().type in ("mps", "cpu")


def test_printed_profile_is_one_line_and_promises_no_cpu_time():
    for name in ("quick", "full"):
        text = str(get_profile(name, device="cpu"))
        assert "\n" not in text and f"'{name}'" in text
        assert "Colab T4: ~" in text and "estimate from FLOPs" in text and "CPU" not in text


def test_the_estimate_here_scales_rates_measured_on_this_machine(monkeypatch):
    from vgg_lib.training import calibration

    profile = get_profile("quick", device="cpu")
    measured = []

    def fake_rates(spec, recipe, device, precision):
        measured.append((spec, recipe, device, precision))
        return calibration.Rates(train=1000.0, evaluate=4000.0, precision="fp32", steps=6)

    monkeypatch.setattr(calibration, "measure_rates", fake_rates)
    estimate = profile.estimate_here("fp32")
    assert measured == [(profile.model, profile.recipe, profile.device, "fp32")]
    recipe = profile.recipe   # whole batches of the training images each epoch; validation every
    steps = recipe.epochs * (profile.train_images // recipe.batch_size)   # epoch, test once, x6
    assert recipe.tta_flip and recipe.tta_shift   # (flip and two shifted views, each mirrored)
    evaluated = 6 * (recipe.epochs * profile.validation + profile.test_images)
    assert estimate.seconds == pytest.approx(steps * recipe.batch_size / 1000 + evaluated / 4000)
    assert str(estimate).startswith("expected run time here (cpu, fp32): ~3 min (training 1,000 and")


def test_measured_rates_come_from_real_training_steps(monkeypatch):
    from vgg_lib.training import calibration

    spec = ModelSpec(config="A", batch_norm=True, width=0.0625, head="compact", num_classes=10)
    recipe = TrainConfig(epochs=5, batch_size=16, lr=0.05)
    steps = []
    real_fit = calibration.fit
    monkeypatch.setattr(calibration, "fit", lambda *a, **k: steps.append(k["max_steps"]) or real_fit(*a, **k))
    rates = calibration.measure_rates(spec, recipe, "cpu", "fp32", steps=3, warmup=1, eval_batches=1)
    assert steps == [1, 3] and rates.steps == 3 and rates.precision == "fp32"
    assert rates.train > 0 and rates.evaluate > 0
    with pytest.raises(ValueError, match="steps >= 1"):
        calibration.measure_rates(spec, recipe, "cpu", steps=0)


def test_build_model_matches_vgg():
    profile = get_profile("quick", device="cpu")
    model = profile.build_model()
    spec = profile.model
    reference = vgg(spec.config, batch_norm=spec.batch_norm, num_classes=10,
                    head=spec.head, width=spec.width)
    assert count_parameters(model) == count_parameters(reference)
    assert next(model.parameters()).device == torch.device("cpu")
    full = get_profile("full", device="cpu")
    assert (full.model.config, full.model.batch_norm, full.model.width) == ("D", True, 1.0)  # VGG-16-BN, full width
    assert model.spec == profile.model


def test_profile_settings_are_fit_and_load_arguments():
    accepted = inspect.signature(fit).parameters
    for name in ("quick", "full"):
        profile = get_profile(name, device="cpu")
        assert isinstance(profile.recipe, TrainConfig) and "recipe" in accepted
        assert isinstance(profile.model, ModelSpec)
        assert set(profile.data_kwargs()) <= set(inspect.signature(load_cifar10).parameters)


def test_estimates_scale_with_flops():
    full = get_profile("full", device="cpu")
    flop = train_flop_per_image(ModelSpec("D", batch_norm=True, width=1.0, head="compact", num_classes=10))
    # multiply-adds of VGG-16 on a 32x32 image, by hand from the configuration: 3x3 convolutions
    # keep the size, "M" halves it, the compact head is one 512 -> 10 linear layer
    macs, size, channels = 0, 32, 3
    for item in CONFIGS["D"]:
        if item == "M":
            size //= 2
        else:
            macs += 9 * channels * item * size * size
            channels = item
    macs += 512 * 10
    assert flop == 6 * macs
    t4, a100 = full.estimated_seconds("t4"), full.estimated_seconds("a100")
    assert 0 < a100 < t4
    # 45,000 training images (5,000 of the 50,000 are the validation split) in whole batches of
    # 256, the validation split evaluated after every epoch, the 10,000 test images once (with
    # their mirror images: two forward passes, each a third of a training step)
    assert (full.train_images, full.validation, full.test_images) == (45_000, 5_000, 10_000)
    flop_time = (30 * (45_000 // 256 * 256 * flop + 5_000 * 2 * flop / 3) + 10_000 * 2 * flop / 3) / (
        profiles.EFFECTIVE_TFLOPS["t4"] * 1e12)
    assert t4 == pytest.approx(flop_time + 30 * (45_000 // 256) * profiles.GPU_SECONDS_PER_STEP_FLOOR)
    with pytest.raises(ValueError, match="hardware"):
        full.estimated_seconds("tpu")
