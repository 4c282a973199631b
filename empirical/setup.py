"""Resolve a table's command line into data, models, purifiers and attack budget (digits default)."""
from __future__ import annotations

import argparse
from dataclasses import dataclass, field

import torch

from empirical import attacks, cli
from empirical.purifiers import make_purifier

# CPU-sized digits default: sized so that `python -m empirical.table1` finishes in <= 10 minutes
# on 2 cores (measured: see the closing note of the Table 1 issue and paper_checks.md).
DIGITS_DEFAULT = dict(n_samples=64, steps=10, eot=4, eot_samples=16)


@dataclass
class PurifierSpec:
    label: str
    method: str
    purifier: object
    classifier: torch.nn.Module
    stochastic: bool
    t_star_text: str

    @property
    def key(self) -> str:
        """Unique per purifier cell (the model label alone repeats across DiffPure / RevPure / DDIM)."""
        return f"{self.label}|{self.method}|t*={self.t_star_text}"


@dataclass
class Setup:
    """Everything a table run needs; `config()` is what a resumed run must match."""

    dataset: str
    x: torch.Tensor
    y: torch.Tensor
    ids: torch.Tensor
    device: torch.device
    eps: float
    steps: int
    step_size: float
    eot: int
    n_samples: int
    n_clean: int
    eot_ids: set = field(default_factory=set)
    purifiers: list = field(default_factory=list)
    notes: list = field(default_factory=list)

    def chunks(self, batch_size: int) -> list[tuple[torch.Tensor, bool]]:
        """(ids, attacked?) chunks: the attacked samples first, then clean-only ones."""
        out = []
        for lo, hi, attack in ((0, self.n_samples, True), (self.n_samples, self.n_clean, False)):
            for s in range(lo, hi, batch_size):
                out.append((self.ids[s:min(s + batch_size, hi)], attack))
        return out

    def batch(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pos = torch.searchsorted(self.ids, ids)
        return self.x[pos].to(self.device), self.y[pos].to(self.device)

    def config(self) -> dict:
        return {"n_samples": self.n_samples, "n_clean": self.n_clean, "eot_ids": sorted(self.eot_ids),
                "purifiers": [(p.label, p.method, p.t_star_text) for p in self.purifiers], "notes": self.notes}

    def describe(self, protocol) -> str:
        names = ", ".join(f"{p.label} [{p.method}, t*={p.t_star_text}]" for p in self.purifiers)
        return (f"Table on {self.dataset}: {self.n_samples} attacked samples ({self.n_clean} for clean), "
                f"BPDA-EOT on {len(self.eot_ids)} with EOT={protocol.eot}; l_{protocol.norm} eps={protocol.eps:.4f} "
                f"(= {protocol.eps * 255:.1f}/255), {protocol.steps} PGD steps of {protocol.step_size:.4f}; "
                f"R={protocol.fresh_evals} fresh evaluations; noise keys per {protocol.noise_keys}; "
                f"device {self.device}.\nPurifiers: {names}" + "".join(f"\n{n}" for n in self.notes))


def load_setup(args: argparse.Namespace, parser: argparse.ArgumentParser) -> Setup:
    """Load data and models for args.dataset and fill the attack budget (CPU default or --full)."""
    device = cli.resolve_device(args.device)
    if args.dataset == "digits":
        return _digits_setup(args, parser, device)
    return _real_setup(args, parser, device)


def _budget(args, n_total: int, defaults: dict, preset: dict) -> dict:
    if args.full:
        n = args.n_samples or n_total
        steps = preset.get("steps", attacks.PRESETS["cifar10"]["steps"])   # the paper gives none: DiffPure's
        budget = dict(n_samples=n, steps=steps, eot=15, eot_samples=max(1, n // 10))
    else:
        budget = dict(defaults)
        budget["n_samples"] = args.n_samples or budget["n_samples"]
    for key in ("steps", "eot", "eot_samples"):
        if getattr(args, key, None) is not None:
            budget[key] = getattr(args, key)
    budget["n_samples"] = min(budget["n_samples"], n_total)
    budget["eot_samples"] = min(budget["eot_samples"], budget["n_samples"])
    return budget


def _finish(args, dataset, data, device, eps, budget, specs, notes, n_clean=None) -> Setup:
    n = budget["n_samples"]
    n_clean = max(n, min(n_clean or args.n_clean or n, len(data.ids)))
    ids = data.ids[:n_clean]
    step_size = args.step_size or eps / 4
    return Setup(dataset=dataset, x=data.x[:n_clean], y=data.y[:n_clean], ids=ids, device=device, eps=eps,
                 steps=budget["steps"], step_size=step_size, eot=budget["eot"], n_samples=n, n_clean=n_clean,
                 eot_ids={int(i) for i in ids[:budget["eot_samples"]]}, purifiers=specs, notes=notes)


def _digits_setup(args, parser, device) -> Setup:
    from empirical.checkpoints import digits_manifest, load_digits_classifier, load_digits_ddpm
    from empirical.data import load_digits
    manifest = digits_manifest()
    trained = manifest["classifiers"]
    data = load_digits("test")
    eps = args.eps or trained["default_eps"]
    names = args.purifiers or ["diffpure", "gaussian"]
    specs, notes = [], [f"digits: default eps {trained['default_eps']:.4f} is the smallest k/255 at which the "
                        "undefended classifier falls below 10% under PGD (manifest)",
                        "weights sha256: " + ", ".join(f"{name} {info['sha256'][:12]}" for name, info
                                                       in sorted(manifest.get("files", {}).items())
                                                       if name.endswith(".safetensors"))]
    clf, diffusion = None, None
    for name in names:
        if name == "gaussian":
            sigma = args.toy_sigma or trained["toy_sigma"]
            noisy = load_digits_classifier("noisy").to(device).eval()
            toy = make_purifier("gaussian", sigma=sigma, clip=bool(trained.get("toy_noise_clipped", False)))
            specs.append(PurifierSpec(f"toy Gaussian sigma={sigma:.3f}", "x + N(0, sigma^2 I)", toy, noisy, True, "-"))
            continue
        if clf is None:
            clf = load_digits_classifier("clean").to(device).eval()
        if diffusion is None and name != "none":
            unet, scheduler = load_digits_ddpm(ema=not args.non_ema)
            diffusion = (unet.to(device), scheduler)
        label = "digits DDPM" + (" (non-EMA)" if args.non_ema else "")
        specs.append(_diffusion_spec(parser, args, name, diffusion, clf, label, default_t_star=100))
    budget = _budget(args, len(data.ids), DIGITS_DEFAULT, attacks.PRESETS.get("digits", {}))
    return _finish(args, "digits", data, device, eps, budget, specs, notes)


def _diffusion_spec(parser, args, name, diffusion, clf, model_label, default_t_star) -> PurifierSpec:
    if name not in cli.PURIFIERS:
        parser.error(f"unknown purifier {name!r}; choose from {', '.join(cli.PURIFIERS)}")
    t_star = args.t_star if args.t_star is not None else default_t_star
    s_star = getattr(args, "s_star", None)
    unet, scheduler = diffusion if diffusion is not None else (None, None)
    try:
        purifier = make_purifier(name, unet=unet, scheduler=scheduler, t_star=t_star, s_star=s_star,
                                 unet_batch=getattr(args, "unet_batch", None))
    except ValueError as err:
        parser.error(str(err))
    method = {"diffpure": "DiffPure", "revpure": "RevPure", "ddim": "DDIM RevPure", "none": "no purifier"}[name]
    t_text = "-" if name == "none" else str(t_star) + (f" (s*={s_star})" if s_star else "")
    return PurifierSpec(model_label, method, purifier, clf, getattr(purifier, "stochastic", True), t_text)


def _real_setup(args, parser, device) -> Setup:
    from empirical import checkpoints
    from empirical.data import load_dataset
    preset = attacks.PRESETS[args.dataset]
    eps = args.eps or preset["eps"]
    if args.dataset == "cifar10":
        t_star, label, n_clean = 100, "DDPM (CIFAR-10)", None
        defaults = dict(n_samples=512, steps=10, eot=15, eot_samples=64)
    else:
        t_star, label, n_clean = 150, "Guided (ImageNet)", 1000
        defaults = dict(n_samples=200, steps=10, eot=15, eot_samples=20)
    n_load = args.n_clean or n_clean or (None if args.full else args.n_samples or defaults["n_samples"])
    data = load_dataset(args.dataset, args.data, n=n_load)     # the cheapest check first
    if args.dataset == "cifar10":
        diffusion = checkpoints.load_diffusers_ddpm(args.purifier_model)
        clf = checkpoints.load_wideresnet(args.classifier)
    else:
        diffusion = checkpoints.load_guided_diffusion(args.purifier_model)
        clf = checkpoints.load_resnet50(args.classifier)
    diffusion = (diffusion[0].to(device), diffusion[1])
    clf = clf.to(device).eval()
    names = args.purifiers or ["diffpure"]
    if "gaussian" in names and args.toy_sigma is None:
        parser.error("the gaussian purifier on real data needs --toy-sigma")
    specs = [PurifierSpec(f"toy Gaussian sigma={args.toy_sigma:.3f}", "x + N(0, sigma^2 I)",
                          make_purifier("gaussian", sigma=args.toy_sigma), clf, True, "-") if n == "gaussian"
             else _diffusion_spec(parser, args, n, diffusion, clf, label, default_t_star=t_star) for n in names]
    budget = _budget(args, len(data.ids), defaults, preset)
    return _finish(args, args.dataset, data, device, eps, budget, specs, [], n_clean=n_clean)
