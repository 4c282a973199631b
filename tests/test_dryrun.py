"""The dry run on tiny stand-in configs: the report's arithmetic, the paper's cell counts, no side effects."""
import json

import pytest
import torch

from empirical.attacks import PAPER_SETTINGS, PRESETS
from empirical.dryrun import PAPER_IMAGES, dry_run, protocol_cells

TINY_UNET = dict(sample_size=8, in_channels=3, out_channels=3, layers_per_block=1, block_out_channels=(8, 16),
                 norm_num_groups=4, down_block_types=("DownBlock2D", "DownBlock2D"),
                 up_block_types=("UpBlock2D", "UpBlock2D"))
TINY_GUIDED = {"image_size": 16, "num_channels": 32, "num_res_blocks": 1, "channel_mult": "1,2",
               "learn_sigma": True, "class_cond": False, "attention_resolutions": "8", "num_heads": 1,
               "num_head_channels": 16, "num_heads_upsample": -1, "use_scale_shift_norm": True,
               "dropout": 0.0, "resblock_updown": True, "use_fp16": False,
               "use_new_attention_order": False, "use_checkpoint": False}


def _check_arithmetic(r):
    assert r.purify_s == pytest.approx(r.t_star * r.unet_call_s)
    assert r.bpda_step_s == pytest.approx(r.purify_s + r.classifier_grad_s)
    assert r.full_step_s == pytest.approx(r.t_star * r.full_unet_step_s + r.classifier_grad_s)
    for c in r.cells:
        cost = c.purifications * r.purify_s + c.grads * r.classifier_grad_s + c.evaluations * r.classifier_forward_s
        assert c.seconds == pytest.approx(c.images * cost)
    assert r.total_hours == pytest.approx(sum(c.seconds for c in r.cells) / 3600)
    d = json.loads(json.dumps(r.to_dict()))
    assert d["total_hours"] == pytest.approx(r.total_hours) and len(d["cells"]) == 6
    text = "\n".join(r.lines())
    assert "total" in text and f"{r.t_star} x" in text and "purifications x" in text


def test_cifar10_dry_run_on_a_stand_in():
    rng_before = torch.get_rng_state()
    threads_before = torch.get_num_threads()
    heard = []
    r = dry_run("cifar10", unet_config=TINY_UNET, classifier_config={"depth": 10, "widen_factor": 1}, t_star=6,
                unet_steps=2, images=2, threads=1, progress=heard.append)
    # what it will build, with its size, comes first; then each stage in order, the full gradient timed
    assert "will build" in heard[0] and f"{r.unet_parameters / 1e6:.1f}M parameters" in heard[0]
    assert "GiB of weights" in heard[0] and heard.index("[1/4] building the models") == 2
    stages = [line[:5] for line in heard if line.startswith("[")]
    assert stages == sorted(stages) and {"[1/4]", "[2/4]", "[3/4]", "[4/4]"} <= set(stages)
    assert any("timing 2 checkpointed UNet steps" in line for line in heard)
    assert torch.equal(torch.get_rng_state(), rng_before)            # models built under a forked global RNG
    assert torch.get_num_threads() == threads_before
    assert (r.t_star, r.steps, r.eot, r.unet_steps, r.images) == (6, PRESETS["cifar10"]["steps"], 15, 2, 2)
    from diffusers import UNet2DModel

    with torch.device("meta"):
        assert r.unet_parameters == sum(p.numel() for p in UNet2DModel(**TINY_UNET).parameters())
    assert min(r.unet_call_s, r.classifier_grad_s, r.full_unet_step_s) > 0
    assert set(r.peak_memory) == {"models", "purify", "classifier grad", "full gradient"}
    assert all(v > 0 for v in r.peak_memory.values())
    _check_arithmetic(r)


def test_imagenet_dry_run_on_a_stand_in():
    pytest.importorskip("guided_diffusion.script_util")
    r = dry_run("imagenet", unet_config=TINY_GUIDED, classifier_config={"layers": (1, 1, 1, 1), "width": 8},
                t_star=None, unet_steps=1, images=1, threads=1, warmup=False)
    assert r.t_star == PAPER_SETTINGS["imagenet"]["t_star"] and r.unet.endswith("16x16")
    assert [c.images for c in r.cells] == [1000, 1000, 200, 200, 20, 20]
    _check_arithmetic(r)


