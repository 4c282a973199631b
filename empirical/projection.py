"""Table S3: the adversarial projection left after purification, BPDA, and PGD-l2 at that eps (paper Sec. 6).

For each purifier (t* = 150, fixed noise) BPDA adversarial examples are crafted exactly as in Table 2;
the purified output P(x_adv) is projected onto the unit adversarial direction (x_adv - x0)/||x_adv - x0||
(x0 the clean image, [0, 1] units): mean ± std over the attacked samples is the "Adv. projection".
PGD-l2 is then run on the bare classifier (no purifier, so its gradient is the exact one; the paper's
column is the classifier alone) with eps = that mean projection. The per-step curves of Fig. 3 come out
of the same trajectories and are stored in the JSON.
"""
from __future__ import annotations

import numpy as np
import torch

from empirical import attacks
from empirical.harness import config as cfg
from empirical.harness import report
from empirical.harness.curves import measure_curves
from empirical.harness.setup import load_setup
from empirical.purifiers import make_purifier
from empirical.paper.notes import notes as claim_notes
from empirical.paper.numbers import TABLE_S3_ROWS

PAPER_ROWS = TABLE_S3_ROWS   # Table S3 (CIFAR-10), beside ours and labelled as the paper's
COLUMNS = [("method", "Model"), ("t_star", "t*"), ("projection", "Adv. projection"), ("bpda", "BPDA"),
           ("pgd_l2", "PGD-l2 (bare)"), ("eps_l2", "eps (l2)"), ("adv_norm", "||x_adv - x0||")]
# About 2 minutes on one thread: 3 purifiers at t* = 150, 24 attacked samples, 6 BPDA steps.
SPEC = cfg.TableSpec("python -m empirical.projection", __doc__, "S3",
                     cpu_defaults=dict(n_samples=24, steps=6, threads=1),
                     set_defaults=dict(purifiers=["diffpure", "revpure", "ddim"], t_star=150, fresh_evals=1))
PGD_L2_STEPS = 40


def _extra(parser) -> None:
    parser.add_argument("--keep-every", type=int, default=5, help="record every k-th state for the curves (default 5)")


def _check(parser, args) -> dict:
    if args.keep_every < 1:
        parser.error("--keep-every must be >= 1")
    return {"keep_every": args.keep_every, "pgd_l2_steps": PGD_L2_STEPS}


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
    return report.launch(SPEC, run, argv, _extra, _check)


def run(config: cfg.Config) -> dict:
    timer = report.Timer()
    setup = load_setup(config)
    protocol = cfg.make_protocol(config, setup.budget, fresh_cells=False)
    report.status(setup.describe(protocol) + "\nTable S3: projection of P(x_adv) - x0 on the unit adversarial "
                  "direction ([0, 1] units); PGD-l2 on the bare classifier (exact gradient) at eps = mean projection.",
                  config)
    measured = measure_curves(config, setup, protocol)
    if measured is None:
        return {}
    x_all, y_all = setup.batch(setup.ids[:setup.n_samples])
    rows = []
    for spec in setup.purifiers:
        m = measured[spec.method]
        proj = np.array(m["end_projection"])
        eps = float(proj.mean())
        pgd = pgd_l2_bare(spec.classifier, x_all, y_all, eps)
        m.update(pgd_l2=pgd, eps_l2=eps, projection_mean=eps, projection_std=float(proj.std(ddof=1)) if proj.size > 1
                 else 0.0, label=spec.label, method=spec.method, t_star=spec.t_star_text)
        rows.append({"method": spec.method, "t_star": spec.t_star_text,
                     "projection": f"{eps:.4f} ± {m['projection_std']:.4f}", "bpda": report.accuracy(m["correct"]),
                     "pgd_l2": report.accuracy(pgd), "eps_l2": eps, "adv_norm": f"{np.mean(m['adv_norm']):.3f}"})
    result = {"rows": [report.jsonable(r) for r in rows], "paper_rows": PAPER_ROWS, "measured": measured,
              "resolved": setup.resolved(), "protocol": protocol.to_dict(), "elapsed_s": timer.elapsed}
    text = claim_notes("projection", {"config": config.to_dict(), **result})
    result["tests"] = text.tests
    print(report.render(rows + PAPER_ROWS, COLUMNS, config.output.format))
    print("Projection: mean ± std over the attacked samples, [0, 1] units. Accuracies in %: mean±SE. Paper rows: "
          "CIFAR-10 (PGD-l2 on WRN-28-10).")
    if config.output.format != "csv":
        print("\n".join(text.lines))
    print(f"Wall time: {timer.elapsed:.0f} s.")
    report.write_outputs(config, result, rows, COLUMNS)
    return result


if __name__ == "__main__":
    main()
