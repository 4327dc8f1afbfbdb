"""fit(..., train_eval_images=n): the training loss and accuracy measured at the end of every
epoch in eval mode on fixed training images (chapter 10's degradation test), and studies that
store them."""

import json

import pytest
import torch

from vgg_lib.architecture.spec import ModelSpec
from vgg_lib.training.loop import evaluate, fit, train_eval_indices
from vgg_lib.training.recipe import TrainConfig
from vgg_lib.training.reproducibility import seed_everything
from vgg_lib.training.studies import StudyRun, run_fingerprint, run_study, training_subset

from test_studies import random_data  # 96 random training images, 20 validation, 20 test

pytestmark = pytest.mark.usefixtures("one_thread")

SPEC = ModelSpec(config="A", batch_norm=True, width=0.0625, head="compact", num_classes=10,
                 shortcuts="identity")
RECIPE = TrainConfig(epochs=2, batch_size=32, lr=0.05)


def trained(data, **options):
    seed_everything(0)
    model = SPEC.build()
    history = fit(model, data, RECIPE, progress=False, precision="fp32", **options)
    return model, history


def test_train_eval_changes_nothing_the_run_computes_and_measures_the_end_of_each_epoch():
    data = random_data()
    plain_model, plain_history = trained(data)
    model, history = trained(data, train_eval_images=40)
    for a, b in zip(plain_model.state_dict().values(), model.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert plain_history.steps == history.steps
    assert all("train_eval_loss" not in e for e in plain_history.epochs)
    # the last epoch's figures are those of the finished model, evaluated on the same images
    index = train_eval_indices(data, 40)
    loss, accuracy = evaluate(model, data, split="train", indices=index, precision="fp32")
    last = history.epochs[-1]
    assert (last["train_eval_loss"], last["train_eval_accuracy"]) == pytest.approx((loss, accuracy))
    assert len({e["train_eval_loss"] for e in history.epochs}) == RECIPE.epochs


def test_train_eval_images_are_fixed_and_class_balanced():
    data = random_data()
    index = train_eval_indices(data, 40)
    assert torch.equal(index, train_eval_indices(data, 40)) and len(set(index.tolist())) == 40
    assert torch.bincount(data.y_train[index], minlength=10).tolist() == [4] * 10


@pytest.mark.parametrize("bad, message", [(0, "whole number >= 1"), (2.5, "whole number >= 1"),
                                          (97, "at most that many")])
def test_bad_train_eval_images_are_refused_before_training(bad, message):
    with pytest.raises(ValueError, match=message):
        fit(SPEC.build(), random_data(), RECIPE, progress=False, train_eval_images=bad)


def test_studies_store_the_end_of_epoch_figures(tmp_path):
    data = random_data()
    run = StudyRun("A-res", SPEC, RECIPE, train_eval_images=40)
    (result,) = run_study([run], data, tmp_path, progress=False, precision="fp32")
    assert len(result.train_eval_loss) == RECIPE.epochs
    (reused,) = run_study([run], data, tmp_path, progress=False, precision="fp32")
    assert reused.reused and reused.train_eval_accuracy == result.train_eval_accuracy
    stored = json.loads(next(tmp_path.glob("*.json")).read_text())
    assert stored["fingerprint"]["train_eval_images"] == 40
    # a run without them keeps the fingerprint it had before the option existed
    without = StudyRun("A-res", SPEC, RECIPE)
    assert "train_eval_images" not in run_fingerprint(without, training_subset(data, None))
    with pytest.raises(TypeError, match="train_eval_images"):
        run_study([without], data, tmp_path / "other", progress=False, train_eval_images=40)
