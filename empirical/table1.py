"""Table 1: clean / BPDA / BPDA-EOT accuracy with and without fixed noise, beside the toy model (Sec. 5.1).

`python -m empirical.table1` runs the digits default on a CPU in minutes; `--full` the paper's protocol;
`--dataset cifar10|imagenet` the paper's setting from local files or hub ids.
"""
from __future__ import annotations

import argparse
import textwrap

import numpy as np

from empirical.harness import config as cfg
from empirical.harness import records as rec
from empirical.harness import report
from empirical.harness.setup import load_setup
from empirical.harness.tables import cell, drop, run_protocol

PAPER_ROWS = [  # the paper's own Table 1, printed in its own block, labelled with dataset and threat model
    {"purifier": "DDPM (CIFAR-10)", "method": "DiffPure", "fix": "no", "t_star": 100,
     "clean": 84.51, "bpda": 82.38, "eot": 80.8},
    {"purifier": "DDPM (CIFAR-10)", "method": "DiffPure", "fix": "yes", "t_star": 100,
     "clean": 85.25, "bpda": 60.62, "eot": 60.7},
    {"purifier": "Guided (ImageNet)", "method": "DiffPure", "fix": "no", "t_star": 150,
     "clean": 69.0, "bpda": 67.0, "eot": None},
    {"purifier": "Guided (ImageNet)", "method": "DiffPure", "fix": "yes", "t_star": 150,
     "clean": 68.5, "bpda": 34.0, "eot": None},
]
PAPER_THREAT = "paper (WRN-28-10 on CIFAR-10, l_inf 8/255; ResNet-50 on ImageNet, l_inf 4/255)"
COLUMNS = [("purifier", "Purifier model"), ("method", "Method"), ("fix", "Fix"), ("t_star", "t*"),
           ("clean", "Clean"), ("bpda", "BPDA"), ("eot", "BPDA-EOT"), ("transfer", "Replay->fresh"),
           ("toy_perfect", "Toy perfect"), ("toy_eot", "Toy EOT")]
SHORT = {"x + N(0, sigma^2 I)": "x+N(0,σ²I)"}
WIDTH = 118
SPEC = cfg.TableSpec("python -m empirical.table1", __doc__, "1")


