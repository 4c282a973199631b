"""Loading model weights: the committed digits weights (sha256-checked), local real checkpoints, Hugging Face
hub ids through huggingface_hub's cache, torchvision and RobustBench classifiers (`load_classifier`)."""
from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch
    from diffusers import DDPMScheduler, UNet2DModel

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


HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def hub_cache_dir() -> Path:
    """huggingface_hub's cache folder, read from the environment at call time (HF_HUB_CACHE, else
    HF_HOME/hub, else $XDG_CACHE_HOME/huggingface/hub): huggingface_hub reads these once, at import."""
    explicit = os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME") or "~/.cache", "huggingface")
    return Path(home).expanduser() / "hub"


def hub_offline() -> bool:
    """True when HF_HUB_OFFLINE is set now (or was at huggingface_hub's import)."""
    from huggingface_hub import constants

    flag = os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in ("1", "ON", "YES", "TRUE")
    return flag or bool(constants.HF_HUB_OFFLINE)


def cached_snapshot(repo_id: str, cache_dir: str | Path | None = None, revision: str = "main",
                    reason: str = "downloads are not allowed") -> Path:
    """The local snapshot folder of a hub repo, from the cache only; ValueError naming the fix if absent."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    cache = Path(cache_dir) if cache_dir is not None else hub_cache_dir()
    try:
        return Path(snapshot_download(repo_id, revision=revision, cache_dir=str(cache), local_files_only=True))
    except LocalEntryNotFoundError:
        raise ValueError(
            f"Hugging Face model {repo_id!r} (revision {revision}) is not in the hub cache {cache} and {reason}; "
            f"allow downloads (--allow-download on the command line, allow_download=True in Python) on a machine "
            f"with internet, or run `hf download {repo_id}` "
            f"where there is internet and copy its cache folder models--{repo_id.replace('/', '--')} into {cache} "
            "(HF_HOME or HF_HUB_CACHE choose the cache), or pass a local diffusers folder") from None


def _download_ddpm(repo_id: str, cache: Path, revision: str = "main") -> None:
    """Fetch a diffusers DDPM (root or unet/ + scheduler/ layout) into the hub cache through from_pretrained."""
    from diffusers import DDPMScheduler, UNet2DModel

    for cls, sub in ((UNet2DModel, "unet"), (DDPMScheduler, "scheduler")):
        errors = []
        for subfolder in (None, sub):
            try:
                cls.from_pretrained(repo_id, subfolder=subfolder, cache_dir=str(cache), revision=revision)
                break
            except (OSError, ValueError) as exc:
                errors.append(exc)
        else:
            raise ValueError(f"could not download {cls.__name__} of {repo_id!r} into {cache}: {errors[-1]}; "
                             "check the id and the network, or pass a local diffusers folder") from errors[-1]


def _load_ddpm_folder(root: Path, hint: str):
    from diffusers import DDPMScheduler, UNet2DModel

    unet_dir = root / "unet" if (root / "unet" / "config.json").exists() else root
    sched_dir = _find_config(root, ("scheduler_config.json",))
    missing = [what for what, ok in (
        (f"{unet_dir}/config.json", (unet_dir / "config.json").exists()),
        (f"UNet weights (diffusion_pytorch_model.safetensors or .bin) in {unet_dir}",
         any((unet_dir / f"diffusion_pytorch_model.{e}").exists() for e in ("safetensors", "bin"))),
        (f"scheduler_config.json in {root} or {root}/scheduler", sched_dir is not None)) if not ok]
    if missing:
        raise FileNotFoundError(f"incomplete diffusers folder {root}: missing {'; '.join(missing)}; {hint}")
    try:
        unet = UNet2DModel.from_pretrained(str(unet_dir), local_files_only=True)
        scheduler = DDPMScheduler.from_pretrained(str(sched_dir), local_files_only=True)
    except Exception as exc:         # diffusers raises many types; a .bin pickle is refused by weights_only
        raise ValueError(f"diffusers folder {root} could not be loaded ({_first_line(exc)}); weights are read as "
                         f"data only (safetensors, or a .bin holding tensors alone); {hint}") from None
    return _frozen(unet), scheduler


def _first_line(exc: BaseException) -> str:
    """An exception's message cut to its first line, with its type (so an error stays one line)."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def load_diffusers_ddpm(path_or_id: str | Path, allow_download: bool = False, *,
                        cache_dir: str | Path | None = None, revision: str = "main") -> tuple[UNet2DModel, DDPMScheduler]:
    """A diffusers DDPM -> (UNet2DModel, DDPMScheduler), from a local folder (layout of google/ddpm-cifar10-32:
    config.json + weights + scheduler_config.json at the root, or unet/ and scheduler/ sub-folders) or a
    Hugging Face hub id such as "google/ddpm-cifar10-32" resolved through huggingface_hub's cache.

    Nothing is downloaded unless allow_download is True and HF_HUB_OFFLINE is not set; a cached id loads
    offline. cache_dir defaults to `hub_cache_dir()` (the environment at call time)."""
    root = Path(path_or_id)
    hint = ("download google/ddpm-cifar10-32 (or another diffusers DDPM) from the Hugging Face Hub on a "
            "machine with internet and pass its folder or its hub id")
    if root.is_dir():
        return _load_ddpm_folder(root, hint)
    repo_id = str(path_or_id)
    if not HUB_ID.match(repo_id):
        raise FileNotFoundError(f"diffusers model folder {root} does not exist; {hint}")
    cache = Path(cache_dir) if cache_dir is not None else hub_cache_dir()
    offline = hub_offline()
    if allow_download and not offline:
        try:
            cached_snapshot(repo_id, cache, revision)
        except ValueError:
            _download_ddpm(repo_id, cache, revision)
    reason = ("HF_HUB_OFFLINE is set" if offline else
              "downloads are not allowed (allow_download=False)" if not allow_download else "the download failed")
    snapshot = cached_snapshot(repo_id, cache, revision, reason)
    try:
        return _load_ddpm_folder(snapshot, hint)
    except FileNotFoundError as exc:
        raise ValueError(f"the cached snapshot of {repo_id!r} in {cache} is incomplete ({exc}); "
                         "allow downloads once more (--allow-download, or allow_download=True in Python) or copy the "
                         "full repo there") from None


