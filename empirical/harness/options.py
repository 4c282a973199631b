"""The command line of every table entry point: its option groups, --help texts that show each default, and
one argparse error for every out-of-range value before anything is loaded. `config.parse` builds the parser
here and turns the parsed options into the typed `Config`."""
from __future__ import annotations

import argparse
import math
import os
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Callable

DATASETS = ("digits", "cifar10", "imagenet")
PURIFIERS = ("diffpure", "revpure", "ddim", "gaussian", "none")
MAX_THREADS = 256
# CPU-sized sample counts and PGD budget per dataset (options left unset, not under --full). Digits, Table 1's
# default: every test sample (n_samples None), 5 PGD steps of eps/4 (the attack is nearly converged after 4-5
# steps; benchmarks/bench_power.py) and BPDA-EOT-4 on 32 samples only: the EOT drop would need thousands of
# samples to resolve, so the budget goes to samples and noise replicates, which decide the BPDA drop.
DATASET_DEFAULTS = {"digits": dict(n_samples=None, steps=5, eot=4, eot_samples=32),
                    "cifar10": dict(n_samples=512, steps=10, eot=15, eot_samples=64),
                    "imagenet": dict(n_samples=200, steps=10, eot=15, eot_samples=20)}
T_STAR_DEFAULTS = {"digits": 100, "cifar10": 100, "imagenet": 150}
MAX_AUTO_WORKERS = 8
MAX_REPLICATES = 64
MAX_FRESH_EVALS = 1000
MAX_SEED = 2 ** 63 - 1
MAX_TOY_SIGMA = 100.0
MAX_EOT = 1000
MAX_STEPS = 100_000
MAX_BATCH = 100_000
MAX_UNET_BATCH = 65_536


def parse_fraction(text: str) -> float:
    """'8/255', '0.0314' or '4e-3' -> float; argparse shows the error for anything else."""
    try:
        value = float(Fraction(text.strip())) if "/" in text else float(text)
    except (ValueError, ZeroDivisionError):
        raise argparse.ArgumentTypeError(f"expected a number or a fraction such as 8/255, got {text!r}")
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


@dataclass(frozen=True)
class TableSpec:
    """What an entry point offers: its defaults (CPU-sized, dropped under --full), fixed defaults, and
    whether it runs attacks (then it offers the attack, store and sharding options)."""

    prog: str
    description: str
    table: str
    cpu_defaults: dict = field(default_factory=dict)
    set_defaults: dict = field(default_factory=dict)
    attacks: bool = True
    tabular: bool = True
    replicates: bool = False         # offers --replicates (the table pools a sample's noise replicates)
    figure: str | None = None