def _extra(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-predict", action="store_true", help="skip the toy-model prediction measurements")
    parser.add_argument("--dry-run", action="store_true",
                        help="cifar10 / imagenet: build the real architectures (random weights unless given), time "
                             "purification and one attack step on 1-2 images, and print the extrapolated wall time "
                             "of the paper's protocol on this device; runs nothing else")
    parser.add_argument("--dry-run-images", type=int, default=2, help="images timed by --dry-run (default 2)")


def _check(parser, args) -> dict:
    if args.dry_run_images < 1:
        parser.error("--dry-run-images must be >= 1")
    return {"dry_run": args.dry_run, "dry_run_images": args.dry_run_images} if args.dry_run else {}


def dry_run(config: cfg.Config) -> dict:
    """The cost of the paper's Table 1 protocol on this device, from timed steps of the real models."""
    from empirical import dryrun
    from empirical.harness.setup import resolve_device
    report.set_threads(config.output.threads)
    d = config.data
    result = dryrun.dry_run(d.dataset, device=resolve_device(config.run.device), purifier_model=d.purifier_model,
                            classifier=d.classifier, t_star=config.purifier.t_star,
                            images=config.option("dry_run_images"), eot=config.sizes.eot or 15,
                            steps=config.sizes.steps, threads=config.output.threads)
    print("\n".join(result.lines()))
    out = {"dry_run": result.to_dict()}
    report.write_outputs(config, out)
    return out


def main(argv: list[str] | None = None) -> dict:
    config = cfg.parse(SPEC, argv, _extra, _check)
    if config.option("dry_run"):
        return report.run_main(lambda: dry_run(config), SPEC.prog)
    return report.run_main(lambda: run(config), SPEC.prog)


def run(config: cfg.Config) -> dict:
    """Measure every cell of Table 1 for `config`, print the table and write the outputs."""
    fmt = config.output.format
    timer = report.Timer()
    report.set_threads(config.output.threads)
    setup = load_setup(config)
    protocol = cfg.make_protocol(config, setup.budget)
    report.status(setup.describe(protocol), config)
    records = run_protocol(config, [("", setup)], lambda s: protocol, predict=config.run.predict)
    if records is None:
        return {}
    rows, predictions = build_rows(setup, records)
    drops = paired_drops(setup, records)
    print(report.render(rows, COLUMNS, fmt, spread=fmt == "wide"))
    if fmt in ("compact", "wide", "markdown"):
        print("\n" + PAPER_THREAT + ":\n" + report.render(PAPER_ROWS, COLUMNS[:7], fmt))
        print(footnote(setup, protocol, predictions, drops, timer.elapsed))
    result = {"rows": [report.jsonable(r) for r in rows], "paper_rows": PAPER_ROWS, "resolved": setup.resolved(),
              "protocol": protocol.to_dict(), "predictions": predictions,
              "drops": {k: report.jsonable(v) for k, v in drops.items()}, "records": records,
              "elapsed_s": timer.elapsed}
    report.write_outputs(config, result, rows, COLUMNS)
    return result


def build_rows(setup, records: dict[str, list[dict]]) -> tuple[list[dict], dict]:
    """Table rows (Accuracy cells) and the toy-prediction summary per purifier."""
    rows, predictions = [], {}
    for spec in setup.purifiers:
        recs = records[spec.key]
        base = {"purifier": spec.label.replace("sigma=", "σ="), "method": SHORT.get(spec.method, spec.method),
                "t_star": spec.t_star_text}
        if spec.stochastic:
            pred = summarise_prediction(recs)
            predictions[spec.key] = pred
            rows.append({**base, "fix": "no", "clean": cell(recs, "clean_fresh"), "bpda": cell(recs, "bpda_fresh"),
                         "eot": cell(recs, "eot_fresh"), "transfer": cell(recs, "bpda_replay_tested_fresh"),
                         "toy_perfect": pred.get("pred_perfect_text"), "toy_eot": pred.get("pred_eot_text")})
        rows.append({**base, "fix": "yes" if spec.stochastic else "n/a",
                     "clean": cell(recs, "clean_replay"), "bpda": cell(recs, "bpda_replay"),
                     "eot": cell(recs, "eot_replay")})
    return rows, predictions


def summarise_prediction(recs: list[dict]) -> dict:
    """Predicted no-fix accuracies: replay accuracy plus the fooled fraction that fresh noise rescues."""
    attacked = [r for r in recs if "bpda_replay" in r]
    samples = [s for r in attacked for s in r.get("prediction", []) if s.get("p_perfect") is not None]
    clean = np.array(rec.outcomes(attacked, "clean_replay") or [], dtype=float)
    robust = np.array(rec.outcomes(attacked, "bpda_replay") or [], dtype=float)
    if not samples or clean.size == 0:
        return {"measured_samples": 0}
    fooled = float(np.mean(clean * (1 - robust)))
    out = {"measured_samples": len(samples), "fooled_fraction": fooled, "replay_accuracy": 100 * robust.mean()}
    for name in ("perfect", "eot"):
        keep = np.array([1 - s[f"p_{name}"] for s in samples])
        mean = 100 * (robust.mean() + fooled * keep.mean())
        se = 100 * fooled * keep.std(ddof=1) / np.sqrt(keep.size) if keep.size > 1 else float("nan")
        out[f"pred_{name}"], out[f"pred_{name}_se"] = mean, se
        out[f"pred_{name}_text"] = f"{mean:5.1f}±{se:3.1f}"
    for key in ("sigma_ambient", "sigma_sub", "n_eff", "r_noise", "r_random", "delta_norm",
                "p_perfect", "p_eot", "transfer_measured"):
        out[f"mean_{key}"] = float(np.mean([s[key] for s in samples]))
    out["n_ambient"] = samples[0]["n_ambient"]
    return out


def paired_drops(setup, records: dict[str, list[dict]]) -> dict[str, dict]:
    """Per stochastic purifier: accuracy without minus with fixed noise, paired over the same samples."""
    return {spec.key: {"clean": drop(records[spec.key], "clean_fresh", "clean_replay"),
                       "bpda": drop(records[spec.key], "bpda_fresh", "bpda_replay"),
                       "eot": drop(records[spec.key], "eot_fresh", "eot_replay")}
            for spec in setup.purifiers if spec.stochastic}


def footnote(setup, protocol, predictions: dict, drops: dict, elapsed: float) -> str:
    """The legend: every column defined, the attack budget per column, the paired drops and the toy reading."""
    b = f"{protocol.norm} eps={protocol.eps * 255:.1f}/255, {protocol.steps} steps of {protocol.step_size * 255:.2f}/255"
    lines = [
        "", "Legend (accuracies in %, mean±SE over samples):",
        "  Fix: 'yes' = randomness replay (every purification of a sample reuses its fixed noise, Seed(i,t));",
        f"       'no' = fresh noise, each cell averaged over R={protocol.fresh_evals} fresh evaluations.",
        f"  Clean: no attack. BPDA: {b}, on {setup.n_samples} samples.",
        f"  BPDA-EOT: the same with EOT={protocol.eot} purifications per gradient, on {len(setup.eot_ids)} samples.",
        "  Replay->fresh: examples crafted under replay, tested under fresh noise (Theorem 1's perfect attack).",
        "  Toy perfect / Toy EOT: the no-fix BPDA / BPDA-EOT accuracy predicted by Theorem 1 from the measured",
        "       purified-noise sigma, effective dimension and radius (compare with Replay->fresh and BPDA-EOT).",
        "  --format wide adds [spread]: the std of the accuracy over the R fresh evaluations."]
    for label, p in predictions.items():
        if p.get("measured_samples"):
            lines.append(
                f"  toy reading, {label}: {p['measured_samples']} samples; sigma_sub={p['mean_sigma_sub']:.4f} "
                f"n_eff={p['mean_n_eff']:.1f} (n={p['n_ambient']}); Psi perfect={p['mean_p_perfect']:.3f} "
                f"vs measured transfer={p['mean_transfer_measured']:.3f}")
    for key, d in drops.items():
        cells = ", ".join(f"{name} {c.mean:+.1f}±{c.se:.1f}" for name, c in d.items() if c is not None)
        lines.append(f"  no fix minus fixed noise, paired over the same samples, {key}: {cells}")
    lines.append(f"Wall time: {elapsed:.0f} s on {setup.device}.")
    return "\n".join(textwrap.fill(line, WIDTH, subsequent_indent="       ", break_on_hyphens=False) if line else line
                     for line in lines)


if __name__ == "__main__":
    main()