def read_state_dict(path: str | Path, what: str, source: str) -> dict:
    """Load a state dict (.pt/.pth/.bin via torch.load(weights_only=True), which builds tensors and plain
    values only, or .safetensors), unwrap {'state_dict'|'model'|
    'net': ...} and strip a DataParallel 'module.' prefix."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} checkpoint {path} not found; {source}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file
        try:
            state = load_file(str(path))
        except Exception as exc:
            raise ValueError(f"{what} checkpoint {path} could not be read as a safetensors file "
                             f"({_first_line(exc)}); {source}") from None
    else:
        import torch
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)     # data only, never code
        except Exception as exc:
            raise ValueError(f"{what} checkpoint {path} could not be read as a torch file of tensors "
                             f"({_first_line(exc)}); {source}") from None
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
    """torchvision-keyed ResNet-50 ImageNet state dict; normalisation inside, inputs in [0, 1]
    (torchvision's definition when torchvision imports, else the hand-written one: same keys and outputs)."""
    from empirical.models import resnet

    source = ("get torchvision's ImageNet ResNet-50 weights (e.g. resnet50-0676ba61.pth from "
              "download.pytorch.org/models) on a machine with internet and pass the file")
    return load_strict(resnet.build_resnet50(num_classes), read_state_dict(path, "ResNet-50", source), "ResNet-50", path)


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


def load_robustbench(name: str, dataset: str = "cifar10", threat_model: str = "Linf", *,
                     model_dir: str | Path | None = None, allow_download: bool = False) -> torch.nn.Module:
    """A RobustBench model zoo entry, e.g. "Standard" (WRN-28-10, CIFAR-10, the paper's classifier).

    The checkpoint lives at model_dir/<dataset>/<threat_model>/<name>.pt (RobustBench's layout). Without
    allow_download a missing file is refused instead of fetched. Without the robustbench package, only
    "Standard" loads (into empirical.models.wideresnet.WideResNet, same keys); other names need `pip install robustbench`.
    """
    from empirical.models.wideresnet import robustbench_dir

    folder = robustbench_dir(model_dir)
    path = folder / dataset / threat_model / f"{name}.pt"
    try:
        from robustbench.utils import load_model
    except Exception as exc:
        if name == "Standard" and dataset == "cifar10" and path.is_file():
            return load_wideresnet(path)
        raise ImportError(f"RobustBench model {name!r} needs the optional robustbench package ({exc!r}): "
                          "`pip install robustbench` (it requires torchvision and timm; add --no-deps if pip "
                          "would replace this torch), or pass the downloaded checkpoint file instead") from exc
    if not path.is_file() and not allow_download:
        raise ValueError(f"RobustBench model {name!r} ({dataset}, {threat_model}) is not in {folder} (looked for "
                         f"{path}); allow downloads (--allow-download on the command line, allow_download=True in "
                         "Python) on a machine with internet, or copy the checkpoint there")
    try:
        model = load_model(name, model_dir=str(folder), dataset=dataset, threat_model=threat_model)
    except Exception as exc:
        raise ValueError(f"robustbench could not load {name!r} ({dataset}, {threat_model}) from {folder}: {exc}") from exc
    model.eval()
    return model.requires_grad_(False)


STATE_DICT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors", ".ckpt", ".tar")
CLASSIFIER_FORMS = {
    "digits": "'clean' or 'noisy' (the committed digits CNNs)",
    "cifar10": "a RobustBench CIFAR-10 name ('Standard' = WRN-28-10, or 'robustbench:NAME') or a WRN-28-10 "
               "state-dict file",
    "imagenet": "torchvision ResNet-50 weights ('torchvision:IMAGENET1K_V2', 'resnet50:IMAGENET1K_V1') or a "
                "ResNet-50 state-dict file",
}


def classifier_source(spec: str, dataset: str) -> tuple[str, str]:
    """Classify a --classifier spec without loading: (kind, name) with kind in digits | file | torchvision |
    robustbench. Explicit prefixes win; a word without a path separator or weight suffix is a model name."""
    if dataset not in CLASSIFIER_FORMS:
        raise ValueError(f"unknown dataset {dataset!r}; choose digits, cifar10 or imagenet")
    spec = str(spec)
    prefix, sep, rest = spec.partition(":")
    looks_like_path = Path(spec).exists() or "/" in spec or os.sep in spec or spec.lower().endswith(STATE_DICT_SUFFIXES)
    if dataset == "digits":
        if spec in ("clean", "noisy"):
            return "digits", spec
    elif sep and prefix in ("torchvision", "resnet50") and dataset == "imagenet":
        return "torchvision", rest or "DEFAULT"
    elif sep and prefix == "robustbench" and dataset == "cifar10" and rest:
        return "robustbench", rest
    elif looks_like_path:
        return "file", spec
    elif not sep and dataset == "cifar10":
        return "robustbench", spec
    elif not sep and dataset == "imagenet" and spec.startswith("IMAGENET1K"):
        return "torchvision", spec
    raise ValueError(f"classifier {spec!r} is not a valid choice for {dataset}: pass {CLASSIFIER_FORMS[dataset]}")


def load_classifier(spec: str, dataset: str, allow_download: bool = False, *,
                    model_dir: str | Path | None = None) -> torch.nn.Module:
    """The classifier F of the paper's S = P o F for a dataset, frozen, taking [0, 1] images.

    digits: 'clean' | 'noisy'. cifar10: a RobustBench name (the paper's 'Standard' WRN-28-10; through the
    optional robustbench package, kept under `robustbench_dir(model_dir)`) or a local WRN-28-10 state dict.
    imagenet: torchvision ResNet-50 weights by name (torch's hub cache; no torchvision needed) or a local
    ResNet-50 state dict. Nothing downloads unless allow_download.
    """
    kind, name = classifier_source(spec, dataset)
    if kind == "digits":
        return load_digits_classifier(name)
    if kind == "file":
        return load_wideresnet(name) if dataset == "cifar10" else load_resnet50(name)
    if kind == "torchvision":
        from empirical.models.resnet import resnet50_weights_file

        path = resnet50_weights_file(name, allow_download)
        return load_resnet50(path)
    return _frozen(load_robustbench(name, "cifar10", model_dir=model_dir, allow_download=allow_download))

