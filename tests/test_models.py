"""Architectures: key names and sizes of the real checkpoints' models, normalisation, guided adapter."""
import sys

import pytest
import torch

from empirical.models.digits import DigitsCNN, make_digits_scheduler, make_digits_unet
from empirical.models.guided import GuidedUNetAdapter, build_guided_unet, import_guided_diffusion
from empirical.models.resnet import IMAGENET_MEAN, IMAGENET_STD, ResNet, resnet50
from empirical.models.wideresnet import WideResNet



TINY_GUIDED = {"image_size": 16, "num_channels": 32, "num_res_blocks": 1, "channel_mult": "1,2",
               "learn_sigma": True, "class_cond": False, "attention_resolutions": "8", "num_heads": 1,
               "num_head_channels": 16, "num_heads_upsample": -1, "use_scale_shift_norm": True,
               "dropout": 0.0, "resblock_updown": True, "use_fp16": False,
               "use_new_attention_order": False, "use_checkpoint": False}


def test_digits_models_shapes_and_schedule():
    cnn = DigitsCNN()
    assert cnn(torch.rand(3, 1, 16, 16)).shape == (3, 10)
    with pytest.raises(ValueError, match="1, 16, 16"):
        cnn(torch.rand(3, 1, 8, 8))
    unet = make_digits_unet()
    assert unet(torch.randn(2, 1, 16, 16), 10).sample.shape == (2, 1, 16, 16)
    betas = make_digits_scheduler().betas
    assert len(betas) == 1000 and torch.allclose(betas[[0, -1]], torch.tensor([1e-4, 0.02]))
    assert torch.allclose(betas.diff(), torch.full((999,), (0.02 - 1e-4) / 999), atol=1e-9)   # linear


def test_wrn_28_10_matches_robustbench_keys_and_size():
    with torch.device("meta"):
        model = WideResNet(28, 10)
    keys = list(model.state_dict())
    assert len(keys) == 155 and keys[0] == "conv1.weight" and keys[-2:] == ["fc.weight", "fc.bias"]
    for k in ("block1.layer.0.bn1.running_mean", "block1.layer.0.convShortcut.weight", "block1.layer.3.conv2.weight",
              "block2.layer.0.convShortcut.weight", "block3.layer.3.bn2.num_batches_tracked", "bn1.weight"):
        assert k in keys
    assert "block1.layer.1.convShortcut.weight" not in keys
    assert sum(p.numel() for p in model.parameters()) == 36_479_194     # the published WRN-28-10 size


def test_small_wrn_forward_and_validation():
    model = WideResNet(16, 1).eval()
    assert "block1.layer.0.convShortcut.weight" not in model.state_dict()   # 16 -> 16: identity shortcut
    x = torch.rand(3, 3, 16, 16)
    out = model(x)
    assert out.shape == (3, 10) and torch.allclose(model(x[:2]), out[:2], atol=1e-5)
    with pytest.raises(ValueError, match="6k \\+ 4"):
        WideResNet(27, 10)


def test_resnet50_matches_torchvision_keys_and_size():
    with torch.device("meta"):
        model = resnet50()
    keys = list(model.state_dict())
    assert len(keys) == 320 and "mean" not in keys and "std" not in keys
    for k in ("conv1.weight", "bn1.running_var", "layer1.0.downsample.0.weight", "layer1.0.downsample.1.weight",
              "layer3.5.conv3.weight", "layer4.2.bn3.bias", "fc.weight"):
        assert k in keys
    assert sum(p.numel() for p in model.parameters()) == 25_557_032    # torchvision's resnet50
    assert tuple(model.layer2[0].conv2.stride) == (2, 2) and tuple(model.layer2[0].conv1.stride) == (1, 1)


def test_resnet_normalises_inside():
    model = ResNet((1, 1, 1, 1), num_classes=5, width=8).eval()
    x = torch.rand(2, 3, 32, 32)
    mean, std = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    z = (x - mean) / std
    manual = model.maxpool(model.relu(model.bn1(model.conv1(z))))
    manual = model.fc(model.avgpool(model.layer4(model.layer3(model.layer2(model.layer1(manual))))).flatten(1))
    assert torch.allclose(model(x), manual, atol=1e-5)


