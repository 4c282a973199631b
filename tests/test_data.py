"""Loaders on small files written in the real formats: digits split, CIFAR-10 pickle, ImageNet folders."""
import pickle

import numpy as np
import pytest
import torch

from empirical.data import load_cifar10, load_dataset, load_digits, load_imagenet




def test_digits_split_is_fixed_disjoint_and_stratified():
    from sklearn.datasets import load_digits as sk

    train, test = load_digits("train"), load_digits("test")
    assert (len(train), len(test)) == (1347, 450)
    assert train.x.shape == (1347, 1, 16, 16) and test.x.dtype == torch.float32
    assert float(test.x.min()) >= 0.0 and float(test.x.max()) <= 1.0
    assert torch.equal(test.ids, torch.arange(450))
    counts = torch.bincount(test.y, minlength=10)
    assert int(counts.min()) >= 43 and int(counts.max()) <= 46          # stratified: ~45 per class
    raw8 = load_digits("all", resolution=8).x.reshape(1797, 64)
    ref = torch.from_numpy(sk().data.astype(np.float32) / 16.0)
    assert torch.equal(raw8, ref)                                      # 8x8 path is the raw data / 16
    t8, r8 = load_digits("test", 8).x.reshape(450, 64), load_digits("train", 8).x.reshape(1347, 64)
    rows = {tuple(r.tolist()) for r in ref}
    assert all(tuple(r.tolist()) in rows for r in t8[:20])
    assert torch.equal(load_digits("test").x, test.x)                  # deterministic
    assert len({tuple(r.tolist()) for r in t8} & {tuple(r.tolist()) for r in r8}) <= 5   # only duplicate images


def test_digits_bad_arguments():
    with pytest.raises(ValueError, match="split"):
        load_digits("val")
    with pytest.raises(ValueError, match="resolution"):
        load_digits("test", resolution=4)


def _write_cifar(folder, n=6):
    rng = np.random.default_rng(3)
    data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
    labels = [int(v) for v in rng.integers(0, 10, size=n)]
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "test_batch", "wb") as f:
        pickle.dump({b"batch_label": b"testing batch 1 of 1", b"data": data, b"labels": labels,
                     b"filenames": [b"x.png"] * n}, f)
    return data, labels


def test_cifar10_reads_official_python_batch(tmp_path):
    data, labels = _write_cifar(tmp_path / "cifar-10-batches-py")
    for root in (tmp_path, tmp_path / "cifar-10-batches-py"):
        s = load_cifar10(str(root), n=4)
        assert s.x.shape == (4, 3, 32, 32) and s.classes == 10
        assert s.y.tolist() == labels[:4]
        # row-major CHW: byte 0 is R(0,0), byte 1024 is G(0,0), byte 33 is R(1,1)
        assert s.x[2, 0, 0, 0] == data[2, 0] / 255.0
        assert s.x[2, 1, 0, 0] == data[2, 1024] / 255.0
        assert s.x[2, 0, 1, 1] == data[2, 33] / 255.0
    assert len(load_cifar10(str(tmp_path))) == 6
    with pytest.raises(ValueError, match="only 6"):
        load_cifar10(str(tmp_path), n=7)


def test_cifar10_missing_and_malformed(tmp_path):
    with pytest.raises(FileNotFoundError, match="cs.toronto.edu"):
        load_cifar10(str(tmp_path / "nowhere"))
    (tmp_path / "test_batch").write_bytes(b"not a pickle")
    with pytest.raises(ValueError, match="not a CIFAR-10 python batch"):
        load_cifar10(str(tmp_path))


def _write_imagenet(root):
    from PIL import Image

    tall = np.zeros((512, 256, 3), dtype=np.uint8)
    tall[128:384] = 255                                   # white centre band of a 256-wide, 512-high image
    for cls, colours in (("n01", [(255, 0, 0), (0, 255, 0)]), ("n02", [(0, 0, 255)])):
        (root / cls).mkdir(parents=True)
        for i, c in enumerate(colours):
            Image.new("RGB", (300 + 40 * i, 280), c).save(root / cls / f"img{i}.png")
    Image.fromarray(tall).save(root / "n02" / "tall.JPEG")
    (root / "n02" / "notes.txt").write_text("ignored")


