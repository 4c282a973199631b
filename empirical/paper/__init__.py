"""The paper as data and rules, apart from the machinery.

`numbers` holds the paper's numbers (once), `claims` declares every empirical claim once (stable id,
title, run, comparison, rule), `rules` turns measured comparisons into typed verdicts with the tests of
`empirical.stats`, `runs` reads the run JSONs of `paper_runs/`, and `render` writes `verdicts.json` and
the generated block of `paper_checks.md`. This package may import the library and the harness; neither
imports it.
"""
