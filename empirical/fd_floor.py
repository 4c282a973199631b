"""The small-sample floor of the digits Fréchet distance: random train images vs the test split, and two
random halves of the train images (the bias of a Fréchet distance grows as the sample shrinks).

python -m empirical.fd_floor [--n 450] [--json PATH]
"""
from __future__ import annotations

import argparse

import numpy as np

from empirical.frechet import classifier_features, frechet_between
from empirical.results import atomic_write_json


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m empirical.fd_floor", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=450,
                        help="images drawn from each split (default 450 = the whole digits test split)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random train subset and halves (default 0)")
    parser.add_argument("--json", metavar="PATH", help="write the distances as JSON")
    args = parser.parse_args(argv)
    if args.n < 2:
        parser.error(f"--n must be >= 2, got {args.n}")
    from empirical.checkpoints import load_digits_classifier
    from empirical.data import load_digits
    clf = load_digits_classifier("clean")
    train, test = load_digits("train"), load_digits("test")
    n = min(args.n, len(test))
    pick = np.random.default_rng(args.seed).permutation(len(train))[:n]   # split order follows writers
    fa, fb = classifier_features(clf, train.x[pick]), classifier_features(clf, test.x[:n])
    out = {"n": n, "features": "digits classifier penultimate layer (not Inception)",
           "train_vs_test": frechet_between(fa, fb),
           "train_half_vs_half": frechet_between(fa[: n // 2], fa[n // 2:])}
    print(f"Fréchet distance in the digits classifier's feature space (not FID): {n} random train vs {n} test "
          f"images {out['train_vs_test']:.3f}; two random halves of those train images ({n // 2} each) "
          f"{out['train_half_vs_half']:.3f} (the small-sample bias grows as n shrinks)")
    if args.json:
        atomic_write_json(args.json, out)
    return out


if __name__ == "__main__":
    main()
