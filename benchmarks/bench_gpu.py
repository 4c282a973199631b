"""GPU throughput and memory of purification and attack steps, one JSON with the device name.

`python -m benchmarks.bench_gpu [--json PATH] [--tiny]` measures, side by side in one run (interleaved
repeats, rotating order, min and median):
- purification throughput (images/s, UNet evaluations/s) of the package's DiffPure purifier and the BPDA
  attack-step throughput, for fp32, bf16 autocast, channels-last and torch.compile;
- peak memory per batch size of a purification step, a BPDA step and a checkpointed full-gradient step,
  and the largest batch that fits (CUDA only: probing the limit on a CPU would exhaust the host);
- the share of a purification spent drawing per-sample replay noise (drawn on the CPU, then copied);
- determinism: two identical purifications compared bit for bit (and under torch's deterministic mode).
Default models: the CIFAR-10 DDPM UNet (google/ddpm-cifar10-32's architecture, random weights) and
WRN-28-10. `--tiny` swaps in small stand-ins so the CPU runs it in seconds; variants a device cannot run
(torch.compile on the CPU, bf16 where unsupported) are listed as skipped with the reason.
"""
from __future__ import annotations

import argparse
import copy
import os
import platform
import statistics
import time

import torch

from empirical.results import atomic_write_json

from empirical.dryrun import DDPM_CIFAR10_CONFIG, _PeakMemory
from empirical.gradients import loss_grad
from empirical.models.guided import EpsOutput
from empirical.models.wideresnet import WideResNet
from empirical.noise import SampleReplayNoise
from empirical.purifiers import make_purifier

TINY_UNET = dict(sample_size=8, in_channels=3, out_channels=3, layers_per_block=1, block_out_channels=(8, 16),
                 norm_num_groups=4, down_block_types=("DownBlock2D", "DownBlock2D"),
                 up_block_types=("UpBlock2D", "UpBlock2D"))
VARIANTS = ("fp32", "bf16 autocast", "channels-last", "torch.compile")


class Mode(torch.nn.Module):
    """A UNet or classifier run in one execution mode; outputs are float32 as the purifier expects."""

    def __init__(self, model: torch.nn.Module, mode: str, device_type: str):
        super().__init__()
        if mode == "channels-last":
            model = copy.deepcopy(model).to(memory_format=torch.channels_last)
        self.model, self.mode, self.device_type = model, mode, device_type
        self.fn = torch.compile(model) if mode == "torch.compile" else model
        if hasattr(model, "config"):
            self.config = model.config

    def forward(self, x: torch.Tensor, *args):
        if self.mode == "channels-last":
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(self.device_type, dtype=torch.bfloat16, enabled=self.mode == "bf16 autocast"):
            out = self.fn(x, *args)
        if hasattr(out, "sample"):
            return EpsOutput(sample=out.sample.float().contiguous())
        return out.float()


def build_models(tiny: bool, device: torch.device):
    """(unet, scheduler, classifier) with random weights, built under a forked global RNG."""
    from diffusers import DDPMScheduler, UNet2DModel

    with torch.random.fork_rng(devices=[]):
        unet = UNet2DModel(**(TINY_UNET if tiny else DDPM_CIFAR10_CONFIG)).eval()
        clf = (WideResNet(10, 1) if tiny else WideResNet(28, 10)).eval()
    scheduler = DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear", clip_sample=True)
    return unet.to(device), scheduler, clf.to(device)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn, device: torch.device) -> float:
    _sync(device)
    t0 = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - t0


def unsupported(mode: str, device: torch.device) -> str | None:
    """Why a variant cannot run on this device, or None."""
    if mode == "torch.compile" and device.type != "cuda":
        return "torch.compile is measured on CUDA only (on the CPU it needs a C++ toolchain and minutes of compiling)"
    if mode == "bf16 autocast":
        if device.type == "cuda" and not torch.cuda.is_bf16_supported():
            return f"{torch.cuda.get_device_name(device)} does not support bf16"
        try:
            with torch.autocast(device.type, dtype=torch.bfloat16):
                torch.nn.functional.conv2d(torch.ones(1, 1, 3, 3, device=device), torch.ones(1, 1, 3, 3, device=device))
        except (RuntimeError, TypeError) as exc:
            return f"bf16 autocast fails on {device.type}: {exc}"
    return None


