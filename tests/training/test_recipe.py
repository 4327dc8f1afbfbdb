"""ModelSpec and TrainConfig: one object each for the network and the recipe, checked when they
are made, stored in every checkpoint, and used to rebuild a model or refuse a resume."""

import math
from dataclasses import fields

import pytest
import torch

from support import colour_data
from vgg_lib import ModelSpec, TrainConfig, count_parameters, fit, vgg
from vgg_lib.evaluation.engine import evaluate
from vgg_lib.training.checkpoint import CheckpointError, load_model, read_checkpoint, save_checkpoint
from vgg_lib.training.loop import make_optimizer, recipe_protocol
from vgg_lib.training.profiles import get_profile
from vgg_lib.training.recipe import LATER_SETTINGS, PAPER_IMAGENET_AUGMENTATION


def test_a_spec_builds_what_vgg_builds_and_travels_on_the_model():
    spec = ModelSpec("a-lrn", batch_norm=True, width=0.25, head="compact", num_classes=10)
    assert spec.config == "A-LRN"  # normalised
    model = spec.build()
    reference = vgg("A-LRN", batch_norm=True, width=0.25, head="compact", num_classes=10)
    assert model.spec == spec == reference.spec
    assert count_parameters(model) == count_parameters(reference)
    assert ModelSpec.from_dict(spec.to_dict()) == spec
    assert spec.describe() == "VGG-11-BN (configuration A-LRN, width 0.25, compact head)"


@pytest.mark.parametrize("changes, message", [
    (dict(config="F"), "Unknown VGG configuration"), (dict(head="tiny"), "Unknown head"),
    (dict(width=math.nan), "width=nan"), (dict(width=0), "width=0"),
    (dict(num_classes=0), "num_classes=0"), (dict(dropout=1.0), "dropout=1.0"),
])
def test_a_bad_spec_is_refused_when_made(changes, message):
    with pytest.raises(ValueError, match=message):
        ModelSpec(**changes)
    with pytest.raises(ValueError, match="Unknown model setting"):
        ModelSpec.from_dict({"config": "A", "depth": 11})


@pytest.mark.parametrize("changes, message", [
    (dict(epochs=0), "epochs=0"), (dict(epochs=2.5), "epochs=2.5"), (dict(batch_size=-1), "batch_size=-1"),
    (dict(lr=math.inf), "lr=inf"), (dict(lr=0), "lr=0"), (dict(weight_decay=math.nan), "weight_decay=nan"),
    (dict(crop_padding=-1), "crop_padding=-1"), (dict(schedule="step"), "schedule='step'"),
    (dict(label_smoothing=1.0), "label_smoothing=1.0"), (dict(optimizer="rmsprop"), "optimizer='rmsprop'"),
])
def test_a_bad_recipe_is_refused_before_any_training(changes, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**changes)


def test_the_paper_s_imagenet_augmentation_is_recipe_fields_checked_together():
    recipe = TrainConfig(**PAPER_IMAGENET_AUGMENTATION)
    assert (recipe.scale_jitter, recipe.crop, recipe.colour_shift, recipe.eval_scale) == ((256, 512), 224, 0.1, 384)
    assert TrainConfig.from_dict(recipe.to_dict()) == recipe  # a checkpoint's recipe reads back
    for changes, message in ((dict(crop=0), "crop=0"), (dict(eval_scale=2.5), "eval_scale=2.5"),
                             (dict(colour_shift=-0.1), "colour_shift=-0.1"),
                             (dict(PAPER_IMAGENET_AUGMENTATION, crop=300), r"S_min >= 300"),
                             (dict(crop=224, eval_scale=200), "eval_scale >= crop")):
        with pytest.raises(ValueError, match=message):
            TrainConfig(**changes)


def test_every_setting_documents_itself_for_the_command_line():
    for settings in (TrainConfig, ModelSpec):
        for field in fields(settings):
            assert len(field.metadata.get("help", "")) > 10, (settings.__name__, field.name)


def test_the_optimiser_follows_the_recipe_and_decays_weights_only():
    model = vgg("A", batch_norm=True, head="compact", num_classes=10, width=1 / 16)
    sgd = make_optimizer(model, TrainConfig(lr=0.2, momentum=0.8, nesterov=True, weight_decay=1e-3))
    adam = make_optimizer(model, TrainConfig(optimizer="adam", lr=1e-3, weight_decay=5e-4))
    assert isinstance(sgd, torch.optim.SGD) and isinstance(adam, torch.optim.Adam)
    assert sgd.defaults["momentum"] == 0.8 and sgd.defaults["nesterov"] and adam.defaults["lr"] == 1e-3
    for optimiser, decay in ((sgd, 1e-3), (adam, 5e-4)):
        weights, others = optimiser.param_groups
        assert weights["weight_decay"] == decay and others["weight_decay"] == 0.0
        assert all(p.ndim > 1 for p in weights["params"]) and all(p.ndim == 1 for p in others["params"])
        assert len(weights["params"]) + len(others["params"]) == len(list(model.parameters()))
    # an Adam run trains: its loss falls on a batch it sees repeatedly
    x, y = torch.randn(16, 3, 32, 32), torch.randint(0, 10, (16,))
    losses = []
    for _ in range(20):
        loss = torch.nn.functional.cross_entropy(model(x), y)
        adam.zero_grad()
        loss.backward()
        adam.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0], losses


