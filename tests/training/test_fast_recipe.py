"""airbench's training tricks as recipe settings (issue #25, vgg_lib/training/airbench.py): each
changes what it should and nothing else, is undone when fit returns, resumes exactly, refuses
what it cannot do; at their defaults fit computes what it did before they existed and the
recipe reads (to_dict, repr) as it did, so shipped records still match their runs."""

import json
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from support import AIRBENCH, ROOT, SETTINGS, colour_data, make_folder, same_weights, tiny_model
from vgg_lib import TrainConfig, fit, load_image_folder
from vgg_lib.experiments.runs import read_record, record_path
from vgg_lib.train import build_parser
from vgg_lib.training import airbench
from vgg_lib.training.loop import make_optimizer
from vgg_lib.training.recipe import LATER_SETTINGS, PAPER_IMAGENET_AUGMENTATION

pytestmark = pytest.mark.usefixtures("one_thread")

# TrainConfig's fields before issue #25: what every shipped record's recipe holds
FIELDS_BEFORE = ["epochs", "lr", "batch_size", "optimizer", "momentum", "nesterov", "weight_decay",
                 "schedule", "label_smoothing", "augment", "crop_padding", "seed", "tta_flip",
                 "scale_jitter", "crop", "colour_shift", "eval_scale"]
DEFAULTS = dict(whiten_first_layer=False, dirac_init=False, bn_scale=True, bn_bias_lr=1.0,
                bn_momentum=None, lookahead=False, alternating_flip=False)


def first_conv(model):
    return model.features[0]


def batch_norms(model):
    return [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]


# --- the recipe: defaults read as before, bad values refused ---------------------------------

def test_the_recipe_reads_as_before_unless_it_uses_the_new_settings():
    plain = TrainConfig(epochs=5, lr=0.3, nesterov=True)
    assert list(plain.to_dict()) == FIELDS_BEFORE
    assert TrainConfig(**DEFAULTS).to_dict() == TrainConfig().to_dict()
    # printed as the dataclass printed it before (chapter 5 shows the quick profile's recipe)
    assert repr(plain) == f"TrainConfig({', '.join(f'{k}={getattr(plain, k)!r}' for k in FIELDS_BEFORE)})"
    fast = plain.replace(**AIRBENCH)
    assert list(fast.to_dict()) == FIELDS_BEFORE + list(AIRBENCH)
    assert repr(fast).endswith(", eval_scale=None, whiten_first_layer=True, dirac_init=True, "
                               "bn_scale=False, bn_bias_lr=8.0, bn_momentum=0.4, lookahead=True, "
                               "alternating_flip=True)")
    assert TrainConfig.from_dict(plain.to_dict()) == plain  # a dict written before reads back
    assert TrainConfig.from_dict(json.loads(json.dumps(fast.to_dict()))) == fast
    assert fast.differences(plain) == list(AIRBENCH)


def test_a_shipped_record_still_matches_its_recipe():
    """A record made before the new settings (chapter 8's quick study) reads back to the same
    dict; one of the quick profile, which uses them, stores them."""
    for path in sorted((ROOT / "results" / "depth_study_quick").glob("*.json"))[:3]:
        stored = read_record(path).identity["recipe"]
        assert TrainConfig.from_dict(stored).to_dict() == stored
        assert not set(LATER_SETTINGS) & set(stored)
    from vgg_lib.experiments.training_cifar10 import profile_plan, training_study_name
    from vgg_lib.training.profiles import make_profile

    profile = make_profile("quick", "cpu")
    worked = profile_plan(profile)[0]
    stored = read_record(record_path(ROOT / "results" / training_study_name("quick"), worked.name)).identity["recipe"]
    assert TrainConfig.from_dict(stored).to_dict() == stored == profile.recipe.replace(seed=worked.seed).to_dict()
    assert stored["whiten_first_layer"] and stored["tta_shift"] == 1


