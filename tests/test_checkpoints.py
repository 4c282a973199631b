"""Checkpoint loaders: committed digits weights (hashes, replayed accuracies), corrupt/missing files,
local diffusers folders, RobustBench WRN and torchvision ResNet-50 state dicts."""
import shutil
import sys

import pytest
import torch

from empirical import checkpoints as ck
from empirical.data import load_digits
from empirical.models.resnet import resnet50
from empirical.models.wideresnet import WideResNet



TINY_GUIDED = {"image_size": 16, "num_channels": 32, "num_res_blocks": 1, "channel_mult": "1,2",
               "learn_sigma": True, "attention_resolutions": "8", "num_head_channels": 16,
               "use_scale_shift_norm": True, "resblock_updown": True}


def test_manifest_hashes_match_committed_files():
    manifest = ck.digits_manifest()
    assert {"ddpm", "classifiers", "files"} <= set(manifest)
    names = set(manifest["files"])
    assert {"digits_unet_ema.safetensors", "digits_unet.safetensors", "digits_cnn_clean.safetensors",
            "digits_cnn_noisy.safetensors", "samples.png", "eps_curve.png"} <= names
    for name, entry in manifest["files"].items():
        path = ck.WEIGHTS_DIR / name
        assert path.stat().st_size == entry["bytes"], name
        assert ck.sha256_file(path) == entry["sha256"], name


def test_committed_classifiers_replay_their_recorded_accuracies():
    from empirical.train_digits import noisy_accuracy

    info = ck.digits_manifest()["classifiers"]
    test = load_digits("test")
    clean = ck.load_digits_classifier("clean")
    acc = (clean(test.x).argmax(-1) == test.y).float().mean().item()
    assert acc == pytest.approx(info["clean_test_accuracy"], abs=1e-6) and acc >= 0.97
    noisy = ck.load_digits_classifier("noisy")
    acc_n, _ = noisy_accuracy(noisy, test.x, test.y, info["toy_sigma"], info["noisy_eval_draws"], info["seed"] + 7)
    assert acc_n == pytest.approx(info["noisy_test_accuracy"], abs=1e-6) and acc_n > 0.90
    assert not any(p.requires_grad for p in clean.parameters()) and not clean.training


def test_committed_ddpm_loads_ema_and_raw():
    ema, sched = ck.load_digits_ddpm(ema=True)
    raw, _ = ck.load_digits_ddpm(ema=False)
    assert sched.config.num_train_timesteps == 1000 and sched.config.beta_schedule == "linear"
    x = torch.randn(2, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        e1, e2 = ema(x, 50).sample, raw(x, 50).sample
    assert e1.shape == (2, 1, 16, 16) and not torch.equal(e1, e2)
    # a trained epsilon-predictor recovers the noise far better than chance at moderate t
    x0 = load_digits("test").x[:32] * 2 - 1
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(1))
    t = torch.full((32,), 100)
    with torch.no_grad():
        err = (ema(sched.add_noise(x0, noise, t), t).sample - noise).pow(2).mean().item()
    assert err < 0.3


def _copy_weights(tmp_path):
    dst = tmp_path / "weights"
    shutil.copytree(ck.WEIGHTS_DIR, dst, ignore=shutil.ignore_patterns("__pycache__"))
    return dst