def build_parser(spec: TableSpec) -> argparse.ArgumentParser:
    """The options of one entry point, with its defaults shown in --help."""
    parser = argparse.ArgumentParser(prog=spec.prog, description=spec.description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    d = {**spec.cpu_defaults, **spec.set_defaults}
    shown = lambda key, fallback=None: str(d.get(key, _preset_text(key) if fallback is None else fallback))
    _data_options(parser, shown)
    _attack_options(parser, spec, shown)
    _output_options(parser, spec, shown)
    parser.set_defaults(**spec.set_defaults)
    if spec.cpu_defaults:
        parser.epilog = ("CPU default without --full: "
                         + ", ".join(f"--{k.replace('_', '-')} {v}" for k, v in spec.cpu_defaults.items()) + ".")
    return parser


def _preset_text(key: str) -> str:
    """A dataset-dependent default as --help shows it: its value on each dataset, and under --full."""
    from empirical.data import DIGITS_TEST_SIZE
    value = lambda ds: (f"all {DIGITS_TEST_SIZE}" if ds == "digits" else "all") if DATASET_DEFAULTS[ds][key] is None \
        else str(DATASET_DEFAULTS[ds][key])
    full = {"n_samples": "all", "steps": "50", "eot": "15", "eot_samples": "10%% of --n-samples"}[key]
    return ", ".join(f"{value(ds)} on {ds}" for ds in DATASETS) + f"; --full: {full}"


def _digits_manifest_value(key: str, fmt: Callable[[float], str]) -> str:
    """The committed digits manifest's value of a classifier setting, for --help ('?' if unreadable)."""
    try:
        from empirical.checkpoints import digits_manifest
        return fmt(digits_manifest()["classifiers"][key])
    except (OSError, KeyError, ValueError):
        return "?"


def _data_options(parser: argparse.ArgumentParser, shown) -> None:
    g = parser.add_argument_group("data and models")
    g.add_argument("--dataset", choices=DATASETS, default="digits",
                   help="digits: scikit-learn's bundled digits at 16x16 with the committed weights (default); "
                        "cifar10 / imagenet: --data, --purifier-model, --classifier")
    g.add_argument("--data", metavar="DIR", help="CIFAR-10 python-batches folder or ImageNet validation folder")
    g.add_argument("--purifier-model", metavar="PATH_OR_ID",
                   help="diffusers DDPM folder or hub id (CIFAR-10, e.g. google/ddpm-cifar10-32) or "
                        "256x256_diffusion_uncond.pt (ImageNet)")
    g.add_argument("--classifier", metavar="PATH_OR_NAME",
                   help="classifier weights: a state dict (WideResNet-28-10 with RobustBench keys, ResNet-50 "
                        "with torchvision keys) or a model name")
    g.add_argument("--non-ema", action="store_true", help="use the digits DDPM's non-EMA weights")
    g.add_argument("--allow-download", action="store_true",
                   help="let a hub id, a RobustBench or torchvision model name, or CIFAR-10 download what is not "
                        "cached (nothing downloads without it)")
    g.add_argument("--purifiers", "--purifier", nargs="+", metavar="NAME",
                   help=f"from {', '.join(PURIFIERS)}; gaussian is the toy purifier P(x) = x + N(0, sigma^2 I) "
                        f"(default: {' '.join(shown('purifiers', ['diffpure', 'gaussian']))})")
    g.add_argument("--t-star", type=int, help="diffusion steps t* (default " + shown(
        "t_star", ", ".join(f"{t} on {ds}" for ds, t in T_STAR_DEFAULTS.items())) + ")")
    g.add_argument("--toy-sigma", type=float, help="sigma of the gaussian purifier (default on digits: "
                   + _digits_manifest_value("toy_sigma", lambda v: f"{v:g}") + ", the noise its classifier was trained at)")
    g.add_argument("--unet-batch", type=int,
                   help="run every UNet call in zero-padded micro-batches of exactly this many rows, so a "
                        "sample's purification is bit-identical whatever the chunk size")
    g.add_argument("--x0-clip", default="auto",
                   help="clamp of the predicted x0 in each reverse step: auto (the scheduler's clip_sample; the "
                        "digits and CIFAR-10 DDPMs clamp to [-1, 1]), none, or a positive range (default auto)")
    g.add_argument("--variance", choices=("auto", "fixed_small", "fixed_large", "learned_range"), default="auto",
                   help="reverse-step variance: auto (learned when the UNet predicts it, as the ImageNet model does; "
                        "else the scheduler's, fixed_small on digits) (default auto)")
    g.add_argument("--respacing", choices=("respaced", "one_step"), default="respaced",
                   help="coefficients on an s*-step grid: respaced (from abar_t / abar_prev, correct) or one_step "
                        "(the t -> t-1 coefficients of older diffusers releases; barely purifies) (default respaced)")
    g.add_argument("--mixed-precision", action="store_true",
                   help="run the UNet under float16 autocast (CUDA only; noise stays float32)")


def _attack_options(parser: argparse.ArgumentParser, spec: TableSpec, shown) -> None:
    a = parser.add_argument_group("attack and evaluation")
    a.add_argument("--n-samples", type=int, help=f"samples attacked (default {shown('n_samples')})")
    digits_eps = _digits_manifest_value("default_eps", lambda v: f"{round(v * 255)}/255")
    a.add_argument("--eps", type=parse_fraction,
                   help=f"threat radius in [0, 1] units, e.g. 8/255 (default linf {digits_eps} on digits: the "
                        "smallest k/255 at which PGD takes the undefended classifier below 10%%; 8/255 on cifar10, "
                        "4/255 on imagenet, the paper's)")
    a.add_argument("--norm", choices=("linf", "l2"), default="linf", help="threat model of every attack (default linf)")
    if spec.attacks:
        a.add_argument("--steps", type=int, help=f"PGD steps per attack (default {shown('steps')})")
        a.add_argument("--step-size", type=parse_fraction, help="PGD step size (default eps / 4)")
        a.add_argument("--eot", type=int, help=f"purifications per gradient for BPDA-EOT (default {shown('eot')})")
        a.add_argument("--eot-samples", type=int,
                       help=f"samples attacked with BPDA-EOT, the first of the attacked ones (default {shown('eot_samples')})")
        a.add_argument("--n-clean", type=int, help=f"samples for clean accuracy, >= --n-samples (default {shown('n_clean', '--n-samples')})")
        a.add_argument("--fresh-evals", type=int, default=shown("fresh_evals", 3),
                       help=f"R: fresh-noise evaluations of every adversarial set (default {shown('fresh_evals', 3)})")
        if spec.replicates:
            a.add_argument("--replicates", type=int,
                           help="noise replicates per sample: each sample is attacked and evaluated again under "
                                "independent noise keys and its outcome is the mean over them, so the sample stays "
                                "the unit of every paired test (a second key on a sample is worth about a new "
                                f"sample: their drops barely correlate) (default {shown('replicates', 1)}; "
                                "1 under --full, the paper's protocol)")
        a.add_argument("--noise-keys", choices=("sample", "batch"), default="sample",
                       help="sample: noise keyed per sample (default; results independent of batching); "
                            "batch: the paper's Seed(i, t) = 2(1000 i + t) (+1 forward), i the batch index")
    a.add_argument("--batch-size", type=int, default=64,
                   help=f"samples per chunk, the unit of resume and of sharding (default {shown('batch_size', 64)})"
                   if spec.attacks else f"purifications per batch (default {shown('batch_size', 64)})")
    a.add_argument("--seed", type=int, default=0, help="run seed: every noise key derives from it (default 0)")
    a.add_argument("--full", action="store_true", help="the paper's protocol instead of the CPU-sized default")


def _output_options(parser: argparse.ArgumentParser, spec: TableSpec, shown) -> None:
    o = parser.add_argument_group("run and output")
    o.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda[:k] (default auto)")
    o.add_argument("--threads", type=int,
                   help="torch CPU threads per process (default: 1 per worker process when --workers is automatic "
                        "on a CPU; otherwise torch's choice)")
    if spec.attacks:
        o.add_argument("--workers", type=int,
                       help="CPU only: split the run over this many single-thread worker processes (torch.distributed "
                            "on gloo; records identical to one process). Default: one per available core (at most "
                            f"{MAX_AUTO_WORKERS}) unless --threads or OMP_NUM_THREADS is set, then 1. One 2-thread "
                            "process beside another busy process slows 15-30x (OpenMP workers spin); single-thread "
                            "workers do not")
    if spec.attacks:
        o.add_argument("--results", metavar="PATH", help="per-chunk results store, written atomically after every chunk")
        o.add_argument("--resume", action="store_true", help="continue the --results store of an interrupted run")
        o.add_argument("--overwrite", action="store_true", help="replace an existing --results store")
        o.add_argument("--allow-code-change", action="store_true",
                       help="--resume a store written by other code or library versions (refused otherwise; the "
                            "change is recorded in the store)")
        o.add_argument("--no-store", action="store_true",
                       help="keep no results store (default without --results: one per configuration and code in "
                            "the cache folder, so rerunning a killed command resumes it)")
    o.add_argument("--json", metavar="PATH", help="write the configuration, rows and all measurements as JSON")
    if spec.tabular:
        o.add_argument("--csv", metavar="PATH", help="write the table rows as CSV")
        o.add_argument("--format", choices=("compact", "wide", "markdown", "csv"), default="compact",
                       help="compact: fits 120 columns (default); wide: adds the spread over fresh draws; "
                            "markdown; csv (the table on stdout)")
    if spec.figure:
        o.add_argument("--png", default=spec.figure, help=f"output figure; a PDF is written beside it (default {spec.figure})")
    o.add_argument("--quiet", action="store_true", help="no progress bars")


def _check_ranges(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Every out-of-range value gets one argparse error (exit status 2) before anything is loaded."""
    g = lambda name: getattr(args, name, None)
    if g("t_star") is not None and not 0 <= args.t_star <= 1000:
        parser.error(f"--t-star must be in [0, 1000] (the diffusion's steps), got {args.t_star}")
    if g("toy_sigma") is not None and not (math.isfinite(args.toy_sigma) and 0 < args.toy_sigma <= MAX_TOY_SIGMA):
        parser.error(f"--toy-sigma must be a finite number in (0, {MAX_TOY_SIGMA:g}] (images live in [0, 1]; a "
                     f"larger sigma leaves only noise), got {args.toy_sigma}")
    if g("mixed_precision") and args.device == "cpu":
        parser.error("--mixed-precision is CUDA-only; drop it or use --device cuda")
    linf = getattr(args, "norm", "linf") == "linf"
    if not linf and g("eps") is None:
        parser.error("--norm l2 needs --eps (the dataset presets are l_inf radii)")
    if g("eps") is not None and not (0 < args.eps <= 1 if linf else 0 < args.eps):
        parser.error(f"--eps must be in (0, 1] (image units), got {args.eps}; e.g. 8/255 = {8 / 255:.4f}" if linf
                     else f"--eps must be positive for --norm l2, got {args.eps}")
    for name in ("n_samples", "steps", "eot", "eot_samples", "n_clean", "fresh_evals", "batch_size", "threads",
                 "unet_batch", "workers", "replicates"):
        value = g(name)
        if value is not None and value < (0 if name == "steps" else 1):
            parser.error(f"--{name.replace('_', '-')} must be positive, got {value}")
    if g("threads") is not None and args.threads > MAX_THREADS:
        parser.error(f"--threads must be at most {MAX_THREADS}, got {args.threads} (this machine has {os.cpu_count()} CPUs)")
    if g("workers") is not None and args.workers > MAX_THREADS:
        parser.error(f"--workers must be at most {MAX_THREADS}, got {args.workers} (this machine has {os.cpu_count()} CPUs)")
    if g("replicates") is not None and args.replicates > MAX_REPLICATES:
        parser.error(f"--replicates must be at most {MAX_REPLICATES} (each one repeats every attack), got {args.replicates}")
    if g("workers") is not None and args.workers > 1 and args.device not in ("auto", "cpu"):
        parser.error("--workers splits a CPU run; on CUDA use torchrun --nproc_per_node K (one GPU per rank)")
    if g("fresh_evals") is not None and args.fresh_evals > MAX_FRESH_EVALS:
        parser.error(f"--fresh-evals must be at most {MAX_FRESH_EVALS}, got {args.fresh_evals}")
    for name, most, why in (("eot", MAX_EOT, "the paper uses 15"), ("steps", MAX_STEPS, "PGD converges in tens"),
                            ("batch_size", MAX_BATCH, "a chunk is the unit of resume")):
        if g(name) is not None and getattr(args, name) > most:
            parser.error(f"--{name.replace('_', '-')} must be at most {most} ({why}), got {getattr(args, name)}")
    if g("unet_batch") is not None:
        _check_unet_batch(parser, args.unet_batch, args.dataset)
    if g("step_size") is not None and not (math.isfinite(args.step_size) and args.step_size > 0):
        parser.error(f"--step-size must be a finite positive number, got {args.step_size}")
    if not 0 <= args.seed <= MAX_SEED:
        parser.error(f"--seed must be in [0, 2^63 - 1], got {args.seed}")
    if g("n_clean") is not None and g("n_samples") is not None and args.n_clean < args.n_samples:
        parser.error(f"--n-clean ({args.n_clean}) must be >= --n-samples ({args.n_samples}): clean accuracy "
                     "is measured on the attacked samples and more")
    if g("x0_clip") not in (None, "auto", "none"):
        try:
            ok = math.isfinite(float(args.x0_clip)) and float(args.x0_clip) > 0
        except ValueError:
            ok = False
        if not ok:
            parser.error(f"--x0-clip must be auto, none or a positive number, got {args.x0_clip!r}")
    if g("resume") and not g("results"):
        parser.error("--resume needs --results PATH (the store to continue)")
    if g("resume") and g("overwrite"):
        parser.error("--resume and --overwrite contradict each other; choose one")
    if g("dry_run") and args.dataset == "digits":
        parser.error("--dry-run estimates the cost of the paper-scale runs: use it with --dataset cifar10 or imagenet")
    if args.dataset != "digits" and not (args.data and args.purifier_model and args.classifier) and not g("dry_run"):
        parser.error(f"--dataset {args.dataset} needs --data, --purifier-model and --classifier (local paths, "
                     "hub ids or model names); nothing is downloaded without --allow-download")
    for name in args.purifiers or ():
        if name not in PURIFIERS:
            parser.error(f"unknown purifier {name!r}; choose from {', '.join(PURIFIERS)}")
    _check_device(parser, args.device)


def _check_unet_batch(parser: argparse.ArgumentParser, rows: int, dataset: str) -> None:
    """--unet-batch pads every UNet call to `rows` rows: refuse, with the memory it would take, a value whose
    zero-padded input alone does not fit in half of this machine's memory (or above MAX_UNET_BATCH)."""
    channels, side = {"digits": (1, 16), "cifar10": (3, 32), "imagenet": (3, 256)}.get(dataset, (3, 256))
    per_row = channels * side * side * 4
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        memory = 64 << 30
    most = max(1, min(MAX_UNET_BATCH, memory // 2 // per_row))
    if rows > most:
        parser.error(f"--unet-batch {rows} pads every UNet call to {rows} rows: {rows * per_row / 1e9:.1f} GB for "
                     f"the input alone ({channels}x{side}x{side} float32 per row; the UNet's activations take many "
                     f"times more) on a machine with {memory / 1e9:.0f} GB; use at most {most}, e.g. the rows one "
                     "call needs (--batch-size, or --batch-size x --eot under BPDA-EOT)")


def _check_device(parser: argparse.ArgumentParser, name: str) -> None:
    import torch
    if name == "auto":
        return
    try:
        device = torch.device(name)
    except RuntimeError:
        parser.error(f"--device {name!r} is not a device; use auto, cpu or cuda[:k]")
    if device.type not in ("cpu", "cuda"):
        parser.error(f"--device {name!r}: only cpu and cuda run this code; use auto, cpu or cuda[:k]")
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error(f"--device {name} asked for CUDA, but torch sees no CUDA device; use --device cpu")
