"""Table 2: DiffPure vs RevPure (DDPM) vs DDIM RevPure at t* = 150 under fixed noise (paper Sec. 5.2).

Clean, BPDA and BPDA-EOT accuracy of the three purifiers, every cell measured with randomness replay
(the paper's protocol for this table), beside the paper's CIFAR-10 rows. The notes read the paper's Table 2
claims on this run with the rules of paper_checks (`empirical.paper.notes`): exact paired tests between
purifiers (same samples, same noise keys), Holm over the table's claims.
"""
from __future__ import annotations

from empirical.harness import config as cfg
from empirical.harness import report
from empirical.harness.setup import load_setup
from empirical.harness.tables import replay_row, run_protocol
from empirical.paper.notes import notes as claim_notes
from empirical.paper.numbers import TABLE2_ROWS

PAPER_ROWS = TABLE2_ROWS   # the paper's Table 2, CIFAR-10 rows, in their own block
COLUMNS = [("purifier", "Purifier model"), ("method", "Method"), ("fix", "Fix"), ("t_star", "t*"),
           ("clean", "Clean"), ("bpda", "BPDA"), ("eot", "BPDA-EOT")]
# About 3-4 minutes for three purifiers at t* = 150 on one thread of a 2-core machine.
SPEC = cfg.TableSpec("python -m empirical.table2", __doc__, "2",
                     cpu_defaults=dict(n_samples=32, steps=6, eot=15, eot_samples=8, n_clean=64, threads=1),
                     set_defaults=dict(purifiers=["diffpure", "revpure", "ddim"], t_star=150, fresh_evals=1))


def main(argv: list[str] | None = None) -> dict:
    return report.launch(SPEC, run, argv)


def run(config: cfg.Config) -> dict:
    timer = report.Timer()
    setup = load_setup(config)
    protocol = cfg.make_protocol(config, setup.budget, fresh_cells=False)
    report.status(setup.describe(protocol) + "\nFixed noise only; under fixed noise BPDA-EOT's draws coincide, "
                  "so it is BPDA on its subset.", config)
    records = run_protocol(config, [("", setup)], lambda s: protocol)
    if records is None:
        return {}
    rows = [replay_row(spec, records[spec.key]) for spec in setup.purifiers]
    fmt = config.output.format
    result = {"rows": [report.jsonable(r) for r in rows], "paper_rows": PAPER_ROWS,
              "resolved": setup.resolved(), "protocol": protocol.to_dict(), "records": records,
              "elapsed_s": timer.elapsed}
    text = claim_notes("table2", {"config": config.to_dict(), **result})
    result["tests"] = text.tests
    print(report.render(rows, COLUMNS, fmt))
    if fmt != "csv":
        print("\npaper (WRN-28-10 on CIFAR-10, l_inf 8/255):\n" + report.render(PAPER_ROWS, COLUMNS, fmt))
        print("\nAccuracies in %: mean±SE over samples, all under fixed noise.")
        print("\n".join(text.lines))
        print(f"Wall time: {timer.elapsed:.0f} s on {setup.device}.")
    report.write_outputs(config, result, rows, COLUMNS)
    return result


if __name__ == "__main__":
    main()
