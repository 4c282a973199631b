"""PGD attacks through purifiers (BPDA, BPDA-EOT, full gradient) and the three evaluation modes.

Paper Sec. 4.3 (Algorithm 1, randomness replay) and Sec. 5.1. Replay vs fresh is decided by the noise
source passed: a replay source (``noise.replay``) makes attack and evaluation share the noise.

Two estimands of robust accuracy under fresh noise are offered, because a randomized defence's number
depends on the rule as much as on the attack: RULE_SINGLE_DRAW, the project's no-fix cells (the final
iterate's single-draw accuracy, averaged over R fresh draws, via ``evaluate``), and RULE_DIFFPURE, the
rule of DiffPure's own BPDA-EOT harness (Nie et al. 2022, after Hill et al. 2021):
``pgd(..., any_iterate=True)`` -> ``AttackResult.broken_any``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from .gradients import GRADIENTS, loss_grad
from .noise import FreshNoise, NoiseSource
from .purifiers import _eval_mode, check_images

NORMS = ("linf", "l2")
KEEPS = ("final", "best")
MODES = ("replay", "fresh", "worst-of-N")
FLOAT_DTYPES = (torch.float32, torch.float64)

RULE_SINGLE_DRAW = "final iterate, single-draw accuracy averaged over R fresh draws"
RULE_DIFFPURE = ("broken if any iterate (start included) is misclassified on logits averaged over judge_draws "
                 "fresh draws, confirmed on logits averaged over confirm_draws draws")
ESTIMANDS = {"single_draw": RULE_SINGLE_DRAW, "any_iterate_averaged": RULE_DIFFPURE}
# DiffPure's harness: 15 draws (its eot_attack_reps) judge every iterate, 150 (eot_defense_reps) confirm each break.
DIFFPURE_JUDGE_DRAWS, DIFFPURE_CONFIRM_DRAWS = 15, 150

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
    broken_any, broken_final (only with ``any_iterate=True``, else None): RULE_DIFFPURE's per-sample verdict
    over all iterates, and the same rule applied to the final iterate alone (broken_final implies broken_any).
    start_correct: whether the first gradient pass (iterate 0, under the attack's first noise draw) classified
    each sample correctly; under replay without a random start this is the clean replay verdict, so a table
    need not purify the clean input again (None when steps = 0).
    final_judged: False when ``final_judge=False`` skipped the last judgement (then the final loss and
    fooled_rate are not measured: nan).
    """

    x_adv: torch.Tensor
    loss: torch.Tensor
    fooled_rate: torch.Tensor
    best_step: torch.Tensor
    loss_history: torch.Tensor
    eot_effective: int
    broken_any: torch.Tensor | None = None
    broken_final: torch.Tensor | None = None
    start_correct: torch.Tensor | None = None
    final_judged: bool = True


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


def project(x_adv: torch.Tensor, x: torch.Tensor, eps: float, norm: str) -> torch.Tensor:
    """Project onto the eps-ball (l_inf or l2) around x, then clamp to [0, 1] (which keeps it inside the ball)."""
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
    return project(x + d.to(x.device), x, eps, norm)


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
    fooled = torch.zeros(x.shape[0], device=x.device, dtype=x.dtype)
    loss = torch.zeros(x.shape[0], device=x.device, dtype=x.dtype)
    for _ in range(draws):
        lo, ok = purified_loss(classifier, purifier, x, y, noise)
        fooled += (~ok).float()
        loss += lo
    return fooled / draws, loss / draws


def _averaged_logits(classifier, purifier, x: torch.Tensor, noise: NoiseSource | None, draws: int) -> torch.Tensor:
    """Logits of F(P(x)) averaged over ``draws`` purifications, without autograd."""
    with torch.no_grad(), _eval_mode(classifier):
        total = classifier(purifier(x, noise))
        for _ in range(draws - 1):
            total = total + classifier(purifier(x, noise))
    return total / draws


