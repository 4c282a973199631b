"""The command-line options every table module shares, and their validation (one place, not copies)."""
from __future__ import annotations

import argparse
import os

import torch

DATASETS = ("digits", "cifar10", "imagenet")
PURIFIERS = ("diffpure", "revpure", "ddim", "gaussian", "none")


def add_common_args(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Dataset, models, attack budget, noise keys, device and output options."""
    g = parser.add_argument_group("data and models")
    g.add_argument("--dataset", choices=DATASETS, default="digits",
                   help="digits: scikit-learn's bundled digits at 16x16 with the committed weights (default); "
                        "cifar10 / imagenet: local files given by --data, --purifier-model, --classifier")
    g.add_argument("--data", metavar="DIR", help="CIFAR-10 python-batches folder or ImageNet validation folder")
    g.add_argument("--purifier-model", metavar="PATH",
                   help="local diffusers DDPM folder (CIFAR-10) or 256x256_diffusion_uncond.pt (ImageNet)")
    g.add_argument("--classifier", metavar="PATH",
                   help="classifier state dict: WideResNet-28-10 (RobustBench keys) or ResNet-50 (torchvision keys)")
    g.add_argument("--non-ema", action="store_true", help="use the digits DDPM's non-EMA weights")
    g.add_argument("--purifiers", "--purifier", nargs="+", metavar="NAME",
                   help=f"purifiers to evaluate, from {', '.join(PURIFIERS)}; gaussian is the toy purifier "
                        "P(x) = x + N(0, sigma^2 I) (on digits before a classifier trained with that noise)")
    g.add_argument("--t-star", type=int, help="diffusion steps t* (default: the table's, e.g. 100 on CIFAR-10)")
    g.add_argument("--toy-sigma", type=float, help="sigma of the gaussian purifier (digits: from the manifest)")
    a = parser.add_argument_group("attack")
    a.add_argument("--n-samples", type=int, help="samples attacked (default: a CPU-sized number; --full: all)")
    a.add_argument("--eps", type=float, help="l_inf radius in [0,1] units (default: the dataset's preset)")
    a.add_argument("--steps", type=int, help="PGD steps per attack")
    a.add_argument("--step-size", type=float, help="PGD step size (default: eps / 4)")
    a.add_argument("--eot", type=int, help="EOT samples per gradient for BPDA-EOT (paper: 15)")
    a.add_argument("--eot-samples", type=int, help="samples attacked with BPDA-EOT (paper: 10%% of the data)")
    a.add_argument("--n-clean", type=int, help="samples for clean accuracy, >= --n-samples (ImageNet paper: 1000)")
    a.add_argument("--fresh-evals", type=int, default=3,
                   help="R: independent fresh-noise evaluations of every adversarial set (default 3)")
    a.add_argument("--noise-keys", choices=("sample", "batch"), default="sample",
                   help="sample: noise keyed per sample (results independent of batching); "
                        "batch: the paper's Seed(i, t) = 2(1000 i + t) (+1 forward) with i the batch index")
    a.add_argument("--batch-size", type=int, default=64, help="samples per chunk (a chunk is the unit of resume)")
    a.add_argument("--unet-batch", type=int,
                   help="run every UNet call in zero-padded micro-batches of exactly this many rows, so a "
                        "sample's purification is bit-identical whatever the chunk size (slower when chunks are small)")
    a.add_argument("--seed", type=int, default=0, help="run seed: every noise key derives from it")
    a.add_argument("--full", action="store_true", help="the paper's protocol instead of the CPU-sized default")
    o = parser.add_argument_group("run and output")
    o.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda[:k]")
    o.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    o.add_argument("--results", metavar="PATH", help="per-chunk results store, written atomically after every chunk")
    o.add_argument("--resume", action="store_true", help="continue the --results store of an interrupted run")
    o.add_argument("--json", metavar="PATH", help="write the table and all measurements as JSON")
    o.add_argument("--csv", metavar="PATH", help="write the table rows as CSV")
    o.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def check_common_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Reject out-of-range values with one clear message (argparse exits with status 2)."""
    if args.t_star is not None and not 0 <= args.t_star <= 1000:
        parser.error(f"--t-star must be in [0, 1000] (the diffusion's steps), got {args.t_star}")
    if args.toy_sigma is not None and args.toy_sigma <= 0:
        parser.error(f"--toy-sigma must be positive, got {args.toy_sigma}")
    if args.eps is not None and not 0 < args.eps <= 1:
        parser.error(f"--eps must be in (0, 1] (image units), got {args.eps}; e.g. 8/255 = {8 / 255:.4f}")
    for name in ("n_samples", "steps", "eot", "eot_samples", "n_clean", "fresh_evals", "batch_size", "threads",
                 "unet_batch"):
        value = getattr(args, name, None)
        if value is not None and value < (0 if name == "steps" else 1):
            parser.error(f"--{name.replace('_', '-')} must be positive, got {value}")
    if args.step_size is not None and args.step_size <= 0:
        parser.error(f"--step-size must be positive, got {args.step_size}")
    if args.resume and not args.results:
        parser.error("--resume needs --results PATH (the store to continue)")
    if args.dataset != "digits" and not (args.data and args.purifier_model and args.classifier):
        parser.error(f"--dataset {args.dataset} needs --data, --purifier-model and --classifier (local paths); "
                     "nothing is downloaded")


def resolve_device(name: str) -> torch.device:
    """'auto' picks CUDA when present; asking for CUDA without it is an error, not a silent fallback."""
    if name == "auto":
        if not torch.cuda.is_available():
            return torch.device("cpu")
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {name} asked for CUDA, but torch sees no CUDA device")
    return device
