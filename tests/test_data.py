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