def throughput(unet, scheduler, clf, args, device: torch.device) -> tuple[list[dict], dict]:
    """Purification and BPDA-step throughput per variant, timed interleaved in one run."""
    g = torch.Generator().manual_seed(0)
    x = torch.rand(args.batch, 3, unet.config.sample_size, unet.config.sample_size, generator=g).to(device)
    y = torch.randint(10, (args.batch,), generator=g).to(device)
    ids = list(range(args.batch))
    skipped, jobs = {}, {}
    for mode in VARIANTS:
        reason = unsupported(mode, device)
        if reason:
            skipped[mode] = reason
            continue
        pur = make_purifier("diffpure", Mode(unet, mode, device.type), scheduler, t_star=args.t_star)
        c = Mode(clf, mode, device.type)
        jobs[mode] = {"purify": lambda p=pur: p(x, SampleReplayNoise(ids, 0)),
                      "attack": lambda p=pur, c=c: loss_grad(c, p, x, y, SampleReplayNoise(ids, 0), "bpda")}
        try:
            for fn in jobs[mode].values():                     # warm up (compiles, autotunes)
                fn()
        except Exception as exc:                               # a variant that fails is reported, not fatal
            skipped[mode] = f"failed: {type(exc).__name__}: {exc}"
            del jobs[mode]
    times = {(m, k): [] for m in jobs for k in ("purify", "attack")}
    keys = list(times)
    for r in range(args.repeats):
        for key in keys[r % len(keys):] + keys[:r % len(keys)]:
            times[key].append(_timed(jobs[key[0]][key[1]], device))
    rows = []
    for mode in jobs:
        tp, ta = min(times[(mode, "purify")]), min(times[(mode, "attack")])
        rows.append({"variant": mode, "purify_min_s": tp, "purify_median_s": statistics.median(times[(mode, "purify")]),
                     "purify_images_per_s": args.batch / tp, "unet_evals_per_s": args.batch * args.t_star / tp,
                     "attack_min_s": ta, "attack_median_s": statistics.median(times[(mode, "attack")]),
                     "attack_images_per_s": args.batch / ta})
    base = next((r for r in rows if r["variant"] == "fp32"), None)
    for r in rows:
        r["purify_speedup_vs_fp32"] = base["purify_min_s"] / r["purify_min_s"] if base else None
        r["attack_speedup_vs_fp32"] = base["attack_min_s"] / r["attack_min_s"] if base else None
    return rows, skipped


def memory(unet, scheduler, clf, args, device: torch.device) -> dict:
    """Peak memory per batch size: one purification step, one BPDA step, one checkpointed full-gradient step
    (through 2 UNet steps); on CUDA the batch doubles until a step runs out of memory."""
    size = unet.config.sample_size
    pur1 = make_purifier("diffpure", unet, scheduler, t_star=1)
    pur2 = make_purifier("diffpure", unet, scheduler, t_star=2)
    steps = {"purify": lambda x, y, n: pur1(x, n), "bpda": lambda x, y, n: loss_grad(clf, pur1, x, y, n, "bpda"),
             "full": lambda x, y, n: loss_grad(clf, pur2, x, y, n, "full", checkpoint=True)}
    rows, largest, batch = [], {k: None for k in steps}, 1
    while batch <= args.max_batch:
        g = torch.Generator().manual_seed(batch)
        x, y = torch.rand(batch, 3, size, size, generator=g).to(device), torch.randint(10, (batch,), generator=g).to(device)
        row = {"batch": batch}
        for name, fn in steps.items():
            if rows and rows[-1][f"{name}_peak_bytes"] is None:          # ran out at a smaller batch
                row[f"{name}_peak_bytes"] = None
                continue
            try:
                with _PeakMemory(device) as m:
                    fn(x, y, SampleReplayNoise(range(batch), 0))
                row[f"{name}_peak_bytes"], largest[name] = m.peak, batch
            except torch.cuda.OutOfMemoryError:
                row[f"{name}_peak_bytes"] = None
                torch.cuda.empty_cache()
        rows.append(row)
        if all(row[f"{k}_peak_bytes"] is None for k in steps):
            break
        batch *= 2
    out = {"method": _PeakMemory(device).method, "rows": rows}
    if device.type == "cuda":
        out["largest_batch"] = largest
        out["largest_note"] = f"largest power of two up to --max-batch {args.max_batch} that ran"
    else:
        out["largest_batch"] = None
        out["largest_note"] = "not probed on the CPU: running out of host memory would take the machine down"
    return out


def noise_share(unet, scheduler, args, device: torch.device) -> dict:
    """Seconds of one fp32 purification and of its replay-noise draws alone (drawn on the CPU, copied)."""
    size = unet.config.sample_size
    x = torch.rand(args.batch, 3, size, size, generator=torch.Generator().manual_seed(1)).to(device)
    ids = list(range(args.batch))
    pur = make_purifier("diffpure", unet, scheduler, t_star=args.t_star)

    def draws() -> None:
        source = SampleReplayNoise(ids, 0)
        source.draw("forward", args.t_star, tuple(x.shape), device, x.dtype)
        for t in range(args.t_star, 1, -1):
            source.draw("reverse", t, tuple(x.shape), device, x.dtype)

    pur(x, SampleReplayNoise(ids, 0))
    purify = min(_timed(lambda: pur(x, SampleReplayNoise(ids, 0)), device) for _ in range(args.repeats))
    drawing = min(_timed(draws, device) for _ in range(args.repeats))
    return {"purify_s": purify, "noise_draws_s": drawing, "share": drawing / purify, "batch": args.batch,
            "t_star": args.t_star}


