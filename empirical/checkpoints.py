"""Loading model weights: the committed digits weights (sha256-checked) and local real checkpoints."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
MANIFEST_NAME = "manifest.json"
REGENERATE = "`python -m empirical.train_digits` regenerates it"


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def digits_manifest(weights_dir: str | Path | None = None) -> dict:
    """The committed digits weights' manifest: hashes, training record, toy sigma, default eps."""
    path = Path(weights_dir or WEIGHTS_DIR) / MANIFEST_NAME
    if not path.exists():
        raise FileNotFoundError(f"digits weights manifest {path} is missing; {REGENERATE}")
    return json.loads(path.read_text())


def _verified_file(name: str, weights_dir: str | Path | None) -> Path:
    folder = Path(weights_dir or WEIGHTS_DIR)
    manifest = digits_manifest(folder)
    entry = manifest.get("files", {}).get(name)
    path = folder / name
    if entry is None or not path.exists():
        raise FileNotFoundError(f"digits weight file {name} is missing from {folder} "
                                f"({'no manifest entry' if entry is None else 'no file'}); {REGENERATE}")
    digest = sha256_file(path)
    if digest != entry["sha256"]:
        raise ValueError(f"digits weight file {path} is corrupt: sha256 {digest[:12]}... does not match "
                         f"the manifest's {entry['sha256'][:12]}...; {REGENERATE}")
    return path


def _frozen(model):
    model.eval()
    model.requires_grad_(False)
    return model


def load_digits_ddpm(ema: bool = True, weights_dir: str | Path | None = None):
    """The committed 16x16 digits DDPM -> (UNet2DModel, DDPMScheduler); ema=False gives the raw weights."""
    from diffusers import DDPMScheduler, UNet2DModel
    from safetensors.torch import load_file

    info = digits_manifest(weights_dir).get("ddpm")
    if info is None:
        raise FileNotFoundError(f"the digits manifest has no DDPM record; {REGENERATE}")
    unet = UNet2DModel(**info["unet_config"])
    unet.load_state_dict(load_file(str(_verified_file(info["files"]["ema" if ema else "raw"], weights_dir))))
    return _frozen(unet), DDPMScheduler(**info["scheduler_config"])


def load_digits_classifier(kind: str = "clean", weights_dir: str | Path | None = None):
    """The committed digits CNN: "clean", or "noisy" (trained on x + N(0, toy_sigma^2 I), paper eq. 4)."""
    from safetensors.torch import load_file

    from empirical.models.digits import DigitsCNN

    if kind not in ("clean", "noisy"):
        raise ValueError(f"digits classifier kind must be 'clean' or 'noisy', got {kind!r}")
    info = digits_manifest(weights_dir).get("classifiers")
    if info is None:
        raise FileNotFoundError(f"the digits manifest has no classifier record; {REGENERATE}")
    model = DigitsCNN()
    model.load_state_dict(load_file(str(_verified_file(info["files"][kind], weights_dir))))
    return _frozen(model)


def _find_config(root: Path, names: tuple[str, ...]) -> Path | None:
    for sub in ("", "unet", "scheduler"):
        for name in names:
            if (root / sub / name).exists():
                return root / sub
    return None


def load_diffusers_ddpm(path: str | Path):
    """A local diffusers DDPM folder (layout of google/ddpm-cifar10-32: config.json + weights +
    scheduler_config.json at the root, or unet/ and scheduler/ sub-folders) -> (UNet2DModel, DDPMScheduler)."""
    from diffusers import DDPMScheduler, UNet2DModel

    root = Path(path)
    hint = ("download google/ddpm-cifar10-32 (or another diffusers DDPM) from the Hugging Face Hub on a "
            "machine with internet and pass its folder")
    if not root.is_dir():
        raise FileNotFoundError(f"diffusers model folder {root} does not exist; {hint}")
    unet_dir = root / "unet" if (root / "unet" / "config.json").exists() else root
    sched_dir = _find_config(root, ("scheduler_config.json",))
    missing = [what for what, ok in (
        (f"{unet_dir}/config.json", (unet_dir / "config.json").exists()),
        (f"UNet weights (diffusion_pytorch_model.safetensors or .bin) in {unet_dir}",
         any((unet_dir / f"diffusion_pytorch_model.{e}").exists() for e in ("safetensors", "bin"))),
        (f"scheduler_config.json in {root} or {root}/scheduler", sched_dir is not None)) if not ok]
    if missing:
        raise FileNotFoundError(f"incomplete diffusers folder {root}: missing {'; '.join(missing)}; {hint}")
    unet = UNet2DModel.from_pretrained(str(unet_dir), local_files_only=True)
    scheduler = DDPMScheduler.from_pretrained(str(sched_dir), local_files_only=True)
    return _frozen(unet), scheduler


