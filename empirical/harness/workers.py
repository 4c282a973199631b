"""Local worker processes: a CPU run split over single-thread processes instead of one multi-thread one.

Why: with torch's default threads, one 2-thread process beside any other busy process slows 15-30x, because
its idle OpenMP workers spin for the core they share; a single-thread process has no OpenMP workers to spin.
On a quiet machine two single-thread processes are also faster than one 2-thread process (the UNet's
convolutions scale poorly across threads at these sizes). `benchmarks/bench_contention.py` measures both.

How: the entry point relaunches itself as W ranks of a local torch.distributed group (gloo), exactly as
`torchrun --nproc_per_node W` would, each with one thread; the runner deals the (cell, chunk) pairs by cost
and rank 0 gathers them, so with per-sample noise keys the records equal a single process's. Rank 0 keeps
the terminal (table, progress); the other ranks' output is shown only if they fail.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

LAUNCHED_ENV = "DISSECT_PURIFICATION_LAUNCHED"   # set in the ranks this module starts (their launcher already spoke)
WORKERS_ENV = "DISSECT_PURIFICATION_WORKERS"      # a user's (or a test's) choice of the automatic worker count
# glibc malloc settings that keep large tensors' pages mapped between calls: without them a run spends about
# a tenth of its CPU time in the kernel on page faults (set only where the user has not set them).
MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": "268435456", "MALLOC_TRIM_THRESHOLD_": "1073741824",
              "MALLOC_TOP_PAD_": "268435456"}


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the platform has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def worker_count(requested: int | None, threads: int | None, device: str, most: int) -> int:
    """How many local worker processes to launch (1: run in this process).

    An explicit request wins (CPU only). Automatic: 1 under torchrun or inside a worker, on CUDA, or when
    the user chose threads (--threads, OMP_NUM_THREADS); the count in DISSECT_PURIFICATION_WORKERS if set;
    else one per available CPU, at most `most`."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        return 1
    if requested is not None:
        return requested
    if os.environ.get(WORKERS_ENV):
        return max(1, int(os.environ[WORKERS_ENV]))
    if threads is not None or "OMP_NUM_THREADS" in os.environ or device not in ("auto", "cpu"):
        return 1
    if device == "auto":
        import torch
        if torch.cuda.is_available():
            return 1
    return max(1, min(available_cpus(), most))


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _environment(rank: int, workers: int, port: int, threads: int | None) -> dict[str, str]:
    env = {**os.environ, "RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(workers),
           "LOCAL_WORLD_SIZE": str(workers), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port),
           "OMP_NUM_THREADS": str(threads or 1), "MKL_NUM_THREADS": str(threads or 1), LAUNCHED_ENV: "1"}
    for key, value in MALLOC_ENV.items():
        env.setdefault(key, value)
    return env


def _wait(procs: list[subprocess.Popen]) -> tuple[list[int], int | None]:
    """Every rank's exit status and the rank that failed first (None if none did). A rank that fails stops
    the others, which would otherwise wait for it in a collective until gloo's timeout."""
    first = None
    while any(p.poll() is None for p in procs) or first is None:
        done = [r for r, p in enumerate(procs) if p.poll() not in (None, 0)]
        if first is None and done:
            first = done[0]
            for p in procs:
                if p.poll() is None:
                    p.terminate()
        if first is None and all(p.poll() is not None for p in procs):
            break
        time.sleep(0.2)
    return [p.wait() for p in procs], first


def run_workers(module: str, argv: list[str], workers: int, threads: int | None = None) -> int:
    """Run `python -m module argv` as `workers` ranks of one local process group; returns the exit status
    (the first failing rank's, its output shown). SIGINT / SIGTERM are passed on to every rank, which
    ends in one line and leaves the store resumable."""
    port = _free_port()
    logs = [None] + [tempfile.TemporaryFile(mode="w+") for _ in range(workers - 1)]
    procs = [subprocess.Popen([sys.executable, "-m", module, *argv], env=_environment(r, workers, port, threads),
                              stdout=None if r == 0 else subprocess.DEVNULL,
                              stderr=None if r == 0 else logs[r]) for r in range(workers)]

    interrupted = []

    def forward(signum, frame):
        interrupted.append(signum)
        for p in procs:
            if p.poll() is None:
                p.send_signal(signum)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        codes, first = _wait(procs)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    if first is not None and first > 0 and not interrupted:   # rank 0 shows its own errors and interruption
        logs[first].seek(0)
        tail = logs[first].read().strip().splitlines()[-20:]
        print(f"worker {first} of {workers} failed (exit {codes[first]}):\n" + "\n".join(tail), file=sys.stderr)
    for log in logs[1:]:
        log.close()
    return 0 if first is None else codes[first]
