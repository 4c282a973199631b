"""What the audit checks before its first attack: is the model randomized, does a replayed key fix its draws,
and does the gradient the attack will follow carry information.

- ``probe_randomness``: ``PROBE_CALLS`` calls under new keys. Two calls miss a per-call coin half the time;
  21 calls miss randomness with k <= 16 equally likely outcomes per call with probability <= 2^-20 < 1e-6.
- ``probe_input_dependence``: the discrete draws (``torch.bernoulli``, ``multinomial``, ``poisson``,
  ``binomial``, ``Tensor.bernoulli_`` / ``random_`` / ``geometric_``, and ``torch.distributions`` sampling
  through them) recorded under one replayed key at x and at a slightly moved x. When they differ, replay
  fixes the seed but not the draws: every attack step resamples part of the randomness.
- ``gradient_health``: the attack's gradient on a few samples against a finite-difference estimate of the
  same loss (random +-h directions): missing, non-finite, zero, vanishing (nonzero, yet too small to
  matter against the estimate) or uninformative (a step along it raises the loss far less than a step
  along the estimate) means the attack's number would measure the gradient, not the defence.
- ``find_stages``: two children of the model whose composition is the model, for BPDA.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from empirical.replay import MISS_BOUND, PROBE_CALLS, GlobalRNGReplay, RNGKeys, identical

DISCRETE_SAMPLERS = (torch.bernoulli, torch.Tensor.bernoulli, torch.Tensor.bernoulli_, torch.multinomial,
                     torch.Tensor.multinomial, torch.poisson, torch.binomial, torch.Tensor.random_,
                     torch.Tensor.geometric_)
GRADIENT_STATUSES = ("healthy", "missing", "non-finite", "zero", "vanishing", "uninformative")
UNINFORMATIVE = 0.1      # a step along the gradient must gain at least this fraction of the estimate's gain
VANISHING = 1e-6         # a gradient this much smaller than the estimate is vanishing
FLAT = 1e-3              # loss changes (nats) below this are float noise, not a signal


@dataclass(frozen=True)
class RandomnessProbe:
    """Outputs of ``calls`` calls under new keys on the same inputs: randomized when any output differs;
    varying_samples counts the rows whose output changed; miss_bound bounds the chance that per-call
    randomness with k <= 16 equally likely outcomes shows none of it in ``calls`` calls."""

    calls: int
    keys: str
    randomized: bool
    samples: int
    varying_samples: int
    distinct_outputs: int
    miss_bound: float

    def to_dict(self) -> dict:
        return asdict(self)


@torch.no_grad()
def probe_randomness(wrapper: GlobalRNGReplay, x: torch.Tensor, keys: RNGKeys,
                     calls: int = PROBE_CALLS) -> RandomnessProbe:
    """Call the model ``calls`` times on x under fresh ``keys`` (each call its own seeds)."""
    if keys.replay:
        raise ValueError("probe_randomness needs fresh keys (replay=False)")
    if int(calls) != calls or calls < 2:
        raise ValueError(f"probe_randomness needs calls >= 2, got {calls}")
    outs = [wrapper(x, keys) for _ in range(int(calls))]
    first = outs[0]
    varying = [any(not identical(o[i], first[i]) for o in outs[1:]) for i in range(first.shape[0])]
    distinct = len({o.detach().cpu().contiguous().numpy().tobytes() for o in outs})
    return RandomnessProbe(calls=int(calls), keys=keys.mode, randomized=distinct > 1, samples=first.shape[0],
                           varying_samples=sum(varying), distinct_outputs=distinct,
                           miss_bound=2.0 ** (1 - int(calls)))


class _DrawRecorder(TorchFunctionMode):
    """Records the output of every discrete sampler called while it is active."""

    def __init__(self):
        super().__init__()
        self.draws: list[torch.Tensor] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if func in DISCRETE_SAMPLERS and isinstance(out, torch.Tensor):
            self.draws.append(out.detach().cpu().flatten())
        return out


def recorded_draws(wrapper: GlobalRNGReplay, x: torch.Tensor, keys: RNGKeys) -> list[torch.Tensor]:
    """The discrete draws of one call of the model on x under ``keys``, in call order."""
    with torch.no_grad(), _DrawRecorder() as recorder:
        wrapper(x, keys)
    return recorder.draws


def _changed_fraction(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    """Fraction of draw elements that differ (a different count or shape of draws counts as all)."""
    total = sum(t.numel() for t in a)
    if len(a) != len(b) or any(s.shape != t.shape for s, t in zip(a, b)):
        return 1.0
    return sum(int((s != t).sum()) for s, t in zip(a, b)) / total if total else 0.0


@dataclass(frozen=True)
class InputDependence:
    """Discrete draws under one replayed key at x and at x moved by each size in ``moved`` (random +-size
    per pixel): the fraction of draw elements that changed; ``fresh``: the fraction a new key changes."""

    draws: int
    moved: dict
    fresh: float

    @property
    def dependent(self) -> bool:
        return any(f > 0 for f in self.moved.values())

    def to_dict(self) -> dict:
        return {**asdict(self), "dependent": self.dependent}


def probe_input_dependence(wrapper: GlobalRNGReplay, x: torch.Tensor, replay: RNGKeys, fresh: RNGKeys,
                           sizes: dict[str, float], generator: torch.Generator) -> InputDependence:
    """Does a replayed key give the same discrete draws when the input moves a little?"""
    base = recorded_draws(wrapper, x, replay)
    moved = {}
    for name, size in sizes.items():
        sign = torch.randint(0, 2, x.shape, generator=generator).to(x.device, x.dtype) * 2 - 1
        moved[name] = _changed_fraction(base, recorded_draws(wrapper, (x + size * sign).clamp(0, 1), replay))
    other = _changed_fraction(base, recorded_draws(wrapper, x, fresh)) if base else 0.0
    return InputDependence(draws=sum(t.numel() for t in base), moved=moved, fresh=other)


@dataclass(frozen=True)
class GradientHealth:
    """The attack's gradient on ``samples`` inputs, per sample one of GRADIENT_STATUSES; gain_gradient and
    gain_estimate: mean loss increase (nats) of one step of size ``step`` along the gradient and along the
    finite-difference estimate from ``directions`` random +-step directions."""

    gradient: str
    status: str
    samples: int
    per_sample: list
    gain_gradient: float
    gain_estimate: float
    directions: int
    step: float

    @property
    def obfuscated(self) -> bool:
        return self.status != "healthy"

    def describe(self) -> str:
        bad = sum(s != "healthy" for s in self.per_sample)
        return (f"{self.status} on {bad} of {self.samples} samples (a step along it raises the loss by "
                f"{self.gain_gradient:.3g}, along a finite-difference estimate by {self.gain_estimate:.3g})")

    def to_dict(self) -> dict:
        return {**asdict(self), "obfuscated": self.obfuscated}


def _ascent(g: torch.Tensor, norm: str) -> torch.Tensor:
    if norm == "linf":
        return g.sign()
    return g / g.flatten(1).norm(dim=1).clamp_min(1e-30).view(-1, *[1] * (g.ndim - 1))


def _fd_estimate(loss: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, step: float, directions: int,
                 generator: torch.Generator) -> torch.Tensor:
    """sum_d (L(x + h u_d) - L(x - h u_d)) / (2h) u_d over Rademacher directions u_d (SPSA)."""
    est = torch.zeros_like(x)
    for _ in range(directions):
        u = (torch.randint(0, 2, x.shape, generator=generator).to(x.device, x.dtype) * 2 - 1)
        up, down = loss((x + step * u).clamp(0, 1)), loss((x - step * u).clamp(0, 1))
        est += ((up - down) / (2 * step)).view(-1, *[1] * (x.ndim - 1)) * u
    return est / directions


def gradient_health(loss: Callable[[torch.Tensor], torch.Tensor],
                    grad: Callable[[torch.Tensor], torch.Tensor | None], x: torch.Tensor, *, step: float,
                    norm: str, generator: torch.Generator, directions: int = 8, name: str = "full") -> GradientHealth:
    """Classify the gradient ``grad(x)`` of the per-sample loss ``loss(x)`` (both under one fixed key)."""
    with torch.no_grad():
        g = grad(x)
        base = loss(x)
        est = _fd_estimate(loss, x, step, directions, generator)
        gain_est = loss((x + step * _ascent(est, norm)).clamp(0, 1)) - base
    n = x.shape[0]
    if g is None:
        return GradientHealth(name, "missing", n, ["missing"] * n, 0.0, float(gain_est.mean()), directions, step)
    g = g.detach()
    finite = torch.isfinite(g.flatten(1)).all(1)
    with torch.no_grad():
        gain = loss((x + step * _ascent(torch.where(torch.isfinite(g), g, 0), norm)).clamp(0, 1)) - base
    norms, est_norms = g.flatten(1).norm(dim=1), est.flatten(1).norm(dim=1)
    per_sample = []
    for i in range(n):
        if not bool(finite[i]):
            per_sample.append("non-finite")
        elif float(norms[i]) == 0:
            per_sample.append("zero")
        elif float(gain_est[i]) > FLAT and float(gain[i]) < UNINFORMATIVE * float(gain_est[i]):
            per_sample.append("vanishing" if float(norms[i]) < VANISHING * float(est_norms[i]) else "uninformative")
        else:
            per_sample.append("healthy")
    bad = [s for s in per_sample if s != "healthy"]
    status = max(set(bad), key=bad.count) if 2 * len(bad) >= n else "healthy"
    return GradientHealth(name, status, n, per_sample, float(gain.mean()), float(gain_est.mean()), directions, step)


def cross_entropy_of(forward: Callable[[torch.Tensor], torch.Tensor],
                     y: torch.Tensor) -> tuple[Callable, Callable]:
    """(per-sample loss, gradient of its sum or None when the output does not depend on x) of
    CE(forward(x), y), for ``gradient_health``."""
    def loss(x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return F.cross_entropy(forward(x).float(), y, reduction="none")

    def grad(x: torch.Tensor) -> torch.Tensor | None:
        xg = x.detach().clone().requires_grad_(True)
        with torch.enable_grad():
            out = forward(xg)
            if not out.requires_grad:
                return None
            return torch.autograd.grad(F.cross_entropy(out.float(), y, reduction="sum"), xg, allow_unused=True)[0]
    return loss, grad


def find_stages(model: Any, x: torch.Tensor, keys: RNGKeys, whole: torch.Tensor) -> tuple[str, str] | None:
    """Two child modules (purifier, classifier) of the model with classifier(purifier(x)) equal to the
    model's output under the same key, the purifier drawing all the randomness; None if there is no
    such pair (or more than one)."""
    if not isinstance(model, torch.nn.Module):
        return None
    children = dict(model.named_children())
    found = []
    for p_name, purifier in children.items():
        for c_name, classifier in children.items():
            if p_name == c_name:
                continue
            try:
                out = GlobalRNGReplay(lambda t, p=purifier, c=classifier: c(p(t)))(x, keys)
                with torch.no_grad():
                    purified = GlobalRNGReplay(purifier)(x, keys)
                    again = [GlobalRNGReplay(classifier)(purified, RNGKeys("batch", s, "stage-check")) for s in (1, 2)]
            except (ValueError, RuntimeError, TypeError):
                continue
            if out.shape == whole.shape and torch.allclose(out, whole, rtol=1e-5, atol=1e-6) \
                    and identical(*again):
                found.append((p_name, c_name))
    return found[0] if len(found) == 1 else None


__all__ = ["MISS_BOUND", "PROBE_CALLS", "RandomnessProbe", "probe_randomness", "InputDependence",
           "probe_input_dependence", "recorded_draws", "GradientHealth", "gradient_health", "cross_entropy_of",
           "find_stages"]
