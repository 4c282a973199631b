"""Know the cost before the run: time the real architectures on a few images and extrapolate the paper's
Table 1 protocol (Sec. 5.1: BPDA on the whole test set, BPDA-EOT-15 on 10%, with and without fixed noise).

The purifier's cost is linear in t* (one UNet evaluation per reverse step, eq. 2), so `dry_run` times
`unet_steps` evaluations through the package's own DiffPure purifier and multiplies by t*. A BPDA step is
one purification without autograd plus one classifier forward and backward (the straight-through
gradient); a full-gradient step re-runs each checkpointed UNet step for its backward pass, so it is
timed through `unet_steps` checkpointed steps and extrapolated the same way.
"""
from __future__ import annotations

import gc
import textwrap
from dataclasses import asdict, dataclass, field
from typing import Callable

import torch

from empirical.attacks import PAPER_SETTINGS, PRESETS
from empirical.costs import PeakMemory, rss, saved_activation_bytes, timed
from empirical.gradients import loss_grad
from empirical.noise import SampleReplayNoise
from empirical.purifiers import make_purifier

# google/ddpm-cifar10-32's config.json (Ho et al. 2020's CIFAR-10 model): 35.7M parameters.
DDPM_CIFAR10_CONFIG: dict = {
    "sample_size": 32, "in_channels": 3, "out_channels": 3, "layers_per_block": 2,
    "block_out_channels": (128, 256, 256, 256),
    "down_block_types": ("DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"),
    "up_block_types": ("UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"),
    "downsample_padding": 0, "flip_sin_to_cos": False, "freq_shift": 1, "norm_eps": 1e-6,
    "norm_num_groups": 32, "attention_head_dim": None, "act_fn": "silu", "mid_block_scale_factor": 1,
    "center_input_sample": False, "time_embedding_type": "positional",
}
# Images per cell in the paper (Sec. 5.1): CIFAR-10 uses the whole test set for clean and BPDA and 10% for
# BPDA-EOT; ImageNet measures clean accuracy on 1,000 and robust accuracy on 200 validation images (its
# BPDA-EOT cell is empty in Table 1; 10% of the robust set is counted here).
WIDTH = 120                      # columns of the report's lines
MEMORY_LIMIT = 8 * 2 ** 30       # default cap on the process's memory (CPU): stages that would pass it are skipped
# A checkpointed step's backward pass needs several times the bytes its forward pass saves (the recomputed
# activations, their gradients, temporaries): measured 2.6x for the 256x256 guided UNet (11.3 GiB over 4.36 GiB
# saved, 2 images) and 3x for a small DDPM stand-in, so the memory check counts 3x.
BACKWARD_OVER_SAVED = 3.0
Progress = Callable[[str], None]
PAPER_IMAGES: dict[str, dict[str, int]] = {
    "cifar10": {"clean": 10_000, "bpda": 10_000, "eot": 1_000},
    "imagenet": {"clean": 1_000, "bpda": 200, "eot": 20},
}


@dataclass
class Cell:
    """One Table 1 cell: images, purifications, classifier gradients and plain evaluations per image."""

    name: str
    images: int
    purifications: int
    grads: int
    seconds: float = 0.0

    @property
    def evaluations(self) -> int:
        return self.purifications - self.grads


