"""What Table 1's protocol saves by purifying each image once per cell that needs it, measured side by side.

The same chunk of digits samples (DiffPure, t* = 100, the default budget) goes through
  shared     `protocol.run_chunk`: the clean replay cell is iterate 0 of the replay attack, the BPDA replay
             cell the attack's own verdict, BPDA-EOT replay is BPDA's under replay, the fresh attacks skip
             their unused final judgement;
  separate   the same cells computed one by one, as the protocol did before: a clean replay evaluation, the
             replay attack and an evaluation of its result, a BPDA-EOT replay attack and its evaluation, fresh
             attacks with their final judgement.
Both runs give the same records (asserted); printed are the image-purifications each needs, the wall
seconds (interleaved over repeats, the minimum kept) and the ratios. Run it on an idle machine:
`python -m benchmarks.bench_table1 [--samples 32] [--repeats 2]`.
"""
from __future__ import annotations

import argparse
import time

import torch

from empirical import attacks
from empirical.protocol import Protocol, _Counting, fresh_source, replay_source, run_chunk


def _separate(classifier, purifier, x, y, ids, p: Protocol, eot_mask) -> dict:
    """The cells of run_chunk without sharing (predict off), in the order the older protocol ran them."""
    fixed = replay_source(p, ids, 0)
    bools = lambda r: r.correct.cpu().tolist()
    fresh_eval = lambda xe, ye, ie, purpose: bools(attacks.evaluate(
        classifier, purifier, xe, ye, mode="fresh", noise=fresh_source(p, ie, purpose, 0), draws=p.fresh_evals))
    rec = {"ids": ids.tolist(), "eot_ids": ids[eot_mask].tolist()}
    rec["clean_replay"] = bools(attacks.evaluate(classifier, purifier, x, y, mode="replay", noise=fixed))
    rec["clean_fresh"] = fresh_eval(x, y, ids, "clean")
    adv = attacks.bpda(classifier, purifier, x, y, noise=fixed, keep="best", **p.attack_kwargs)
    rec["bpda_replay"] = bools(attacks.evaluate(classifier, purifier, adv.x_adv, y, mode="replay", noise=fixed))
    rec["bpda_replay_tested_fresh"] = fresh_eval(adv.x_adv, y, ids, "transfer")
    fresh = attacks.bpda(classifier, purifier, x, y, noise=fresh_source(p, ids, "bpda", 0), keep="final",
                         **p.attack_kwargs)
    rec["bpda_fresh"] = fresh_eval(fresh.x_adv, y, ids, "bpda_eval")
    xe, ye, ie = x[eot_mask], y[eot_mask], ids[eot_mask]
    fixed_e = fixed.subset(eot_mask.nonzero().flatten())
    adv_e = attacks.bpda_eot(classifier, purifier, xe, ye, eot=p.eot, noise=fixed_e, keep="best", **p.attack_kwargs)
    rec["eot_replay"] = bools(attacks.evaluate(classifier, purifier, adv_e.x_adv, ye, mode="replay", noise=fixed_e))
    adv_ef = attacks.bpda_eot(classifier, purifier, xe, ye, eot=p.eot, noise=fresh_source(p, ie, "eot", 0),
                              keep="final", **p.attack_kwargs)
    rec["eot_fresh"] = fresh_eval(adv_ef.x_adv, ye, ie, "eot_eval")
    return rec


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_table1", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=32, help="samples in the chunk (default 32)")
    parser.add_argument("--repeats", type=int, default=2, help="interleaved repeats; the minimum is kept (default 2)")
    args = parser.parse_args(argv)
    if not 2 <= args.samples <= 450 or not 1 <= args.repeats <= 20:
        parser.error("--samples must be in [2, 450] and --repeats in [1, 20]")
    from empirical.harness.config import Config, PurifierConfig
    from empirical.harness.setup import load_setup
    setup = load_setup(Config(table="1", purifier=PurifierConfig(names=("diffpure",))))
    spec = setup.purifiers[0]
    ids = setup.ids[:args.samples]
    x, y = setup.batch(ids)
    p = Protocol(**setup.budget, fresh_evals=2)
    eot_mask = torch.arange(args.samples) < args.samples // 4
    counts, times, records = {"shared": 0, "separate": 0}, {"shared": [], "separate": []}, {}
    for _ in range(args.repeats):
        for name in ("separate", "shared"):
            n = [0]
            pur = _Counting(spec.purifier, lambda k: n.__setitem__(0, n[0] + k))
            start = time.perf_counter()
            if name == "shared":
                records[name] = run_chunk(spec.classifier, spec.purifier, x, y, ids, 0, p, eot_mask, predict=False,
                                          tick=lambda k=1: n.__setitem__(0, n[0] + k))
            else:
                records[name] = _separate(spec.classifier, pur, x, y, ids, p, eot_mask)
            times[name].append(time.perf_counter() - start)
            counts[name] = n[0]
    assert records["shared"] == records["separate"], "the shared cells must equal the separate ones"
    best = {k: min(v) for k, v in times.items()}
    print(f"Table 1 protocol on {args.samples} digits samples (DiffPure t* = 100, {p.steps} PGD steps, R = 2, "
          f"BPDA-EOT-{p.eot} on {int(eot_mask.sum())}): records identical")
    for name in ("separate", "shared"):
        print(f"  {name:8s} {counts[name]:6d} image-purifications  {best[name]:7.1f} s")
    print(f"  purifications saved: {counts['separate'] / counts['shared']:.2f}x; wall: "
          f"{best['separate'] / best['shared']:.2f}x")
    return {"counts": counts, "seconds": best}


if __name__ == "__main__":
    main()
