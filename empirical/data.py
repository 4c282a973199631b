"""Image datasets as [0, 1] float tensors: embedded digits (default), CIFAR-10 batches, ImageNet folders.

Data files are data, never code: a CIFAR-10 batch is size-checked and hashed before it is unpickled, and
unpickled with a restricted unpickler that builds only numpy arrays and plain values (a pickle that names
any other callable is refused without running it). Data that is not what it claims is refused at load
time with one ValueError each: CIFAR-10 batches with float, negative or > 255 pixels, wrong shapes or
labels outside 0-9, or a file of the official test_batch's size whose MD5 is not the official one; ImageNet folders with empty
class folders or undecodable images. `check_num_classes` and `check_resolution` match the data against
the classifier and the purifier's UNet. torchvision is optional: when it imports, CIFAR-10 can be
downloaded through it and its Resize/CenterCrop decode ImageNet; else the equivalent code here runs.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

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
# torchvision's IMG_EXTENSIONS, so a folder holds the same images for both loaders.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
# torchvision's record (datasets.CIFAR10.test_list) of the official test_batch.
CIFAR10_TEST_MD5 = "40351d587109b95175f43aff81a1287e"
CIFAR10_TEST_SIZE = 31_035_526            # bytes of the official test_batch
MAX_CIFAR10_BATCH_BYTES = 256 << 20       # a batch larger than this is not a CIFAR-10 python batch


def _take(n: int | None, total: int, what: str) -> int:
    if n is None:
        return total
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive integer or None, got {n!r}")
    if n > total:
        raise ValueError(f"asked for {n} {what} images but only {total} are available")
    return n


def cifar10_test_batch(root: str | Path, allow_download: bool = False) -> Path:
    """Path of CIFAR-10's python `test_batch` in root or root/cifar-10-batches-py; when absent and
    allow_download, fetched there through torchvision.datasets.CIFAR10 (which checks its md5)."""
    folder = Path(root)
    candidates = [folder / "test_batch", folder / "cifar-10-batches-py" / "test_batch"]
    path = next((p for p in candidates if p.is_file()), None)
    if path is None and allow_download:
        from empirical.models.resnet import optional_torchvision

        tv = optional_torchvision()
        if tv is None:
            raise ImportError(f"downloading CIFAR-10 uses torchvision, which does not import here; {CIFAR10_SOURCE}")
        tv.datasets.CIFAR10(str(folder), train=False, download=True)
        path = candidates[1]
    if path is None:
        raise FileNotFoundError(f"CIFAR-10 test_batch not found in {folder} (looked for "
                                f"{', '.join(str(p) for p in candidates)}); {CIFAR10_SOURCE}")
    return path


def _cifar_arrays(data, labels, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """The batch's data [N, 3072] uint8 and labels [N] int64, refusing anything else (no silent casts)."""
    data, labels = np.asarray(data), np.asarray(labels)
    if data.dtype.kind not in "ui":
        raise ValueError(f"{path}: pixel data must be integers 0-255 (uint8), got {data.dtype}; {CIFAR10_SOURCE}")
    if data.ndim != 2 or data.shape[1] != 3072 or labels.shape != (data.shape[0],):
        raise ValueError(f"{path}: expected data [N, 3072] and N labels, got {data.shape} and {labels.shape}")
    if data.size and (int(data.min()) < 0 or int(data.max()) > 255):
        raise ValueError(f"{path}: pixel values must lie in 0-255, got {int(data.min())}..{int(data.max())}")
    if labels.dtype.kind not in "ui":
        raise ValueError(f"{path}: labels must be integers 0-9, got {labels.dtype}")
    if labels.size and (int(labels.min()) < 0 or int(labels.max()) > 9):
        raise ValueError(f"{path}: labels must lie in 0-9 (CIFAR-10 has 10 classes), got "
                         f"{int(labels.min())}..{int(labels.max())}")
    return data.astype(np.uint8), labels.astype(np.int64)


def _numpy_callables() -> dict[tuple[str, str], object]:
    """The only callables a CIFAR-10 batch pickle may name: numpy's array / scalar reconstructors and dtype,
    under their numpy 1 and numpy 2 module names, and latin-1 decoding of Python 2 byte strings."""
    import codecs

    found = {np.zeros(1).__reduce__()[0], np.float64(0).__reduce__()[0], np.zeros(1).__reduce_ex__(5)[0]}
    allowed: dict[tuple[str, str], object] = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype}
    for fn in found:
        for module in (fn.__module__, fn.__module__.replace("numpy._core", "numpy.core")):
            allowed[(module, fn.__name__)] = fn
    for module in ("numpy._core.multiarray", "numpy.core.multiarray"):
        allowed[(module, "dtype")] = np.dtype

    def latin1(text, encoding="latin1", errors="strict"):
        if str(encoding).lower().replace("-", "") != "latin1":
            raise ValueError(f"encoding {encoding!r} is not allowed in a data file")
        return codecs.encode(text, "latin1", errors)

    allowed[("_codecs", "encode")] = latin1
    return allowed


