"""PGD attacks through purifiers (BPDA, BPDA-EOT, full gradient) and the three evaluation modes.

Paper Sec. 4.3 (Algorithm 1, randomness replay) and Sec. 5.1. Replay vs fresh is decided by the noise
source passed: a replay source (``noise.replay``) makes attack and evaluation share the noise.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .gradients import GRADIENTS, loss_grad
from .noise import FreshNoise, NoiseSource
from .purifiers import _eval_mode, check_images

NORMS = ("linf", "l2")
KEEPS = ("final", "best")
MODES = ("replay", "fresh", "worst-of-N")

# Step counts are not given in the paper; we use DiffPure's BPDA-EOT evaluation (Nie et al. 2022, after
# Hill et al. 2021): 50 sign-PGD steps of 2/255 at 8/255, and the same eps/4 step ratio at 4/255.
PRESETS: dict[str, dict] = {
    "cifar10": {"norm": "linf", "eps": 8 / 255, "steps": 50, "step_size": 2 / 255},
    "imagenet": {"norm": "linf", "eps": 4 / 255, "steps": 50, "step_size": 1 / 255},
}
# The paper's other settings (Sec. 5.1): purifier t* and the EOT sample count (15, as in DiffPure).
PAPER_SETTINGS: dict[str, dict] = {
    "cifar10": {"t_star": 100, "eot": 15},
    "imagenet": {"t_star": 150, "eot": 15},
}


@dataclass
class AttackResult:
    """Adversarial images and the attack's own verdict on them.

    loss: per-sample CE of x_adv under the attack's noise (replay: exact; fresh: mean over the judging draws).
    fooled_rate: fraction of those draws that misclassify. best_step: iterate kept (steps = final).
    loss_history: [steps + 1, B] loss at each iterate (gradient passes, EOT mean), last row = final evaluation.
    eot_effective: purifications per gradient (1 under replay or a deterministic purifier).
    """

    x_adv: torch.Tensor
    loss: torch.Tensor
    fooled_rate: torch.Tensor
    best_step: torch.Tensor
    loss_history: torch.Tensor
    eot_effective: int


@dataclass
class EvalResult:
    """correct [R, N] and loss [R, N] over R evaluation draws; per_sample is the per-image verdict
    (replay: correct; fresh: mean over draws; worst-of-N: correct under all draws)."""

    correct: torch.Tensor
    loss: torch.Tensor
    per_sample: torch.Tensor
    accuracy: float
    stderr: float
    per_draw_accuracy: torch.Tensor
    mode: str


def _check_labels(x: torch.Tensor, y: torch.Tensor) -> None:
    if not isinstance(y, torch.Tensor) or y.ndim != 1 or y.shape[0] != x.shape[0]:
        shape = tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
        raise ValueError(f"labels must be a 1-D tensor of length {x.shape[0]}, got {shape}")
    if y.dtype != torch.int64:
        raise ValueError(f"labels must be int64 class indices (torch.long), got {y.dtype}")


def _check_eps(eps: float, norm: str, x: torch.Tensor) -> None:
    if norm not in NORMS:
        raise ValueError(f"unknown norm {norm!r}; expected one of {NORMS}")
    try:
        eps = float(eps)
    except (TypeError, ValueError):
        raise ValueError(f"eps must be a number, got {eps!r}") from None
    if not math.isfinite(eps) or eps <= 0:
        raise ValueError(f"eps must be a finite number > 0, got {eps}")
    limit = 1.0 if norm == "linf" else math.sqrt(x[0].numel())
    if eps > limit:
        raise ValueError(f"eps {eps} exceeds {limit:.4g}, the diameter of [0, 1]^d in {norm}")


def _noise_or_error(purifier, noise: NoiseSource | None) -> None:
    if purifier.stochastic and noise is None:
        raise ValueError(f"purifier {purifier.name!r} is stochastic: pass a noise source (replay or fresh)")


def purified_loss(classifier, purifier, x: torch.Tensor, y: torch.Tensor,
                  noise: NoiseSource | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample CE and correctness of F(P(x)) for one purification, without autograd."""
    with torch.no_grad(), _eval_mode(classifier):
        logits = classifier(purifier(x, noise))
        return F.cross_entropy(logits, y, reduction="none"), logits.argmax(1) == y


def _project(x_adv: torch.Tensor, x: torch.Tensor, eps: float, norm: str) -> torch.Tensor:
    """Project onto the eps-ball around x, then clamp to [0, 1] (which keeps it inside the ball)."""
    d = x_adv - x
    if norm == "linf":
        d = d.clamp(-eps, eps)
    else:
        n = d.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *[1] * (x.ndim - 1))
        d = d * torch.clamp(eps / n, max=1.0)
    return (x + d).clamp(0.0, 1.0)