def test_corrupt_or_missing_digits_weights(tmp_path):
    folder = _copy_weights(tmp_path)
    path = folder / "digits_cnn_clean.safetensors"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="digits_cnn_clean.safetensors is corrupt.*train_digits"):
        ck.load_digits_classifier("clean", weights_dir=folder)
    (folder / "digits_unet_ema.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="digits_unet_ema.safetensors is missing.*train_digits"):
        ck.load_digits_ddpm(ema=True, weights_dir=folder)
    (folder / "manifest.json").unlink()
    with pytest.raises(FileNotFoundError, match="manifest"):
        ck.digits_manifest(folder)
    with pytest.raises(ValueError, match="kind"):
        ck.load_digits_classifier("robust")


def _tiny_diffusers():
    from diffusers import DDPMScheduler, UNet2DModel

    unet = UNet2DModel(sample_size=8, in_channels=3, out_channels=3, block_out_channels=(8, 16),
                       down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"),
                       layers_per_block=1, norm_num_groups=4)
    return unet.eval(), DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear")


@pytest.mark.parametrize("layout", ["root", "subfolders"])
def test_load_diffusers_folder(tmp_path, layout):
    unet, sched = _tiny_diffusers()
    if layout == "root":                       # google/ddpm-cifar10-32 layout
        unet.save_pretrained(tmp_path)
        sched.save_pretrained(tmp_path)
    else:
        unet.save_pretrained(tmp_path / "unet")
        sched.save_pretrained(tmp_path / "scheduler")
    loaded, loaded_sched = ck.load_diffusers_ddpm(str(tmp_path))
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(loaded(x, 10).sample, unet(x, 10).sample)
    assert torch.equal(loaded_sched.betas, sched.betas)


def test_diffusers_folder_missing_parts(tmp_path):
    with pytest.raises(FileNotFoundError, match="google/ddpm-cifar10-32"):
        ck.load_diffusers_ddpm(str(tmp_path / "nope"))
    unet, _ = _tiny_diffusers()
    unet.save_pretrained(tmp_path)
    with pytest.raises(FileNotFoundError, match="missing scheduler_config.json"):
        ck.load_diffusers_ddpm(str(tmp_path))


@pytest.mark.parametrize("wrap", ["plain", "module", "state_dict", "model"])
def test_load_wideresnet_robustbench_variants(tmp_path, wrap):
    model = WideResNet(16, 1).eval()
    sd = model.state_dict()
    if wrap == "module":
        sd = {"module." + k: v for k, v in sd.items()}
    elif wrap != "plain":
        sd = {wrap: sd, "epoch": 3}
    torch.save(sd, tmp_path / "wrn.pt")
    loaded = ck.load_wideresnet(tmp_path / "wrn.pt", depth=16, widen_factor=1)
    x = torch.rand(2, 3, 16, 16)
    assert torch.equal(loaded(x), model(x)) and not loaded.training


def test_load_wideresnet_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="RobustBench"):
        ck.load_wideresnet(tmp_path / "Standard.pt")
    sd = WideResNet(16, 1).state_dict()
    sd["extra.weight"] = sd.pop("fc.weight")
    torch.save(sd, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match=r"1 missing keys \['fc.weight'\], 1 unexpected keys \['extra.weight'\]"):
        ck.load_wideresnet(tmp_path / "bad.pt", depth=16, widen_factor=1)
    torch.save(WideResNet(16, 1, num_classes=20).state_dict(), tmp_path / "c100.pt")
    with pytest.raises(ValueError, match="shapes"):
        ck.load_wideresnet(tmp_path / "c100.pt", depth=16, widen_factor=1)
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(ValueError, match="could not be read"):
        ck.load_wideresnet(tmp_path / "junk.pt")


def test_load_resnet50_plumbing_on_a_small_resnet(tmp_path, monkeypatch):
    import empirical.models.resnet as rn

    monkeypatch.setattr(rn, "build_resnet50", lambda num_classes=1000: rn.ResNet((1, 1, 1, 1), num_classes, width=8))
    model = rn.build_resnet50(num_classes=4).eval()
    torch.save({"model": {"module." + k: v for k, v in model.state_dict().items()}}, tmp_path / "r.pth")
    loaded = ck.load_resnet50(tmp_path / "r.pth", num_classes=4)
    x = torch.rand(1, 3, 32, 32)
    assert torch.equal(loaded(x), model(x))
    with pytest.raises(FileNotFoundError, match="torchvision"):
        ck.load_resnet50(tmp_path / "missing.pth")


