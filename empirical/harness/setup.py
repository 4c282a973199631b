"""Load data, models and purifiers for a Config, and resolve the attack budget (digits default or --full).

`load_setup(config)` turns a Config into the tensors and modules of its table cells (data, classifier,
purifiers, budget). It is not the only loader: Table 3 (`empirical.ema`) also loads the digits classifier
and both digits splits for its Frechet distances, and the audit loads its own data
(`empirical.auditing.audit_data`) and model (a user's MODULE:FACTORY, in `empirical.audit`).
Errors a user can fix (missing files, a purifier that cannot be built) are ValueErrors whose message names
the fix; `harness.report.run_main` turns them into one line on stderr and exit status 2.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import torch

from empirical import attacks
from empirical.harness.config import DATASET_DEFAULTS, Config
from empirical.harness.runner import Chunk, plan_chunks
from empirical.protocol import Protocol
from empirical.purifiers import make_purifier

DIGITS_DEFAULT, REAL_DEFAULTS = DATASET_DEFAULTS["digits"], {k: DATASET_DEFAULTS[k] for k in ("cifar10", "imagenet")}
REAL_T_STAR = {"cifar10": 100, "imagenet": 150}
METHODS = {"diffpure": "DiffPure", "revpure": "RevPure", "ddim": "DDIM RevPure", "none": "no purifier"}


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
    """Data, purifier cells and the resolved attack budget of one run."""

    dataset: str
    x: torch.Tensor
    y: torch.Tensor
    ids: torch.Tensor
    device: torch.device
    budget: dict
    n_samples: int
    n_clean: int
    eot_ids: set = field(default_factory=set)
    purifiers: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    identity: dict = field(default_factory=dict)

    def chunks(self, batch_size: int) -> list[Chunk]:
        return plan_chunks(self.ids[:self.n_clean].tolist(), self.n_samples, batch_size)

    def batch(self, ids) -> tuple[torch.Tensor, torch.Tensor]:
        ids = torch.as_tensor(ids, dtype=self.ids.dtype)
        pos = torch.searchsorted(self.ids, ids)
        return self.x[pos].to(self.device), self.y[pos].to(self.device)

    def resolved(self) -> dict:
        """What the run measures once data are loaded: part of every output and of the store's digest."""
        return {"n_samples": self.n_samples, "n_clean": self.n_clean, "eot_ids": sorted(self.eot_ids),
                "budget": self.budget, "identity": self.identity,
                "purifiers": [(p.label, p.method, p.t_star_text) for p in self.purifiers],
                "purifier_settings": [p.purifier.describe() for p in self.purifiers], "notes": self.notes}

    def describe(self, protocol: Protocol) -> str:
        names = ", ".join(f"{p.label} [{p.method}, t*={p.t_star_text}]" for p in self.purifiers)
        return (f"Table on {self.dataset}: {self.n_samples} attacked samples ({self.n_clean} for clean), "
                f"BPDA-EOT on {len(self.eot_ids)} with EOT={protocol.eot}; {protocol.norm} eps={protocol.eps:.4f} "
                f"(= {protocol.eps * 255:.1f}/255), {protocol.steps} PGD steps of {protocol.step_size:.4f}; "
                f"R={protocol.fresh_evals} fresh evaluations; noise keys per {protocol.noise_keys}; "
                f"device {self.device}.\nPurifiers: {names}" + "".join(f"\n{n}" for n in self.notes))


def resolve_device(name: str) -> torch.device:
    """'auto' picks CUDA when present; asking for CUDA without it is an error, not a silent fallback."""
    if name == "auto":
        if not torch.cuda.is_available():
            return torch.device("cpu")
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {name} asked for CUDA, but torch sees no CUDA device")
    if device.type == "cuda" and device.index is None:     # under torchrun each rank takes its own GPU
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return device


def load_setup(config: Config) -> Setup:
    """Load data and models for config.data.dataset and resolve the attack budget."""
    device = resolve_device(config.run.device)
    if config.data.dataset == "digits":
        return _digits_setup(config, device)
    return _real_setup(config, device)