class _FakeGuided(torch.nn.Module):
    """Same call signature as guided_diffusion's UNetModel: forward(x, timesteps) -> 6 channels."""

    def forward(self, x, timesteps):
        self.seen = timesteps
        scale = timesteps.float().view(-1, 1, 1, 1)
        return torch.cat([x * scale, -x], dim=1)


def test_guided_adapter_splits_learned_sigma_output():
    fake = _FakeGuided()
    adapter = GuidedUNetAdapter(fake)
    x = torch.randn(3, 3, 8, 8)
    eps = adapter(x, 7).sample
    assert torch.equal(fake.seen, torch.tensor([7, 7, 7])) and torch.equal(eps, 7 * x)
    assert torch.equal(adapter(x, torch.tensor([1, 2, 3])).sample[2], 3 * x[2])
    with pytest.raises(ValueError, match="t must be"):
        adapter(x, torch.tensor([1, 2]))
    with pytest.raises(ValueError, match="expected"):
        GuidedUNetAdapter(fake, learn_sigma=False)(x, 1)


def test_guided_adapter_against_the_package():
    pytest.importorskip("guided_diffusion.script_util")
    from guided_diffusion.script_util import create_model

    reference = create_model(**TINY_GUIDED).eval()
    adapter = build_guided_unet(TINY_GUIDED).eval()
    adapter.model.load_state_dict(reference.state_dict())
    x, t = torch.randn(2, 3, 16, 16), torch.tensor([5, 900])
    with torch.no_grad():
        full = reference(x, t)
        eps = adapter(x, t).sample
    assert full.shape == (2, 6, 16, 16) and torch.equal(eps, full[:, :3])


def test_guided_missing_package_message(monkeypatch):
    monkeypatch.setitem(sys.modules, "guided_diffusion", None)
    with pytest.raises(ImportError, match="guided-diffusion-sdk"):
        import_guided_diffusion()


class _BrokenTorchvision:
    """Meta-path finder that makes `import torchvision` fail as a wheel built for another torch does."""

    def find_spec(self, name, path=None, target=None):
        if name == "torchvision" or name.startswith("torchvision."):
            raise RuntimeError("operator torchvision::nms does not exist")
        return None


def test_torchvision_that_fails_to_import_counts_as_absent(monkeypatch):
    from empirical.models import resnet as rn

    for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(sys, "meta_path", [_BrokenTorchvision(), *sys.meta_path])
    rn.optional_torchvision.cache_clear()
    try:
        assert rn.optional_torchvision() is None
        model = rn.build_resnet50(num_classes=7)
        assert type(model) is ResNet and model.fc.out_features == 7
        with pytest.raises(ImportError, match="use_torchvision=True"):
            rn.build_resnet50(use_torchvision=True)
        assert rn.resnet50_weights_url("DEFAULT") == rn.RESNET50_WEIGHTS["IMAGENET1K_V2"]
    finally:
        rn.optional_torchvision.cache_clear()


def test_torchvision_resnet50_matches_the_hand_written_one():
    from empirical.models import resnet as rn

    tv = rn.optional_torchvision()
    if tv is None:
        pytest.skip("torchvision does not import beside this torch")
    ours = rn.build_resnet50(num_classes=10, use_torchvision=False).eval()
    theirs = rn.build_resnet50(num_classes=10, use_torchvision=True).eval()
    assert list(ours.state_dict()) == list(theirs.state_dict())
    theirs.load_state_dict(ours.state_dict())
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.allclose(ours(x), theirs(x), atol=1e-5)
    for name in ("IMAGENET1K_V1", "IMAGENET1K_V2"):
        assert rn.RESNET50_WEIGHTS[name] == tv.models.ResNet50_Weights[name].url


def test_ddpm_cifar10_architecture_is_the_35_7m_model():
    from diffusers import UNet2DModel

    from empirical.dryrun import DDPM_CIFAR10_CONFIG

    with torch.device("meta"):
        unet = UNet2DModel(**DDPM_CIFAR10_CONFIG)
    n = sum(p.numel() for p in unet.parameters())
    assert abs(n - 35.7e6) < 0.05e6                                      # Ho et al. 2020: 35.7M parameters
    attn = [i for i, b in enumerate(unet.down_blocks) if getattr(b, "attentions", None)]
    assert attn == [1]                                                   # 32 -> 16: attention at 16x16 only
    assert len(unet.down_blocks[0].resnets) == 2 and unet.config.sample_size == 32
