"""Regenerate paper_runs/verdicts.json and the empirical block of paper_checks.md from the run JSONs.

paper_checks.md has two parts: the toy-model section above the BEGIN marker is maintained by hand; the block
between the BEGIN and END markers is generated here and only here (markers appended if absent), from the same
records as verdicts.json. The claims, their rules and the paper's numbers live in `empirical.paper`: each
claim is decided by an exact paired test (McNemar, sign-flip) or TOST, and the p-values of all tested claims
are adjusted together (primary claims by Bonferroni, the rest by Holm at the alpha the rejected
primaries pass on: empirical.multiplicity). A rule that fails on a run raises: the command exits non-zero.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from empirical.paper.render import build, splice
from empirical.results import atomic_write_json, atomic_write_text

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(prog="python -m empirical.paper_checks", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", default=str(ROOT / "paper_runs"), help="folder of run JSONs (default paper_runs/)")
    parser.add_argument("--output", default=str(ROOT / "paper_checks.md"),
                        help="file whose generated block is replaced (default paper_checks.md)")
    parser.add_argument("--verdicts", default=None,
                        help="where to write the verdict records (default: verdicts.json in the --runs folder)")
    args = parser.parse_args(argv)
    folder, out = Path(args.runs), Path(args.output)
    if not folder.is_dir():
        parser.error(f"--runs folder {folder} does not exist; pass the folder holding the run JSONs")
    block, verdicts = build(folder)
    atomic_write_text(out, splice(out.read_text() if out.exists() else "", block))
    atomic_write_json(Path(args.verdicts) if args.verdicts else folder / "verdicts.json", verdicts)
    print(block)
    return block


if __name__ == "__main__":
    main()