@dataclass
class DryRunReport:
    """Per-image costs measured on `images` images and the extrapolated wall time of the paper's protocol."""

    dataset: str
    device: str
    threads: int
    unet: str
    unet_parameters: int
    classifier: str
    classifier_parameters: int
    t_star: int
    images: int
    unet_steps: int
    steps: int
    eot: int
    unet_call_s: float
    purify_s: float
    classifier_forward_s: float
    classifier_grad_s: float
    bpda_step_s: float
    full_step_s: float | None
    full_unet_step_s: float | None
    cpu_s: dict = field(default_factory=dict)
    peak_memory: dict = field(default_factory=dict)
    memory_method: str = ""
    cells: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    memory_limit: int | None = None

    @property
    def total_hours(self) -> float:
        return sum(c.seconds for c in self.cells) / 3600.0

    @property
    def cpu_utilisation(self) -> float | None:
        """Process CPU seconds of the purification over threads x its wall seconds (CPU runs only): below 1
        when other processes shared the cores, so that wall x utilisation estimates an unshared machine."""
        wall = self.unet_call_s * self.unet_steps * self.images * self.threads
        if not self.device.startswith("cpu") or "purify" not in self.cpu_s or wall <= 0:
            return None
        return min(1.0, self.cpu_s["purify"] / wall)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["total_hours"], d["cpu_utilisation"] = self.total_hours, self.cpu_utilisation
        return d

    def lines(self) -> list[str]:
        """The report as text, with the arithmetic of every extrapolated figure written out."""
        out = [f"Dry run: {self.dataset} on {self.device} ({self.threads} thread(s)), batch of {self.images} image(s)",
               f"Purifier: {self.unet}, {self.unet_parameters / 1e6:.2f}M parameters, t* = {self.t_star}",
               f"Classifier: {self.classifier}, {self.classifier_parameters / 1e6:.2f}M parameters",
               "Per image (wall seconds; measured on a batch, divided by its size):",
               f"  UNet evaluation, no grad      {self.unet_call_s:10.4f} s  (mean of {self.unet_steps} timed)",
               f"  purification at t*={self.t_star:<4d}     {self.purify_s:10.3f} s  = {self.t_star} x "
               f"{self.unet_call_s:.4f} s",
               f"  classifier forward            {self.classifier_forward_s:10.4f} s",
               f"  classifier forward+backward   {self.classifier_grad_s:10.4f} s",
               f"  BPDA attack step              {self.bpda_step_s:10.3f} s  = purification + classifier "
               "forward+backward"]
        if self.full_step_s is not None:
            out.append(f"  full-gradient step            {self.full_step_s:10.3f} s  = {self.t_star} x "
                       f"{self.full_unet_step_s:.4f} s per checkpointed UNet step + classifier forward+backward")
        out.append(f"Peak memory ({self.memory_method}): " +
                   ", ".join(f"{k} {v / 2 ** 30:.2f} GiB" for k, v in self.peak_memory.items()))
        out.append("Process CPU seconds per phase (all threads): " +
                   ", ".join(f"{k} {v:.2f}" for k, v in self.cpu_s.items()))
        out.append(f"Paper protocol (Table 1, {self.steps} PGD steps, EOT {self.eot}); seconds = images x "
                   f"(purifications x {self.purify_s:.3f} + classifier grads x {self.classifier_grad_s:.4f} + "
                   f"evaluations x {self.classifier_forward_s:.4f}):")
        out.append(f"  {'cell':34s} {'images':>7s} {'purif./img':>10s} {'grads/img':>9s} {'hours':>10s}")
        for c in self.cells:
            out.append(f"  {c.name:34s} {c.images:7d} {c.purifications:10d} {c.grads:9d} {c.seconds / 3600:10.2f}")
        out.append(f"  {'total':34s} {'':7s} {'':10s} {'':9s} {self.total_hours:10.2f}"
                   f"  (= {self.total_hours / 24:.1f} days on this device)")
        u = self.cpu_utilisation
        if u is not None and u < 0.9:
            out.append(f"  the purification used {u:.0%} of {self.threads} thread(s) x wall time (other processes shared "
                       f"the CPU): on an unshared machine about {self.total_hours * u:.2f} hours (= total x {u:.2f})")
        return [w for line in out + [f"Note: {n}" for n in self.notes] for w in _wrap(line)]


def _wrap(line: str, width: int = WIDTH) -> list[str]:
    """One report line as lines of at most `width` columns, continuations indented under it."""
    indent = " " * (len(line) - len(line.lstrip()) + 2)
    return textwrap.wrap(line, width=width, subsequent_indent=indent, break_on_hyphens=False) or [line]


