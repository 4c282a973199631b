"""Table 3: EMA vs non-EMA DDPM weights, RevPure t* = 150, fixed noise: sample quality, clean, BPDA (Sec. 5.4).

Sample quality is a Fréchet distance in the digits classifier's feature space (penultimate layer), NOT
the Inception FID (no Inception network offline; empirical.frechet has the FID path for a user-supplied
TorchScript Inception). Two quality measures are reported per model:
  * generated: n ancestral DDPM samples from pure noise on an s-step respaced grid (1000 steps with
    --full; fewer by default because a 1000-step reverse of many samples is the costliest part here),
  * purified: the RevPure-purified clean test images (the images the classifier actually sees),
both against the whole digits test set, beside a same-size train-vs-test reference (the small-sample floor).
Clean and BPDA cells are measured under randomness replay, as in Table 2.
"""
from __future__ import annotations

import sys

import numpy as np
import torch
from tqdm import tqdm

from empirical.frechet import classifier_features, frechet_between
from empirical.harness import config as cfg
from empirical.harness import report
from empirical.harness.setup import load_setup
from empirical.harness.tables import replay_row, run_protocol
from empirical.protocol import replay_source
from empirical.purifiers import generate
from empirical.paper.notes import notes as claim_notes
from empirical.paper.numbers import TABLE3_ROWS

PAPER_ROWS = TABLE3_ROWS   # Table 3 (CIFAR-10), beside ours and labelled as the paper's; its FID is Inception FID
COLUMNS = [("purifier", "Purifier model"), ("method", "Method"), ("fix", "Fix"), ("t_star", "t*"),
           ("fid", "FID (paper)"), ("fd_generated", "FD gen."), ("fd_purified", "FD purified"),
           ("clean", "Clean"), ("bpda", "BPDA")]
# About 3 minutes on one thread: 2 models x (32 attacked samples, 6 PGD steps) + 2 x 256 samples of 100 steps.
SPEC = cfg.TableSpec("python -m empirical.ema", __doc__, "3",
                     cpu_defaults=dict(n_samples=32, steps=6, n_clean=64, threads=1),
                     set_defaults=dict(purifiers=["revpure"], t_star=150, fresh_evals=1))


def purified_images(spec, setup, protocol, batch_size: int) -> torch.Tensor:
    """The clean test images after RevPure under the same fixed noise the attacks use."""
    outs = []
    for chunk in setup.chunks(batch_size):
        ids = torch.tensor(chunk.ids, dtype=setup.ids.dtype)
        x, _ = setup.batch(ids)
        outs.append(spec.purifier(x, replay_source(protocol, ids, chunk.index)).cpu())
    return torch.cat(outs)