@pytest.mark.parametrize("changes, message", [
    (dict(whiten_first_layer=1), "whiten_first_layer=1 \\(True or False\\)"),
    (dict(dirac_init="yes"), "dirac_init='yes'"), (dict(lookahead=None), "lookahead=None"),
    (dict(bn_scale=0), "bn_scale=0"), (dict(alternating_flip=1.0), "alternating_flip=1.0"),
    (dict(bn_bias_lr=-1.0), "bn_bias_lr=-1.0"), (dict(bn_bias_lr=math.inf), "bn_bias_lr=inf"),
    (dict(bn_momentum=0), "bn_momentum=0 \\(None for the modules' own"),
    (dict(bn_momentum=1.5), "bn_momentum=1.5"), (dict(bn_momentum=math.nan), "bn_momentum=nan"),
    (dict(alternating_flip=True, augment=False), "alternating_flip=True with augment=False"),
    (dict(whiten_first_layer=True, optimizer="adam"), "whiten_first_layer=True with optimizer='adam'"),
])
def test_bad_values_of_the_new_settings_are_refused(changes, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**changes)


def test_the_training_command_has_an_option_for_each_new_setting():
    args = build_parser().parse_args(["--whiten-first-layer", "--no-bn-scale", "--bn-bias-lr", "64",
                                      "--bn-momentum", "0.4", "--lookahead", "--alternating-flip",
                                      "--dirac-init"])
    assert {name: getattr(args, name) for name in AIRBENCH} == dict(AIRBENCH, bn_bias_lr=64.0)


# --- defaults: fit as before ------------------------------------------------------------------

def test_at_their_defaults_fit_computes_what_it_did_before():
    """The new settings passed at their defaults change nothing (weights, losses), the optimiser
    keeps its two groups and the history's config the recipe's old fields. (That this is also
    bit for bit the run of the code before issue #25 was checked when they were added: the final
    weights of this and four other short runs, resumed included, had the same sha256.)"""
    data = colour_data()
    plain, explicit = tiny_model(), tiny_model()
    h_plain = fit(plain, data, **SETTINGS)
    h_explicit = fit(explicit, data, **SETTINGS, **DEFAULTS)
    assert same_weights(plain, explicit) and h_plain.steps == h_explicit.steps
    assert [k for k in h_plain.config if k in TrainConfig.field_names()] == FIELDS_BEFORE
    groups = make_optimizer(plain, TrainConfig()).param_groups
    assert len(groups) == 2 and sum(len(g["params"]) for g in groups) == len(list(plain.parameters()))


# --- whitening of the first layer -----------------------------------------------------------

def test_patch_whitening_whitens_the_patches():
    images = torch.randn(40, 3, 12, 12, generator=torch.Generator().manual_seed(0))
    images[:, 1] += 0.5 * images[:, 0]  # correlated channels
    whitening = airbench.patch_whitening(images, eps=0.0, chunk=7)
    patches = images.unfold(2, 3, 1).unfold(3, 3, 1).permute(0, 2, 3, 1, 4, 5).reshape(-1, 27).double()
    covariance = torch.cov(patches.T, correction=0)
    identity = torch.eye(27, dtype=torch.float64)
    assert torch.allclose(whitening @ covariance @ whitening.T, identity, atol=1e-8)
    assert torch.allclose(airbench.preconditioner(airbench.patch_whitening(images, eps=0.1)),
                          torch.linalg.inv(covariance + 0.1 * identity), atol=1e-8)


def test_the_gradient_hook_is_sgd_on_the_whitened_parametrisation():
    """SGD (momentum, Nesterov, weight decay) on P of W = P @ Wh, as the tuning prototype trains it,
    and SGD on W with its gradient multiplied by Wh^T Wh (the hook) give the same W, step by step."""
    torch.manual_seed(0)
    whitening = airbench.patch_whitening(torch.randn(20, 3, 10, 10), eps=5e-4)
    p = (torch.randn(8, 27, dtype=torch.float64) * math.sqrt(2 / 27)).requires_grad_()
    conv = nn.Conv2d(3, 8, 3, padding=1, bias=False).double()
    with torch.no_grad():
        conv.weight.copy_((p @ whitening).view(8, 3, 3, 3))
    unhooked = nn.Conv2d(3, 8, 3, padding=1, bias=False).double()
    unhooked.load_state_dict(conv.state_dict())
    airbench.precondition(conv, whitening)
    options = dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-3)
    optimizers = [torch.optim.SGD(params, **options)
                  for params in ([p], conv.parameters(), unhooked.parameters())]
    target = torch.randn(4, 8, 10, 10, dtype=torch.float64)
    for step in range(4):
        x = torch.randn(4, 3, 10, 10, dtype=torch.float64)
        outputs = (lambda: F.conv2d(x, (p @ whitening).view(8, 3, 3, 3), padding=1), lambda: conv(x),
                   lambda: unhooked(x))
        for optimizer, output in zip(optimizers, outputs):
            optimizer.zero_grad()
            ((output() - target) ** 2).mean().backward()
            optimizer.step()
        assert torch.allclose(conv.weight.flatten(1), p @ whitening, rtol=1e-9, atol=1e-12), step
    assert not torch.allclose(unhooked.weight.flatten(1), p @ whitening, rtol=1e-3)  # the hook matters