def test_unknown_settings_name_the_known_ones():
    with pytest.raises(TypeError, match="Unknown training setting.*learning_rate.*A TrainConfig has"):
        TrainConfig().replace(learning_rate=0.1)
    with pytest.raises(TypeError, match="recipe must be a TrainConfig"):
        fit(vgg("A", head="compact", num_classes=10, width=1 / 16), None, {"epochs": 1})
    assert TrainConfig().differences(TrainConfig(lr=0.1, seed=3)) == ["lr", "seed"]
    assert TrainConfig.from_dict(TrainConfig(epochs=3).to_dict()) == TrainConfig(epochs=3)


def test_profiles_are_a_spec_a_recipe_and_their_data():
    quick = get_profile("quick", device="cpu")
    assert isinstance(quick.model, ModelSpec) and isinstance(quick.recipe, TrainConfig)
    assert quick.build_model().spec == quick.model
    assert set(quick.data_kwargs()) == {"device", "train_images", "test_images", "validation"}


def test_load_model_rebuilds_from_the_stored_spec(tmp_path):
    spec = ModelSpec("B", batch_norm=True, width=1 / 16, head="compact", num_classes=10)
    model = spec.build().eval()
    path = save_checkpoint(tmp_path / "b.pt", model, recipe=TrainConfig(epochs=3))
    stored = read_checkpoint(path)
    assert stored["model_spec"] == spec.to_dict() and stored["recipe"]["epochs"] == 3
    restored = load_model(path)
    assert restored.spec == spec and not restored.training
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(restored(x), model(x))
    # a bare state dict has no spec to rebuild from: a clear error, not a guess
    torch.save(model.state_dict(), tmp_path / "bare.pt")
    with pytest.raises(CheckpointError, match="no model spec"):
        load_model(tmp_path / "bare.pt")


def test_a_checkpoint_of_an_unknown_format_is_refused(tmp_path):
    model = vgg("A", head="compact", num_classes=10, width=1 / 16)
    path = save_checkpoint(tmp_path / "new.pt", model)
    payload = torch.load(path, weights_only=True)
    payload["format"] = "vgg_lib.checkpoint/99"
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match="format 'vgg_lib.checkpoint/99'"):
        read_checkpoint(path)


def test_recipe_scale_jitter_is_checked_and_round_trips():
    recipe = TrainConfig(scale_jitter=(32, 48), crop_padding=0)
    assert TrainConfig.from_dict(recipe.to_dict()) == recipe
    assert TrainConfig.from_dict({**recipe.to_dict(), "scale_jitter": [32, 48]}) == recipe
    with pytest.raises(ValueError, match=r"scale_jitter=\(48, 32\)"):
        TrainConfig(scale_jitter=(48, 32), crop_padding=0)
    with pytest.raises(ValueError, match="set crop_padding=0"):
        TrainConfig(scale_jitter=(32, 48))


def test_tta_shift_is_checked_and_left_out_of_the_dict_at_its_default():
    """airbench's test-time translation: a setting added after records were shipped, so
    ``to_dict`` leaves it out while it is 0 and every shipped recipe dict reads back unchanged."""
    for changes, message in ((dict(tta_shift=-1, tta_flip=True), r"tta_shift=-1 \(a whole number >= 0\)"),
                             (dict(tta_shift=1.5, tta_flip=True), r"tta_shift=1.5"),
                             (dict(tta_shift=True, tta_flip=True), r"tta_shift=True"),
                             (dict(tta_shift=1), r"tta_shift=1 with tta_flip=False.*set tta_flip=True")):
        with pytest.raises(ValueError, match=message):
            TrainConfig(**changes)
    plain, shifted = TrainConfig(tta_flip=True), TrainConfig(tta_flip=True, tta_shift=1)
    assert "tta_shift" not in plain.to_dict() and shifted.to_dict()["tta_shift"] == 1
    assert set(plain.to_dict()) == set(TrainConfig.field_names()) - set(LATER_SETTINGS)
    assert TrainConfig.from_dict(shifted.to_dict()) == shifted
    assert TrainConfig.from_dict(plain.to_dict()) == plain and plain.tta_shift == 0
    assert shifted.differences(plain) == ["tta_shift"]


def test_fit_evaluates_with_flip_and_shifts_when_the_recipe_says_so():
    data = colour_data()
    torch.manual_seed(0)
    model = vgg("A", batch_norm=True, head="compact", num_classes=10, width=1 / 16)
    recipe = TrainConfig(epochs=1, batch_size=32, tta_flip=True, tta_shift=1)
    history = fit(model, data, recipe, progress=False, precision="fp32")
    protocol = recipe_protocol(recipe, data.image_size)
    assert protocol.name == "centre crop 32 at Q=32, flip + 1-pixel shifts"
    assert history.config["evaluation"] == protocol.name and history.config["tta_shift"] == 1
    loss, accuracy = evaluate(model, data, protocol=protocol, precision="fp32")
    assert history.test == pytest.approx(dict(loss=loss, accuracy=accuracy))
    assert recipe_protocol(recipe.replace(tta_shift=0), 32).name == "centre crop 32 at Q=32, flip"