def _random_start(x: torch.Tensor, eps: float, norm: str, generator: torch.Generator) -> torch.Tensor:
    """Uniform point of the l_inf box, or uniform in the l2 ball, drawn from the caller's generator."""
    if norm == "linf":
        d = (torch.rand(x.shape, generator=generator, dtype=x.dtype) * 2 - 1) * eps
    else:
        g = torch.randn(x.shape, generator=generator, dtype=x.dtype)
        g = g / g.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)
        r = torch.rand(x.shape[0], generator=generator, dtype=x.dtype) ** (1.0 / x[0].numel())
        d = g * (eps * r).view(-1, 1, 1, 1)
    return _project(x + d.to(x.device), x, eps, norm)


def _ascent(grad: torch.Tensor, norm: str) -> torch.Tensor:
    if norm == "linf":
        return grad.sign()
    return grad / grad.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *[1] * (grad.ndim - 1))


def _eot_grad(classifier, purifier, x, y, noise, gradient, k, checkpoint):
    """Mean gradient and loss over k purifications; the first draw's logits are returned for judging."""
    first = loss_grad(classifier, purifier, x, y, noise, gradient, checkpoint=checkpoint)
    grad, loss = first.grad.clone(), first.loss.clone()
    for _ in range(k - 1):
        lg = loss_grad(classifier, purifier, x, y, noise, gradient, checkpoint=checkpoint)
        grad += lg.grad
        loss += lg.loss
    return grad / k, loss / k, first


def _judge(classifier, purifier, x, y, noise, draws):
    """(fooled rate, mean loss) of x over ``draws`` purifications."""
    fooled, loss = torch.zeros(x.shape[0], device=x.device), torch.zeros(x.shape[0], device=x.device)
    for _ in range(draws):
        lo, ok = purified_loss(classifier, purifier, x, y, noise)
        fooled += (~ok).float()
        loss += lo
    return fooled / draws, loss / draws


def _better(f_new, l_new, f_old, l_old) -> torch.Tensor:
    return (f_new > f_old) | ((f_new == f_old) & (l_new > l_old))


def _validate_pgd(purifier, x, y, eps, norm, steps, step_size, gradient, eot, noise, random_start,
                  generator, keep, select_draws) -> bool:
    check_images(x)
    _check_labels(x, y)
    _check_eps(eps, norm, x)
    if gradient not in GRADIENTS:
        raise ValueError(f"unknown gradient {gradient!r}; expected one of {GRADIENTS}")
    if keep not in KEEPS:
        raise ValueError(f"unknown keep {keep!r}; expected one of {KEEPS}")
    if int(steps) != steps or steps < 0 or not step_size > 0 or int(eot) != eot or eot < 1 or select_draws < 1:
        raise ValueError(f"need integer steps >= 0, step_size > 0, integer eot >= 1, select_draws >= 1; got "
                         f"{steps}, {step_size}, {eot}, {select_draws}")
    if random_start and generator is None:
        raise ValueError("random_start needs a torch.Generator (the global RNG is never used)")
    _noise_or_error(purifier, noise)
    fresh = purifier.stochastic and not getattr(noise, "replay", False)
    if fresh and keep == "best" and select_draws < 3:
        raise ValueError("keep='best' under fresh noise needs select_draws >= 3: judging iterates by one fresh "
                         "draw picks lucky iterates and inflates robust accuracy (shared/facts.md, best-iterate trap)")
    return fresh


