"""Purification throughput (project purifier vs a bare diffusers loop) and full-gradient memory.

Part 1: RevPure DDPM reverse over t* steps with the same UNet and schedule, timed side by side and
interleaved over repeats in a rotating order (min and median; process CPU time on the CPU): the bare
UNet calls (floor), a bare diffusers loop (DDPMScheduler.step with one generator, and with a list of
per-sample generators), the project's purifier with fresh, batch-replay (paper eq. 5) and per-sample
replay noise, and each source's noise draws alone. Target: replay bookkeeping < 20% over the bare loop.
Part 2: peak memory of one full-gradient PGD step (its memory does not grow with the PGD step count)
through t* = 50 and 100 diffusion steps, with and without per-step checkpointing. Two measures:
(a) bytes autograd holds for the backward pass after the forward (saved_tensors_hooks), exact on any
device; (b) the peak: on CPU the ru_maxrss increase over a warmed-up baseline in a fresh subprocess run
with MALLOC_MMAP_THRESHOLD_=65536 (otherwise glibc keeps freed tensor memory in its heap and RSS grows
with every recomputed step), on CUDA torch.cuda.max_memory_allocated.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

import torch
from diffusers import DDPMScheduler, UNet2DModel
from tqdm import tqdm

from empirical.attacks import pgd
from empirical.noise import BatchReplayNoise, FreshNoise, SampleReplayNoise, sample_seed
from empirical.purifiers import make_purifier
from empirical.seeding import seeded_init


def build_unet(size: int, channels: int, seed: int = 0) -> UNet2DModel:
    """A small randomly initialised UNet (channels 32/64, no attention); weights do not affect timing."""
    unet = UNet2DModel(sample_size=size, in_channels=channels, out_channels=channels, layers_per_block=1,
                       block_out_channels=(32, 64), down_block_types=("DownBlock2D", "DownBlock2D"),
                       up_block_types=("UpBlock2D", "UpBlock2D"))
    return seeded_init(unet, torch.Generator().manual_seed(seed)).eval()


def bare_loop(unet, sched, x, t_star: int, generator) -> torch.Tensor:
    """The reference: diffusers' own ancestral sampling from x as x_t*, noise drawn by DDPMScheduler.step."""
    xt = 2 * x - 1
    with torch.no_grad():
        for t in range(t_star - 1, -1, -1):
            eps = unet(xt, torch.full((x.shape[0],), t, device=x.device)).sample
            xt = sched.step(eps, t, xt, generator=generator).prev_sample
    return ((xt + 1) / 2).clamp(0, 1)


def unet_only(unet, x, t_star: int) -> None:
    """The floor: the same t* UNet calls and nothing else."""
    xt = 2 * x - 1
    with torch.no_grad():
        for t in range(t_star - 1, -1, -1):
            unet(xt, torch.full((x.shape[0],), t, device=x.device)).sample


def draws_only(source, shape, t_star: int, device: str) -> None:
    """Just the noise of one RevPure call: the reverse draws at steps t* ... 2."""
    for t in range(t_star, 1, -1):
        source.draw("reverse", t, shape, device, torch.float32)


def _timed(fn, device: str) -> float:
    """Seconds for one call: process CPU time on the CPU (robust to other jobs on a shared machine), wall on CUDA."""
    clock = time.perf_counter if device == "cuda" else time.process_time
    if device == "cuda":
        torch.cuda.synchronize()
    t0 = clock()
    fn()
    if device == "cuda":
        torch.cuda.synchronize()
    return clock() - t0


def throughput(device: str, args) -> dict:
    unet = build_unet(args.size, args.channels).to(device)
    sched = DDPMScheduler(num_train_timesteps=1000)
    x = torch.rand(args.batch, args.channels, args.size, args.size, generator=torch.Generator().manual_seed(0)).to(device)
    ids = list(range(args.batch))
    pur = make_purifier("revpure", unet, sched, t_star=args.t_star)
    gen = torch.Generator(device=device)
    variants = {
        "UNet calls only (floor)": lambda: unet_only(unet, x, args.t_star),
        "diffusers loop (one generator)": lambda: bare_loop(unet, sched, x, args.t_star, gen.manual_seed(0)),
        "diffusers loop (per-sample generators)": lambda: bare_loop(
            unet, sched, x, args.t_star, [torch.Generator(device=device).manual_seed(i) for i in ids]),
        "purifier, fresh": lambda: pur(x, FreshNoise(gen.manual_seed(0))),
        "purifier, batch replay (eq. 5)": lambda: pur(x, BatchReplayNoise(0)),
        "purifier, per-sample replay": lambda: pur(x, SampleReplayNoise(ids, run_seed=1)),
    }
    shp = tuple(x.shape)
    variants.update({
        "noise only: fresh generator": lambda: draws_only(FreshNoise(gen.manual_seed(0)), shp, args.t_star, device),
        "noise only: batch replay": lambda: draws_only(BatchReplayNoise(0), shp, args.t_star, device),
        "noise only: per-sample replay": lambda: draws_only(SampleReplayNoise(ids, 1), shp, args.t_star, device),
    })
    sample_seed.cache_clear()
    cold = _timed(variants["purifier, per-sample replay"], device)      # seed cache cold (first attack step)
    times = {k: [] for k in variants}
    names = list(variants)
    for r in tqdm(range(args.repeats), desc=f"throughput {device}", leave=False):
        for k in names[r % len(names):] + names[:r % len(names)]:      # rotate the order: no position bias
            times[k].append(_timed(variants[k], device))
    base = min(times["diffusers loop (one generator)"])
    rows = [{"variant": k, "min_s": min(v), "median_s": statistics.median(v), "images_per_s": args.batch / min(v),
             "ratio_to_diffusers": min(v) / base} for k, v in times.items()]
    rows.append({"variant": "purifier, per-sample replay, cold seed cache (1 run)", "min_s": cold, "median_s": cold,
                 "images_per_s": args.batch / cold, "ratio_to_diffusers": cold / base})
    clock = "wall time" if device == "cuda" else "process CPU time"
    return {"device": device, "clock": clock, "rows": rows}