def read_state_dict(path: str | Path, what: str, source: str) -> dict:
    """Load a state dict (.pt/.pth/.bin via torch.load, or .safetensors), unwrap {'state_dict'|'model'|
    'net': ...} and strip a DataParallel 'module.' prefix."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} checkpoint {path} not found; {source}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file
        state = load_file(str(path))
    else:
        import torch
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise ValueError(f"{what} checkpoint {path} could not be read as a torch file ({exc}); {source}") from exc
    for key in ("state_dict", "model", "net"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
            break
    if not isinstance(state, dict) or not state:
        raise ValueError(f"{what} checkpoint {path} holds no state dict; {source}")
    if all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


def load_strict(model, state: dict, what: str, path: str | Path):
    """load_state_dict with all keys required; a mismatch names the missing and unexpected keys."""
    expected, given = set(model.state_dict()), set(state)
    missing, unexpected = sorted(expected - given), sorted(given - expected)
    if missing or unexpected:
        raise ValueError(f"{what} checkpoint {path} does not match the architecture: "
                         f"{len(missing)} missing keys {missing[:8]}, {len(unexpected)} unexpected keys {unexpected[:8]}")
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise ValueError(f"{what} checkpoint {path} has mismatched tensor shapes: {exc}") from exc
    return _frozen(model)


def load_wideresnet(path: str | Path, depth: int = 28, widen_factor: int = 10, num_classes: int = 10):
    """RobustBench-keyed WideResNet (default WRN-28-10, CIFAR-10 'Standard'), inputs in [0, 1]."""
    from empirical.models.wideresnet import WideResNet

    source = ("get RobustBench's CIFAR-10 Linf 'Standard' WRN-28-10 (models/cifar10/Linf/Standard.pt, "
              "robustbench.utils.load_model on a machine with internet) and pass the file")
    state = read_state_dict(path, f"WRN-{depth}-{widen_factor}", source)
    return load_strict(WideResNet(depth, widen_factor, num_classes), state, f"WRN-{depth}-{widen_factor}", path)


def load_resnet50(path: str | Path, num_classes: int = 1000):
    """torchvision-keyed ResNet-50 ImageNet state dict; normalisation inside, inputs in [0, 1]."""
    from empirical.models.resnet import resnet50

    source = ("get torchvision's ImageNet ResNet-50 weights (e.g. resnet50-0676ba61.pth from "
              "download.pytorch.org/models) on a machine with internet and pass the file")
    return load_strict(resnet50(num_classes), read_state_dict(path, "ResNet-50", source), "ResNet-50", path)


def load_guided_diffusion(path: str | Path, config: dict | None = None):
    """OpenAI's 256x256_diffusion_uncond.pt -> (adapter with unet(x, t).sample = eps, 1000-step linear
    DDPMScheduler, as guided-diffusion's 'linear' schedule). Needs the optional guided-diffusion-sdk."""
    from diffusers import DDPMScheduler

    from empirical.models.guided import build_guided_unet

    source = ("download 256x256_diffusion_uncond.pt (linked from github.com/openai/guided-diffusion's README) "
              "on a machine with internet and pass the file")
    state = read_state_dict(path, "guided-diffusion UNet", source)
    adapter = build_guided_unet(config)
    load_strict(adapter.model, state, "guided-diffusion UNet", path)
    scheduler = DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear", beta_start=1e-4, beta_end=0.02)
    return _frozen(adapter), scheduler