def test_imagenet_folder_resize_crop_labels_and_subset(tmp_path):
    _write_imagenet(tmp_path)
    full = load_imagenet(str(tmp_path))
    assert full.x.shape == (4, 3, 256, 256) and full.classes == 2
    assert full.y.tolist() == [0, 0, 1, 1]
    assert torch.allclose(full.x[0, :, 100, 100], torch.tensor([1.0, 0.0, 0.0]))
    assert torch.allclose(full.x[2, :, 5, 5], torch.tensor([0.0, 0.0, 1.0]))
    assert float(full.x[3].min()) > 0.99                  # the centre crop is exactly the white band
    sub = load_imagenet(str(tmp_path), n=2, seed=5)
    assert len(sub) == 2 and torch.equal(sub.x, full.x[sub.ids])
    assert torch.equal(sub.ids, load_imagenet(str(tmp_path), n=2, seed=5).ids)


def test_imagenet_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="image-net.org"):
        load_imagenet(str(tmp_path / "val"))
    with pytest.raises(FileNotFoundError, match="class sub-folders"):
        load_imagenet(str(tmp_path))


def test_load_dataset_dispatch(tmp_path):
    d = load_dataset("digits", n=10)
    assert d.x.shape == (10, 1, 16, 16) and torch.equal(d.y, load_digits("test").y[:10])
    _write_cifar(tmp_path)
    assert len(load_dataset("cifar10", str(tmp_path), n=3)) == 3
    with pytest.raises(FileNotFoundError, match="--data"):
        load_dataset("imagenet")
    with pytest.raises(ValueError, match="unknown dataset"):
        load_dataset("mnist")


def _pickle(folder, data, labels):
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "test_batch", "wb") as f:
        pickle.dump({b"data": data, b"labels": labels}, f)


@pytest.mark.parametrize("data, labels, match", [
    (np.full((2, 3072), 0.5, dtype=np.float32), [0, 1], "must be integers 0-255"),
    (np.full((2, 3072), 256, dtype=np.int64), [0, 1], "0-255, got 256..256"),
    (np.full((2, 3072), -1, dtype=np.int16), [0, 1], "0-255, got -1"),
    (np.zeros((2, 1024), dtype=np.uint8), [0, 1], r"expected data \[N, 3072\]"),
    (np.zeros((2, 3072), dtype=np.uint8), [0, 10], "labels must lie in 0-9"),
    (np.zeros((2, 3072), dtype=np.uint8), [0, -1], "labels must lie in 0-9"),
    (np.zeros((2, 3072), dtype=np.uint8), [0.0, 1.0], "labels must be integers"),
    (np.zeros((2, 3072), dtype=np.uint8), [0], "N labels"),
])
def test_cifar10_refuses_data_that_is_not_cifar10(tmp_path, data, labels, match):
    _pickle(tmp_path, data, labels)
    with pytest.raises(ValueError, match=match):
        load_cifar10(str(tmp_path))


def test_cifar10_download_goes_through_torchvision_only_when_allowed(tmp_path, monkeypatch):
    import types

    import empirical.models.resnet as rn

    monkeypatch.setattr(rn, "optional_torchvision", lambda: None)
    with pytest.raises(FileNotFoundError, match="cs.toronto.edu"):
        load_cifar10(str(tmp_path))
    with pytest.raises(ImportError, match="torchvision"):
        load_cifar10(str(tmp_path), allow_download=True)
    calls = []

    def fake_cifar10(root, train, download):            # torchvision.datasets.CIFAR10's layout: root/cifar-10-batches-py
        calls.append((root, train, download))
        _write_cifar(tmp_path / "cifar-10-batches-py", n=3)

    fake = types.SimpleNamespace(datasets=types.SimpleNamespace(CIFAR10=fake_cifar10))
    monkeypatch.setattr(rn, "optional_torchvision", lambda: fake)
    assert len(load_dataset("cifar10", str(tmp_path), allow_download=True)) == 3
    assert calls == [(str(tmp_path), False, True)]


def test_imagenet_hidden_entries_do_not_shift_labels(tmp_path):
    from PIL import Image

    _write_imagenet(tmp_path)
    reference = load_imagenet(str(tmp_path))
    (tmp_path / ".ipynb_checkpoints").mkdir()               # sorts before n01: would become class 0
    Image.new("RGB", (8, 8)).save(tmp_path / ".ipynb_checkpoints" / "a.png")
    Image.new("RGB", (8, 8)).save(tmp_path / "n01" / ".hidden.png")
    again = load_imagenet(str(tmp_path))
    assert again.classes == 2 and torch.equal(again.y, reference.y) and torch.equal(again.x, reference.x)


def test_imagenet_empty_class_folder_and_loose_images_are_refused(tmp_path):
    from PIL import Image

    _write_imagenet(tmp_path / "a")
    (tmp_path / "a" / "n015").mkdir()
    (tmp_path / "a" / "n015" / "readme.txt").write_text("no images")
    with pytest.raises(ValueError, match=r"1 class folder\(s\).*hold no images \(n015\).*shifts every later label"):
        load_imagenet(str(tmp_path / "a"))
    (tmp_path / "flat").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "flat" / "ILSVRC2012_val_00000001.JPEG")
    with pytest.raises(FileNotFoundError, match="1 images lie directly in it"):
        load_imagenet(str(tmp_path / "flat"))