def pgd(classifier, purifier, x: torch.Tensor, y: torch.Tensor, *, eps: float, norm: str = "linf", steps: int,
        step_size: float, gradient: str = "bpda", eot: int = 1, noise: NoiseSource | None,
        random_start: bool = False, generator: torch.Generator | None = None, keep: str = "final",
        select_draws: int = 1, checkpoint: bool = True) -> AttackResult:
    """PGD (l_inf sign steps or l2 normalised steps) on CE(F(P(x)), y) within the eps-ball and [0, 1].

    eot=k averages the gradient over k purifications. Under a replay source (or a deterministic purifier)
    all k draws are identical, so the gradient is computed once (the paper's BPDA-EOT == BPDA with fixed
    seeds). keep="best" keeps each image's most adversarial iterate: under replay judged by the replayed
    noise; under fresh noise by ``select_draws`` >= 3 independent fresh purifications per iterate.
    keep="final" is the plain protocol; its loss is judged by ``select_draws`` draws.
    """
    fresh = _validate_pgd(purifier, x, y, eps, norm, steps, step_size, gradient, eot, noise, random_start,
                          generator, keep, select_draws)
    k = eot if fresh else 1
    judge_draws = select_draws if fresh else 1
    x = x.detach()
    x_adv = _random_start(x, eps, norm, generator) if random_start else x.clone()
    history = []
    best_x, best_f, best_l = x_adv.clone(), None, None
    best_step = torch.zeros(x.shape[0], dtype=torch.long, device=x.device)
    with _eval_mode(classifier):
        for s in range(steps):
            grad, loss, first = _eot_grad(classifier, purifier, x_adv, y, noise, gradient, k, checkpoint)
            history.append(loss)
            if keep == "best":
                if fresh:
                    f, lo = _judge(classifier, purifier, x_adv, y, noise, judge_draws)
                else:
                    f, lo = (first.logits.argmax(1) != y).float(), first.loss
                if best_f is None:
                    best_f, best_l = f, lo
                else:
                    upd = _better(f, lo, best_f, best_l)
                    best_x[upd], best_f[upd], best_l[upd], best_step[upd] = x_adv[upd], f[upd], lo[upd], s
            x_adv = _project(x_adv + step_size * _ascent(grad, norm), x, eps, norm)
        f, lo = _judge(classifier, purifier, x_adv, y, noise, judge_draws)
    history.append(lo)
    if keep == "best" and best_f is not None:
        upd = _better(f, lo, best_f, best_l)
        best_x[upd], best_f[upd], best_l[upd], best_step[upd] = x_adv[upd], f[upd], lo[upd], steps
        x_adv, f, lo = best_x, best_f, best_l
        if not fresh and bool((best_step != steps).any()):
            f, lo = _judge(classifier, purifier, x_adv, y, noise, 1)
    else:
        best_step.fill_(steps)
    return AttackResult(x_adv=x_adv, loss=lo, fooled_rate=f, best_step=best_step,
                        loss_history=torch.stack(history), eot_effective=k)


def bpda(classifier, purifier, x: torch.Tensor, y: torch.Tensor, **kw) -> AttackResult:
    """BPDA (Athalye et al. 2018): PGD with the straight-through gradient and one draw per step."""
    return pgd(classifier, purifier, x, y, gradient="bpda", eot=1, **kw)


def bpda_eot(classifier, purifier, x: torch.Tensor, y: torch.Tensor, eot: int = 15, **kw) -> AttackResult:
    """BPDA-EOT: BPDA gradients averaged over ``eot`` noise draws (15 as in the paper); one draw under replay."""
    return pgd(classifier, purifier, x, y, gradient="bpda", eot=eot, **kw)


def evaluate(classifier, purifier, x: torch.Tensor, y: torch.Tensor, *, mode: str = "replay",
             noise: NoiseSource | None = None, generator: torch.Generator | None = None, draws: int = 1) -> EvalResult:
    """Accuracy of F(P(x)) under the attack's replayed noise ("replay"), ``draws`` fresh purifications
    ("fresh", Theorem 1's transfer when x was crafted under replay) or all of them ("worst-of-N")."""
    check_images(x)
    _check_labels(x, y)
    if mode not in MODES:
        raise ValueError(f"unknown evaluation mode {mode!r}; expected one of {MODES}")
    if int(draws) != draws or draws < 1:
        raise ValueError(f"draws must be an integer >= 1, got {draws}")
    if mode == "replay":
        if draws != 1:
            raise ValueError("replay evaluation is deterministic; draws must be 1")
        if purifier.stochastic and not getattr(noise, "replay", False):
            raise ValueError("mode='replay' needs the attack's replay noise source")
        source = noise
    elif not purifier.stochastic:
        source = None
    elif generator is not None:
        source = FreshNoise(generator)
    elif noise is not None and not noise.replay:
        source = noise
    else:
        raise ValueError(f"mode={mode!r} needs a torch.Generator (or a fresh noise source) for new draws")
    rows = 1 if (mode == "replay" or not purifier.stochastic) else draws
    results = [purified_loss(classifier, purifier, x, y, source) for _ in range(rows)]
    loss = torch.stack([r[0] for r in results]).expand(draws if mode != "replay" else 1, -1)
    correct = torch.stack([r[1] for r in results]).expand(draws if mode != "replay" else 1, -1)
    per_sample = correct.all(0).float() if mode == "worst-of-N" else correct.float().mean(0)
    n = per_sample.numel()
    stderr = float(per_sample.std(unbiased=True) / math.sqrt(n)) if n > 1 else float("nan")
    return EvalResult(correct=correct.clone(), loss=loss.clone(), per_sample=per_sample,
                      accuracy=float(per_sample.mean()), stderr=stderr,
                      per_draw_accuracy=correct.float().mean(1), mode=mode)