def gradient_of_first_layer(model, data):
    model.zero_grad()
    x = data.normalize(data.x_train[:16])
    F.cross_entropy(model(x), data.y_train[:16]).backward()
    return first_conv(model).weight.grad.clone()


def test_fit_starts_the_whitened_layer_at_p_times_wh_and_takes_its_hook_off():
    data = colour_data()
    model = tiny_model()
    bias = first_conv(model).bias.detach().clone()
    hooks_during = []
    start = {}

    def watch(step, watched, loss):
        hooks_during.append(len(first_conv(watched).weight._backward_hooks))
        if step == 1:
            start.update(weight=first_conv(watched).weight.detach().clone(),
                         bias=first_conv(watched).bias.detach().clone())

    fit(model, data, **SETTINGS, whiten_first_layer=True, max_steps=3, step_callback=watch)
    assert hooks_during == [1, 1, 1] and not first_conv(model).weight._backward_hooks
    assert torch.equal(start["bias"], bias)  # the bias is left as it is
    whitening = airbench.first_layer_whitening(data)
    p = start["weight"].flatten(1).double() @ torch.linalg.inv(whitening)  # W = P @ Wh
    assert abs(p.std().item() / math.sqrt(2 / 27) - 1) < 0.2  # P ~ N(0, 2/d), 216 draws
    # after fit, the model's gradient is a plain one again: the same as a hook-free copy's (up to
    # rounding: fit left the model channels-last); the hook would multiply it by a matrix whose
    # entries reach hundreds
    copy = tiny_model(seed=9)
    copy.load_state_dict(model.state_dict())
    assert torch.allclose(gradient_of_first_layer(model, data), gradient_of_first_layer(copy, data),
                          rtol=1e-3, atol=1e-6)
    # a second fit on the same model registers the hook once, again
    hooks_during.clear()
    fit(model, data, **SETTINGS, whiten_first_layer=True, max_steps=2, step_callback=watch)
    assert hooks_during == [1, 1] and not first_conv(model).weight._backward_hooks


def test_whitening_refuses_what_it_cannot_whiten(tmp_path):
    data = colour_data()
    five = nn.Sequential(nn.Conv2d(3, 4, 5, padding=2), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(4, 10))
    with pytest.raises(ValueError, match="first layer is a 5x5 convolution of 3 channels"):
        fit(five, data, **SETTINGS, whiten_first_layer=True)
    linear = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 10))
    with pytest.raises(ValueError, match="first layer is a Linear"):
        fit(linear, data, **SETTINGS, whiten_first_layer=True)
    folder = load_image_folder(make_folder(tmp_path / "f", classes=2, train=2, val=1))
    recipe = TrainConfig(**PAPER_IMAGENET_AUGMENTATION).replace(scale_jitter=(32, 40), crop=32, eval_scale=36)
    with pytest.raises(ValueError, match="needs CIFAR's tensors .* not a FolderData"):
        fit(tiny_model(), folder, recipe, whiten_first_layer=True, progress=False)
    with pytest.raises(ValueError, match="alternating_flip=True works on CIFAR's tensors"):
        fit(tiny_model(), folder, recipe, alternating_flip=True, progress=False)


# --- dirac initialisation -------------------------------------------------------------------