def restricted_unpickle(raw: bytes, what: str) -> object:
    """Unpickle `raw` (Python 2 byte strings kept as bytes) allowing only numpy arrays and plain values:
    a pickle that names any other callable (os.system, eval, a class) is refused before it can run."""
    import io
    import pickle

    allowed = _numpy_callables()

    class Restricted(pickle.Unpickler):
        def find_class(self, module, name):
            if (module, name) not in allowed:
                raise pickle.UnpicklingError(f"{what} refers to {module}.{name}; a data file may hold only numpy "
                                             "arrays and plain values, so it is not loaded")
            return allowed[(module, name)]

    return Restricted(io.BytesIO(raw), encoding="bytes").load()


def _read_cifar_batch(path: Path) -> bytes:
    """The batch's bytes, size-checked before reading and MD5-checked before unpickling."""
    import hashlib

    size = path.stat().st_size
    if size > MAX_CIFAR10_BATCH_BYTES:
        raise ValueError(f"{path} is {size / 2**20:.0f} MiB, far more than a CIFAR-10 batch (30 MiB); "
                         f"{CIFAR10_SOURCE}")
    raw = path.read_bytes()
    if size == CIFAR10_TEST_SIZE and hashlib.md5(raw).hexdigest() != CIFAR10_TEST_MD5:
        raise ValueError(f"{path} has the official test_batch's size but not its MD5 ({CIFAR10_TEST_MD5}): the "
                         f"file is damaged or altered; {CIFAR10_SOURCE}")
    return raw


def load_cifar10(root: str, n: int | None = None, allow_download: bool = False) -> ImageSet:
    """The first n images of CIFAR-10's official python `test_batch` (uint8 [N, 3072], CHW row-major),
    read as data only (`restricted_unpickle`)."""
    path = cifar10_test_batch(root, allow_download)
    raw = _read_cifar_batch(path)
    try:
        batch = restricted_unpickle(raw, str(path))
        raw_data, raw_labels = batch[b"data"], batch[b"labels"]
    except Exception as exc:
        reason = str(exc).splitlines()[0] if str(exc) else repr(exc)
        raise ValueError(f"{path} is not a CIFAR-10 python batch ({reason}); {CIFAR10_SOURCE}") from None
    data, labels = _cifar_arrays(raw_data, raw_labels, path)
    k = _take(n, data.shape[0], "CIFAR-10")
    x = torch.from_numpy(data[:k].reshape(k, 3, 32, 32).astype(np.float32) / 255.0)
    return ImageSet(x=x, y=torch.from_numpy(labels[:k]), ids=torch.arange(k), name="cifar10", classes=10)