def test_given_models_and_no_full_gradient(unet, scheduler, cnn_classifier):
    clf = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    r = dry_run("cifar10", purifier_model=(unet, scheduler), classifier=clf, t_star=3, unet_steps=5, images=1,
                full_gradient=False, warmup=False)
    assert r.unet_steps == 3 and r.full_step_s is None and "full gradient" not in r.peak_memory
    assert r.classifier_parameters == 64 * 10 + 10 and r.unet.endswith("8x8")
    assert not any("full-gradient step" in line for line in r.lines())


def test_report_lines_wrap_at_120_columns():
    r = dry_run("cifar10", unet_config=TINY_UNET, classifier_config={"depth": 10, "widen_factor": 1}, t_star=6,
                unet_steps=1, images=1, threads=1, warmup=False, full_gradient=False)
    r.notes.append("a long note " * 30)
    lines = r.lines()
    assert max(len(line) for line in lines) <= 120
    long_note = [i for i, line in enumerate(lines) if line.startswith("Note: a long note")][0]
    nxt = lines[long_note + 1]
    assert nxt.startswith("  ") and nxt.strip() in "a long note " * 30       # continued, indented under it


def test_full_gradient_skipped_when_its_activations_pass_the_memory_limit():
    kwargs = dict(unet_config=TINY_UNET, classifier_config={"depth": 10, "widen_factor": 1}, t_star=4, unet_steps=1,
                  images=1, threads=1, warmup=False)
    heard = []
    r = dry_run("cifar10", memory_limit=1, progress=heard.append, **kwargs)
    assert r.full_step_s is None and "full gradient" not in r.peak_memory
    assert any("was not timed" in n and "memory limit" in n for n in r.notes)
    assert not any("timing" in line and "checkpointed" in line for line in heard)
    timed = dry_run("cifar10", memory_limit=None, **kwargs)
    assert timed.full_step_s is not None and not any("was not timed" in n for n in timed.notes)


def test_saved_activation_bytes_counts_what_backward_keeps_but_the_weights():
    from empirical.costs import saved_activation_bytes

    w = torch.nn.Parameter(torch.randn(8, 16))
    x = torch.randn(4, 8, requires_grad=True)
    f = lambda: (x @ w).relu().sum()
    # the matmul keeps x (for w's gradient) and w (for x's); relu keeps its 4 x 16 output
    assert saved_activation_bytes(f, [w]) == 4 * (4 * 8 + 4 * 16)
    assert saved_activation_bytes(f, []) == 4 * (4 * 8 + 4 * 16 + 8 * 16)
    assert x.grad is None and w.grad is None


def test_plan_names_what_will_be_built_without_building_it(monkeypatch):
    from empirical import dryrun

    text = dryrun.plan("cifar10", unet_config=TINY_UNET, classifier_config={"depth": 10, "widen_factor": 1})
    assert "stand-in config" in text and "WideResNet-10-1" in text and "GiB of weights" in text
    assert "loaded" in dryrun.plan("cifar10", purifier_model="some/hub-id", unet_config=TINY_UNET,
                                   classifier_config={"depth": 10, "widen_factor": 1})


def test_paper_cells():
    cells = {c.name: c for c in protocol_cells("cifar10", steps=50, eot=15)}
    assert cells["BPDA, fixed noise"].images == PAPER_IMAGES["cifar10"]["bpda"] == 10_000
    assert (cells["BPDA, fresh noise"].purifications, cells["BPDA, fresh noise"].grads) == (51, 50)
    assert (cells["BPDA-EOT-15, fresh noise"].purifications, cells["BPDA-EOT-15, fresh noise"].images) == (751, 1000)
    assert cells["BPDA-EOT-15, fixed noise"].purifications == 51
    assert cells["clean, fresh noise"].evaluations == 1


@pytest.mark.parametrize("kwargs, match", [
    (dict(dataset="mnist"), "paper's datasets"),
    (dict(dataset="cifar10", images=0), "images must be"),
    (dict(dataset="cifar10", t_star=0), "t_star must be"),
    (dict(dataset="cifar10", eot=0), "eot must be"),
])
def test_bad_arguments_fail_before_building_anything(kwargs, match, monkeypatch):
    import empirical.dryrun as dr

    monkeypatch.setattr(dr, "_models", lambda *a: pytest.fail("models must not be built"))
    with pytest.raises(ValueError, match=match):
        dry_run(**kwargs)


def test_cuda_request_without_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="CUDA is not available"):
        dry_run("cifar10", device="cuda")