def protocol_cells(dataset: str, steps: int, eot: int) -> list[Cell]:
    """Table 1's six cells for a dataset (paper Sec. 5.1): each PGD step purifies once per EOT draw, and the
    final iterate is purified once more to be judged. Under fixed noise the EOT draws are identical, so this
    package purifies once per step (running the 15 identical draws would cost as the fresh-noise cell)."""
    n = PAPER_IMAGES[dataset]
    return [Cell("clean, fresh noise", n["clean"], 1, 0),
            Cell("clean, fixed noise", n["clean"], 1, 0),
            Cell("BPDA, fresh noise", n["bpda"], steps + 1, steps),
            Cell("BPDA, fixed noise", n["bpda"], steps + 1, steps),
            Cell(f"BPDA-EOT-{eot}, fresh noise", n["eot"], eot * steps + 1, eot * steps),
            Cell(f"BPDA-EOT-{eot}, fixed noise", n["eot"], steps + 1, steps)]


def _models(dataset: str, purifier_model, classifier, unet_config, classifier_config):
    """(unet, scheduler, classifier, unet label, classifier label): given, loaded from a spec, or the real
    architectures with random weights (built under a forked global RNG, which is left as it was)."""
    from diffusers import DDPMScheduler

    from empirical import checkpoints

    with torch.random.fork_rng(devices=[]):
        if isinstance(purifier_model, (tuple, list)):
            (unet, scheduler), ulabel = purifier_model, type(purifier_model[0]).__name__
        elif isinstance(purifier_model, str):
            loader = checkpoints.load_diffusers_ddpm if dataset == "cifar10" else checkpoints.load_guided_diffusion
            (unet, scheduler), ulabel = loader(purifier_model), purifier_model
        elif dataset == "cifar10":
            from diffusers import UNet2DModel
            unet = UNet2DModel(**(unet_config or DDPM_CIFAR10_CONFIG))
            scheduler = DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear", beta_start=1e-4,
                                      beta_end=0.02, clip_sample=True)
            ulabel = "DDPM UNet2DModel (" + ("google/ddpm-cifar10-32 architecture" if unet_config is None
                                             else "stand-in config") + ", random weights)"
        else:
            from empirical.models.guided import build_guided_unet
            unet = build_guided_unet(unet_config)
            scheduler = DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear", beta_start=1e-4, beta_end=0.02)
            ulabel = "guided-diffusion UNet (" + ("256x256 unconditional" if unet_config is None
                                                  else "stand-in config") + ", random weights)"
        if isinstance(classifier, torch.nn.Module):
            clf, clabel = classifier, type(classifier).__name__
        elif isinstance(classifier, str):
            clf, clabel = checkpoints.load_classifier(classifier, dataset), classifier
        elif dataset == "cifar10":
            from empirical.models.wideresnet import WideResNet
            cfg = {"depth": 28, "widen_factor": 10, "num_classes": 10, **(classifier_config or {})}
            clf, clabel = WideResNet(**cfg), f"WideResNet-{cfg['depth']}-{cfg['widen_factor']} (random weights)"
        else:
            from empirical.models.resnet import ResNet
            cfg = {"layers": (3, 4, 6, 3), "num_classes": 1000, "width": 64, **(classifier_config or {})}
            clf = ResNet(**cfg)
            clabel = ("ResNet-50" if classifier_config is None else f"ResNet{tuple(cfg['layers'])}") + " (random weights)"
    return unet.eval(), scheduler, clf.eval(), ulabel, clabel


def _check(dataset: str, device: torch.device, images: int, eot: int, steps: int, t_star: int, unet_steps: int) -> None:
    if dataset not in PAPER_IMAGES:
        raise ValueError(f"dry_run covers the paper's datasets {', '.join(PAPER_IMAGES)}; got {dataset!r}")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device} requested but CUDA is not available; use device='cpu'")
    for name, value, low in (("images", images, 1), ("eot", eot, 1), ("steps", steps, 0), ("t_star", t_star, 1),
                             ("unet_steps", unet_steps, 1)):
        if not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")


def _gib(n: float) -> str:
    return f"{n / 2 ** 30:.2f} GiB"


