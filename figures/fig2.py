"""Fig. 2a / 2b redrawn from the JSON of a finished sweep, without measuring anything again.

`python -m empirical.sweep_tstar` (Table S1, Fig. 2a) and `python -m empirical.subsequence` (Table S2,
Fig. 2b) draw their figure at the end of the run; this redraws it from their `--json` output, so that a
change of style does not cost a rerun of the attacks.

python -m figures.fig2 --from-json paper_runs/sweep_tstar.json  ->  figures/fig2a.png and .pdf
python -m figures.fig2 --from-json paper_runs/subsequence.json  ->  figures/fig2b.png and .pdf
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from empirical.harness.report import Accuracy
from empirical.harness.sweeps import plot_sweep
from toymodel import atomic

HERE = Path(__file__).resolve().parent
# Per sweep table: (figure name, row key, x label, log x).
SWEEPS = {"S1": ("fig2a", "t", "sequence length t*", False), "S2": ("fig2b", "s", "subsequence length s*", True)}


def title(table: str, dataset: str, t_star: int, respacing: str = "respaced") -> str:
    """The title the sweep entry point gives its figure (naming a respacing variant other than the default)."""
    variant = "" if respacing == "respaced" else f", {respacing} respacing"
    if table == "S1":
        return f"Fig. 2a on {dataset}{variant}: dashed clean, solid BPDA (fixed noise)"
    return f"Fig. 2b on {dataset}{variant}: t*={t_star}, dashed clean, solid BPDA (fixed noise)"


def rows_from_json(result: dict) -> list[dict]:
    """The sweep's rows with their accuracy cells as Accuracy again."""
    return [{k: Accuracy(**v) if k in ("clean", "bpda") and v is not None else v for k, v in row.items()}
            for row in result["rows"]]


def redraw(result: dict, png: str | None) -> list[str]:
    """Draw the sweep figure of a sweep entry point's JSON result; returns the PNG and PDF paths."""
    config = result["config"]
    name, key, xlabel, log_x = SWEEPS[config["table"]]
    out = Path(png) if png else HERE / f"{name}.png"
    return plot_sweep(rows_from_json(result), key, xlabel,
                      title(config["table"], config["data"]["dataset"], config["purifier"]["t_star"],
                            config["purifier"].get("respacing", "respaced")), out, log_x)


def _load(parser: argparse.ArgumentParser, path: str) -> dict:
    try:
        result = json.loads(Path(path).read_text())
    except (OSError, ValueError) as err:
        parser.error(f"--from-json {path}: cannot read it as JSON ({err})")
    table = result.get("config", {}).get("table") if isinstance(result, dict) else None
    if table not in SWEEPS or "rows" not in result:
        parser.error(f"--from-json {path}: not the JSON of empirical.sweep_tstar or empirical.subsequence "
                     "(write one with their --json PATH)")
    return result


def main(argv: list[str] | None = None) -> list[str]:
    parser = argparse.ArgumentParser(prog="python -m figures.fig2", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--from-json", metavar="PATH", required=True,
                        help="the --json output of empirical.sweep_tstar or empirical.subsequence")
    parser.add_argument("--png", metavar="PATH",
                        help="where the PNG goes, the PDF beside it (default figures/fig2a.png or fig2b.png)")
    args = parser.parse_args(argv)
    problem = args.png and atomic.output_problem(args.png)
    if problem:
        parser.error(f"--png: {problem}")
    paths = redraw(_load(parser, args.from_json), args.png)
    print(f"wrote {', '.join(paths)}")
    return paths


if __name__ == "__main__":
    main()
