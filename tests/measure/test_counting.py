"""vgg_lib.measure.counting / shape_trace / saved_tensors against torchinfo, torchvision, torch's FLOP
counter, autograd's own saved tensors, live-tensor brute force and the paper's Table 2."""

import gc
import warnings

import pytest
import torch
import torchinfo
import torchvision
from torch import nn
from torch.multiprocessing.reductions import StorageWeakRef
from torch.utils.flop_counter import FlopCounterMode
from torchvision.models import get_model_weights

from vgg_lib import ModelSpec, count_parameters, vgg
from vgg_lib.architecture import configs
from vgg_lib.exercises import check
from vgg_lib.measure.counting import (config_costs, costs, inference_peak_bytes, layer_bias_adds, layer_macs,
                              live_bytes_per_layer, meta_model, saved_for_backward,
                              training_activation_bytes, training_state_bytes)
from vgg_lib.measure.saved_tensors import measure_saved_activations
from vgg_lib.measure.shape_trace import shape_walk, trace_shapes

TORCHVISION = {"A": "vgg11", "B": "vgg13", "D": "vgg16", "E": "vgg19"}
ALL_CONFIGS = list(configs.CONFIGS)


def torchvision_meta(config, batch_norm):
    name = TORCHVISION[config] + ("_bn" if batch_norm else "")
    with torch.device("meta"):
        return getattr(torchvision.models, name)(weights=None, init_weights=False)



# --- parameters -----------------------------------------------------------------------------

@pytest.mark.parametrize("config", list(TORCHVISION))
@pytest.mark.parametrize("batch_norm", [False, True])
def test_parameters_per_layer_and_total_match_torchvision(config, batch_norm):
    ours = meta_model(config, batch_norm=batch_norm)
    theirs = torchvision_meta(config, batch_norm)
    trace = trace_shapes(ours, 224)
    expected = [sum(p.numel() for p in m.parameters()) for m in theirs.modules()
                if isinstance(m, (nn.Conv2d, nn.BatchNorm2d, nn.Linear))]
    assert [l.parameters for l in trace.of_kind("conv", "bn", "fc")] == expected
    assert count_parameters(ours) == count_parameters(theirs)
    assert count_parameters(ours) == get_model_weights(
        TORCHVISION[config] + ("_bn" if batch_norm else "")).IMAGENET1K_V1.meta["num_params"]


@pytest.mark.parametrize("config", ALL_CONFIGS)
def test_totals_round_to_the_papers_table_2(config):
    # The paper's Table 2 gives millions, for the networks without batch norm.
    assert round(config_costs(config).parameters / 1e6) == configs.PAPER_PARAMETERS_MILLIONS[config]


def test_conv_and_fc_parameters_add_up():
    for config in ALL_CONFIGS:
        for batch_norm in (False, True):
            c = config_costs(config, batch_norm=batch_norm)
            assert c.conv_parameters + c.fc_parameters + c.bn_parameters == c.parameters
            model = meta_model(config, batch_norm=batch_norm)
            assert c.fc_parameters == count_parameters(model.classifier)


# --- multiply-adds ----------------------------------------------------------------------------

CASES = [("A", False, "imagenet", 224), ("A-LRN", True, "imagenet", 224), ("C", False, "imagenet", 224),
         ("D", True, "imagenet", 224), ("E", False, "imagenet", 224), ("B", True, "imagenet", 32),
         ("D", False, "imagenet", 32), ("C", True, "compact", 32), ("E", True, "compact", 32)]


@pytest.mark.parametrize("config, batch_norm, head, size", CASES)
def test_against_torchinfo(config, batch_norm, head, size):
    model = meta_model(config, batch_norm=batch_norm, head=head)
    trace = trace_shapes(model, size)
    batch = 2
    summary = torchinfo.summary(model, input_size=(batch, 3, size, size), device="meta", verbose=0)
    assert summary.total_params == count_parameters(model)
    # torchinfo's "Total mult-adds" = (weights + biases) x output positions for convolutions,
    # (weights + biases) for linear layers, and one per BN parameter, all times the batch.
    bn = sum(l.parameters for l in trace.of_kind("bn"))
    ours = sum(layer_macs(l) + layer_bias_adds(l) for l in trace) + bn
    assert summary.total_mult_adds == batch * ours
    # Same leaf layers, same output shapes, in the same order.
    leaves = [info for info in summary.summary_list if info.is_leaf_layer]
    modules = [l for l in trace if l.kind != "flatten"]
    assert [tuple(info.output_size[1:]) for info in leaves] == [l.output_shape for l in modules]
    # torchinfo's "Forward/backward pass size" is twice the outputs of layers with parameters.
    assert summary.total_output_bytes == 2 * batch * sum(
        l.output_bytes for l in trace if l.parameters)


