"""Table S3: the adversarial projection left after purification, BPDA, and PGD-l2 at that eps (paper Sec. 6).

For each purifier (t* = 150, fixed noise) BPDA adversarial examples are crafted exactly as in Table 2;
the purified output P(x_adv) is projected onto the unit adversarial direction (x_adv - x0)/||x_adv - x0||
(x0 the clean image, [0, 1] image units): mean ± std over the attacked samples is the "Adv. projection".
PGD-l2 is then run on the bare classifier (no purifier, so its gradient is the full, exact one; the
paper's column is the classifier alone, "Model: WideResNet-28-10") with eps = that mean projection.
The per-step curves of Fig. 3 come out of the same trajectories and are stored in the JSON.
"""
from __future__ import annotations

import sys
import time

import numpy as np
import torch
from tqdm import tqdm

from empirical import attacks, report
from empirical.purifiers import make_purifier
from empirical.table2 import (build_parser, jsonable, parse, replay_protocol, setup_for, spec_key,
                             write_outputs)
from empirical.trajectories import adversarial_curves, bpda_fixed_noise

PAPER_ROWS = [  # Table S3 (CIFAR-10), beside ours and labelled as the paper's
    {"method": "paper (CIFAR-10): DiffPure", "projection": "0.0972 ± 0.0985", "bpda": 68.00, "pgd_l2": 61.75,
     "eps_l2": 0.0972},
    {"method": "paper (CIFAR-10): RevPure", "projection": "0.0571 ± 0.0758", "bpda": 74.20, "pgd_l2": 78.50,
     "eps_l2": 0.0571},
    {"method": "paper (CIFAR-10): DDIM RevPure", "projection": "0.2001 ± 0.1280", "bpda": 44.12, "pgd_l2": 26.49,
     "eps_l2": 0.2001},
]
COLUMNS = [("method", "Model"), ("t_star", "t*"), ("projection", "Adv. projection"), ("bpda", "BPDA"),
           ("pgd_l2", "PGD-l2 (bare classifier)"), ("eps_l2", "eps (l2)")]
# About 2 minutes on one thread: 3 purifiers at t* = 150, 24 attacked samples, 6 BPDA steps.
DEFAULTS = dict(n_samples=24, steps=6, threads=1)
PGD_L2_STEPS = 40


def measure_spec(spec, setup, protocol, args, keep_every: int) -> dict:
    """BPDA under fixed noise, then the trajectory of each adversarial example through the purifier."""
    out = {"correct": [], "end_projection": [], "adv_norm": [], "l2": [], "cosine": [], "inner": []}
    chunks = [c for c in setup.chunks(args.batch_size) if c[1]]
    for index, (ids, _) in enumerate(tqdm(chunks, desc=spec_key(spec), disable=args.quiet, file=sys.stdout)):
        x, y = setup.batch(ids)
        x_adv, ok, fixed = bpda_fixed_noise(spec.classifier, spec.purifier, x, y, ids, index, protocol)
        curves = adversarial_curves(spec.purifier, x, x_adv, fixed, keep_every)
        out["position"] = curves.position
        out["correct"] += ok.tolist()
        out["end_projection"] += curves.end_projection.tolist()
        out["adv_norm"] += curves.adv_norm.tolist()
        for key in ("l2", "cosine", "inner"):
            out[key].append(getattr(curves, key))
    for key in ("l2", "cosine", "inner"):
        full = np.concatenate(out.pop(key), axis=1)
        out[f"{key}_mean"] = full.mean(axis=1).tolist()
        out[f"{key}_se"] = (full.std(axis=1, ddof=1) / np.sqrt(full.shape[1])).tolist() if full.shape[1] > 1 \
            else [0.0] * full.shape[0]
    return out


def pgd_l2_bare(classifier, x, y, eps: float, steps: int = PGD_L2_STEPS) -> list[bool]:
    """Robust outcome of the bare classifier under PGD-l2 (exact gradient) at radius eps."""
    if eps <= 0:
        with torch.no_grad():
            return (classifier(x).argmax(1) == y).tolist()
    adv = attacks.pgd(classifier, make_purifier("none"), x, y, eps=eps, norm="l2", steps=steps,
                      step_size=2.5 * eps / steps, noise=None, keep="best")
    with torch.no_grad():
        return (classifier(adv.x_adv).argmax(1) == y).tolist()


def main(argv: list[str] | None = None) -> dict:
    parser = build_parser("python -m empirical.projection", __doc__, DEFAULTS)
    parser.add_argument("--keep-every", type=int, default=5, help="record every k-th state for the curves (default 5)")
    args = parse(parser, argv, DEFAULTS)
    if args.keep_every < 1:
        parser.error("--keep-every must be >= 1")
    start = time.perf_counter()
    setup = setup_for(args, parser)
    protocol = replay_protocol(setup, args)
    print(setup.describe(protocol) + "\nTable S3: projection of P(x_adv) - x0 on the unit adversarial direction "
          "([0, 1] units); PGD-l2 on the bare classifier (exact gradient) at eps = mean projection.", flush=True)
    x_all, y_all = setup.batch(setup.ids[:setup.n_samples])
    rows, measured = [], {}
    for spec in setup.purifiers:
        m = measure_spec(spec, setup, protocol, args, args.keep_every)
        proj = np.array(m["end_projection"])
        eps = float(proj.mean())
        pgd = pgd_l2_bare(spec.classifier, x_all, y_all, eps)
        m.update(pgd_l2=pgd, eps_l2=eps, projection_mean=eps, projection_std=float(proj.std(ddof=1)) if proj.size > 1
                 else 0.0, label=spec.label, method=spec.method, t_star=spec.t_star_text)
        measured[spec.method] = m
        rows.append({"method": spec.method, "t_star": spec.t_star_text,
                     "projection": f"{eps:.4f} ± {m['projection_std']:.4f}", "bpda": report.accuracy(m["correct"]),
                     "pgd_l2": report.accuracy(pgd), "eps_l2": eps,
                     "adv_norm": f"{np.mean(m['adv_norm']):.3f}"})
    elapsed = time.perf_counter() - start
    print("\n" + report.format_table(rows + PAPER_ROWS, COLUMNS + [("adv_norm", "||x_adv - x0||")]))
    print(f"Projection: mean ± std over the attacked samples, [0, 1] units. Accuracies in %: mean±SE. Paper rows: "
          f"CIFAR-10 (PGD-l2 on WRN-28-10).\nWall time: {elapsed:.0f} s.")
    result = {"config": {"table": "S3", "dataset": args.dataset, "protocol": protocol.to_dict(),
                         "setup": setup.config(), "keep_every": args.keep_every, "pgd_l2_steps": PGD_L2_STEPS},
              "rows": [jsonable(r) for r in rows], "paper_rows": PAPER_ROWS, "measured": measured,
              "elapsed_s": elapsed}
    write_outputs(args, result, rows, COLUMNS)
    return result


if __name__ == "__main__":
    main()