def resolve_budget(config: Config, n_total: int, defaults: dict, preset: dict, eps: float) -> dict:
    """Sample counts and the PGD budget: the table's CPU defaults, the paper's protocol under --full, then
    the options the user set."""
    s = config.sizes
    if s.full:
        n = s.n_samples or n_total
        steps = preset.get("steps", attacks.PRESETS["cifar10"]["steps"])   # the paper gives none: DiffPure's
        budget = dict(n_samples=n, steps=steps, eot=15, eot_samples=max(1, n // 10))
    else:
        budget = dict(defaults)
        budget["n_samples"] = s.n_samples or budget["n_samples"] or n_total
    for key in ("steps", "eot", "eot_samples"):
        if getattr(s, key) is not None:
            budget[key] = getattr(s, key)
    budget["n_samples"] = min(budget["n_samples"], n_total)
    budget["eot_samples"] = min(budget["eot_samples"], budget["n_samples"])
    budget["eps"] = eps
    budget["step_size"] = s.step_size or eps / 4
    return budget


def _finish(config: Config, data, device, budget, specs, notes, identity, n_clean=None) -> Setup:
    n = budget["n_samples"]
    n_clean = max(n, min(n_clean or config.sizes.n_clean or n, len(data.ids)))
    ids = data.ids[:n_clean]
    return Setup(dataset=config.data.dataset, x=data.x[:n_clean], y=data.y[:n_clean], ids=ids, device=device,
                 budget={k: budget[k] for k in ("eps", "steps", "step_size", "eot")}, n_samples=n,
                 n_clean=n_clean, eot_ids={int(i) for i in ids[:budget["eot_samples"]]}, purifiers=specs,
                 notes=notes, identity=identity)


def _eps_note(trained: dict, eps: float | None, norm: str) -> str:
    """The digits eps note: why the default radius, or, for a user's l_inf radius at which the undefended
    classifier keeps most of its accuracy (the manifest's PGD curve), a warning with that accuracy."""
    if eps is None:
        return (f"digits: default eps {round(trained['default_eps'] * 255)}/255 is the smallest k/255 at which the "
                "undefended classifier falls below 10% under PGD (manifest)")
    pgd = trained.get("pgd", {})
    curve = [c for c in pgd.get("curve", []) if c["eps_k255"] <= eps * 255 + 1e-9]
    if norm != "linf" or not curve or curve[-1]["accuracy"] < 0.5:
        return ""
    c = curve[-1]
    return (f"WARNING: at eps {eps * 255:.3g}/255 the undefended classifier keeps {100 * c['accuracy']:.1f}% of the "
            f"digits test set under {pgd.get('pgd_steps', '?')}-step PGD (manifest, eps {c['eps_k255']}/255): the "
            f"attack barely moves digits, so drops here say little; the default "
            f"{round(trained['default_eps'] * 255)}/255 takes it below 10%")


def _digits_setup(config: Config, device: torch.device) -> Setup:
    from empirical.checkpoints import digits_manifest, load_digits_classifier, load_digits_ddpm
    from empirical.data import load_digits
    from empirical.identity import digits_identity
    manifest = digits_manifest()
    trained = manifest["classifiers"]
    data = load_digits("test")
    eps = config.sizes.eps or trained["default_eps"]
    names = config.purifier.names or ("diffpure", "gaussian")
    weights = digits_identity()
    notes = [_eps_note(trained, config.sizes.eps, config.sizes.norm),
             "weights sha256: " + ", ".join(f"{name} {h[:12]}" for name, h in weights["files"].items())]
    notes = [n for n in notes if n]
    specs, clf, diffusion = [], None, None
    for name in names:
        if name == "gaussian":
            sigma = config.purifier.toy_sigma or trained["toy_sigma"]
            noisy = load_digits_classifier("noisy").to(device).eval()
            toy = make_purifier("gaussian", sigma=sigma, clip=bool(trained.get("toy_noise_clipped", False)))
            specs.append(PurifierSpec(f"toy Gaussian sigma={sigma:.3f}", "x + N(0, sigma^2 I)", toy, noisy, True, "-"))
            continue
        if clf is None:
            clf = load_digits_classifier("clean").to(device).eval()
        if diffusion is None and name != "none":
            unet, scheduler = load_digits_ddpm(ema=not config.data.non_ema)
            diffusion = (unet.to(device), scheduler)
        label = "digits DDPM" + (" (non-EMA)" if config.data.non_ema else "")
        specs.append(_diffusion_spec(config, name, diffusion, clf, label, default_t_star=100))
    budget = resolve_budget(config, len(data.ids), DIGITS_DEFAULT, attacks.PRESETS.get("digits", {}), eps)
    return _finish(config, data, device, budget, specs, notes, {"digits weights": weights})


def _diffusion_spec(config: Config, name: str, diffusion, clf, model_label: str, default_t_star: int) -> PurifierSpec:
    p = config.purifier
    t_star = p.t_star if p.t_star is not None else default_t_star
    unet, scheduler = diffusion if diffusion is not None else (None, None)
    clip = {"auto": "auto", "none": None}.get(p.x0_clip) if p.x0_clip in ("auto", "none") else float(p.x0_clip)
    purifier = make_purifier(name, unet=unet, scheduler=scheduler, t_star=t_star, s_star=p.s_star,
                             unet_batch=p.unet_batch, clip=clip, variance_type=p.variance, respacing=p.respacing,
                             mixed_precision=p.mixed_precision)
    t_text = "-" if name == "none" else str(t_star) + (f" (s*={p.s_star})" if p.s_star else "")
    if p.respacing != "respaced" and name != "none":
        t_text += f" {p.respacing}"
    return PurifierSpec(model_label, METHODS[name], purifier, clf, getattr(purifier, "stochastic", True), t_text)


def _real_setup(config: Config, device: torch.device) -> Setup:
    from empirical import checkpoints
    from empirical.data import check_num_classes, check_resolution, load_dataset
    d, s = config.data, config.sizes
    preset = attacks.PRESETS[d.dataset]
    eps = s.eps or preset["eps"]
    defaults = REAL_DEFAULTS[d.dataset]
    n_clean = 1000 if d.dataset == "imagenet" else None
    n_load = s.n_clean or n_clean or (None if s.full else s.n_samples or defaults["n_samples"])
    download = config.output.allow_download
    data = load_dataset(d.dataset, d.data, n=n_load, allow_download=download)     # the cheapest check first
    if d.dataset == "cifar10":
        diffusion = checkpoints.load_diffusers_ddpm(d.purifier_model, allow_download=download)
        label = "DDPM (CIFAR-10)"
    else:
        diffusion = checkpoints.load_guided_diffusion(d.purifier_model)
        label = "Guided (ImageNet)"
    clf = checkpoints.load_classifier(d.classifier, d.dataset, allow_download=download)
    check_resolution(data, diffusion[0])
    check_num_classes(data.classes, clf, tuple(data.x.shape[1:]))
    diffusion = (diffusion[0].to(device), diffusion[1])
    clf = clf.to(device).eval()
    names = config.purifier.names or ("diffpure",)
    if "gaussian" in names and config.purifier.toy_sigma is None:
        raise ValueError("the gaussian purifier on real data needs --toy-sigma")
    specs = [PurifierSpec(f"toy Gaussian sigma={config.purifier.toy_sigma:.3f}", "x + N(0, sigma^2 I)",
                          make_purifier("gaussian", sigma=config.purifier.toy_sigma), clf, True, "-")
             if n == "gaussian" else _diffusion_spec(config, n, diffusion, clf, label, REAL_T_STAR[d.dataset])
             for n in names]
    budget = resolve_budget(config, len(data.ids), defaults, preset, eps)
    return _finish(config, data, device, budget, specs, [], _identities(config), n_clean=n_clean)


def _identities(config: Config) -> dict:
    """Content identities of the weights and data (hashes, never paths alone), so a resume cannot mix
    models or data and a reader can tell runs apart."""
    from empirical import identity
    d = config.data
    return {"data": identity.data_identity(d.dataset, d.data),
            "purifier_model": identity.weights_identity(d.purifier_model, d.dataset),
            "classifier": identity.weights_identity(d.classifier, d.dataset)}