@pytest.mark.parametrize("whiten", [False, True])
def test_dirac_init_sets_the_first_filters_of_every_3x3_convolution(whiten):
    data = colour_data()
    reference, model = tiny_model(), tiny_model()
    start = {}

    def first_step(step, watched, loss):
        if step == 1:
            start.update({k: v.detach().clone() for k, v in watched.state_dict().items()})

    fit(model, data, **SETTINGS, dirac_init=True, whiten_first_layer=whiten, max_steps=1,
        step_callback=first_step)
    convs = [(name, m) for name, m in reference.named_modules() if isinstance(m, nn.Conv2d)]
    for index, (name, conv) in enumerate(convs):
        weight, own = start[f"{name}.weight"], conv.weight.detach()
        if index == 0 and whiten:
            assert not torch.equal(weight, own) and weight[:, :, 1, 1].abs().sum() > 0
            assert not torch.equal(weight[:3], torch.nn.init.dirac_(torch.empty(3, 3, 3, 3)))
            continue
        k = min(weight.shape[:2])
        assert torch.equal(weight[:k], torch.nn.init.dirac_(torch.empty(k, *weight.shape[1:]))), name
        assert torch.equal(weight[k:], own[k:]), name  # the rest: the model's own initialisation
    for name, value in reference.named_parameters():  # and no other parameter changes
        if not (name.startswith("features.") and value.ndim == 4):
            assert torch.equal(start[name], value), name


# --- batch norm -----------------------------------------------------------------------------

def test_frozen_batch_norm_scales_stay_at_one_and_are_trainable_again_after_fit():
    data = colour_data()
    model = tiny_model()
    biases = [m.bias.detach().clone() for m in batch_norms(model)]
    optimizer = make_optimizer(model, TrainConfig(bn_scale=False))
    scales = {id(m.weight) for m in batch_norms(model)}
    assert not scales & {id(p) for g in optimizer.param_groups for p in g["params"]}
    fit(model, data, **SETTINGS, bn_scale=False, max_steps=4)
    assert all(torch.equal(m.weight, torch.ones_like(m.weight)) for m in batch_norms(model))
    assert all(not torch.equal(m.bias, b) for m, b in zip(batch_norms(model), biases))
    assert all(m.weight.requires_grad and m.weight.grad is None for m in batch_norms(model))


def test_the_batch_norm_biases_get_their_own_learning_rate_and_nothing_else_changes():
    recipe = TrainConfig(lr=0.2, bn_bias_lr=64.0)
    model = tiny_model()
    groups = make_optimizer(model, recipe).param_groups
    assert [g["lr"] for g in groups] == [0.2, 0.2, 0.2 * 64]
    assert {id(p) for p in groups[2]["params"]} == {id(m.bias) for m in batch_norms(model)}
    assert groups[2]["weight_decay"] == 0.0
    # one step from the same start with the same batch: the biases move 4x as far, all else alike
    data = colour_data()
    start, once, four = tiny_model(), tiny_model(), tiny_model()
    quick = dict(SETTINGS, momentum=0.0, max_steps=1)
    fit(once, data, **quick)
    fit(four, data, **quick, bn_bias_lr=4.0)
    for name, value in start.state_dict().items():
        moved_once, moved_four = once.state_dict()[name] - value, four.state_dict()[name] - value
        if name.endswith(".bias") and any(name == f"{n}.bias" for n, m in start.named_modules()
                                          if isinstance(m, nn.BatchNorm2d)):
            assert moved_once.abs().sum() > 0 and torch.allclose(moved_four, 4 * moved_once, rtol=1e-5, atol=1e-7), name
        else:
            assert torch.equal(moved_once, moved_four), name


def test_the_batch_norm_momentum_is_set_for_the_run_and_restored_even_after_an_error():
    data = colour_data()
    model = tiny_model()
    batch_norms(model)[0].momentum = 0.2  # a module's own momentum is restored, whatever it was
    seen = []

    def watch(step, watched, loss):
        seen.append({m.momentum for m in batch_norms(watched)})
        if step == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fit(model, data, **SETTINGS, bn_momentum=0.4, bn_scale=False, whiten_first_layer=True,
            step_callback=watch)
    assert seen == [{0.4}, {0.4}]
    assert [m.momentum for m in batch_norms(model)][:2] == [0.2, 0.1]
    assert all(m.weight.requires_grad for m in batch_norms(model))
    assert not first_conv(model).weight._backward_hooks


# --- alternating flips ----------------------------------------------------------------------

def flips_by_image(data, batches):
    """For every training image seen in ``batches`` (crop_padding 0, so only flips change it):
    whether it came out mirrored."""
    originals = data.normalize(data.x_train).flatten(1)
    mirrored = data.normalize(data.x_train.flip(3)).flatten(1)
    flipped = {}
    for x, _ in batches:
        x = x.flatten(1)
        exact = "donot_use_mm_for_euclid_dist"
        plain = torch.cdist(x, originals, compute_mode=exact).min(1)
        mirror = torch.cdist(x, mirrored, compute_mode=exact).min(1)
        assert bool(((plain.values == 0) | (mirror.values == 0)).all())
        for i, is_plain in enumerate(plain.values == 0):
            flipped[int(plain.indices[i] if is_plain else mirror.indices[i])] = not bool(is_plain)
    return flipped


