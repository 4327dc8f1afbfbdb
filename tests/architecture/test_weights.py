"""Loading state dicts: torchvision's (as pretrained weights would arrive) and mismatched ones."""

import pytest
import torch
import torchvision

from vgg_lib import load_state_dict_checked, vgg
from vgg_lib.architecture import weights


def test_torchvision_state_dict_loads_unchanged():
    source = torchvision.models.vgg16_bn()
    model = load_state_dict_checked(vgg("D", batch_norm=True), source.state_dict())
    for key, value in source.state_dict().items():
        assert torch.equal(model.state_dict()[key], value)


def on_meta(build, *args, **kwargs):
    with torch.device("meta"):
        return build(*args, **kwargs)


def test_state_dict_from_other_configuration_gives_clear_error():
    with pytest.raises(ValueError) as error:
        load_state_dict_checked(on_meta(vgg, "D"), on_meta(torchvision.models.vgg11).state_dict())
    message = str(error.value)
    assert "13 convolutions" in message and "8 convolutions" in message and "Build the model" in message


def test_batch_norm_mismatch_is_named():
    with pytest.raises(ValueError, match="batch_norm=True"):
        load_state_dict_checked(on_meta(vgg, "A"), on_meta(vgg, "A", batch_norm=True).state_dict())


def test_wrong_num_classes_is_a_shape_mismatch():
    with pytest.raises(ValueError, match="shape mismatch"):
        load_state_dict_checked(on_meta(vgg, "A"), on_meta(vgg, "A", num_classes=10).state_dict())


def test_pretrained_loader_uses_torchvision_weights(monkeypatch):
    """The online path, offline: the weights enum hands back a state dict we made."""
    made = vgg("A", init_weights=False).state_dict()
    calls = {}

    def fake_get_state_dict(self, progress=True, check_hash=True):
        calls["weights"] = str(self)
        return made

    monkeypatch.setattr(torchvision.models.VGG11_Weights, "get_state_dict", fake_get_state_dict)
    model, used = weights.pretrained_vgg("A", progress=False)
    assert calls["weights"] == "VGG11_Weights.IMAGENET1K_V1"
    assert not model.training
    assert torch.equal(model.state_dict()["classifier.6.weight"], made["classifier.6.weight"])
    assert len(used.meta["categories"]) == 1000


def test_pretrained_loader_offline_error(monkeypatch):
    def offline(self, progress=True, check_hash=True):
        raise OSError("no network")

    monkeypatch.setattr(torchvision.models.VGG16_Weights, "get_state_dict", offline)
    with pytest.raises(RuntimeError, match="internet access"):
        weights.pretrained_vgg("D")


def test_no_pretrained_weights_for_c():
    with pytest.raises(ValueError, match="A, B, D, E"):
        weights.torchvision_weights("C")


def test_a_whole_checkpoint_or_a_non_state_dict_is_explained():
    from vgg_lib.architecture.weights import load_state_dict_checked

    model = vgg("A", head="compact", width=0.125, num_classes=10, init_weights=False)
    with pytest.raises(TypeError, match=r"whole checkpoint.*load_checkpoint\(path, model\)"):
        load_state_dict_checked(model, {"format": "vgg_lib.checkpoint/2", "model": model.state_dict()})
    with pytest.raises(TypeError, match="not a list"):
        load_state_dict_checked(model, [1, 2])
    with pytest.raises(TypeError, match="holding non-tensor values"):
        load_state_dict_checked(model, {"features.0.weight": 1.0})


def test_a_vgg_refuses_another_network_s_state_dict_with_the_checked_loader_s_message():
    """``VGG.load_state_dict`` (what torch users call) says what ``load_state_dict_checked`` says."""
    model, other = on_meta(vgg, "D"), on_meta(vgg, "A").state_dict()
    with pytest.raises(ValueError) as checked:
        load_state_dict_checked(on_meta(vgg, "D"), other)
    with pytest.raises(ValueError) as direct:
        model.load_state_dict(other)
    assert str(direct.value) == str(checked.value)
    assert "13 convolutions" in str(direct.value) and "Build the model" in str(direct.value)
    # strict=False keeps torch's behaviour: it loads what fits and reports the rest
    tiny = vgg("A", head="compact", width=0.125, num_classes=10)
    result = tiny.load_state_dict({k: v for k, v in tiny.state_dict().items() if "classifier" not in k},
                                  strict=False)
    assert result.missing_keys == ["classifier.0.weight", "classifier.0.bias"]


def test_torchvision_names_and_models_for_the_configurations_it_has():
    assert [weights.torchvision_name(c) for c in ("A", "A-LRN", "B", "C", "D", "E")] == [
        "vgg11", None, "vgg13", None, "vgg16", "vgg19"]
    assert weights.torchvision_name("d", batch_norm=True) == "vgg16_bn"
    with torch.device("meta"):
        model = weights.torchvision_model("A", batch_norm=True)
    assert sum(p.numel() for p in model.parameters()) == sum(
        p.numel() for p in on_meta(vgg, "A", batch_norm=True).parameters())
    assert weights.torchvision_weights("D").meta["num_params"] == 138_357_544
    with pytest.raises(ValueError, match="A, B, D, E"):
        weights.torchvision_model("C")