@pytest.mark.parametrize("config, batch_norm, head, size", CASES)
def test_multiply_adds_are_half_of_torch_flop_counter(config, batch_norm, head, size):
    model = meta_model(config, batch_norm=batch_norm, head=head)
    with FlopCounterMode(display=False) as counter:
        model(torch.empty(3, 3, size, size, device="meta"))
    assert counter.get_total_flops() == 2 * 3 * costs(model, size).macs


@pytest.mark.parametrize("config", list(TORCHVISION))
@pytest.mark.parametrize("batch_norm", [False, True])
def test_multiply_adds_match_torchvision_metadata(config, batch_norm):
    # torchvision lists "GFLOPS" rounded to 3 decimals; they are multiply-adds without biases.
    name = TORCHVISION[config] + ("_bn" if batch_norm else "")
    documented = get_model_weights(name).IMAGENET1K_V1.meta["_ops"]
    assert round(config_costs(config, batch_norm=batch_norm).macs / 1e9, 3) == documented


def test_conv_compute_scales_with_area_and_fc_compute_does_not():
    big, small = config_costs("D", image_size=224), config_costs("D", image_size=32, num_classes=1000)
    assert big.conv_macs == 49 * small.conv_macs  # (224 / 32) ** 2 positions per feature map
    assert big.fc_macs == small.fc_macs and big.parameters == small.parameters


# --- shapes and names -------------------------------------------------------------------------

def test_vgg16_walk_and_names():
    trace = trace_shapes(meta_model("D"), 224)
    pools = [l.output_shape[1] for l in trace.of_kind("maxpool")]
    assert pools == [224 // 2 ** i for i in range(1, 6)]
    assert trace["flatten"].output_shape == (torchvision_meta("D", False).classifier[0].in_features,)
    assert [l.name for l in trace.of_kind("fc")] == ["fc6", "fc7", "fc8"]
    assert shape_walk(trace).endswith("512x7x7 -> 25088 -> 4096 -> 1000")


@pytest.mark.parametrize("config", ALL_CONFIGS)
def test_conv_names_follow_the_blocks_of_table_1(config):
    expected, block, index = [], 1, 0
    for item in configs.get_config(config):
        if item == "M":
            block, index = block + 1, 0
        elif item != "LRN":
            index += 1
            expected.append(f"conv{block}_{index}")
    assert [l.name for l in trace_shapes(meta_model(config), 32).of_kind("conv")] == expected


def test_meta_trace_equals_cpu_trace():
    torch.manual_seed(0)
    cpu = vgg("B", batch_norm=True, width=0.125)
    with torch.device("meta"):
        meta = vgg("B", batch_norm=True, width=0.125, init_weights=False)
    assert trace_shapes(cpu, 64, batch_size=2).layers == trace_shapes(meta, 64, batch_size=2).layers


# --- memory -----------------------------------------------------------------------------------

@pytest.mark.parametrize("config", ALL_CONFIGS)
@pytest.mark.parametrize("batch_norm", [False, True])
@pytest.mark.parametrize("head, size", [("imagenet", 224), ("imagenet", 32), ("compact", 32)])
def test_training_activations_match_autograd_saved_tensors(config, batch_norm, head, size, no_hooks_left):
    model = meta_model(config, batch_norm=batch_norm, head=head)
    trace = trace_shapes(model, size)
    measured = measure_saved_activations(model, size, batch_size=3)
    ours = {k: v for k, v in saved_for_backward(trace, batch_size=3).items() if v}
    assert ours == measured.by_module
    assert training_activation_bytes(trace, 3) == measured.total_bytes
    assert no_hooks_left(model)


def test_saved_tensors_on_cpu_equal_meta_and_a_hand_count():
    torch.manual_seed(0)
    cpu = vgg("A-LRN", width=0.25)
    with torch.device("meta"):
        meta = vgg("A-LRN", width=0.25, init_weights=False)
    assert measure_saved_activations(cpu, 32, 2).by_module == measure_saved_activations(meta, 32, 2).by_module
    # conv + in-place ReLU: autograd keeps the conv's input and the ReLU's output, nothing else.
    tiny = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(inplace=True))
    assert measure_saved_activations(tiny, 8).total_bytes == (3 * 64 + 4 * 64) * 4