@pytest.mark.slow
def test_load_resnet50_full_size(tmp_path):
    model = resnet50(num_classes=1000).eval()
    torch.save(model.state_dict(), tmp_path / "r50.pth")
    loaded = ck.load_resnet50(tmp_path / "r50.pth")
    x = torch.rand(1, 3, 64, 64)
    assert torch.equal(loaded(x), model(x))


def test_load_guided_diffusion_roundtrip(tmp_path):
    pytest.importorskip("guided_diffusion.script_util")
    from empirical.models.guided import build_guided_unet

    ref = build_guided_unet(TINY_GUIDED).eval()
    torch.save(ref.model.state_dict(), tmp_path / "tiny_uncond.pt")
    adapter, sched = ck.load_guided_diffusion(tmp_path / "tiny_uncond.pt", config=TINY_GUIDED)
    x = torch.randn(1, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(adapter(x, 3).sample, ref(x, 3).sample)
    assert torch.allclose(sched.betas[[0, -1]], torch.tensor([1e-4, 0.02]))
    with pytest.raises(FileNotFoundError, match="256x256_diffusion_uncond.pt"):
        ck.load_guided_diffusion(tmp_path / "none.pt")


@pytest.mark.parametrize("spec, dataset, expected", [
    ("clean", "digits", ("digits", "clean")),
    ("Standard", "cifar10", ("robustbench", "Standard")),
    ("robustbench:Carmon2019Unlabeled", "cifar10", ("robustbench", "Carmon2019Unlabeled")),
    ("weights/wrn.pt", "cifar10", ("file", "weights/wrn.pt")),
    ("Standard.safetensors", "cifar10", ("file", "Standard.safetensors")),
    ("torchvision:IMAGENET1K_V2", "imagenet", ("torchvision", "IMAGENET1K_V2")),
    ("resnet50:IMAGENET1K_V1", "imagenet", ("torchvision", "IMAGENET1K_V1")),
    ("torchvision:", "imagenet", ("torchvision", "DEFAULT")),
    ("IMAGENET1K_V1", "imagenet", ("torchvision", "IMAGENET1K_V1")),
    ("r50.pth", "imagenet", ("file", "r50.pth")),
])
def test_classifier_source_dispatch(spec, dataset, expected):
    assert ck.classifier_source(spec, dataset) == expected


@pytest.mark.parametrize("spec, dataset", [("torchvision:IMAGENET1K_V2", "cifar10"), ("robustbench:Standard", "imagenet"),
                                           ("Standard", "imagenet"), ("robust", "digits"), ("x", "mnist")])
def test_classifier_source_refuses_mismatches(spec, dataset):
    with pytest.raises(ValueError, match="not a valid choice|unknown dataset"):
        ck.classifier_source(spec, dataset)


def test_load_classifier_files_and_digits(tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr(ck, "load_wideresnet", lambda path: seen.append(("wrn", path)) or "wrn")
    monkeypatch.setattr(ck, "load_resnet50", lambda path: seen.append(("r50", path)) or "r50")
    assert ck.load_classifier(str(tmp_path / "a.pt"), "cifar10") == "wrn"
    assert ck.load_classifier(str(tmp_path / "b.pth"), "imagenet") == "r50"
    assert seen == [("wrn", str(tmp_path / "a.pt")), ("r50", str(tmp_path / "b.pth"))]
    x = load_digits("test").x[:4]
    assert torch.equal(ck.load_classifier("clean", "digits")(x), ck.load_digits_classifier("clean")(x))


def _small_resnet_file(tmp_path, rn):
    model = rn.ResNet((1, 1, 1, 1), 1000, width=8).eval()
    raw = tmp_path / "raw.pth"
    torch.save(model.state_dict(), raw)
    prefix = ck.sha256_file(raw)[:8]
    return model, raw, prefix


def test_torchvision_weights_come_from_torch_hub_cache(tmp_path, monkeypatch):
    import empirical.models.resnet as rn

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(rn, "build_resnet50", lambda num_classes=1000: rn.ResNet((1, 1, 1, 1), num_classes, width=8))
    with pytest.raises(ValueError, match=r"not in torch's hub cache.*resnet50-11ad3fa6.pth.*allow_download=True"):
        ck.load_classifier("torchvision:IMAGENET1K_V2", "imagenet")
    with pytest.raises(ValueError, match="unknown torchvision ResNet-50 weights"):
        ck.load_classifier("torchvision:IMAGENET9K", "imagenet")
    model, raw, prefix = _small_resnet_file(tmp_path, rn)
    monkeypatch.setitem(rn.RESNET50_WEIGHTS, "TEST", f"https://example.invalid/models/resnet50-{prefix}.pth")
    downloads = []

    def fake_download(url, dst, hash_prefix=None, progress=True):
        downloads.append((url, hash_prefix))
        shutil.copy(raw, dst)

    monkeypatch.setattr(torch.hub, "download_url_to_file", fake_download)
    loaded = ck.load_classifier("torchvision:TEST", "imagenet", allow_download=True)
    assert downloads == [(rn.RESNET50_WEIGHTS["TEST"], prefix)]
    x = torch.rand(1, 3, 32, 32)
    assert torch.equal(loaded(x), model(x)) and not loaded.training
    ck.load_classifier("torchvision:TEST", "imagenet")             # cached now: loads offline, no download
    assert len(downloads) == 1
    cached = tmp_path / "torch" / "hub" / "checkpoints" / f"resnet50-{prefix}.pth"
    cached.write_bytes(cached.read_bytes()[:-1] + b"x")
    with pytest.raises(ValueError, match="is corrupt.*download"):
        ck.load_classifier("torchvision:TEST", "imagenet")


def test_robustbench_missing_package_message_and_standard_fallback(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "robustbench", None)
    monkeypatch.setitem(sys.modules, "robustbench.utils", None)
    with pytest.raises(ImportError, match="pip install robustbench"):
        ck.load_classifier("Carmon2019Unlabeled", "cifar10", model_dir=tmp_path)
    with pytest.raises(ImportError, match="pip install robustbench"):
        ck.load_classifier("Standard", "cifar10", model_dir=tmp_path)      # no file: nothing to fall back on
    path = tmp_path / "cifar10" / "Linf" / "Standard.pt"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"checkpoint")
    seen = []
    monkeypatch.setattr(ck, "load_wideresnet", lambda p: seen.append(p) or WideResNet(10, 1))
    assert isinstance(ck.load_classifier("Standard", "cifar10", model_dir=tmp_path), WideResNet)
    assert seen == [path]


def test_robustbench_through_a_stand_in_package(tmp_path, monkeypatch):
    import types

    calls = []

    def load_model(name, model_dir, dataset, threat_model):
        calls.append((name, model_dir, dataset, threat_model))
        return WideResNet(10, 1).train()

    utils = types.ModuleType("robustbench.utils")
    utils.load_model = load_model
    package = types.ModuleType("robustbench")
    package.utils = utils
    monkeypatch.setitem(sys.modules, "robustbench", package)
    monkeypatch.setitem(sys.modules, "robustbench.utils", utils)
    with pytest.raises(ValueError, match=r"not in .*Standard.pt.*allow_download=True"):
        ck.load_classifier("Standard", "cifar10", model_dir=tmp_path)
    assert calls == []
    model = ck.load_classifier("robustbench:Standard", "cifar10", allow_download=True, model_dir=tmp_path)
    assert calls == [("Standard", str(tmp_path), "cifar10", "Linf")]
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    ck.load_classifier("Standard", "cifar10", allow_download=True)
    assert calls[-1][1] == str(tmp_path / "xdg" / "robustbench")
