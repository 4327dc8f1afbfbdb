"""FolderData: folders of images in ImageFolder layout, decoded and augmented in DataLoader
workers with the paper's recipe (scale jittering, crops, flips, colour shift), in the same
fit as CIFAR-10 (the command's tests, tests/test_train.py, run it end to end)."""

import pytest
import torch

from support import colour_data, make_folder, tiny_model
from vgg_lib import TrainConfig, fit, load_image_folder
from vgg_lib.evaluation.engine import evaluate_protocols
from vgg_lib.evaluation.protocols import centre_crop, dense
from vgg_lib.training.folders import GlobalBatches, evaluation_transform, train_transform
from vgg_lib.training.loop import train_eval_data

pytestmark = pytest.mark.usefixtures("one_thread")


def test_scale_jittering_crops_flips_and_colour_shift(tmp_path):
    settings = TrainConfig(scale_jitter=(32, 64), crop=24, eval_scale=40, colour_shift=0.1,
                           crop_padding=0)
    image = torch.randint(0, 256, (3, 40, 60), dtype=torch.uint8)
    crops = [train_transform(image, settings, torch.Generator().manual_seed(s)) for s in range(20)]
    assert all(c.shape == (3, 24, 24) and c.dtype == torch.uint8 for c, _ in crops)
    assert len({tuple(a.tolist()) for _, a in crops}) == 20  # a colour shift per image
    again = train_transform(image, settings, torch.Generator().manual_seed(3))
    assert torch.equal(again[0], crops[3][0])  # the image's seed decides everything
    assert evaluation_transform(image, 40, 24).shape == (3, 24, 24)
    with pytest.raises(ValueError, match=r"S_min >= 224"):
        TrainConfig(scale_jitter=(200, 300), crop=224, crop_padding=0)


def test_global_batches_split_among_ranks_like_one_process():
    def share(rank):
        return lambda *tensors: tuple(t[rank * 4:(rank + 1) * 4] for t in tensors)

    one = list(GlobalBatches(40, 8, seed=1))
    two = [list(GlobalBatches(40, 8, seed=1, share=share(r))) for r in (0, 1)]
    assert len(one) == 5 and all(a + b == c for a, b, c in zip(*two, one))


def test_load_image_folder_lists_classes(tmp_path):
    data = load_image_folder(make_folder(tmp_path / "f", classes=2, train=2, val=1))
    assert data.classes == ["class0", "class1"] and len(data.train) == 4 and len(data.val) == 2


def test_a_folder_s_fingerprint_is_by_content_and_its_recipe_is_checked(tmp_path):
    data = load_image_folder(make_folder(tmp_path / "a", classes=2, train=2, val=1))
    print_free = data.fingerprint()
    assert print_free["train"]["images"] == 4 and print_free["val"]["images"] == 2
    assert str(tmp_path) not in str(print_free)
    moved = load_image_folder(make_folder(tmp_path / "b", classes=2, train=2, val=1))
    assert moved.fingerprint() == print_free  # the same files in another folder
    model = tiny_model()
    with pytest.raises(ValueError, match="scale jittering and a crop"):
        fit(model, data, TrainConfig(epochs=1), progress=False)


def test_one_protocol_engine_for_tensors_and_folders(tmp_path):
    """The centre crop and dense evaluation run through the same engine on a folder (images of
    several sizes: the workers cut what the views share) as on CIFAR's tensors."""
    data = load_image_folder(make_folder(tmp_path / "f", classes=3, train=1, val=4, size=(40, 52)))
    model = tiny_model().eval()
    protocols = [centre_crop(36, 32, flip=True), dense((32, 48), crop=32)]
    results = evaluate_protocols(model, data, protocols, split="val", workers=0, progress=False)
    assert [r.images for r in results.values()] == [12, 12] and all(r.macs is None for r in results.values())
    tensors = colour_data()
    on_tensors = evaluate_protocols(model, tensors, protocols, split="test", workers=0, progress=False)
    assert all(0 <= r.accuracy <= 1 and r.macs > 0 for r in on_tensors.values())
    with pytest.raises(ValueError, match="splits 'train' and 'val'"):
        evaluate_protocols(model, data, protocols, split="test", workers=0, progress=False)


def test_the_end_of_epoch_fit_is_refused_for_folders_with_the_way_out(tmp_path):
    data = load_image_folder(make_folder(tmp_path / "f", classes=2, train=2, val=1))
    with pytest.raises(ValueError, match="CIFAR's tensors .* leave it None for a folder"):
        train_eval_data(data, 2)
