"""Where CIFAR-10 comes from, what it looks like on the device, and the errors when it is absent."""

import urllib.error

import numpy as np
import pytest
import torch
import torchvision

from vgg_lib.training import cifar10 as data_module
from vgg_lib.training.cifar10 import load_cifar10
from vgg_lib.training.data import DataError, balanced_subset


def fake_arrays(n_train=60, n_test=20, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "x_train": rng.integers(0, 256, (n_train, 32, 32, 3), dtype=np.uint8),
        "y_train": (np.arange(n_train) % 10).astype(np.uint8),
        "x_test": rng.integers(0, 256, (n_test, 32, 32, 3), dtype=np.uint8),
        "y_test": (np.arange(n_test) % 10).astype(np.uint8),
        "classes": np.array(data_module.CLASSES),
    }


@pytest.fixture
def offline(tmp_path, monkeypatch):
    """Point VGG_CIFAR10_NPZ at a small synthetic file; return (path, arrays)."""
    arrays = fake_arrays()
    path = tmp_path / "sample.npz"
    np.savez(path, **arrays)
    monkeypatch.setenv("VGG_CIFAR10_NPZ", str(path))
    return path, arrays


@pytest.fixture
def online(tmp_path, monkeypatch):
    """No offline sample; the data folder is empty."""
    monkeypatch.delenv("VGG_CIFAR10_NPZ", raising=False)
    monkeypatch.setenv("VGG_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data"


class FakeCIFAR10:
    """Stands in for torchvision.datasets.CIFAR10 (same constructor, same attributes)."""

    calls = []
    arrays = fake_arrays(seed=3)

    def __init__(self, root, train=True, transform=None, target_transform=None, download=False):
        FakeCIFAR10.calls.append((root, train, download))
        split = "train" if train else "test"
        self.data = self.arrays[f"x_{split}"]
        self.targets = [int(v) for v in self.arrays[f"y_{split}"]]
        self.classes = list(data_module.CLASSES)


class OfflineCIFAR10:
    def __init__(self, *args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")


def test_offline_sample_becomes_device_tensors(offline):
    path, arrays = offline
    data = load_cifar10(device="cpu")
    assert data.x_train.shape == (60, 3, 32, 32) and data.x_train.dtype == torch.uint8
    assert data.y_train.shape == (60,) and data.y_train.dtype == torch.int64
    assert data.x_test.shape == (20, 3, 32, 32) and data.y_test.dtype == torch.int64
    # HWC -> CHW without scrambling pixels
    assert torch.equal(data.x_train[5].permute(1, 2, 0), torch.from_numpy(arrays["x_train"][5]))
    assert data.classes == list(data_module.CLASSES)
    assert data.source == f"offline file {path}"
    pixels = arrays["x_train"].reshape(-1, 3) / 255.0
    np.testing.assert_allclose(data.mean, pixels.mean(0), rtol=1e-9)
    np.testing.assert_allclose(data.std, pixels.std(0), rtol=1e-9)
    assert data.device == torch.device("cpu")


def test_normalized_training_images_have_zero_mean_unit_std(offline):
    data = load_cifar10(device="cpu")
    x = data.normalize(data.x_train).double()
    torch.testing.assert_close(x.mean((0, 2, 3)), torch.zeros(3, dtype=torch.float64), atol=1e-5, rtol=0)
    torch.testing.assert_close(x.std((0, 2, 3), correction=0), torch.ones(3, dtype=torch.float64),
                               atol=1e-5, rtol=0)


def test_subsets_are_class_balanced_and_seeded(offline):
    data = load_cifar10(device="cpu", train_images=30, test_images=10, seed=1)
    assert torch.bincount(data.y_train, minlength=10).tolist() == [3] * 10
    assert torch.bincount(data.y_test, minlength=10).tolist() == [1] * 10
    again = load_cifar10(device="cpu", train_images=30, test_images=10, seed=1)
    other = load_cifar10(device="cpu", train_images=30, test_images=10, seed=2)
    assert torch.equal(data.x_train, again.x_train)
    assert not torch.equal(data.x_train, other.x_train)


def test_validation_split_is_balanced_seeded_and_never_trained_on(offline):
    data = load_cifar10(device="cpu", validation=20, seed=1)
    _, arrays = offline
    assert torch.bincount(data.y_val, minlength=10).tolist() == [2] * 10
    assert len(data.x_train) + len(data.x_val) == len(arrays["y_train"])
    flat = lambda x: {bytes(image.numpy().tobytes()) for image in x}  # noqa: E731
    assert not flat(data.x_train) & flat(data.x_val)  # the images are all distinct in the file
    # the validation split does not depend on how many training images are kept
    smaller = load_cifar10(device="cpu", validation=20, train_images=30, seed=1)
    assert torch.equal(smaller.x_val, data.x_val) and len(smaller.x_train) == 30
    assert not flat(smaller.x_train) & flat(smaller.x_val)
    assert not torch.equal(load_cifar10(device="cpu", validation=20, seed=2).x_val, data.x_val)
    assert "20 validation" in repr(data)
    # the repr leaves the folders out, so that stored notebook outputs read the same on every
    # machine; data.source keeps the whole path for error messages
    assert f"source: offline file .../{offline[0].name})" in repr(data)
    assert str(offline[0].parent) not in repr(data) and str(offline[0]) in data.source
    assert len(load_cifar10(device="cpu").x_val) == 0  # none unless asked for
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match="validation"):
            load_cifar10(device="cpu", validation=bad)
    with pytest.raises(ValueError, match="leaves no training images"):
        load_cifar10(device="cpu", validation=len(arrays["y_train"]))


def test_balanced_subset_uneven_request():
    labels = np.repeat(np.arange(10), 7)
    chosen = balanced_subset(labels, 25, seed=0)
    counts = np.bincount(labels[chosen], minlength=10)
    assert len(set(chosen.tolist())) == 25 and counts.max() - counts.min() <= 1


def test_download_path_converts_once_and_caches(online, monkeypatch):
    FakeCIFAR10.calls = []
    monkeypatch.setattr(torchvision.datasets, "CIFAR10", FakeCIFAR10)
    data = load_cifar10(device="cpu")
    assert [(train, download) for _, train, download in FakeCIFAR10.calls] == [(True, True), (False, True)]
    assert all(root == str(online) for root, _, _ in FakeCIFAR10.calls)
    cache = online / "cifar10.npz"
    assert cache.is_file() and data.source == f"torchvision download (cached in {cache})"
    assert torch.equal(data.x_test.permute(0, 2, 3, 1), torch.from_numpy(FakeCIFAR10.arrays["x_test"]))
    assert data.y_train.tolist() == FakeCIFAR10.arrays["y_train"].tolist()
    assert not [p for p in online.iterdir() if p.name.endswith(".tmp")]
    # the second time, the cache is read and torchvision is not asked again
    monkeypatch.setattr(torchvision.datasets, "CIFAR10", OfflineCIFAR10)
    cached = load_cifar10(device="cpu")
    assert torch.equal(cached.x_train, data.x_train)


def test_no_source_gives_one_clear_error(online, monkeypatch):
    monkeypatch.setattr(torchvision.datasets, "CIFAR10", OfflineCIFAR10)
    with pytest.raises(DataError) as error:
        load_cifar10(device="cpu")
    message = str(error.value)
    for needle in ("VGG_CIFAR10_NPZ", str(online / "cifar10.npz"), "URLError",
                   "Temporary failure in name resolution", "internet", "cifar10-mini.npz"):
        assert needle in message


def test_env_var_pointing_nowhere(monkeypatch, tmp_path):
    monkeypatch.setenv("VGG_CIFAR10_NPZ", str(tmp_path / "nope.npz"))
    with pytest.raises(DataError, match="no file there"):
        load_cifar10(device="cpu")


def test_failed_cache_write_leaves_no_file(online, monkeypatch):
    monkeypatch.setattr(torchvision.datasets, "CIFAR10", FakeCIFAR10)

    def broken_savez(handle, **arrays):
        handle.write(b"PK\x03\x04 half a zip")
        raise OSError("No space left on device")

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(OSError, match="No space left"):
        load_cifar10(device="cpu")
    assert not (online / "cifar10.npz").exists()
    assert list(online.iterdir()) == []


def test_corrupt_file_is_reported(monkeypatch, tmp_path):
    path = tmp_path / "broken.npz"
    np.savez(path, **fake_arrays())
    path.write_bytes(path.read_bytes()[:5000])  # truncated download
    monkeypatch.setenv("VGG_CIFAR10_NPZ", str(path))
    with pytest.raises(DataError, match="Could not read .*broken.npz"):
        load_cifar10(device="cpu")


@pytest.mark.parametrize("change, expected", [
    (lambda a: a.pop("y_test"), "missing array 'y_test'"),
    (lambda a: a.update(x_train=a["x_train"].transpose(0, 3, 1, 2)), r"x_train has shape \(60, 3, 32, 32\)"),
    (lambda a: a.update(x_test=a["x_test"].astype(np.float32)), "x_test has dtype float32"),
    (lambda a: a.update(y_train=a["y_train"] + 5), "labels from 5 to 14"),
    (lambda a: a.update(y_test=a["y_test"][:7]), "20 images but y_test has 7 labels"),
])
def test_malformed_file_is_reported_not_half_used(monkeypatch, tmp_path, change, expected):
    arrays = fake_arrays()
    change(arrays)
    path = tmp_path / "odd.npz"
    np.savez(path, **arrays)
    monkeypatch.setenv("VGG_CIFAR10_NPZ", str(path))
    with pytest.raises(DataError, match=expected):
        load_cifar10(device="cpu")


# --- files that are not what they claim to be: refused before anything is allocated --------

def _point_at(monkeypatch, path):
    monkeypatch.setenv("VGG_CIFAR10_NPZ", str(path))
    return path


def test_a_single_npy_array_is_not_an_npz(monkeypatch, tmp_path):
    path = tmp_path / "x_train.npy"
    np.save(path, fake_arrays()["x_train"])
    _point_at(monkeypatch, path)
    with pytest.raises(DataError, match=r"single NumPy array \(\.npy\), not an \.npz.*np\.savez"):
        load_cifar10(device="cpu")


def _npz_with_header(path, shape):
    """An npz whose x_train header claims ``shape`` but which stores 1,000 bytes for it."""
    import zipfile

    with zipfile.ZipFile(path, "w") as archive:
        for name, array in fake_arrays().items():
            with archive.open(name + ".npy", "w") as member:
                if name == "x_train":
                    np.lib.format.write_array_header_1_0(
                        member, {"descr": "|u1", "fortran_order": False, "shape": shape})
                    member.write(bytes(1000))
                else:
                    np.lib.format.write_array(member, array)
    return path


def test_a_header_claiming_a_huge_array_is_refused_before_allocating(monkeypatch, tmp_path):
    _point_at(monkeypatch, _npz_with_header(tmp_path / "lying.npz", (10**9, 32, 32, 3)))
    allocations = []
    monkeypatch.setattr(np, "empty", lambda *a, **k: allocations.append(a))
    with pytest.raises(DataError, match=r"claims shape \(1000000000, 32, 32, 3\).*2,861\.0 GiB.*"
                                        r"holds only 1,000 bytes"):
        load_cifar10(device="cpu")
    assert allocations == []


def test_a_file_larger_than_the_free_memory_is_refused(offline, monkeypatch):
    monkeypatch.setattr(data_module, "available_memory", lambda: 100_000)
    with pytest.raises(DataError, match=r"more than the 97\.7 KiB of memory this machine has free"):
        load_cifar10(device="cpu")
    monkeypatch.setattr(data_module, "available_memory", lambda: None)  # unknown: no check
    assert len(load_cifar10(device="cpu").x_train) == 60


@pytest.mark.parametrize("channels, expected", [((0, 1, 2), r"channel\(s\) R .*G .*B "), ((1,), r"channel\(s\) G ")])
def test_constant_images_are_refused_not_turned_into_nan(monkeypatch, tmp_path, channels, expected):
    arrays = fake_arrays()
    arrays["x_train"][..., list(channels)] = 7
    np.savez(_point_at(monkeypatch, tmp_path / "blank.npz"), **arrays)
    with pytest.raises(DataError, match=f"Cannot normalise the 60 training images: {expected}.*NaN"):
        load_cifar10(device="cpu")


@pytest.mark.parametrize("classes, expected", [
    (data_module.CLASSES[:9], r"classes lists 9 name\(s\).*labels go up to 9"),
    (data_module.CLASSES + ("extra",), r"classes lists 11 name\(s\)"),
    (data_module.CLASSES[:9] + ("cat",), "classes repeats names"),
])
def test_class_names_that_do_not_match_the_labels(monkeypatch, tmp_path, classes, expected):
    arrays = dict(fake_arrays(), classes=np.array(classes))
    np.savez(_point_at(monkeypatch, tmp_path / "names.npz"), **arrays)
    with pytest.raises(DataError, match=expected):
        load_cifar10(device="cpu")


def test_the_fingerprint_tells_other_data_apart(offline):
    data = load_cifar10(device="cpu")
    same = load_cifar10(device="cpu").fingerprint()
    assert data.fingerprint() == same and same["train"]["images"] == 60
    assert load_cifar10(device="cpu", train_images=50).fingerprint() != same
    assert load_cifar10(device="cpu", validation=10).fingerprint()["val"]["images"] == 10
    data.y_train[:2] = data.y_train[:2].flip(0)
    assert data.fingerprint()["train"]["sha256"] != same["train"]["sha256"]
    data.x_test[0, 0, 0, 0] ^= 1  # one bit of one test pixel
    assert data.fingerprint()["test"]["sha256"] != same["test"]["sha256"]
    # by content only: the same images read from another folder are the same data
    data = load_cifar10(device="cpu")
    data.source = "offline file /elsewhere/cifar10-full.npz"
    assert data.fingerprint() == same and "elsewhere" not in str(same)


@pytest.mark.parametrize("setting, value", [("train_images", 50.5), ("train_images", 0),
                                            ("test_images", "10"), ("seed", -1), ("train_images", True)])
def test_a_subset_that_is_no_whole_number_is_named(offline, setting, value):
    with pytest.raises(ValueError, match=rf"{setting}={value!r}: use a whole number"):
        load_cifar10(device="cpu", **{setting: value})