def imagenet_files(root: str | Path) -> tuple[list[Path], list[int], list[str]]:
    """(files, labels, class names) of a class-per-folder tree. Rules: class folders are the visible
    sub-folders (names starting with '.', such as .ipynb_checkpoints, are ignored), sorted by name, and the
    label is the rank; images are the visible files with an image suffix directly inside a class folder.
    A class folder without images is refused (it would shift every later label). Unlike torchvision's
    ImageFolder, hidden folders never become classes and class folders are not searched recursively."""
    folder = Path(root)
    classes = sorted(d.name for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not classes:
        loose = sum(1 for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        extra = f" ({loose} images lie directly in it: sort them into class folders)" if loose else ""
        raise FileNotFoundError(f"no class sub-folders with images ({', '.join(IMAGE_SUFFIXES)}) in {folder}"
                                f"{extra}; {IMAGENET_SOURCE}")
    files, labels, empty = [], [], []
    for label, cls in enumerate(classes):
        images = sorted(p for p in (folder / cls).iterdir()
                        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES)
        if not images:
            empty.append(cls)
        files += images
        labels += [label] * len(images)
    if empty:
        raise ValueError(f"{len(empty)} class folder(s) in {folder} hold no images ({', '.join(empty[:5])}): labels "
                         "are the rank of each class folder, so an empty one shifts every later label; remove it "
                         "or restore its images")
    return files, labels, classes


def resize_centre_crop(image, size: int = 256, use_torchvision: bool | None = None) -> np.ndarray:
    """PIL image -> uint8 [size, size, 3]: shorter side to `size` (bilinear; the longer side truncated to
    int), then the central crop (offsets rounded), as torchvision's Resize(size) + CenterCrop(size)."""
    from PIL import Image

    from empirical.models.resnet import optional_torchvision

    im = image.convert("RGB")
    tv = optional_torchvision() if use_torchvision is not False else None
    if tv is not None:
        from torchvision.transforms import InterpolationMode
        from torchvision.transforms import functional as TF

        return np.array(TF.center_crop(TF.resize(im, size, InterpolationMode.BILINEAR), size), dtype=np.uint8)
    w, h = im.size
    new = (size, int(size * h / w)) if w <= h else (int(size * w / h), size)
    im = im.resize(new, Image.BILINEAR)
    left, top = int(round((new[0] - size) / 2.0)), int(round((new[1] - size) / 2.0))
    return np.array(im.crop((left, top, left + size, top + size)), dtype=np.uint8)


def decode_image(path: str | Path, size: int = 256) -> np.ndarray:
    """Decode one image file fully and resize + centre-crop it; a truncated or corrupt file is a ValueError
    naming it (PIL decodes lazily, so the error would otherwise surface mid-run)."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            rgb = im.convert("RGB")
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise ValueError(f"cannot decode image {path} ({exc}): the file is truncated or corrupt; extract it "
                         "again from the original archive or delete it") from exc
    return resize_centre_crop(rgb, size)


def load_imagenet(root: str, n: int | None = None, seed: int = 0, resolution: int = 256) -> ImageSet:
    """ImageNet validation images from class sub-folders (rules: `imagenet_files`; label = rank of the folder
    name, as the sorted wnids give torchvision's class indices): a seeded subset of n, resize + centre crop
    to resolution. ids are positions in the full sorted file list, so they stay stable when n changes."""
    folder = Path(root)
    if not folder.is_dir():
        raise FileNotFoundError(f"ImageNet validation folder {folder} does not exist; {IMAGENET_SOURCE}")
    files, labels, classes = imagenet_files(folder)
    k = _take(n, len(files), "ImageNet")
    pick = np.sort(np.random.default_rng(seed).choice(len(files), size=k, replace=False)) if n else np.arange(k)
    x = torch.stack([torch.from_numpy(decode_image(files[i], resolution)).permute(2, 0, 1) for i in pick])
    y = torch.tensor([labels[i] for i in pick], dtype=torch.int64)
    return ImageSet(x=x.float() / 255.0, y=y, ids=torch.from_numpy(pick.astype(np.int64)),
                    name="imagenet", classes=len(classes))


def load_dataset(name: str, root: str | None = None, n: int | None = None, seed: int = 0,
                 allow_download: bool = False) -> ImageSet:
    """Dispatch: "digits" (test split; root ignored), "cifar10" or "imagenet" (root required)."""
    if name == "digits":
        data = load_digits("test")
        k = _take(n, len(data), "digits")
        return ImageSet(data.x[:k], data.y[:k], data.ids[:k], data.name, data.classes)
    if name in ("cifar10", "imagenet"):
        if root is None:
            raise FileNotFoundError(f"dataset {name!r} needs a local folder (--data); "
                                    f"{CIFAR10_SOURCE if name == 'cifar10' else IMAGENET_SOURCE}")
        return load_cifar10(root, n, allow_download) if name == "cifar10" else load_imagenet(root, n, seed)
    raise ValueError(f"unknown dataset {name!r}; choose digits, cifar10 or imagenet")


def classifier_outputs(classifier: torch.nn.Module, input_shape: tuple[int, ...] | None = None) -> int:
    """How many logits a classifier returns: a forward pass on zeros of input_shape [C, H, W] when given,
    else the out_features of its last nn.Linear."""
    if input_shape is not None:
        p = next(classifier.parameters(), None)
        with torch.no_grad():
            return int(classifier(torch.zeros((1, *input_shape), device=p.device if p is not None else "cpu")).shape[-1])
    linears = [m for m in classifier.modules() if isinstance(m, torch.nn.Linear)]
    if not linears:
        raise ValueError(f"cannot tell how many classes {type(classifier).__name__} predicts (it has no nn.Linear); "
                         "pass input_shape to count its logits with a forward pass")
    return int(linears[-1].out_features)


def check_num_classes(n_data_classes: int, classifier: torch.nn.Module,
                      input_shape: tuple[int, ...] | None = None) -> None:
    """ValueError unless the classifier predicts exactly as many classes as the data has: labels are class
    ranks, so a subset of class folders or another label set would be scored against the wrong logits."""
    n_out = classifier_outputs(classifier, input_shape)
    if n_out != int(n_data_classes):
        raise ValueError(f"the data has {n_data_classes} classes but the classifier returns {n_out} logits; use "
                         f"data with all {n_out} classes (every class folder) or a classifier trained on these "
                         f"{n_data_classes}")


def unet_resolution(unet) -> tuple[int, int] | None:
    """(H, W) a diffusion UNet was trained at: diffusers' config.sample_size, or guided-diffusion's image_size."""
    size = getattr(getattr(unet, "config", None), "sample_size", None)
    if size is None:
        size = getattr(getattr(unet, "model", unet), "image_size", None)
    if size is None:
        return None
    return (int(size), int(size)) if isinstance(size, int) else (int(size[0]), int(size[1]))


def check_resolution(images, unet) -> None:
    """ValueError unless images ([N, C, H, W] tensor or ImageSet) have the resolution the purifier's UNet
    was trained at: a DDPM applied at another size does not denoise as trained."""
    x = images.x if isinstance(images, ImageSet) else images
    expected = unet_resolution(unet)
    if expected is None:
        raise ValueError(f"cannot tell the resolution {type(unet).__name__} was trained at (no config.sample_size "
                         "or image_size); use a diffusers UNet2DModel or the guided-diffusion adapter")
    got = tuple(int(v) for v in x.shape[-2:])
    if got != expected:
        raise ValueError(f"images are {got[0]}x{got[1]} but the purifier's UNet was trained at "
                         f"{expected[0]}x{expected[1]}; load the data at that resolution or pass a model trained "
                         f"at {got[0]}x{got[1]}")
