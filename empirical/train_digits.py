"""Train the embedded digits default: a small DDPM (EMA + raw weights) and clean / noisy CNN classifiers.

python -m empirical.train_digits               # everything (classifiers, eps curve, DDPM, samples)
python -m empirical.train_digits --part classifiers
python -m empirical.train_digits --part ddpm --steps 6000
python -m empirical.train_digits --part eval        # held-out loss, purification cost of the saved weights
Writes safetensors weights, manifest.json (sha256, command, seed, timings, accuracies, toy sigma,
default eps and its PGD curve), samples.png and eps_curve.png under --out (default empirical/weights).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from empirical import attacks
from empirical.checkpoints import MANIFEST_NAME, WEIGHTS_DIR, sha256_file
from empirical.data import load_digits
from empirical.noise import FreshNoise
from empirical.purifiers import generate, make_purifier
from empirical.seeding import seeded_init
from empirical.models.digits import (DIGITS_SCHEDULER_CONFIG, DIGITS_UNET_CONFIG, DigitsCNN, make_digits_scheduler,
                                     make_digits_unet)

UNET_FILES = {"ema": "digits_unet_ema.safetensors", "raw": "digits_unet.safetensors"}
CLASSIFIER_FILES = {"clean": "digits_cnn_clean.safetensors", "noisy": "digits_cnn_noisy.safetensors"}


def _save_state(state: dict, path: Path) -> None:
    from safetensors.torch import save_file

    save_file({k: v.detach().contiguous().clone() for k, v in state.items()}, str(path))


def _lr_at(step: int, steps: int, lr: float, warmup: int, schedule: str = "constant") -> float:
    if step < warmup:
        return lr * (step + 1) / warmup
    if schedule == "constant":
        return lr
    return lr * 0.5 * (1.0 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))


def train_ddpm(steps: int, batch_size: int, lr: float, ema_decay: float, seed: int, ckpt_dir: Path,
               ckpt_every: int = 500, resume: bool = True, warmup: int = 200,
               lr_schedule: str = "constant") -> dict:
    """Epsilon-prediction DDPM training (Ho et al. 2020, Alg. 1) with EMA; resumable, seeded.
    A constant learning rate (as Ho et al.) keeps the raw weights noisier than their EMA (Table 3)."""
    if lr_schedule not in ("constant", "cosine"):
        raise ValueError(f"lr_schedule must be 'constant' or 'cosine', got {lr_schedule!r}")
    x0_all = load_digits("train").x * 2.0 - 1.0
    sched = make_digits_scheduler()
    model = seeded_init(make_digits_unet(), torch.Generator().manual_seed(seed))
    ema = make_digits_unet()
    ema.load_state_dict(model.state_dict())
    ema.requires_grad_(False)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    gen = torch.Generator().manual_seed(seed + 1)
    step, elapsed, losses = 0, 0.0, []
    ckpt = ckpt_dir / "ddpm_ckpt.pt"
    if resume and ckpt.exists():
        try:
            st = torch.load(ckpt, weights_only=True)     # tensors and plain values only, never code
        except Exception as exc:
            raise ValueError(f"{ckpt} is not a training checkpoint of tensors and plain values "
                             f"({type(exc).__name__}); delete it or pass --no-resume") from None
        if (st["steps"], st["seed"], st.get("lr_schedule")) != (steps, seed, lr_schedule):
            raise ValueError(f"{ckpt} is for steps={st['steps']} seed={st['seed']} "
                             f"lr_schedule={st.get('lr_schedule')}; pass --no-resume")
        model.load_state_dict(st["model"]), ema.load_state_dict(st["ema"]), opt.load_state_dict(st["opt"])
        gen.set_state(st["gen"])
        step, elapsed, losses = st["step"], st["elapsed"], st["losses"]
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    model.train()
    t0, window = time.time() - elapsed, []
    bar = tqdm(total=steps, initial=step, desc="ddpm", mininterval=5.0)
    while step < steps:
        for g in opt.param_groups:
            g["lr"] = _lr_at(step, steps, lr, warmup, lr_schedule)
        idx = torch.randint(0, x0_all.shape[0], (batch_size,), generator=gen)
        t = torch.randint(0, sched.config.num_train_timesteps, (batch_size,), generator=gen)
        noise = torch.randn(batch_size, *x0_all.shape[1:], generator=gen)
        loss = F.mse_loss(model(sched.add_noise(x0_all[idx], noise, t), t).sample, noise)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        d = min(ema_decay, (1.0 + step) / (10.0 + step))
        with torch.no_grad():
            for pe, pm in zip(ema.parameters(), model.parameters()):
                pe.lerp_(pm, 1.0 - d)
        step += 1
        window.append(loss.item())
        bar.update(1)
        if step % 100 == 0 or step == steps:
            losses.append([step, sum(window) / len(window)])
            window = []
            bar.set_postfix(loss=f"{losses[-1][1]:.4f}")
            print(f"step {step} loss {losses[-1][1]:.5f} elapsed {time.time() - t0:.0f}s", flush=True)
        if step % ckpt_every == 0 or step == steps:
            torch.save({"model": model.state_dict(), "ema": ema.state_dict(), "opt": opt.state_dict(),
                        "gen": gen.get_state(), "step": step, "steps": steps, "seed": seed, "lr_schedule": lr_schedule,
                        "elapsed": time.time() - t0, "losses": losses}, ckpt)
    bar.close()
    return {"model": model.eval(), "ema": ema.eval(), "train_seconds": time.time() - t0,
            "losses": losses, "final_loss": losses[-1][1] if losses else float("nan")}


def sample_ddpm(unet, n: int, generator: torch.Generator, progress: bool = True) -> torch.Tensor:
    """Full 1000-step ancestral DDPM reverse (Ho et al. 2020, Alg. 2) -> images in [0, 1]."""
    sched = make_digits_scheduler()
    with tqdm(total=-(-n // 256) * sched.config.num_train_timesteps, desc="sample", disable=not progress,
              mininterval=5.0, file=sys.stderr) as bar:
        return generate(unet, sched.alphas_cumprod, n, sched.config.num_train_timesteps, generator,
                        progress=lambda done, total: bar.update(1))


def sample_grid(unets: dict, path: Path, seed: int, n: int, sampler, classifier_dir: Path) -> dict:
    """Sample n images per weight set from one seed, save a side-by-side grid, score with the clean CNN."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    clf_path = classifier_dir / CLASSIFIER_FILES["clean"]
    clf = None
    if clf_path.exists():
        from safetensors.torch import load_file
        clf = DigitsCNN()
        clf.load_state_dict(load_file(str(clf_path)))
        clf.eval()
    stats, side = {}, int(math.ceil(math.sqrt(n)))
    fig, axes = plt.subplots(1, len(unets), figsize=(4.2 * len(unets), 4.6))
    for ax, (name, unet) in zip(axes, unets.items()):
        x = sampler(unet, n, torch.Generator().manual_seed(seed))
        canvas = torch.ones(side * 17, side * 17)
        for i in range(n):
            r, c = divmod(i, side)
            canvas[r * 17:r * 17 + 16, c * 17:c * 17 + 16] = x[i, 0]
        ax.imshow(canvas.numpy(), cmap="gray_r", vmin=0, vmax=1)
        ax.set_title(f"{name} weights, 1000-step DDPM, seed {seed}")
        ax.axis("off")
        if clf is not None:
            with torch.no_grad():
                prob = clf(x).softmax(-1)
            stats[name] = {"n": n, "seed": seed, "clean_cnn_confident_fraction": float((prob.max(-1).values > 0.9).float().mean()),
                           "class_counts": torch.bincount(prob.argmax(-1), minlength=10).tolist()}
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return stats