def _size(module: torch.nn.Module) -> tuple[int, int]:
    """(parameters, bytes of parameters and buffers)."""
    tensors = list(module.parameters()) + list(module.buffers())
    return sum(p.numel() for p in module.parameters()), sum(t.numel() * t.element_size() for t in tensors)


def plan(dataset: str, purifier_model=None, classifier=None, unet_config: dict | None = None,
         classifier_config: dict | None = None) -> str:
    """What the dry run will build and the memory of its weights, found by building the architectures on
    PyTorch's meta device (no memory, no weights) before anything real is built."""
    with torch.device("meta"):
        unet, _, clf, ulabel, clabel = _models(dataset, None if isinstance(purifier_model, str) else purifier_model,
                                               None if isinstance(classifier, str) else classifier,
                                               unet_config, classifier_config)
    parts = []
    for spec, module, label in ((purifier_model, unet, ulabel), (classifier, clf, clabel)):
        if isinstance(spec, str):
            parts.append(f"{spec} (loaded; its size is reported once loaded)")
        else:
            count, nbytes = _size(module)
            parts.append(f"{label}: {count / 1e6:.1f}M parameters, {_gib(nbytes)} of weights")
    return " and ".join(parts)


def dry_run(dataset: str, *, device: str | torch.device = "cpu", purifier_model=None, classifier=None,
            t_star: int | None = None, images: int = 2, eot: int = 15, steps: int | None = None,
            threads: int | None = None, unet_steps: int = 3, full_gradient: bool = True, warmup: bool = True,
            unet_config: dict | None = None, classifier_config: dict | None = None, seed: int = 0,
            memory_limit: int | None = MEMORY_LIMIT, progress: Progress | None = None) -> DryRunReport:
    """Time purification, a BPDA step and a full-gradient step on `images` images and extrapolate Table 1.

    dataset: "cifar10" (DDPM UNet of google/ddpm-cifar10-32 + WRN-28-10) or "imagenet" (256x256 unconditional
    guided-diffusion UNet + ResNet-50), random weights unless purifier_model ((unet, scheduler), or a spec
    for `checkpoints.load_diffusers_ddpm` / `load_guided_diffusion`) or classifier (module, or a spec for
    `checkpoints.load_classifier`) are given. unet_config / classifier_config swap in small stand-ins (a
    diffusers UNet2DModel config or a guided-diffusion create_model config; WideResNet or ResNet keyword
    arguments). t* and the PGD step count default to the paper's (`attacks.PAPER_SETTINGS`, `PRESETS`).
    Only `unet_steps` UNet evaluations are timed per phase; `warmup` runs one untimed evaluation first.
    The stages run one at a time, each freeing what it built; on a CPU the full-gradient step is timed only
    if the activations its backward pass keeps (measured first, without keeping them) fit under
    `memory_limit` bytes of process memory (None: no limit). `progress(line)` hears what is built and timed.
    """
    device = torch.device(device)
    t_star = PAPER_SETTINGS.get(dataset, {}).get("t_star", 1) if t_star is None else t_star
    steps = PRESETS.get(dataset, {}).get("steps", 0) if steps is None else steps
    _check(dataset, device, images, eot, steps, t_star, unet_steps)
    say = progress or (lambda line: None)
    k = min(unet_steps, t_star)
    say(f"Dry run ({dataset}) will build {plan(dataset, purifier_model, classifier, unet_config, classifier_config)}")
    say(f"then time, one stage at a time on {images} image(s): {k} UNet evaluations, the classifier, and "
        + ("a full-gradient step" + (f" if it fits under {_gib(memory_limit)} of memory" if memory_limit else "")
           if full_gradient else "no full-gradient step"))
    old_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(int(threads))
    try:
        say("[1/4] building the models")
        with PeakMemory(device) as mem_models:
            unet, scheduler, clf, ulabel, clabel = _models(dataset, purifier_model, classifier, unet_config,
                                                          classifier_config)
            unet, clf = unet.to(device), clf.to(device)
        say(f"[1/4] built; peak memory so far {_gib(mem_models.peak)} ({mem_models.method})")
        m = _measure(unet, scheduler, clf, device, images, k, warmup, full_gradient, seed, memory_limit, say)
        used_threads = torch.get_num_threads()
    finally:
        torch.set_num_threads(old_threads)
    grad_s = m["grad_wall"] / images
    unet_call_s = m["purify_wall"] / k / images
    full_unet_step_s = None if "full_wall" not in m else max(m["full_wall"] - m["grad_wall"], 0.0) / k / images
    report = DryRunReport(
        dataset=dataset, device=str(device), threads=used_threads, unet=f"{ulabel}, {m['size']}",
        unet_parameters=_size(unet)[0], classifier=clabel, classifier_parameters=_size(clf)[0], t_star=t_star,
        images=images, unet_steps=k, steps=steps, eot=eot, unet_call_s=unet_call_s, purify_s=t_star * unet_call_s,
        classifier_forward_s=m["forward_wall"] / images, classifier_grad_s=grad_s,
        bpda_step_s=t_star * unet_call_s + grad_s,
        full_step_s=None if full_unet_step_s is None else t_star * full_unet_step_s + grad_s,
        full_unet_step_s=full_unet_step_s, cpu_s=m["cpu"], peak_memory={"models": mem_models.peak, **m["memory"]},
        memory_method=mem_models.method, memory_limit=memory_limit)
    for c in protocol_cells(dataset, steps, eot):
        c.seconds = c.images * (c.purifications * report.purify_s + c.grads * report.classifier_grad_s
                                + c.evaluations * report.classifier_forward_s)
        report.cells.append(c)
    report.notes = _notes(report, m["image_bytes"]) + m["skipped"]
    say(f"done: {report.total_hours:.1f} hours for the paper's protocol on this device")
    return report