def test_inference_peak_matches_tensors_actually_alive():
    torch.manual_seed(0)
    model = vgg("A", batch_norm=True, width=0.125).eval()

    def live_tensors():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return [obj for obj in gc.get_objects() if isinstance(obj, torch.Tensor)]

    # Everything alive before the pass (parameters, other tests' tensors) is held, so its memory
    # cannot be reused, and left out of the count.
    before = live_tensors()
    excluded = {StorageWeakRef(t.untyped_storage()) for t in before}
    alive = []

    def count_live_tensors(module, args, output):
        storages = {}
        for tensor in live_tensors():
            key = StorageWeakRef(tensor.untyped_storage())
            if key not in excluded:
                storages[key] = tensor.untyped_storage().nbytes()
        alive.append(sum(storages.values()))

    leaves = [m for m in model.modules() if next(m.children(), None) is None]
    handles = [m.register_forward_hook(count_live_tensors) for m in leaves]
    try:
        x = torch.randn(2, 3, 32, 32)
        with torch.no_grad():
            model(x)
    finally:
        for handle in handles:
            handle.remove()
    trace = trace_shapes(model, 32)
    assert [b for l, b in zip(trace, live_bytes_per_layer(trace, 2)) if l.kind != "flatten"] == alive
    assert inference_peak_bytes(trace, 2) == max(alive)


def test_training_state_matches_a_real_sgd_step():
    torch.manual_seed(0)
    model = vgg("A", head="compact", num_classes=10, width=0.25)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    model(torch.randn(2, 3, 32, 32)).sum().backward()
    optimizer.step()
    tensors = [p for p in model.parameters()] + [p.grad for p in model.parameters()] + \
              [s["momentum_buffer"] for s in optimizer.state.values()]
    assert training_state_bytes(model) == sum(t.numel() * t.element_size() for t in tensors)
    assert training_state_bytes(model, momentum=False) == 2 * sum(
        p.numel() * p.element_size() for p in model.parameters())


# --- hooks, modes and errors -------------------------------------------------------------------

def test_hooks_removed_and_mode_restored(no_hooks_left):
    model = meta_model("C", batch_norm=True)
    model.train()
    trace_shapes(model, 32)
    assert model.training and no_hooks_left(model)
    model.eval()
    measure_saved_activations(model, 32)
    assert not model.training and no_hooks_left(model)


def test_hooks_removed_when_the_forward_pass_fails(no_hooks_left):
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.MaxPool2d(2), nn.MaxPool2d(2), nn.MaxPool2d(2))
    with pytest.raises(ValueError, match="forward pass failed"):
        trace_shapes(model, 4)
    assert no_hooks_left(model) and model.training


def test_clear_errors():
    model = meta_model("D")
    with pytest.raises(ValueError, match=r"too small.*at least 32x32"):
        trace_shapes(model, 16)
    with pytest.raises(ValueError, match="not a size"):
        trace_shapes(model, "big")
    with pytest.raises(ValueError, match="at least one image"):
        trace_shapes(model, 224, batch_size=0)
    odd = nn.Sequential(nn.Conv2d(3, 4, 3), nn.GELU())
    with pytest.raises(ValueError, match="measure_saved_activations"):
        training_activation_bytes(trace_shapes(odd, 8))


# --- exercises ----------------------------------------------------------------------------------

def test_exercise_checks():
    assert check("layer_by_layer/conv3-2-parameters", 3 * 3 * 256 * 256 + 256, quiet=True)
    assert not check("layer_by_layer/conv3-2-parameters", 3 * 3 * 256 * 256, quiet=True)
    fc = 25088 * 4096 + 4096 * 4096 + 4096 * 1000
    assert check("layer_by_layer/fc-mac-share", fc / get_model_weights("vgg16").IMAGENET1K_V1.meta["_ops"] / 1e9,
                 quiet=True)
    # dense evaluation at 384: conv part at 384x384 plus the head at 6x6 positions
    conv_384 = config_costs("D", image_size=384).conv_macs
    assert check("layer_by_layer/dense-384-macs", conv_384 + 36 * fc, quiet=True)


def test_costs_take_a_model_spec():
    spec = ModelSpec("A", batch_norm=True, width=0.25, head="compact", num_classes=10)
    by_keywords = config_costs("A", batch_norm=True, image_size=32, head="compact", num_classes=10,
                               width=0.25)
    assert config_costs(spec, image_size=32) == by_keywords