def update_manifest(out: Path, section: str, info: dict, files: list[str]) -> dict:
    """Merge one part's record into manifest.json and refresh the sha256 of its files."""
    path = out / MANIFEST_NAME
    manifest = json.loads(path.read_text()) if path.exists() else {}
    manifest[section] = info
    manifest.setdefault("files", {})
    for name in files:
        manifest["files"][name] = {"sha256": sha256_file(out / name), "bytes": (out / name).stat().st_size}
    manifest["files"] = dict(sorted(manifest["files"].items()))
    path.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return manifest


def run_ddpm_part(args, out: Path, command: str) -> dict:
    res = train_ddpm(args.steps, args.batch_size, args.lr, args.ema_decay, args.seed, Path(args.ckpt_dir),
                     ckpt_every=args.ckpt_every, resume=not args.no_resume, lr_schedule=args.lr_schedule)
    _save_state(res["ema"].state_dict(), out / UNET_FILES["ema"])
    _save_state(res["model"].state_dict(), out / UNET_FILES["raw"])
    sample_stats = sample_grid({k: res[v] for k, v in (("EMA", "ema"), ("non-EMA", "model"))},
                                  out / "samples.png", seed=args.seed + 2, n=args.n_samples,
                                  sampler=sample_ddpm, classifier_dir=out)
    info = {"command": command, "seed": args.seed, "steps": args.steps, "batch_size": args.batch_size,
            "lr": args.lr, "lr_schedule": f"linear warmup 200 steps, then {args.lr_schedule}", "ema_decay": args.ema_decay,
            "optimizer": "AdamW(weight_decay=0)", "threads": torch.get_num_threads(),
            "train_seconds": round(res["train_seconds"], 1), "final_loss": res["final_loss"],
            "loss_curve": res["losses"], "unet_config": DIGITS_UNET_CONFIG,
            "params": sum(p.numel() for p in res["ema"].parameters()),
            "scheduler_config": DIGITS_SCHEDULER_CONFIG, "data": "load_digits('train', 16) scaled to [-1, 1]",
            "files": UNET_FILES, "samples": sample_stats, "torch": torch.__version__}
    update_manifest(out, "ddpm", info, list(UNET_FILES.values()) + ["samples.png"])
    return info