def quality(spec, setup, protocol, config: cfg.Config, reference: np.ndarray) -> dict:
    """Fréchet distances (classifier feature space) of generated and purified images to the test set."""
    pur = spec.purifier
    g = torch.Generator().manual_seed(config.run.seed)
    n_gen, steps = config.option("n_gen"), config.option("gen_steps")
    with tqdm(total=-(-n_gen // 256) * steps, desc=f"generate {spec.label}", disable=config.output.quiet,
              leave=False, file=sys.stderr) as bar:
        gen = generate(pur.unet, pur.alphas_cumprod.float(), n_gen, steps, g, clip=pur.clip,
                       variance_type=pur.variance_type, progress=lambda done, total: bar.update(1))
    clf = spec.classifier
    with torch.no_grad():
        labels = clf(gen).argmax(1)
    purified = purified_images(spec, setup, protocol, config.run.batch_size)
    return {"fd_generated": frechet_between(classifier_features(clf, gen), reference),
            "fd_purified": frechet_between(classifier_features(clf, purified), reference),
            "generated_class_counts": torch.bincount(labels, minlength=10).tolist()}


def _extra(parser) -> None:
    parser.add_argument("--n-gen", type=int, help="generated samples per model for the Fréchet distance "
                        "(default 256; --full 2000)")
    parser.add_argument("--gen-steps", type=int, help="reverse steps of the generation grid (default 100; --full 1000)")


def _check(parser, args) -> dict:
    n_gen = args.n_gen or (2000 if args.full else 256)
    gen_steps = args.gen_steps or (1000 if args.full else 100)
    if n_gen < 2 or not 1 <= gen_steps <= 1000:
        parser.error("--n-gen must be >= 2 and --gen-steps in [1, 1000]")
    if args.dataset != "digits":
        parser.error("empirical.ema needs the digits DDPM's EMA and raw weights (--dataset digits)")
    return {"n_gen": n_gen, "gen_steps": gen_steps}


def main(argv: list[str] | None = None) -> dict:
    return report.launch(SPEC, run, argv, _extra, _check)


def run(config: cfg.Config) -> dict:
    """Table 3's rows. The cells' data and purifiers come from `load_setup`, once per weight set; the
    Fréchet reference and floor need the digits classifier and both digits splits, loaded here."""
    timer = report.Timer()
    from empirical.checkpoints import load_digits_classifier
    from empirical.data import load_digits
    n_gen, gen_steps = config.option("n_gen"), config.option("gen_steps")
    clf = load_digits_classifier("clean")
    test, train = load_digits("test"), load_digits("train")
    reference = classifier_features(clf, test.x)
    # a random train subset: the split's index order follows the writers, so its first n are not representative
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(config.run.seed))
    floor = frechet_between(classifier_features(clf, train.x[order[:n_gen]]), reference)
    setups = []
    for tag, non_ema in (("EMA", False), ("non-EMA", True)):
        setup = load_setup(cfg.replace(config, data={"non_ema": non_ema}))
        setup.eot_ids = set()      # Table 3 has no BPDA-EOT column
        setups.append((f"{tag}:", setup))
    protocol = cfg.make_protocol(config, setups[0][1].budget, fresh_cells=False)
    report.status(setups[0][1].describe(protocol) + f"\nEMA vs non-EMA weights; Fréchet distance in the digits "
                  f"classifier's feature space (NOT Inception FID) from {n_gen} samples of a {gen_steps}-step reverse.",
                  config)
    records = run_protocol(config, setups, lambda s: protocol)
    if records is None:
        return {}
    rows = []
    for prefix, setup in setups:
        tag = prefix[:-1]
        for spec in setup.purifiers:
            q = quality(spec, setup, protocol, config, reference)
            rows.append(replay_row(spec, records[prefix + spec.key], model=tag, purifier=f"digits DDPM ({tag})", **q))
    n_pur = setups[0][1].n_clean
    floor_purified = frechet_between(classifier_features(clf, train.x[order[:n_pur]]), reference)
    reference_row = {"purifier": "reference: train images", "method": "-", "fd_generated": floor,
                     "fd_purified": floor_purified}
    result = {"rows": [report.jsonable(r) for r in rows], "paper_rows": PAPER_ROWS,
              "fd_floor_train_vs_test": floor, "fd_floor_purified_size": floor_purified,
              "feature_space": "digits classifier penultimate layer (not Inception)",
              "resolved": {prefix: s.resolved() for prefix, s in setups}, "records": records,
              "elapsed_s": timer.elapsed}
    text = claim_notes("ema", {"config": config.to_dict(), **result})
    result["tests"] = text.tests
    print(report.render(rows + [reference_row] + PAPER_ROWS, COLUMNS, config.output.format))
    print(f"FD = Fréchet distance to the {len(test)} test images in the digits classifier's penultimate feature "
          f"space (not FID). Reference row: the same number of random train images ({n_gen} / {n_pur}), the "
          f"small-sample floor of each column. Paper rows: CIFAR-10, Inception FID. Accuracies in %: mean±SE.")
    if config.output.format != "csv":
        print("\n".join(text.lines))
    print(f"Wall time: {timer.elapsed:.0f} s.")
    report.write_outputs(config, result, rows, COLUMNS)
    return result


if __name__ == "__main__":
    main()