def memory_child(args) -> None:
    """One full-gradient PGD step in this process; print the peak-memory increase as JSON."""
    device = args.device_child
    unet = build_unet(args.size, args.channels).to(device)
    sched = DDPMScheduler(num_train_timesteps=1000)
    clf = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(args.channels * args.size ** 2, 10)).to(device)
    x = torch.rand(args.mem_batch, args.channels, args.size, args.size, generator=torch.Generator().manual_seed(0)).to(device)
    y = torch.arange(args.mem_batch, device=device) % 10
    pur = make_purifier("revpure", unet, sched, t_star=args.t_star)
    noise = SampleReplayNoise(range(args.mem_batch), run_seed=0)
    pur(x, noise)                                              # warm up allocator and kernels
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.max_memory_allocated()
    else:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    pgd(clf, pur, x, y, eps=8 / 255, steps=1, step_size=2 / 255, gradient="full", noise=noise,
        checkpoint=bool(args.checkpoint_child))
    after = torch.cuda.max_memory_allocated() if device == "cuda" else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    saved: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        st = t.untyped_storage()
        saved[st.data_ptr()] = st.nbytes()                     # distinct storages only
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        held = pur.differentiable(x.clone().requires_grad_(True), noise, checkpoint=bool(args.checkpoint_child))
    del held
    print(json.dumps({"peak_increase_bytes": after - before, "saved_for_backward_bytes": sum(saved.values())}))


def memory(device: str, args) -> dict:
    rows = []
    for t_star in tqdm(args.mem_tstars, desc=f"memory {device}", leave=False):
        for ck in (1, 0):
            cmd = [sys.executable, "-m", "benchmarks.bench_purify", "--memory-child", "--device-child", device,
                   "--checkpoint-child", str(ck), "--t-star", str(t_star), "--size", str(args.size),
                   "--channels", str(args.channels), "--mem-batch", str(args.mem_batch), "--threads", str(args.threads)]
            env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}
            out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env).stdout.strip().splitlines()[-1]
            res = json.loads(out)
            rows.append({"t_star": t_star, "checkpoint": bool(ck), "peak_MiB": res["peak_increase_bytes"] / 2 ** 20,
                         "saved_MiB": res["saved_for_backward_bytes"] / 2 ** 20})
    method = ("torch.cuda.max_memory_allocated" if device == "cuda"
              else "ru_maxrss increase in a fresh subprocess, MALLOC_MMAP_THRESHOLD_=65536")
    return {"device": device, "method": method, "rows": rows}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--t-star", type=int, default=50, help="reverse steps t* for throughput (default 50)")
    p.add_argument("--batch", type=int, default=16, help="images per purification call (default 16)")
    p.add_argument("--size", type=int, default=16, help="image side in pixels (default 16)")
    p.add_argument("--channels", type=int, default=1, help="image channels (default 1)")
    p.add_argument("--repeats", type=int, default=7, help="interleaved timing repeats per variant, order rotated (median)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1: shared machine)")
    p.add_argument("--mem-tstars", type=int, nargs="*", default=[50, 100], help="t* values for the memory part")
    p.add_argument("--mem-batch", type=int, default=8, help="images in the full-gradient memory step")
    p.add_argument("--skip-memory", action="store_true", help="only measure throughput")
    p.add_argument("--json", metavar="PATH", help="write all results as JSON to PATH")
    p.add_argument("--memory-child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--device-child", default="cpu", help=argparse.SUPPRESS)
    p.add_argument("--checkpoint-child", type=int, default=1, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.memory_child:
        memory_child(args)
        return
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    results = {"config": {k: v for k, v in vars(args).items() if not k.endswith("child")}, "throughput": [], "memory": []}
    for dev in devices:
        res = throughput(dev, args)
        results["throughput"].append(res)
        print(f"\nThroughput on {dev}: RevPure t*={args.t_star}, batch {args.batch}, {args.channels}x{args.size}x{args.size}, "
              f"{args.threads} thread(s), {res['clock']}, best (min) and median of {args.repeats}")
        print(f"{'variant':54s} {'min s':>7s} {'median s':>9s} {'img/s':>7s} {'vs diffusers (min)':>19s}")
        for r in res["rows"]:
            print(f"{r['variant']:54s} {r['min_s']:7.3f} {r['median_s']:9.3f} {r['images_per_s']:7.1f} "
                  f"{r['ratio_to_diffusers']:18.3f}x")
        if not args.skip_memory:
            mem = memory(dev, args)
            results["memory"].append(mem)
            print(f"\nPeak memory of one full-gradient PGD step on {dev} ({mem['method']}), batch {args.mem_batch}")
            for r in mem["rows"]:
                print(f"  t*={r['t_star']:4d}  checkpoint={str(r['checkpoint']):5s}  peak {r['peak_MiB']:8.1f} MiB"
                      f"   held for backward {r['saved_MiB']:8.2f} MiB")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