@torch.no_grad()
def evaluate_ddpm(weights_dir: Path, seed: int, t_star: int = 100, n_purify: int = 64) -> dict:
    """Held-out epsilon MSE of the EMA and raw weights at a few t (same noise for both), and the cost
    and clean-CNN accuracy of a t*-step DiffPure-style purification (forward jump, DDPM reverse)."""
    from empirical.checkpoints import load_digits_classifier, load_digits_ddpm

    test = load_digits("test")
    x0 = test.x * 2.0 - 1.0
    clf = load_digits_classifier("clean", weights_dir)
    result: dict = {"seed": seed, "threads": torch.get_num_threads(), "t_star": t_star, "n_purify": n_purify}
    for name, ema in (("EMA", True), ("non-EMA", False)):
        unet, sched = load_digits_ddpm(ema=ema, weights_dir=weights_dir)
        gen = torch.Generator().manual_seed(seed)
        mse = {}
        for t in (10, 50, 100, 200, 500):
            noise = torch.randn(x0.shape, generator=gen)
            tt = torch.full((x0.shape[0],), t)
            mse[t] = F.mse_loss(unet(sched.add_noise(x0, noise, tt), tt).sample, noise).item()
        start = time.time()
        purified = make_purifier("diffpure", unet, sched, t_star=t_star)(test.x[:n_purify], FreshNoise(gen))
        seconds = time.time() - start
        acc = (clf(purified).argmax(-1) == test.y[:n_purify]).float().mean().item()
        result[name] = {"heldout_eps_mse": mse, "purify_seconds": round(seconds, 2),
                        "clean_cnn_accuracy_after_purify": acc}
    return result