class _AnyIterateJudge:
    """RULE_DIFFPURE, as DiffPure's harness applies it (its eval_and_bpda_eot_grad):
    every iterate is classified on logits averaged over ``judge_draws`` purifications; each sample
    that this calls misclassified (and is not yet broken) is re-judged on logits averaged over
    ``confirm_draws`` further purifications, and is broken from then on if that confirms it
    (confirm_draws = 0: the first judgement decides). Under a replay source or a deterministic
    purifier every draw is the same, so one evaluation decides. The final iterate is judged for every
    sample, giving broken_final on the same logits (so broken_final implies broken_any).
    DiffPure judges on the purifications its EOT gradient also averages over; separate judging draws have
    the same law (in both, an iterate is judged on draws it was not chosen with) and leave the attack's
    draws untouched. DiffPure also judges the clean input before the loop, which without a random start
    is iterate 0 judged twice."""

    def __init__(self, classifier, purifier, y: torch.Tensor, noise, judge_draws: int, confirm_draws: int):
        fixed = not purifier.stochastic or getattr(noise, "replay", False)
        self.classifier, self.purifier, self.y, self.noise = classifier, purifier, y, noise
        self.draws, self.confirm = (1, 0) if fixed else (judge_draws, confirm_draws)
        self.broken = torch.zeros_like(y, dtype=torch.bool)
        self.final: torch.Tensor | None = None

    def observe(self, x: torch.Tensor, final: bool = False) -> None:
        wrong = _averaged_logits(self.classifier, self.purifier, x, self.noise, self.draws).argmax(1) != self.y
        todo = wrong if final else wrong & ~self.broken
        if self.confirm and bool(todo.any()):
            idx = todo.nonzero().flatten()
            sub = self.noise.subset(idx.cpu())
            again = _averaged_logits(self.classifier, self.purifier, x[idx], sub, self.confirm).argmax(1) != self.y[idx]
            todo = torch.zeros_like(todo).index_put((idx,), again)
        if final:
            self.final = todo.clone()
        self.broken |= todo


def _validate_judge(purifier, any_iterate: bool, judge_noise, judge_draws, confirm_draws) -> None:
    if not any_iterate:
        if judge_noise is not None:
            raise ValueError("judge_noise is only used with any_iterate=True (RULE_DIFFPURE); pass any_iterate=True")
        return
    if int(judge_draws) != judge_draws or judge_draws < 1 or int(confirm_draws) != confirm_draws or confirm_draws < 0:
        raise ValueError(f"any_iterate needs integer judge_draws >= 1 and confirm_draws >= 0, got {judge_draws}, "
                         f"{confirm_draws}")
    if purifier.stochastic and judge_noise is None:
        raise ValueError(f"any_iterate on the stochastic purifier {purifier.name!r} needs judge_noise: a fresh noise "
                         f"source for the judging draws (separate from the attack's, so its draws are unchanged)")


def _better(f_new, l_new, f_old, l_old) -> torch.Tensor:
    return (f_new > f_old) | ((f_new == f_old) & (l_new > l_old))


def _validate_pgd(purifier, x, y, eps, norm, steps, step_size, gradient, eot, noise, random_start,
                  generator, keep, select_draws) -> bool:
    check_images(x)
    if x.dtype not in FLOAT_DTYPES:
        raise ValueError(f"x must be float32 or float64, got {x.dtype}: cast with x.float() (the attack's steps and "
                         f"projection need full precision; mixed precision belongs inside the purifier)")
    _check_labels(x, y)
    _check_eps(eps, norm, x)
    try:
        step = float(step_size)
    except (TypeError, ValueError):
        raise ValueError(f"step_size must be a number, got {step_size!r}") from None
    if not math.isfinite(step) or step <= 0:
        raise ValueError(f"step_size must be a finite number > 0, got {step_size}")
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
                         "draw picks lucky iterates and inflates robust accuracy; use keep='final' or select_draws >= 3")
    return fresh


