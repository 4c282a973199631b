"""A CPU run alone and beside a busy process: one multi-thread process against single-thread workers.

Why: with torch's default threads, one 2-thread process beside any other CPU-bound process slowed 15-30x
(its idle OpenMP workers spin for the shared core). Table 1's CPU default therefore splits the run over
single-thread worker processes (`empirical.harness.workers`). This measures the same work, several digits
DiffPure purifications (t* = 100, batch 16), four ways, each in fresh subprocesses, side by side in one run:

  threads  one process with torch's default threads (the old default), quiet and beside a busy process;
  workers  the work split over single-thread processes (one per CPU, the new default), quiet and busy.

The busy process is a pure-Python loop (one core, no OpenMP). Printed: the wall times and the ratios the
default must meet: workers busy / workers quiet <= 2.5 and workers quiet / threads quiet <= 1.1.
Run it on an otherwise idle machine: `python -m benchmarks.bench_contention [--batches 8] [--json PATH]`.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

BUSY = "while True: pass"


def _work(batches: int, batch: int) -> float:
    """Purify `batches` digits batches with the committed DDPM; returns the seconds they took."""
    import torch
    from empirical.checkpoints import load_digits_ddpm
    from empirical.data import load_digits
    from empirical.noise import SampleFreshNoise
    from empirical.purifiers import make_purifier
    unet, scheduler = load_digits_ddpm(ema=True)
    purifier = make_purifier("diffpure", unet=unet.eval(), scheduler=scheduler, t_star=100)
    data = load_digits("test")
    x, ids = data.x[:batch], data.ids[:batch]
    purifier(x, SampleFreshNoise(ids, 1))          # warm-up: first-call allocations are not the point
    start = time.perf_counter()
    for k in range(batches):
        with torch.no_grad():
            purifier(x, SampleFreshNoise(ids, 2 + k))
    return time.perf_counter() - start


def _run(processes: int, threads: int | None, batches: int, batch: int) -> float:
    """Wall seconds for `processes` subprocesses to share `batches` batches (slowest one's time)."""
    env = dict(os.environ)
    env.pop("OMP_NUM_THREADS", None)
    if threads is not None:
        env["OMP_NUM_THREADS"] = str(threads)
    cmd = [sys.executable, "-m", "benchmarks.bench_contention", "--worker", "--batch", str(batch), "--batches"]
    share = [batches // processes + (i < batches % processes) for i in range(processes)]
    procs = [subprocess.Popen(cmd + [str(n)], env=env, stdout=subprocess.PIPE, text=True) for n in share]
    return max(float(p.communicate()[0].strip().splitlines()[-1]) for p in procs)


def measure(batches: int, batch: int, cpus: int) -> dict:
    """The four configurations, quiet first, then beside one busy process."""
    out = {}
    for busy in (False, True):
        hog = subprocess.Popen([sys.executable, "-c", BUSY]) if busy else None
        try:
            if hog is not None:
                time.sleep(1.0)
            tag = "busy" if busy else "quiet"
            out[f"threads_{tag}"] = _run(1, None, batches, batch)
            out[f"workers_{tag}"] = _run(cpus, 1, batches, batch)
        finally:
            if hog is not None:
                hog.kill()
                hog.wait()
    out["ratios"] = {"workers busy / workers quiet (target <= 2.5)": out["workers_busy"] / out["workers_quiet"],
                     "workers quiet / threads quiet (target <= 1.1)": out["workers_quiet"] / out["threads_quiet"],
                     "threads busy / threads quiet (the old default)": out["threads_busy"] / out["threads_quiet"]}
    return out


def main(argv: list[str] | None = None) -> dict | None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_contention", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, default=8, help="purification batches in all (default 8)")
    parser.add_argument("--batch", type=int, default=16, help="images per batch (default 16)")
    parser.add_argument("--json", metavar="PATH", help="write the times and ratios as JSON")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not 1 <= args.batches <= 1000 or not 1 <= args.batch <= 1024:
        parser.error("--batches must be in [1, 1000] and --batch in [1, 1024]")
    if args.worker:
        print(f"{_work(args.batches, args.batch):.4f}", flush=True)
        return None
    from empirical.harness.workers import available_cpus
    cpus = available_cpus()
    result = {"cpus": cpus, "batches": args.batches, "batch": args.batch, **measure(args.batches, args.batch, cpus)}
    print(f"{args.batches} DiffPure purifications of {args.batch} digits (t* = 100) on {cpus} CPUs, wall seconds:")
    for key in ("threads_quiet", "workers_quiet", "threads_busy", "workers_busy"):
        print(f"  {key:14s} {result[key]:8.2f}")
    for name, value in result["ratios"].items():
        print(f"  {name}: {value:.2f}x")
    if args.json:
        from empirical.results import atomic_write_json
        atomic_write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
