"""ResNet-50 (He et al. 2016, v1.5: stride on the 3x3 conv) with torchvision's state-dict key names,
so torchvision ImageNet checkpoints load without torchvision. Takes [0, 1] images; the ImageNet
mean/std normalisation lives inside (non-persistent buffers, absent from the state dict).

torchvision is optional: a torchvision wheel built for another torch fails at import (for example
with RuntimeError "operator torchvision::nms does not exist"), so `optional_torchvision()` returns
None then and the hand-written definition here is used; both give the same outputs.
"""
from __future__ import annotations

import functools
import hashlib
from pathlib import Path
from types import ModuleType

import torch
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (carries the stride), 1x1 expand x4, identity or projection shortcut."""

    expansion = 4

    def __init__(self, c_in: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        c_out = planes * self.expansion
        self.conv1 = nn.Conv2d(c_in, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, c_out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU()
        self.downsample = None
        if stride != 1 or c_in != c_out:
            self.downsample = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False),
                                            nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + (x if self.downsample is None else self.downsample(x)))


class ResNet(nn.Module):
    """Bottleneck ResNet; layers=(3, 4, 6, 3) is ResNet-50. Input [B, 3, H, W] in [0, 1]."""

    def __init__(self, layers: tuple[int, ...] = (3, 4, 6, 3), num_classes: int = 1000,
                 width: int = 64) -> None:
        super().__init__()
        if len(layers) != 4 or min(layers) < 1:
            raise ValueError(f"layers must be four positive block counts, got {layers}")
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.conv1 = nn.Conv2d(3, width, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        c_in = width
        for i, blocks in enumerate(layers):
            planes = width * 2 ** i
            stage = [Bottleneck(c_in if j == 0 else planes * 4, planes, (1 if i == 0 else 2) if j == 0 else 1)
                     for j in range(blocks)]
            setattr(self, f"layer{i + 1}", nn.Sequential(*stage))
            c_in = planes * 4
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c_in, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"expected [B, 3, H, W] images, got {tuple(x.shape)}")
        x = self.maxpool(self.relu(self.bn1(self.conv1((x - self.mean) / self.std))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.avgpool(x).flatten(1))


def resnet50(num_classes: int = 1000) -> ResNet:
    """ResNet-50 with torchvision's module names."""
    return ResNet((3, 4, 6, 3), num_classes=num_classes)


# torchvision's ResNet50_Weights URLs (the file name carries the first 8 hex digits of its sha256).
RESNET50_WEIGHTS: dict[str, str] = {
    "IMAGENET1K_V1": "https://download.pytorch.org/models/resnet50-0676ba61.pth",
    "IMAGENET1K_V2": "https://download.pytorch.org/models/resnet50-11ad3fa6.pth",
}


@functools.lru_cache(maxsize=1)
def optional_torchvision() -> ModuleType | None:
    """torchvision if it imports beside this torch, else None (any import failure counts as absent)."""
    try:
        import torchvision
    except Exception:
        return None
    return torchvision


def build_resnet50(num_classes: int = 1000, use_torchvision: bool | None = None) -> nn.Module:
    """ResNet-50 taking [0, 1] images: torchvision's definition with the normalisation in front when
    torchvision imports (use_torchvision=None or True), else the hand-written `resnet50`. Same keys."""
    tv = optional_torchvision() if use_torchvision is not False else None
    if use_torchvision and tv is None:
        raise ImportError("use_torchvision=True but torchvision does not import beside this torch; "
                          "install the torchvision build that matches it, or leave use_torchvision=None")
    if tv is None:
        return resnet50(num_classes)

    class TorchvisionResNet50(tv.models.ResNet):
        """torchvision's ResNet-50 with the ImageNet mean/std applied to [0, 1] inputs."""

        def __init__(self) -> None:
            super().__init__(tv.models.resnet.Bottleneck, [3, 4, 6, 3], num_classes=num_classes)
            self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
            self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return super().forward((x - self.mean) / self.std)

    return TorchvisionResNet50()


def resnet50_weights_url(name: str) -> str:
    """The download URL of torchvision's ResNet-50 weights `name` ("IMAGENET1K_V1", "IMAGENET1K_V2" or
    "DEFAULT"), from torchvision's weights API when it imports, else from the same table here."""
    tv = optional_torchvision()
    if tv is not None and name in tv.models.ResNet50_Weights.__members__:
        return tv.models.ResNet50_Weights[name].url
    key = "IMAGENET1K_V2" if name == "DEFAULT" else name
    if key not in RESNET50_WEIGHTS:
        raise ValueError(f"unknown torchvision ResNet-50 weights {name!r}; choose one of "
                         f"{', '.join([*RESNET50_WEIGHTS, 'DEFAULT'])}")
    return RESNET50_WEIGHTS[key]


def resnet50_weights_file(name: str, allow_download: bool = False) -> Path:
    """Path of torchvision's ResNet-50 weights `name` in torch's hub cache (TORCH_HOME/hub/checkpoints),
    downloaded there only when allow_download; its sha256 is checked against the prefix in its name."""
    url = resnet50_weights_url(name)
    path = Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]
    prefix = path.stem.rsplit("-", 1)[-1]
    if not path.is_file():
        if not allow_download:
            raise ValueError(f"torchvision ResNet-50 weights {name} are not in torch's hub cache (looked for "
                             f"{path}); allow downloads (--allow-download on the command line, allow_download=True "
                             f"in Python) on a machine with internet, or fetch {url} into {path.parent} there and copy "
                             "it here (TORCH_HOME moves the cache)")
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.hub.download_url_to_file(url, str(path), hash_prefix=prefix, progress=False)
    with open(path, "rb") as f:
        digest = hashlib.file_digest(f, "sha256").hexdigest()
    if not digest.startswith(prefix):
        raise ValueError(f"{path} is corrupt: its sha256 {digest[:12]}... does not start with {prefix} "
                         f"as its name says; delete it and download {url} again")
    return path
