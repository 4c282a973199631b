"""Table 1: clean / BPDA / BPDA-EOT accuracy with and without fixed noise, beside the toy model (Sec. 5.1).

`python -m empirical.table1` runs the digits default on a CPU in minutes; `--full` the paper's protocol;
`--dataset cifar10|imagenet` the paper's setting from local files or hub ids.
"""
from __future__ import annotations

import argparse
import dataclasses
import textwrap

from empirical.harness import config as cfg
from empirical import attacks, predict
from empirical.harness import report
from empirical.harness.setup import load_setup
from empirical.harness.tables import pooled, replicates, run_protocol
from empirical.paper.numbers import TABLE1_ROWS
from empirical.paper.table1_notes import notes

PAPER_ROWS = TABLE1_ROWS  # the paper's own Table 1, printed in its own block, labelled with dataset and threat model
PAPER_THREAT = "paper (WRN-28-10 on CIFAR-10, linf 8/255; ResNet-50 on ImageNet, linf 4/255)"
COLUMNS = [("purifier", "Purifier model"), ("method", "Method"), ("fix", "Fix"), ("t_star", "t*"),
           ("clean", "Clean"), ("bpda", "BPDA"), ("eot", "BPDA-EOT"), ("transfer", "Replay->fresh"),
           ("toy", "Toy pred.")]
ANY_ITERATE = [("bpda_any", "BPDA any-it."), ("eot_any", "EOT any-it.")]
SHORT = {"x + N(0, sigma^2 I)": "x+N(0,σ²I)"}
WIDTH = 118
SPEC = cfg.TableSpec("python -m empirical.table1", __doc__, "1", cpu_defaults=dict(replicates=2),
                     set_defaults=dict(fresh_evals=2, batch_size=150), replicates=True)


def _extra(t: argparse._ArgumentGroup) -> None:
    t.add_argument("--no-predict", action="store_true", help="skip the toy-model prediction measurements")
    t.add_argument("--dry-run", action="store_true",
                   help="cifar10 / imagenet: build the real architectures (random weights unless given), time "
                        "purification and one attack step on 1-2 images, and print the extrapolated wall time "
                        "of the paper's protocol on this device; runs nothing else")
    t.add_argument("--dry-run-images", type=int, default=2, help="images timed by --dry-run (default 2)")
    t.add_argument("--estimand", choices=("single_draw", "both"), default="single_draw",
                   help="single_draw: no-fix cells are the final iterate's accuracy averaged over R fresh draws "
                        "(default); both: also DiffPure's own rule (broken if any iterate is misclassified on "
                        "logits averaged over 15 draws, confirmed on 150), the rule of the paper's numbers, from "
                        "the same attacks")


def _check(parser, args) -> dict:
    if args.dry_run_images < 1:
        parser.error("--dry-run-images must be >= 1")
    out = {"estimand": args.estimand} if args.estimand != "single_draw" else {}
    if args.dry_run:
        out.update(dry_run=True, dry_run_images=args.dry_run_images)
    return out


def dry_run(config: cfg.Config) -> dict:
    """The cost of the paper's Table 1 protocol on this device, from timed steps of the real models."""
    from empirical import dryrun
    from empirical.harness.setup import resolve_device
    d = config.data
    result = dryrun.dry_run(d.dataset, device=resolve_device(config.run.device), purifier_model=d.purifier_model,
                            classifier=d.classifier, t_star=config.purifier.t_star,
                            images=config.option("dry_run_images"), eot=config.sizes.eot or 15,
                            steps=config.sizes.steps, threads=config.output.threads,
                            progress=lambda line: report.status(line, config))
    print("\n".join(result.lines()))
    out = {"dry_run": result.to_dict()}
    report.write_outputs(config, out)
    return out


def main(argv: list[str] | None = None) -> dict:
    return report.launch(SPEC, lambda config: (dry_run if config.option("dry_run") else run)(config), argv,
                         _extra, _check, parallel=lambda config: not config.option("dry_run"))


def run(config: cfg.Config) -> dict:
    """Measure every cell of Table 1 for `config`, print the table, its legend, tests and verdicts, and write
    the outputs."""
    fmt = config.output.format
    timer = report.Timer()
    setup = load_setup(config)
    protocol = cfg.make_protocol(config, setup.budget)
    if config.option("estimand") == "both":
        protocol = dataclasses.replace(protocol, estimand="any_iterate_averaged")
    report.status(setup.describe(protocol), config)
    records = run_protocol(config, [("", setup)], lambda s: protocol, predict=config.run.predict)
    if records is None:
        return {}
    rows, predictions = build_rows(setup, records)
    result = {"rows": [report.jsonable(r) for r in rows], "paper_rows": PAPER_ROWS, "resolved": setup.resolved(),
              "protocol": protocol.to_dict(), "predictions": predictions, "records": records}
    shown = [dict(r, purifier=r["purifier"].replace("sigma=", "σ="), method=SHORT.get(r["method"], r["method"]))
             for r in rows] if fmt == "compact" else rows
    columns = [c for c in COLUMNS if any(r.get(c[0]) is not None for r in rows)]
    columns += [c for c in ANY_ITERATE if any(r.get(c[0]) is not None for r in rows)]
    print(report.render(shown, columns, fmt, spread=fmt == "wide"))
    text = notes({"config": config.to_dict(), **result}, setup, protocol, columns, fmt)
    result["tests"] = text.tests
    if fmt in ("compact", "wide", "markdown"):
        print("\n" + PAPER_THREAT + ":\n" + report.render(PAPER_ROWS, COLUMNS[:7], fmt))
        print("\n".join(textwrap.fill(line, WIDTH, subsequent_indent="       ", break_on_hyphens=False) if line
                        else line for line in text.lines + [f"Wall time: {timer.elapsed:.0f} s on {setup.device}."]))
    result["elapsed_s"] = timer.elapsed
    report.write_outputs(config, result, rows, columns)
    return result


def build_rows(setup, records: dict[str, list[dict]]) -> tuple[list[dict], dict]:
    """Table rows (Accuracy cells, each sample's outcome its mean over noise replicates and fresh draws) and
    the toy-prediction summary per purifier (over every replicate's chunks)."""
    rows, predictions = [], {}
    for spec in setup.purifiers:
        recs = sum(replicates(records, spec.key), [])
        cell = lambda name: report.accuracy(pooled(records, spec.key, name))
        base = {"purifier": spec.label, "method": spec.method, "t_star": spec.t_star_text}
        if spec.stochastic:
            pred = predict.summarise(recs)
            predictions[spec.key] = pred
            rows.append({**base, "fix": "no", "clean": cell("clean_fresh"), "bpda": cell("bpda_fresh"),
                         "eot": cell("eot_fresh"), "transfer": cell("bpda_replay_tested_fresh"),
                         "toy": pred.get("predicted_text"), "bpda_any": cell("bpda_fresh_any"),
                         "eot_any": cell("eot_fresh_any"), "rule": attacks.RULE_SINGLE_DRAW,
                         "rule_any": attacks.RULE_DIFFPURE if "bpda_fresh_any" in recs[0] else None})
        rows.append({**base, "fix": "yes" if spec.stochastic else "n/a",
                     "clean": cell("clean_replay"), "bpda": cell("bpda_replay"), "eot": cell("eot_replay")})
    return rows, predictions


if __name__ == "__main__":
    main()