def pgd(classifier, purifier, x: torch.Tensor, y: torch.Tensor, *, eps: float, norm: str = "linf", steps: int,
        step_size: float, gradient: str = "bpda", eot: int = 1, noise: NoiseSource | None,
        random_start: bool = False, generator: torch.Generator | None = None, keep: str = "final",
        select_draws: int = 1, checkpoint: bool = True, any_iterate: bool = False,
        judge_noise: NoiseSource | None = None, judge_draws: int = DIFFPURE_JUDGE_DRAWS,
        confirm_draws: int = DIFFPURE_CONFIRM_DRAWS, on_step: Callable[[], None] | None = None,
        final_judge: bool = True) -> AttackResult:
    """PGD (l_inf sign steps or l2 normalised steps) on CE(F(P(x)), y) within the eps-ball and [0, 1].

    eot=k averages the gradient over k purifications. Under a replay source (or a deterministic purifier)
    all k draws are identical, so the gradient is computed once (the paper's BPDA-EOT == BPDA with fixed
    seeds). keep="best" keeps each image's most adversarial iterate: under replay judged by the replayed
    noise; under fresh noise by ``select_draws`` >= 3 independent fresh purifications per iterate.
    keep="final" is the plain protocol; its loss is judged by ``select_draws`` draws.
    any_iterate=True also records RULE_DIFFPURE (``broken_any``, ``broken_final``): iterates 0..steps, the
    start included, judged with ``judge_noise`` (a source of its own, so the attack's draws and numbers are
    those of any_iterate=False); with a deterministic purifier it is "misclassified at some iterate".
    on_step() is called after every step (a progress bar that moves per attack step).
    final_judge=False (keep="final" only) skips the purification that judges the final iterate, for callers
    that evaluate x_adv on draws of their own; the attack's draws up to then are unchanged.
    """
    if not final_judge and keep != "final":
        raise ValueError("final_judge=False needs keep='final' (keep='best' judges the final iterate to choose)")
    fresh = _validate_pgd(purifier, x, y, eps, norm, steps, step_size, gradient, eot, noise, random_start,
                          generator, keep, select_draws)
    _validate_judge(purifier, any_iterate, judge_noise, judge_draws, confirm_draws)
    k = eot if fresh else 1
    judge_draws_best = select_draws if fresh else 1
    x = x.detach()
    x_adv = _random_start(x, eps, norm, generator) if random_start else x.clone()
    judge = _AnyIterateJudge(classifier, purifier, y, judge_noise, judge_draws, confirm_draws) if any_iterate else None
    history = []
    best_x, best_f, best_l = x_adv.clone(), None, None
    best_step = torch.zeros(x.shape[0], dtype=torch.long, device=x.device)
    start_correct = None
    with _eval_mode(classifier):
        for s in range(steps):
            if judge is not None:
                judge.observe(x_adv)
            grad, loss, first = _eot_grad(classifier, purifier, x_adv, y, noise, gradient, k, checkpoint)
            if s == 0:
                start_correct = first.logits.argmax(1) == y
            history.append(loss)
            if keep == "best":
                if fresh:
                    f, lo = _judge(classifier, purifier, x_adv, y, noise, judge_draws_best)
                else:
                    f, lo = (first.logits.argmax(1) != y).to(x.dtype), first.loss.to(x.dtype)
                if best_f is None:
                    best_f, best_l = f, lo
                else:
                    upd = _better(f, lo, best_f, best_l)
                    best_x[upd], best_f[upd], best_l[upd], best_step[upd] = x_adv[upd], f[upd], lo[upd], s
            x_adv = project(x_adv + step_size * _ascent(grad, norm), x, eps, norm)
            if on_step is not None:
                on_step()
        if final_judge:
            f, lo = _judge(classifier, purifier, x_adv, y, noise, judge_draws_best)
        else:
            f = lo = torch.full((x.shape[0],), float("nan"), device=x.device)
        if judge is not None:
            judge.observe(x_adv, final=True)
    history.append(lo)
    if keep == "best" and best_f is not None:
        upd = _better(f, lo, best_f, best_l)
        best_x[upd], best_f[upd], best_l[upd], best_step[upd] = x_adv[upd], f[upd], lo[upd], steps
        x_adv, f, lo = best_x, best_f, best_l
        if not fresh and bool((best_step != steps).any()):
            f, lo = _judge(classifier, purifier, x_adv, y, noise, 1)
    else:
        best_step.fill_(steps)
    return AttackResult(x_adv=x_adv, loss=lo, fooled_rate=f, best_step=best_step, loss_history=torch.stack(history),
                        eot_effective=k, broken_any=None if judge is None else judge.broken,
                        broken_final=None if judge is None else judge.final, start_correct=start_correct,
                        final_judged=final_judge)


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