def test_alternating_flips_mirror_each_image_in_every_other_epoch():
    data = colour_data()
    recipe = TrainConfig(batch_size=32, crop_padding=0, alternating_flip=True)
    epochs = data.training_batches(recipe, torch.Generator().manual_seed(0))
    seen = [flips_by_image(data, epochs(epoch)) for epoch in range(4)]
    assert all(len(s) == data.train_images for s in seen)
    for before, after in zip(seen, seen[1:]):
        assert all(after[i] != before[i] for i in before)
    assert 0.25 < sum(seen[0].values()) / data.train_images < 0.75  # sides drawn, not all alike
    # the coin toss per view (the default) does not alternate
    coin = data.training_batches(recipe.replace(alternating_flip=False), torch.Generator().manual_seed(0))
    first, second = flips_by_image(data, coin(0)), flips_by_image(data, coin(1))
    assert any(first[i] == second[i] for i in first)


def test_alternating_flips_split_among_processes_like_one_process():
    data = colour_data()
    recipe = TrainConfig(batch_size=32, crop_padding=2, alternating_flip=True)

    def shares(rank):
        return lambda *tensors: tuple(t[rank * 16:(rank + 1) * 16] for t in tensors)

    one = list(data.training_batches(recipe, torch.Generator().manual_seed(3))(1))
    parts = [list(data.training_batches(recipe, torch.Generator().manual_seed(3), share=shares(r))(1))
             for r in range(2)]
    for whole, half0, half1 in zip(one, *parts):
        assert torch.equal(whole[0], torch.cat([half0[0], half1[0]]))
    with pytest.raises(ValueError, match="give the batch's flip flags"):
        data.training_batch(torch.arange(32), recipe, torch.Generator())


# --- lookahead ------------------------------------------------------------------------------

def test_lookahead_is_the_prototype_s_moving_average():
    model = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    total, generator = 20, torch.Generator().manual_seed(0)
    lookahead = airbench.Lookahead(model, total)
    average = None
    for step in range(1, total + 1):
        with torch.no_grad():  # "training": new weights and statistics every step
            for value in model.state_dict().values():
                if value.is_floating_point():
                    value.add_(torch.randn(value.shape, generator=generator))
        state = [v for v in model.state_dict().values() if v.is_floating_point()]
        if step >= 0.3 * total and step % 5 == 0:  # tune_fast_recipe.py's train(), ema=(0.3, 0.95, 5)
            if average is None:
                average = [v.clone() for v in state]
            else:
                rho = 0.95 ** 5 * (step / total) ** 3
                average = [a + (1 - rho) * (v - a) for a, v in zip(average, state)]
            expected = [a.clone() for a in average]
        lookahead.update(step)
        if step >= 10:
            after = [v for v in model.state_dict().values() if v.is_floating_point()]
            if step % 5 == 0:
                assert all(torch.allclose(a, e) for a, e in zip(after, expected)), step
    assert sorted(lookahead.average) == ["0.bias", "0.weight", "1.bias", "1.running_mean",
                                         "1.running_var", "1.weight"]
    lookahead.finish()
    assert all(torch.equal(v, lookahead.average[k]) for k, v in model.state_dict().items()
               if v.is_floating_point())


def test_with_lookahead_the_run_ends_with_the_average():
    """18 steps: the average is last updated at step 15 (and the weights reset to it); steps 16 to
    18 train on, but the run ends with the average of step 15."""
    data = colour_data()
    model = tiny_model()
    at_16 = {}

    def watch(step, watched, loss):
        if step == 16:  # before step 16's update: the weights are step 15's average
            at_16.update({n: p.detach().clone() for n, p in watched.named_parameters()})

    fit(model, data, **dict(SETTINGS, epochs=6), lookahead=True, step_callback=watch)
    assert all(torch.equal(p, at_16[n]) for n, p in model.named_parameters())
    plain = tiny_model()
    fit(plain, data, **dict(SETTINGS, epochs=6))
    assert not same_weights(plain, model)