def test_corrupt_or_truncated_jpeg_names_the_file(tmp_path):
    from PIL import Image

    _write_imagenet(tmp_path)
    rng = np.random.default_rng(0)
    path = tmp_path / "n01" / "broken.JPEG"
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(path, quality=95)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ValueError, match="broken.JPEG.*truncated or corrupt"):
        load_imagenet(str(tmp_path))
    path.write_bytes(b"not a jpeg at all")
    with pytest.raises(ValueError, match="broken.JPEG"):
        load_imagenet(str(tmp_path))


def _column_ramp(width, height, slope=8.0):
    from PIL import Image

    row = np.minimum(255.0, slope * np.arange(width)).astype(np.uint8)
    return Image.fromarray(np.repeat(np.tile(row[None, :], (height, 1))[..., None], 3, axis=2))


@pytest.mark.parametrize("width", [257, 259])
def test_centre_crop_offset_rounds_half_to_even_like_torchvision(width):
    from empirical.data import resize_centre_crop

    out = resize_centre_crop(_column_ramp(width, 256, slope=1.0), 256, use_torchvision=False)
    # torchvision's center_crop: left = int(round((W - 256) / 2.0)); Python rounds 0.5 -> 0 and 1.5 -> 2
    assert out[0, 0, 0] == {257: 0, 259: 2}[width]


def test_resize_truncates_the_long_side_like_torchvision():
    from empirical.data import resize_centre_crop

    # 305 x 280: torchvision's Resize(256) gives int(256 * 305 / 280) = 278 columns (not round -> 279), so the
    # crop starts at round(22 / 2) = 11; on a linear ramp, output column 0 samples source x = (11.5) * 305/278 - 0.5
    out = resize_centre_crop(_column_ramp(305, 280), 256, use_torchvision=False)
    expected = 8.0 * (11.5 * 305 / 278 - 0.5)
    assert out.shape == (256, 256, 3) and abs(float(out[128, 0, 0]) - expected) < 2.0
    wrong = 8.0 * (12.5 * 305 / 279 - 0.5)                 # what rounding the long side would give
    assert abs(float(out[128, 0, 0]) - wrong) > 4.0


def test_fallback_equals_torchvision_transforms(tmp_path):
    from empirical.data import resize_centre_crop
    from empirical.models.resnet import optional_torchvision

    tv = optional_torchvision()
    if tv is None:
        pytest.skip("torchvision does not import beside this torch")
    from torchvision import transforms

    rng = np.random.default_rng(1)
    from PIL import Image
    for w, h in ((300, 280), (257, 400), (500, 333), (120, 90)):
        im = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
        ref = np.array(transforms.Compose([transforms.Resize(256), transforms.CenterCrop(256)])(im))
        assert np.array_equal(resize_centre_crop(im, 256, use_torchvision=False), ref)


def test_check_num_classes_and_resolution():
    from diffusers import UNet2DModel

    from empirical.data import check_num_classes, check_resolution, classifier_outputs
    from empirical.models.wideresnet import WideResNet

    wrn = WideResNet(10, 1)
    check_num_classes(10, wrn)
    with pytest.raises(ValueError, match="data has 1000 classes but the classifier returns 10 logits"):
        check_num_classes(1000, wrn)
    pooled = torch.nn.Sequential(torch.nn.Conv2d(3, 7, 1), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
    with pytest.raises(ValueError, match="input_shape"):
        classifier_outputs(pooled)
    assert classifier_outputs(pooled, (3, 8, 8)) == 7
    unet = UNet2DModel(sample_size=8, in_channels=3, out_channels=3, block_out_channels=(8, 16), norm_num_groups=4,
                       down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"))
    check_resolution(torch.rand(2, 3, 8, 8), unet)
    with pytest.raises(ValueError, match="images are 32x32 but the purifier's UNet was trained at 8x8"):
        check_resolution(torch.rand(2, 3, 32, 32), unet)
    guided_like = torch.nn.Module()
    guided_like.model = torch.nn.Module()
    guided_like.model.image_size = 256                      # guided-diffusion's UNetModel attribute
    with pytest.raises(ValueError, match="trained at 256x256"):
        check_resolution(load_digits("test"), guided_like)
    with pytest.raises(ValueError, match="cannot tell the resolution"):
        check_resolution(torch.rand(1, 3, 8, 8), torch.nn.Identity())
