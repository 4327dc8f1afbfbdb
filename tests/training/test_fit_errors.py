"""fit's errors: bad settings and inputs are refused before the first step, and a checkpoint of
another run (length, data, model) or a damaged one is refused when resuming, never continued."""

import math

import pytest
import torch

from support import SETTINGS, colour_data, tiny_model
from vgg_lib.architecture.model import ModelSpec
from vgg_lib.training.checkpoint import CheckpointError
from vgg_lib.training.data import DataError
from vgg_lib.training.loop import fit
from vgg_lib.training.recipe import TrainConfig

pytestmark = pytest.mark.usefixtures("one_thread")


class Untouched:
    """A step_callback that fails the test if training ever reaches a step."""

    def __call__(self, step, model, loss):
        raise AssertionError("fit trained before refusing its settings")


@pytest.mark.parametrize("setting, value", [
    ("lr", math.nan), ("lr", math.inf), ("lr", 0), ("weight_decay", math.nan), ("weight_decay", -1e-4),
    ("batch_size", 0), ("batch_size", -8), ("batch_size", 2.5), ("batch_size", True),
    ("epochs", 0), ("epochs", 1.5), ("epochs", "3"), ("crop_padding", -1), ("momentum", math.inf),
    ("schedule", "step"),
])
def test_bad_recipe_settings_are_refused_up_front(setting, value):
    with pytest.raises(ValueError, match=rf"Bad training recipe: {setting}="):
        TrainConfig(**{setting: value})
    with pytest.raises(ValueError, match=rf"{setting}="):
        fit(tiny_model(), colour_data(), **{**SETTINGS, setting: value}, step_callback=Untouched())


def test_unknown_settings_name_the_known_ones():
    with pytest.raises(TypeError, match="Unknown training setting.*learning_rate.*A TrainConfig has epochs, lr"):
        fit(tiny_model(), colour_data(), learning_rate=0.1)


@pytest.mark.parametrize("change, error, expected", [
    (dict(model=ModelSpec("A", head="compact", num_classes=10)), TypeError, r"not a ModelSpec.*vgg\(spec\)"),
    (dict(data=(torch.zeros(4, 3, 32, 32), torch.zeros(4))), TypeError, r"CIFAR10Data.*FolderData.*not a tuple"),
    (dict(max_steps=0), ValueError, r"max_steps=0"), (dict(max_steps=2.5), ValueError, r"max_steps=2.5"),
    (dict(eval_batch_size=0), ValueError, r"eval_batch_size=0"),
    (dict(step_callback="print"), TypeError, r"step_callback must be a function"),
    (dict(checkpoint_path=3), TypeError, r"checkpoint_path must be a file path"),
    (dict(precision="fp8"), ValueError, r"precision='fp8'"),
    (dict(model="small"), TypeError, r"not a str"),
])
def test_bad_fit_inputs_are_refused_before_training(change, error, expected):
    arguments = dict(model=tiny_model(), data=colour_data(), **SETTINGS)
    arguments.update(change)
    callback = arguments.pop("step_callback", Untouched())
    with pytest.raises(error, match=expected):
        fit(step_callback=callback, **arguments)


def test_a_padding_that_can_leave_nothing_of_the_image_is_refused():
    """Pad-and-crop with a padding of half the side or more: some crops would hold half of the
    image or less along each axis (from the whole side on, none of it)."""
    with pytest.raises(ValueError, match=r"crop_padding=40 on 32-pixel images.*as little as 0 of "
                                         r"the 32 rows.*at most 15"):
        fit(tiny_model(), colour_data(), **{**SETTINGS, "crop_padding": 40}, step_callback=Untouched())
    with pytest.raises(ValueError, match=r"crop_padding=16 .*half of the image or less"):
        fit(tiny_model(), colour_data(), **{**SETTINGS, "crop_padding": 16}, step_callback=Untouched())
    history = fit(tiny_model(), colour_data(), **{**SETTINGS, "crop_padding": 15, "epochs": 1})
    assert len(history.epochs) == 1  # the largest padding below half the side trains
    with pytest.raises(ValueError, match=r"crop=28 on 32-pixel images.*scale jittering"):
        fit(tiny_model(), colour_data(), **{**SETTINGS, "crop": 28}, step_callback=Untouched())


