"""Image datasets as [0, 1] float tensors: embedded digits (default), CIFAR-10 batches, ImageNet folders."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

DIGITS_TEST_SIZE = 450     # of 1,797: a fixed stratified 1,347 / 450 split
DIGITS_SPLIT_SEED = 0


@dataclass
class ImageSet:
    """Images x [N, C, H, W] in [0, 1], labels y [N], stable ids [N] (index in the split)."""

    x: torch.Tensor
    y: torch.Tensor
    ids: torch.Tensor
    name: str
    classes: int

    def __len__(self) -> int:
        return int(self.y.shape[0])


def _digits_split_indices(split: str) -> np.ndarray:
    from sklearn.datasets import load_digits as sk_load_digits
    from sklearn.model_selection import train_test_split

    y = sk_load_digits().target
    train, test = train_test_split(np.arange(y.shape[0]), test_size=DIGITS_TEST_SIZE,
                                   stratify=y, random_state=DIGITS_SPLIT_SEED)
    return {"train": np.sort(train), "test": np.sort(test)}[split]


def load_digits(split: str = "test", resolution: int = 16) -> ImageSet:
    """scikit-learn's bundled 8x8 digits (0..16 -> [0, 1]), bilinearly upsampled to resolution^2.

    16x16 gives n = 256 pixels: large enough for a 3-level UNet (16, 8, 4) and an n at which the toy
    model's chi-square concentration starts to matter, while keeping purification cheap on a CPU.
    """
    if split not in ("train", "test", "all"):
        raise ValueError(f"split must be 'train', 'test' or 'all', got {split!r}")
    if not isinstance(resolution, int) or resolution < 8:
        raise ValueError(f"resolution must be an integer >= 8, got {resolution!r}")
    from sklearn.datasets import load_digits as sk_load_digits

    data = sk_load_digits()
    idx = np.arange(data.target.shape[0]) if split == "all" else _digits_split_indices(split)
    x = torch.from_numpy(data.images[idx].astype(np.float32) / 16.0).unsqueeze(1)
    if resolution != 8:
        x = F.interpolate(x, size=(resolution, resolution), mode="bilinear", align_corners=False)
    x = x.clamp(0.0, 1.0).contiguous()
    y = torch.from_numpy(data.target[idx].astype(np.int64))
    return ImageSet(x=x, y=y, ids=torch.arange(len(idx)), name=f"digits-{split}", classes=10)


CIFAR10_SOURCE = ("download the CIFAR-10 python version (cifar-10-python.tar.gz) from "
                  "https://www.cs.toronto.edu/~kriz/cifar.html, extract it and pass the cifar-10-batches-py folder")
IMAGENET_SOURCE = ("download the ILSVRC2012 validation images from https://image-net.org and arrange them "
                   "in one sub-folder per class (wnid), then pass that folder")
IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png", ".bmp", ".webp")


def _take(n: int | None, total: int, what: str) -> int:
    if n is None:
        return total
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive integer or None, got {n!r}")
    if n > total:
        raise ValueError(f"asked for {n} {what} images but only {total} are available")
    return n


def load_cifar10(root: str, n: int | None = None) -> ImageSet:
    """The first n images of CIFAR-10's official python `test_batch` (uint8 [N, 3072], CHW row-major)."""
    import pickle
    from pathlib import Path

    folder = Path(root)
    candidates = [folder / "test_batch", folder / "cifar-10-batches-py" / "test_batch"]
    path = next((p for p in candidates if p.is_file()), None)
    if path is None:
        raise FileNotFoundError(f"CIFAR-10 test_batch not found in {folder} (looked for "
                                f"{', '.join(str(p) for p in candidates)}); {CIFAR10_SOURCE}")
    try:
        with open(path, "rb") as f:
            batch = pickle.load(f, encoding="bytes")
        data = np.asarray(batch[b"data"], dtype=np.uint8)
        labels = np.asarray(batch[b"labels"], dtype=np.int64)
    except Exception as exc:
        raise ValueError(f"{path} is not a CIFAR-10 python batch ({exc!r}); {CIFAR10_SOURCE}") from exc
    if data.ndim != 2 or data.shape[1] != 3072 or labels.shape != (data.shape[0],):
        raise ValueError(f"{path}: expected data [N, 3072] and N labels, got {data.shape} and {labels.shape}")
    k = _take(n, data.shape[0], "CIFAR-10")
    x = torch.from_numpy(data[:k].reshape(k, 3, 32, 32).astype(np.float32) / 255.0)
    return ImageSet(x=x, y=torch.from_numpy(labels[:k]), ids=torch.arange(k), name="cifar10", classes=10)