def _measure(unet, scheduler, clf, device: torch.device, images: int, k: int, warmup: bool, full_gradient: bool,
             seed: int, memory_limit: int | None, say: Progress) -> dict:
    """Wall and CPU seconds and peak memory of k purification steps, the classifier's forward and
    forward+backward, and k checkpointed full-gradient steps, all on one batch of `images` random images."""
    from empirical.data import unet_resolution

    config = getattr(unet, "config", None)
    channels = int(config.in_channels if config is not None else getattr(unet, "in_channels", 3))
    h, w = unet_resolution(unet)
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(images, channels, h, w, generator=g).to(device)
    noise = SampleReplayNoise(range(images), run_seed=seed)
    purifier = make_purifier("diffpure", unet, scheduler, t_star=k)
    out = {"unet_steps": k, "size": f"{h}x{w}", "image_bytes": x[0].numel() * x.element_size(), "cpu": {},
           "memory": {}, "skipped": []}
    about = ""
    if warmup:
        say("[2/4] purification: one untimed warm-up UNet evaluation")
        first, _ = timed(lambda: make_purifier("diffpure", unet, scheduler, t_star=1)(x, noise), device)
        about = f" (about {k * first:.0f} s)"
    say(f"[2/4] purification: timing {k} UNet evaluations on {images} image(s){about}")
    held = {}
    with PeakMemory(device) as m:
        out["purify_wall"], out["cpu"]["purify"] = timed(lambda: held.update(xp=purifier(x, noise)), device)
    out["memory"]["purify"], xp = m.peak, held.pop("xp")
    say(f"[3/4] classifier forward and forward+backward (purification took {out['purify_wall']:.1f} s)")
    with torch.no_grad():
        y = torch.randint(int(clf(xp).shape[-1]), (images,), generator=g).to(device)
    out.update(_time_classifier(clf, xp, y, device, out))
    del xp
    gc.collect()
    if full_gradient:
        out["skipped"] += _time_full_gradient(clf, purifier, unet, scheduler, x, y, noise, device, memory_limit,
                                              out, say)
    else:
        say("[4/4] full-gradient step not requested")
    return out