def test_data_the_model_cannot_learn_is_refused():
    data = colour_data()
    model = tiny_model()
    model.spec = model.spec.replace(num_classes=5)  # what vgg(..., num_classes=5) records
    with pytest.raises(ValueError, match=r"labels go up to 8, but the model has 5 outputs.*num_classes=10"):
        fit(model, data, **SETTINGS)
    data.std = (0.25, 0.0, 0.25)  # constant green channel
    with pytest.raises(DataError, match=r"channel\(s\) G .*NaN"):
        fit(tiny_model(), data, **SETTINGS)


def test_an_unwritable_checkpoint_folder_is_refused_before_the_first_step(tmp_path):
    (tmp_path / "a-file").write_text("")
    with pytest.raises(CheckpointError, match="Cannot write checkpoints.*VGG_CHECKPOINT_DIR"):
        fit(tiny_model(), colour_data(), checkpoint_path=tmp_path / "a-file" / "run.pt",
            step_callback=Untouched(), **SETTINGS)


# --- resuming: only the very same run continues ----------------------------------------------

@pytest.fixture(scope="module")
def stopped_run(tmp_path_factory):
    """A checkpoint after epoch 1 of a 3-epoch run (3 steps per epoch)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        path = tmp_path_factory.mktemp("resume") / "run.pt"
        fit(tiny_model(), colour_data(), checkpoint_path=path, max_steps=3, **SETTINGS)
    finally:
        torch.set_num_threads(threads)
    return path.read_bytes()


@pytest.fixture
def checkpoint(stopped_run, tmp_path):
    path = tmp_path / "run.pt"
    path.write_bytes(stopped_run)
    return path


def resume(path, data=None, model=None, **changes):
    return fit(model or tiny_model(), data or colour_data(), checkpoint_path=path, resume=True,
               step_callback=Untouched(), **{**SETTINGS, **changes})


@pytest.mark.parametrize("epochs", [1, 5])
def test_a_run_of_another_length_is_refused(checkpoint, epochs):
    with pytest.raises(ValueError, match=rf"has trained 1 epoch of a 3-epoch run, and this call asks for "
                                         rf"epochs={epochs}.*call fit with epochs=3 to finish it"):
        resume(checkpoint, epochs=epochs)


def test_other_data_of_the_same_size_is_refused(checkpoint):
    with pytest.raises(ValueError, match=r"trained on other images \(synthetic, 96 training images"):
        resume(checkpoint, data=colour_data(seed=1))
    with pytest.raises(ValueError, match=r"train_images: checkpoint 96 vs now 64"):
        resume(checkpoint, data=colour_data(n_train=64))


def test_another_model_of_the_same_shapes_is_refused(checkpoint):
    model = tiny_model()
    model.spec = model.spec.replace(dropout=0.1)
    with pytest.raises(ValueError, match=r"another model \(dropout: checkpoint 0.5 vs now 0.1\)"):
        resume(checkpoint, model=model)


@pytest.mark.parametrize("damage, expected", [
    (lambda p: p["training_state"].pop("rng"), "lacks rng"),
    (lambda p: p["training_state"]["rng"].pop("torch"), r"lacks rng\['torch'\]"),
    (lambda p: p.update(history=None), "lacks history"),
    (lambda p: p["training_state"].update(epoch=7), r"has trained 7 epochs of a 3-epoch run.*damaged"),
    (lambda p: p.update(model={"features.0.weight": "weights"}), r"'model' is not a state dict"),
])
def test_a_damaged_checkpoint_is_a_checkpoint_error(checkpoint, damage, expected):
    payload = torch.load(checkpoint, weights_only=True)
    damage(payload)
    torch.save(payload, checkpoint)
    with pytest.raises(CheckpointError, match=expected):
        resume(checkpoint)


def test_a_checkpoint_without_a_data_fingerprint_resumes_with_a_warning(checkpoint):
    payload = torch.load(checkpoint, weights_only=True)
    del payload["training_state"]["data"]  # as written before fingerprints
    torch.save(payload, checkpoint)
    leftover = checkpoint.with_name(f".{checkpoint.name}.999999999.tmp")  # a killed save's
    leftover.write_bytes(b"half")
    with pytest.warns(UserWarning, match="cannot check that this is the same data"):
        history = fit(tiny_model(), colour_data(), checkpoint_path=checkpoint, resume=True, **SETTINGS)
    assert len(history.epochs) == 3 and not leftover.exists()