def train_classifier(sigma: float, epochs: int, seed: int, batch_size: int = 64, lr: float = 1e-3) -> DigitsCNN:
    """Train the digits CNN; sigma > 0 adds the toy purifier's noise x + N(0, sigma^2 I) (paper eq. 4)."""
    data = load_digits("train")
    model = seeded_init(DigitsCNN(), torch.Generator().manual_seed(seed))
    gen = torch.Generator().manual_seed(seed + 1)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(len(data), generator=gen)
        for i in range(0, len(data), batch_size):
            idx = perm[i:i + batch_size]
            x = data.x[idx]
            if sigma > 0:
                x = x + sigma * torch.randn(x.shape, generator=gen)
            loss = F.cross_entropy(model(x), data.y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        sched.step()
    return model.eval()


@torch.no_grad()
def noisy_accuracy(model, x: torch.Tensor, y: torch.Tensor, sigma: float, draws: int, seed: int) -> tuple[float, float]:
    """Mean accuracy (and its standard error over images x draws) of model(x + sigma * noise)."""
    gen = torch.Generator().manual_seed(seed)
    correct = torch.stack([(model(x + sigma * torch.randn(x.shape, generator=gen)).argmax(-1) == y)
                           for _ in range(draws if sigma > 0 else 1)]).float()
    acc = correct.mean().item()
    return acc, math.sqrt(acc * (1 - acc) / correct.numel())


def pgd_linf_accuracy(model, x: torch.Tensor, y: torch.Tensor, eps: float, steps: int,
                      generator: torch.Generator) -> float:
    """Accuracy under l_inf PGD (random start, step 2.5 eps / steps); an image counts as robust only
    if no iterate (start included) is misclassified (attacks.pgd's any-iterate rule, no purifier)."""
    adv = attacks.pgd(model, make_purifier("none"), x, y, eps=eps, norm="linf", steps=steps,
                      step_size=2.5 * eps / steps, noise=None, random_start=True, generator=generator,
                      any_iterate=True)
    return (~adv.broken_any).float().mean().item()


def eps_curve(model, steps: int, eps_max: int, seed: int, path: Path) -> dict:
    """PGD accuracy vs eps = k/255 on the test split; default eps = smallest k/255 with accuracy < 10%."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    test = load_digits("test")
    ks, accs = [], []
    for k in tqdm(range(2, eps_max + 1, 2), desc="eps curve"):
        ks.append(k)
        accs.append(pgd_linf_accuracy(model, test.x, test.y, k / 255, steps, torch.Generator().manual_seed(seed + k)))
        if accs[-1] == 0.0:      # the grid stops at the first eps where no test image survives
            break
    below = [k for k, a in zip(ks, accs) if a < 0.10]
    if not below:
        raise RuntimeError(f"PGD accuracy never fell below 10% up to eps {eps_max}/255; raise --eps-max")
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot(ks, [100 * a for a in accs], "o-")
    ax.axhline(10, color="gray", ls=":")
    ax.axvline(below[0], color="C3", ls="--", label=f"default eps = {below[0]}/255")
    ax.set_xlabel("eps (x/255, l_inf)")
    ax.set_ylabel("accuracy under PGD-%d (%%)" % steps)
    ax.set_title(f"clean digits CNN, no purifier, {len(test)} test images")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return {"default_eps": below[0] / 255, "default_eps_k255": below[0], "pgd_steps": steps,
            "step_size": "2.5 eps / steps", "random_start": True, "n": len(test),
            "curve": [{"eps_k255": k, "accuracy": a} for k, a in zip(ks, accs)]}


def run_classifier_part(args, out: Path, command: str) -> dict:
    """Clean CNN, noisy CNNs on a sigma grid (toy sigma = largest with >90% noisy accuracy), eps curve."""
    t0 = time.time()
    test = load_digits("test")
    clean = train_classifier(0.0, args.clf_epochs, args.seed)
    clean_acc, clean_se = noisy_accuracy(clean, test.x, test.y, 0.0, 1, args.seed)
    grid = []
    best = None
    for sigma in tqdm([float(s) for s in args.sigmas.split(",")], desc="noisy CNN"):
        model = train_classifier(sigma, args.clf_epochs, args.seed)
        acc, se = noisy_accuracy(model, test.x, test.y, sigma, 10, args.seed + 7)
        clean_of_noisy = noisy_accuracy(model, test.x, test.y, 0.0, 1, args.seed)[0]
        grid.append({"sigma": sigma, "noisy_accuracy": acc, "stderr": se, "clean_accuracy": clean_of_noisy})
        if acc > 0.90 and (best is None or sigma > best[0]):
            best = (sigma, model, acc, se)
    if best is None:
        raise RuntimeError(f"no sigma in {args.sigmas} keeps noisy accuracy above 90%")
    _save_state(clean.state_dict(), out / CLASSIFIER_FILES["clean"])
    _save_state(best[1].state_dict(), out / CLASSIFIER_FILES["noisy"])
    curve = eps_curve(clean, args.pgd_steps, args.eps_max, args.seed, out / "eps_curve.png")
    info = {"command": command, "seed": args.seed, "epochs": args.clf_epochs, "files": CLASSIFIER_FILES,
            "architecture": "DigitsCNN(width=32): conv32-conv32-pool-conv64-pool-fc128-fc10",
            "clean_test_accuracy": clean_acc, "clean_test_stderr": clean_se,
            "toy_sigma": best[0], "toy_noise_clipped": False,
            "noisy_test_accuracy": best[2], "noisy_test_stderr": best[3], "noisy_eval_draws": 10,
            "sigma_grid": grid, "pgd": curve, "default_eps": curve["default_eps"],
            "train_seconds": round(time.time() - t0, 1), "threads": torch.get_num_threads()}
    update_manifest(out, "classifiers", info, list(CLASSIFIER_FILES.values()) + ["eps_curve.png"])
    return info


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--part", choices=["all", "classifiers", "ddpm", "eval"], default="all",
                   help="what to run: classifiers (clean + noisy CNN, toy sigma, default eps), ddpm, "
                        "eval (held-out loss and t*=100 purification cost of the saved DDPM), or all three")
    p.add_argument("--out", default=str(WEIGHTS_DIR), help="folder for weights, manifest.json and PNGs")
    p.add_argument("--seed", type=int, default=0, help="seed of every generator used (init, batches, noise)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads (1 is fastest on a shared 2-core machine: 2 threads thrash under load)")
    p.add_argument("--steps", type=int, default=6000, help="DDPM optimisation steps")
    p.add_argument("--batch-size", type=int, default=64, help="DDPM batch size")
    p.add_argument("--lr", type=float, default=1e-3, help="DDPM peak learning rate (AdamW)")
    p.add_argument("--lr-schedule", choices=["constant", "cosine"], default="constant",
                   help="after a 200-step warmup: constant (Ho et al. 2020; raw weights stay noisier than EMA) "
                        "or cosine decay to 0 (EMA and raw weights end up nearly equal)")
    p.add_argument("--ema-decay", type=float, default=0.999, help="EMA decay of the DDPM weights")
    p.add_argument("--ckpt-dir", default="runs/digits_ddpm", help="folder of the resumable DDPM checkpoint")
    p.add_argument("--ckpt-every", type=int, default=500, help="DDPM checkpoint period in steps")
    p.add_argument("--no-resume", action="store_true", help="ignore an existing DDPM checkpoint")
    p.add_argument("--n-samples", type=int, default=64, help="samples per weight set in samples.png")
    p.add_argument("--clf-epochs", type=int, default=25, help="classifier training epochs")
    p.add_argument("--sigmas", default="0.2,0.3,0.35,0.4,0.45,0.5",
                   help="toy-noise sigma grid for the noisy classifier (largest with >90%% noisy accuracy wins)")
    p.add_argument("--pgd-steps", type=int, default=30, help="PGD steps of the eps curve")
    p.add_argument("--eps-max", type=int, default=64, help="eps grid: k/255 for k = 2, 4, ..., eps-max (stops at the first eps with 0%% accuracy)")
    p.add_argument("--json", default=None, help="also write the resulting manifest to this path")
    return p


def main(argv: list[str] | None = None) -> dict:
    args = build_parser().parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    command = "python -m empirical.train_digits " + " ".join(sys.argv[1:] if argv is None else argv)
    if args.part in ("all", "classifiers"):
        run_classifier_part(args, out, command)
    if args.part in ("all", "ddpm"):
        run_ddpm_part(args, out, command)
    if args.part in ("all", "eval"):
        info = evaluate_ddpm(out, args.seed)
        update_manifest(out, "ddpm_eval", {"command": command, **info}, [])
    manifest = json.loads((out / MANIFEST_NAME).read_text())
    if args.json:
        Path(args.json).write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


if __name__ == "__main__":
    main()