def _time_classifier(clf, xp: torch.Tensor, y: torch.Tensor, device: torch.device, out: dict) -> dict:
    """The classifier's forward and forward+backward on purified images: wall seconds (CPU seconds and the
    gradient's peak memory go into `out`)."""
    def clf_grad() -> None:
        xg = xp.detach().clone().requires_grad_(True)
        torch.autograd.grad(torch.nn.functional.cross_entropy(clf(xg), y), xg)

    def clf_forward() -> None:
        with torch.no_grad():
            clf(xp)

    clf_forward(), clf_grad()
    times = {}
    times["forward_wall"], out["cpu"]["classifier forward"] = timed(clf_forward, device)
    with PeakMemory(device) as m:
        times["grad_wall"], out["cpu"]["classifier grad"] = timed(clf_grad, device)
    out["memory"]["classifier grad"] = m.peak
    return times


def _time_full_gradient(clf, purifier, unet, scheduler, x, y, noise, device: torch.device, memory_limit: int | None,
                        out: dict, say: Progress) -> list[str]:
    """Time k checkpointed full-gradient steps, unless (on a CPU) their backward pass would take the process
    past `memory_limit`; returns a note saying why it was skipped, if it was."""
    if memory_limit is not None and device.type == "cpu" and rss() is not None:
        say("[4/4] full gradient: measuring the activations one checkpointed UNet step keeps for its backward pass")
        one_step = make_purifier("diffpure", unet, scheduler, t_star=1)
        xg = x.detach().clone().requires_grad_(True)
        saved = saved_activation_bytes(lambda: one_step.differentiable(xg, noise, checkpoint=False),
                                       list(unet.parameters()) + list(clf.parameters()))
        gc.collect()
        in_use = rss()
        needed = BACKWARD_OVER_SAVED * saved
        say(f"[4/4] full gradient: one step saves {_gib(saved)} for {x.shape[0]} image(s); its backward pass needs "
            f"about {_gib(needed)} on top of the {_gib(in_use)} in use")
        if in_use + needed > memory_limit:
            return [f"the full-gradient step was not timed: one checkpointed UNet step saves {_gib(saved)} of "
                    f"activations for {x.shape[0]} image(s) and its backward pass needs about {_gib(needed)} "
                    f"({BACKWARD_OVER_SAVED:g}x), which with the {_gib(in_use)} in use would pass the "
                    f"{_gib(memory_limit)} memory limit (dry_run(memory_limit=None) times it anyway)"]
    say(f"[4/4] full gradient: timing {out['unet_steps']} checkpointed UNet steps and their backward pass")
    with PeakMemory(device) as m:
        out["full_wall"], out["cpu"]["full gradient"] = timed(
            lambda: loss_grad(clf, purifier, x, y, noise, "full", checkpoint=True), device)
    out["memory"]["full gradient"] = m.peak
    return []


def _notes(r: DryRunReport, image_bytes: int) -> list[str]:
    notes = [f"purification = t* x the mean of {r.unet_steps} timed UNet evaluations of this package's DiffPure loop "
             "(per-sample replay noise drawn on the CPU included); per-image figures come from one batch of "
             f"{r.images}, so on a GPU, where larger batches amortise, they are upper bounds"]
    if r.full_step_s is not None:
        notes.append("the full-gradient peak is measured through the timed steps; checkpointing keeps one step's "
                     f"activations, and the t* saved step inputs add about "
                     f"{2 * r.t_star * image_bytes / 2 ** 20:.1f} MiB per image at t*")
    notes += ["under fixed noise the 15 EOT draws are identical and purified once per step (the paper's recipe of "
              "15 identical purifications would cost as the fresh-noise cell)",
              "this package's Table 1 also evaluates every adversarial set under fresh draws and measures the "
              "toy-model prediction; those purifications come on top of the paper's protocol counted here"]
    if r.dataset == "imagenet":
        notes.append("the paper's Table 1 has no ImageNet BPDA-EOT figure; 10% of its 200 robust images is counted")
    return notes


_PeakMemory = PeakMemory        # the name benchmarks.bench_gpu imports
