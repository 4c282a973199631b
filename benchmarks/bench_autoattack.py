"""Cross-check the audit's recommended number against AutoAttack's version for randomized defences.

AutoAttack 'rand' (APGD-CE and APGD-DLR, 100 iterations, EOT over 20 draws per gradient; Croce and Hein
2020, package ``pyautoattack``) is run on the same digits samples the audit measures, through the same
model, with the model's randomness drawn fresh from torch's global generators (seeded once from the run
seed and restored afterwards). AutoAttack counts a sample robust when it is classified correctly under the
draw of its clean check and of every attack's check; the audit's number is the lowest single-draw
accuracy it measured. The script prints both and their paired difference (same samples) with its SE.

Install without touching torch: ``pip install --no-deps pyautoattack`` (it declares no dependencies).

python -m benchmarks.bench_autoattack [--model empirical.examples.defences:gaussian_noise] [--n-samples 128]
(MODULE:FACTORY with MODULE importable.)
"""
from __future__ import annotations

import argparse
import importlib
import json
import sys
import tempfile
from pathlib import Path

import torch

from empirical.audit_summary import joined
from empirical.auditing import AuditConfig, audit, audit_data
from empirical.replay import key_seed, resolve_model, seeded_global_rng
from empirical.results import atomic_write_json
from empirical.stats import paired_difference


def autoattack_rand(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, seed: int,
                    batch_size: int = 256) -> list[bool]:
    """Per-sample robustness under AutoAttack's 'rand' version (l_inf), from its saved evaluation state."""
    from pyautoattack import AutoAttack
    from pyautoattack.state import EvaluationState

    with tempfile.TemporaryDirectory() as folder, seeded_global_rng(key_seed(seed, "autoattack")):
        state = Path(folder) / "state.json"
        attack = AutoAttack(model, norm="Linf", eps=eps, version="rand", seed=seed, device=str(x.device))
        attack.run_standard_evaluation(x, y, batch_size=batch_size, state_path=state)
        flags = EvaluationState.from_disk(state).robust_flags
    return [bool(v) for v in flags.tolist()]


def cross_check(spec: str, n: int, seed: int = 0, steps: int = 10, eot: int = 4, fresh_evals: int = 4) -> dict:
    """The audit's recommended number and AutoAttack-rand's on the first n digits samples."""
    module, _, name = spec.rpartition(":")
    factory = getattr(importlib.import_module(module), name)
    cfg = AuditConfig(model=spec, n_samples=n, batch_size=min(n, 64), steps=steps, eot=eot,
                      fresh_evals=fresh_evals, seed=seed, predict_samples=0)
    rep = audit(factory, cfg)
    x, y, _, _, _ = audit_data(cfg)
    model = resolve_model(factory, cfg.device)
    robust = autoattack_rand(model, x, y, cfg.eps, seed)
    cell = rep.report["cell"]
    ours = joined(rep.records, cell)               # [N], or [R][N] for a cell tested under R fresh draws
    d = paired_difference(ours, robust)
    acc = 100 * sum(robust) / len(robust)
    return {"model": spec, "n": n, "eps": cfg.eps, "audit_verdict": rep.verdict, "audit_cell": cell,
            "audit_estimand": rep.report["estimand"], "audit_acc": rep.report["acc"], "audit_se": rep.report["se"],
            "autoattack_acc": acc, "autoattack_se": 100 * (acc / 100 * (1 - acc / 100) / len(robust)) ** 0.5,
            "difference": d.to_dict(), "within_2se": abs(d.mean) <= 2 * d.se}


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_autoattack", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="empirical.examples.defences:gaussian_noise", metavar="MODULE:FACTORY")
    p.add_argument("--n-samples", type=int, default=128, help="digits samples (default 128, at most 450)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", metavar="PATH", help="write the result as JSON")
    args = p.parse_args(argv)
    try:
        import pyautoattack  # noqa: F401
    except ImportError:
        p.error("pyautoattack is not installed; pip install --no-deps pyautoattack (it leaves torch alone)")
    if not 1 <= args.n_samples <= 450:
        p.error(f"--n-samples must be in [1, 450] (the digits test set), got {args.n_samples}")
    out = cross_check(args.model, args.n_samples, args.seed)
    print(json.dumps(out, indent=1), file=sys.stdout)
    if args.json:
        atomic_write_json(args.json, out)
    return out


if __name__ == "__main__":
    main()