def _imagenet_files(folder) -> tuple[list, list[int], int]:
    classes = sorted(d.name for d in folder.iterdir() if d.is_dir())
    files, labels = [], []
    for label, cls in enumerate(classes):
        for p in sorted((folder / cls).iterdir()):
            if p.suffix.lower() in IMAGE_SUFFIXES:
                files.append(p)
                labels.append(label)
    return files, labels, len(classes)


def _resize_centre_crop(path, size: int = 256) -> np.ndarray:
    """Shorter side to `size` (bilinear), then the central size x size crop -> uint8 [H, W, 3]."""
    from PIL import Image

    with Image.open(path) as im:
        im = im.convert("RGB")
        w, h = im.size
        if w <= h:
            new = (size, int(size * h / w))
        else:
            new = (int(size * w / h), size)
        im = im.resize(new, Image.BILINEAR)
        left, top = int(round((new[0] - size) / 2.0)), int(round((new[1] - size) / 2.0))
        return np.array(im.crop((left, top, left + size, top + size)), dtype=np.uint8)


def load_imagenet(root: str, n: int | None = None, seed: int = 0) -> ImageSet:
    """ImageNet validation images from class sub-folders (label = rank of the folder name, as the
    sorted wnids give torchvision's class indices): a seeded subset of n, resize 256 + centre crop 256.
    ids are positions in the full sorted file list, so they stay stable when n changes."""
    from pathlib import Path

    folder = Path(root)
    if not folder.is_dir():
        raise FileNotFoundError(f"ImageNet validation folder {folder} does not exist; {IMAGENET_SOURCE}")
    files, labels, classes = _imagenet_files(folder)
    if not files:
        raise FileNotFoundError(f"no class sub-folders with images ({', '.join(IMAGE_SUFFIXES)}) in {folder}; "
                                f"{IMAGENET_SOURCE}")
    k = _take(n, len(files), "ImageNet")
    pick = np.sort(np.random.default_rng(seed).choice(len(files), size=k, replace=False)) if n else np.arange(k)
    x = torch.stack([torch.from_numpy(_resize_centre_crop(files[i])).permute(2, 0, 1) for i in pick])
    y = torch.tensor([labels[i] for i in pick], dtype=torch.int64)
    return ImageSet(x=x.float() / 255.0, y=y, ids=torch.from_numpy(pick.astype(np.int64)),
                    name="imagenet", classes=classes)


def load_dataset(name: str, root: str | None = None, n: int | None = None, seed: int = 0) -> ImageSet:
    """Dispatch: "digits" (test split; root ignored), "cifar10" or "imagenet" (root required)."""
    if name == "digits":
        data = load_digits("test")
        k = _take(n, len(data), "digits")
        return ImageSet(data.x[:k], data.y[:k], data.ids[:k], data.name, data.classes)
    if name in ("cifar10", "imagenet"):
        if root is None:
            raise FileNotFoundError(f"dataset {name!r} needs a local folder (--data); "
                                    f"{CIFAR10_SOURCE if name == 'cifar10' else IMAGENET_SOURCE}")
        return load_cifar10(root, n) if name == "cifar10" else load_imagenet(root, n, seed)
    raise ValueError(f"unknown dataset {name!r}; choose digits, cifar10 or imagenet")
