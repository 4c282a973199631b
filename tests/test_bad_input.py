"""One table of bad inputs across the project, each answered by one clear error and no partial output."""
import json

import pytest
import torch
from diffusers import DDPMScheduler

from conftest import tiny_unet
from empirical import attacks, checkpoints, data
from empirical.noise import SampleReplayNoise
from empirical.purifiers import make_purifier
from empirical.harness.store import ResultStore
from empirical.results import atomic_write_json

X = torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(0))
Y = torch.tensor([0, 1])
CLF = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 3))
NONE = make_purifier("none")


def _diffpure(**kw):
    return make_purifier("diffpure", unet=tiny_unet(), scheduler=DDPMScheduler(num_train_timesteps=1000), **kw)


def _pgd(x=X, y=Y, **kw):
    args = dict(eps=0.1, steps=1, step_size=0.05, noise=None) | kw
    return attacks.pgd(CLF, NONE, x, y, **args)


def _nan():
    x = X.clone()
    x[0, 0, 0, 0] = float("nan")
    return x


def _corrupt_weights(tmp_path):
    path = tmp_path / "w.pt"
    path.write_bytes(b"not a torch file")
    return checkpoints.load_wideresnet(path)


def _wrong_keys(tmp_path):
    path = tmp_path / "w.pt"
    torch.save({"state_dict": {"module.conv.weight": torch.zeros(1)}}, path)
    return checkpoints.load_wideresnet(path)


def _other_config(tmp_path):
    ResultStore.open(tmp_path / "r.json", {"eps": 0.1}).put("k", [0], {"ok": [True]})
    return ResultStore.open(tmp_path / "r.json", {"eps": 0.2}, resume=True)


def _unwritable(tmp_path):
    return atomic_write_json("/proc/out.json", {"a": 1})    # refused even to root


CASES = [
    ("NaN image", lambda t: _pgd(x=_nan()), ValueError, "NaN"),
    ("image above 1", lambda t: _pgd(x=X + 1), ValueError, r"\[0, 1\]"),
    ("wrong ndim", lambda t: _pgd(x=X[0]), ValueError, "4-D|\\[B, C, H, W\\]|ndim|shape"),
    ("labels do not match batch", lambda t: _pgd(y=torch.tensor([0])), ValueError, "label"),
    ("wrong channels for the UNet", lambda t: _diffpure(t_star=2)(torch.rand(2, 3, 8, 8), SampleReplayNoise([0, 1], 0)),
     ValueError, "channels"),
    ("eps = 0", lambda t: _pgd(eps=0.0), ValueError, "eps"),
    ("eps > 1 (l_inf)", lambda t: _pgd(eps=1.5), ValueError, "eps"),
    ("unknown norm", lambda t: _pgd(norm="l3"), ValueError, "norm"),
    ("unknown gradient", lambda t: _pgd(gradient="magic"), ValueError, "gradient"),
    ("unknown evaluation mode", lambda t: attacks.evaluate(CLF, NONE, X, Y, mode="best"), ValueError, "mode"),
    ("unknown purifier", lambda t: make_purifier("magic"), ValueError, "unknown purifier"),
    ("t* above T", lambda t: _diffpure(t_star=1001), ValueError, "t_star|t\\*"),
    ("t* negative", lambda t: _diffpure(t_star=-1), ValueError, "t_star|t\\*"),
    ("s* > t*", lambda t: _diffpure(t_star=10, s_star=20), ValueError, "s_star|s\\*"),
    ("unknown dataset", lambda t: data.load_dataset("svhn", None), ValueError, "svhn"),
    ("missing CIFAR-10 folder", lambda t: data.load_cifar10(t / "nope"), FileNotFoundError, "CIFAR-10"),
    ("missing diffusers folder", lambda t: checkpoints.load_diffusers_ddpm(t / "nope"), FileNotFoundError, "diffusers"),
    ("missing classifier checkpoint", lambda t: checkpoints.load_wideresnet(t / "nope.pt"), FileNotFoundError, "not found"),
    ("corrupt checkpoint", _corrupt_weights, ValueError, "could not be read"),
    ("state dict with wrong keys", _wrong_keys, ValueError, "missing keys"),
    ("results file from another configuration", _other_config, ValueError, "another configuration"),
    ("unwritable output path", _unwritable, PermissionError, "not writable"),
]


@pytest.mark.parametrize("name, call, error, message", CASES, ids=[c[0] for c in CASES])
def test_bad_input_gets_one_clear_error(name, call, error, message, tmp_path):
    before = sorted(p.name for p in tmp_path.rglob("*"))
    with pytest.raises(error, match=message):
        call(tmp_path)
    after = sorted(p.name for p in tmp_path.rglob("*"))
    assert not [p for p in after if p.endswith(".tmp")], "a temporary file was left behind"
    if name != "results file from another configuration":
        created = set(after) - set(before) - {"nope", "nope.pt", "w.pt", "ro", "r.json", "r.json.lock"}
        assert not created, f"partial output left: {created}"
    if name == "results file from another configuration":
        assert list(json.loads((tmp_path / "r.json").read_text())["records"]) == ["k"]   # untouched