def determinism(unet, scheduler, args, device: torch.device) -> dict:
    """Two identical purifications (same input, same replay keys) compared bit for bit, in the default mode
    and under torch.use_deterministic_algorithms(True) with cudnn.benchmark off."""
    size = unet.config.sample_size
    x = torch.rand(args.batch, 3, size, size, generator=torch.Generator().manual_seed(2)).to(device)
    pur = make_purifier("diffpure", unet, scheduler, t_star=args.t_star)
    out = {"cublas_workspace_config": os.environ.get("CUBLAS_WORKSPACE_CONFIG")}
    saved = (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark)
    try:
        for label, strict in (("default", False), ("deterministic", True)):
            torch.use_deterministic_algorithms(strict, warn_only=True)
            torch.backends.cudnn.benchmark = False if strict else saved[1]
            a, b = (pur(x, SampleReplayNoise(range(args.batch), 7)) for _ in range(2))
            out[label] = {"identical": bool(torch.equal(a, b)), "max_abs_diff": float((a - b).abs().max())}
    finally:
        torch.use_deterministic_algorithms(saved[0])
        torch.backends.cudnn.benchmark = saved[1]
    return out


def device_info(device: torch.device) -> dict:
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        total = torch.cuda.get_device_properties(device).total_memory
        return {"type": "cuda", "name": name, "memory_bytes": total, "torch": torch.__version__, "cuda": torch.version.cuda}
    return {"type": device.type, "name": platform.processor() or platform.machine(), "torch": torch.__version__,
            "threads": torch.get_num_threads()}


def run(args) -> dict:
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda but CUDA is not available")
    unet, scheduler, clf = build_models(args.tiny, device)
    rows, skipped = throughput(unet, scheduler, clf, args, device)
    return {"device": device_info(device),
            "config": {"tiny": args.tiny, "t_star": args.t_star, "batch": args.batch, "repeats": args.repeats,
                       "max_batch": args.max_batch, "unet_parameters": sum(p.numel() for p in unet.parameters()),
                       "classifier_parameters": sum(p.numel() for p in clf.parameters())},
            "throughput": rows, "skipped": skipped, "memory": memory(unet, scheduler, clf, args, device),
            "noise": noise_share(unet, scheduler, args, device), "determinism": determinism(unet, scheduler, args, device)}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tiny", action="store_true", help="small stand-in models and settings (seconds on a CPU)")
    p.add_argument("--device", help="cuda or cpu (default: cuda when available)")
    p.add_argument("--t-star", type=int, help="reverse steps per purification (default 20; --tiny 3)")
    p.add_argument("--batch", type=int, help="images per batch for throughput (default 256; --tiny 2)")
    p.add_argument("--repeats", type=int, help="interleaved timing repeats per variant (default 5; --tiny 2)")
    p.add_argument("--max-batch", type=int, help="largest batch probed for memory (default 4096; --tiny 2)")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--json", metavar="PATH", help="write the results as JSON to PATH")
    parsed = vars(p.parse_args(argv))
    defaults = dict(t_star=3, batch=2, repeats=2, max_batch=2) if parsed["tiny"] else \
        dict(t_star=20, batch=256, repeats=5, max_batch=4096)
    for key, value in defaults.items():
        if parsed[key] is not None and parsed[key] < 1:
            p.error(f"--{key.replace('_', '-')} must be >= 1")
    args = argparse.Namespace(**{**parsed, **{k: v for k, v in defaults.items() if parsed[k] is None}})
    if args.threads:
        torch.set_num_threads(args.threads)
    results = run(args)
    print(f"{results['device']['name']} ({results['device']['type']}): t*={args.t_star}, batch {args.batch}")
    for r in results["throughput"]:
        print(f"  {r['variant']:14s} purify {r['purify_images_per_s']:9.2f} img/s ({r['unet_evals_per_s']:10.1f} UNet "
              f"evals/s, x{r['purify_speedup_vs_fp32']:.2f})  BPDA step {r['attack_images_per_s']:9.2f} img/s "
              f"(x{r['attack_speedup_vs_fp32']:.2f})")
    for mode, reason in results["skipped"].items():
        print(f"  {mode:14s} skipped: {reason}")
    n = results["noise"]
    print(f"  replay noise: {n['share']:.1%} of a purification ({n['noise_draws_s']:.4f} of {n['purify_s']:.4f} s)")
    d = results["determinism"]
    print(f"  repeated purification identical: default {d['default']['identical']}, "
          f"deterministic mode {d['deterministic']['identical']}")
    for row in results["memory"]["rows"]:
        print("  batch {batch:5d}: ".format(**row) + ", ".join(
            f"{k[:-11]} {'OOM' if v is None else f'{v / 2 ** 20:.0f} MiB'}" for k, v in row.items() if k != "batch"))
    if args.json:
        atomic_write_json(args.json, results)
    return results


if __name__ == "__main__":
    main()
