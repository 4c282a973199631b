"""Audit a randomized defence for gradient masking: replay its randomness, measure, say what to report.

`python -m empirical.audit --model empirical.examples.defences:gaussian_noise` audits a model built by
FACTORY() (an nn.Module mapping [0, 1] images to logits that draws its randomness from torch's global
generators) on the embedded digits in a few minutes on a CPU. Paper Theorem 1 and Algorithm 1.
"""
from __future__ import annotations

import argparse
import hashlib
import importlib
import importlib.util
import re
import sys
import textwrap
import time
from pathlib import Path
from typing import Any, Callable

import torch

from empirical.auditing import AuditConfig, AuditReport, Preflight, audit_chunk, audit_data, preflight, summarise
from empirical.harness.config import parse_fraction
from empirical.harness.report import Accuracy, format_table, run_main
from empirical.harness.setup import resolve_device
from empirical.harness.runner import Cell, Chunk, plan_chunks, run_cells
from empirical.harness.sharding import init_world, shutdown
from empirical.harness.store import ResultStore, check_outputs
from empirical.replay import resolve_model
from empirical.results import atomic_write_json

DEFAULTS = AuditConfig.__dataclass_fields__
EXAMPLES = "empirical.examples.defences:gaussian_noise | naive_diffpure | random_resize_pad | dropout_at_test_time"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m empirical.audit", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    d = lambda name: DEFAULTS[name].default
    p.add_argument("--model", required=True, metavar="MODULE:FACTORY",
                   help=f"importable module (or path to a .py file) and a zero-argument factory, e.g. {EXAMPLES}")
    p.add_argument("--purifier-stage", metavar="ATTR", help="attribute of the model that purifies (with "
                   "--classifier-stage: attack with BPDA through it; default: the model's own gradient)")
    p.add_argument("--classifier-stage", metavar="ATTR",
                   help="attribute of the model that classifies the purified image")
    p.add_argument("--dataset", choices=("digits", "cifar10", "imagenet"), default="digits",
                   help="digits: scikit-learn's bundled digits at 16x16 (default); cifar10 / imagenet need --data")
    p.add_argument("--data", metavar="DIR", help="CIFAR-10 python-batches folder or ImageNet validation folder")
    p.add_argument("--n-samples", type=int, metavar="N", default=d("n_samples"),
                   help="samples audited (default %(default)s)")
    p.add_argument("--batch-size", type=int, metavar="B", default=d("batch_size"),
                   help="samples per chunk (default %(default)s)")
    p.add_argument("--eps", type=parse_fraction, metavar="EPS",
                   help="radius in [0, 1] units, e.g. 8/255 (default: digits 32/255, "
                   "cifar10 8/255, imagenet 4/255)")
    p.add_argument("--norm", choices=("linf", "l2"), default="linf", help="threat model (default linf)")
    p.add_argument("--steps", type=int, metavar="K", default=d("steps"),
                   help="PGD steps per attack (default %(default)s)")
    p.add_argument("--step-size", type=parse_fraction, metavar="SIZE", help="PGD step size (default eps / 4)")
    p.add_argument("--eot", type=int, metavar="K", default=d("eot"),
                   help="EOT draws per gradient (default %(default)s)")
    p.add_argument("--fresh-evals", type=int, metavar="R", default=d("fresh_evals"),
                   help="R: fresh-noise tests of every adversarial set (default %(default)s)")
    p.add_argument("--keys", choices=("batch", "sample"), default=d("keys"),
                   help="batch: one seed per chunk and call (the paper's rule, default); sample: one seed per "
                        "sample, samples run one by one (results independent of --batch-size, slower)")
    p.add_argument("--seed", type=int, metavar="S", default=0, help="run seed: every key derives from it (default 0)")
    p.add_argument("--predict-samples", type=int, metavar="N", default=d("predict_samples"),
                   help="replay-broken samples per chunk read through the toy model (0: skip; default %(default)s)")
    p.add_argument("--min-effect", type=float, metavar="POINTS", default=d("min_effect"),
                   help="drop in points that 'no-masking' must have 80%% power to detect (default %(default)s)")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda[:k] (default auto)")
    p.add_argument("--threads", type=int, metavar="T", help="torch CPU threads (default: torch's choice)")
    p.add_argument("--json", metavar="PATH", help="write the numbers, verdict, configuration and records as JSON")
    p.add_argument("--results", metavar="PATH", help="per-chunk results store, written atomically after every chunk")
    p.add_argument("--resume", action="store_true", help="continue the --results store of an interrupted run")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --results store")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def parse(argv: list[str] | None = None) -> tuple[argparse.ArgumentParser, argparse.Namespace, AuditConfig]:
    """Parse and validate every option (one parser.error, exit status 2) before anything is loaded."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.dataset != "digits" and not args.data:
        parser.error(f"--dataset {args.dataset} needs --data DIR (local files; nothing is downloaded)")
    if args.threads is not None and not 1 <= args.threads <= 256:
        parser.error(f"--threads must be in [1, 256], got {args.threads}")
    if args.resume and not args.results:
        parser.error("--resume needs --results PATH (the store to continue)")
    try:
        check_outputs(args)
        device = str(resolve_device(args.device))
        cfg = AuditConfig(model=args.model, dataset=args.dataset, data_dir=args.data, n_samples=args.n_samples,
                          batch_size=args.batch_size, eps=args.eps, norm=args.norm, steps=args.steps,
                          step_size=args.step_size, eot=args.eot, fresh_evals=args.fresh_evals, keys=args.keys,
                          seed=args.seed, purifier_stage=args.purifier_stage, classifier_stage=args.classifier_stage,
                          predict_samples=args.predict_samples, min_effect=args.min_effect, device=device)
    except (ValueError, RuntimeError) as err:
        parser.error(_cli_words(str(err)))
    return parser, args, cfg


def main(argv: list[str] | None = None) -> AuditReport | None:
    """Parse (one parser.error for a bad option), then run; every later failure is one line and exit
    status 2 through the harness's error path, never a traceback."""
    parser, args, cfg = parse(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    return run_main(lambda: _flags_named(lambda: run(args, cfg)), parser.prog)


OPTION_NAMES = ("purifier_stage", "classifier_stage", "n_samples", "batch_size", "fresh_evals", "min_effect",
                "predict_samples", "step_size", "eot", "steps", "seed")


def _cli_words(text: str) -> str:
    """The library's option names in a message as the command line spells them (n_samples -> --n-samples)."""
    for name in OPTION_NAMES:
        text = re.sub(rf"(?<![\w-]){name}(?![\w-])", "--" + name.replace("_", "-"), text)
    return text


def _flags_named(body: Callable[[], Any]) -> Any:
    try:
        return body()
    except ValueError as err:
        text = _cli_words(str(err))
        if text == str(err):
            raise
        try:
            renamed = type(err)(text)
        except Exception:
            renamed = ValueError(text)
        raise renamed from None


def run(args: argparse.Namespace, cfg: AuditConfig) -> AuditReport | None:
    """Data, model, preflight, the chunks (stored and resumable), the report and the JSON."""
    start = time.perf_counter()
    x, y, ids, classes, available = audit_data(cfg)
    model = load_model(args.model, cfg.device)
    pre = preflight(model, x, y, ids, cfg, classes)
    cfg = pre.config
    if not args.quiet:
        print(describe(cfg), file=sys.stderr, flush=True)
    records = run_chunks(model, x, y, ids, cfg, pre, quiet=args.quiet, results=args.results, resume=args.resume,
                         overwrite=args.overwrite)
    if records is None:          # a non-main rank under torchrun
        return None
    rep = summarise(records, cfg, pre.to_dict(), available)
    elapsed = time.perf_counter() - start
    print(render(rep) + f"\nWall time: {elapsed:.0f} s on {cfg.device}.")
    if args.json:
        atomic_write_json(args.json, {**rep.to_dict(), "elapsed_s": elapsed})
    return rep


def run_chunks(model: Any, x: torch.Tensor, y: torch.Tensor, ids: torch.Tensor, cfg: AuditConfig, pre: Preflight,
               quiet: bool = False, results: str | None = None, resume: bool = False,
               overwrite: bool = False) -> list[dict] | None:
    """Every chunk's record through the harness runner: an atomic per-chunk store (--results, --resume)
    and torchrun sharding; preflight's decisions hold for every chunk and are part of the store's
    identity. Returns the records in chunk order on the main rank, None on the others."""
    position = {int(i): k for k, i in enumerate(ids.tolist())}

    def measure(chunk: Chunk, tick) -> dict:
        rows = torch.tensor([position[i] for i in chunk.ids])
        record = audit_chunk(model, x[rows], y[rows], ids[rows], chunk.index, cfg, pre.randomized)
        tick()
        return record

    chunks = plan_chunks(ids.tolist(), len(ids), cfg.batch_size)
    world = init_world(torch.device(cfg.device))
    decided = {"randomized": pre.randomized,
               "input_dependent": bool((pre.input_dependence or {}).get("dependent"))}
    view = {"audit": cfg.to_dict(), "model_source": _source_identity(cfg.model), "preflight": decided}
    store = ResultStore.open(results, view, resume=resume, overwrite=overwrite, rank=world.rank,
                             world_size=world.size)
    out = run_cells([Cell("audit", "audit", measure)], chunks, store, world, quiet)
    shutdown(world)
    return out["audit"] if world.is_main else None


def _source_identity(spec: str) -> dict:
    """sha256 of the file that defines the model's factory, so a resume cannot mix two versions of it."""
    module_name = str(spec).rpartition(":")[0]
    path = Path(module_name)
    if not path.suffix == ".py":
        found = importlib.util.find_spec(module_name)
        path = Path(found.origin) if found is not None and found.origin else None
    if path is None or not path.is_file():
        return {"spec": spec}
    return {"spec": spec, "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}


def load_factory(spec: str) -> Callable[[], Any]:
    """The factory named by "MODULE:FACTORY" (an importable module, or a path to a .py file)."""
    module_name, sep, attr = str(spec).rpartition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"--model must be MODULE:FACTORY (e.g. empirical.examples.defences:gaussian_noise), "
                         f"got {spec!r}")
    try:
        if module_name.endswith(".py") or Path(module_name).is_file():
            path = Path(module_name)
            if not path.is_file():
                raise FileNotFoundError(f"no such file {path}")
            loader = importlib.util.spec_from_file_location(f"_audited_{path.stem}", path)
            module = importlib.util.module_from_spec(loader)
            loader.loader.exec_module(module)
        else:
            module = importlib.import_module(module_name)
    except Exception as exc:
        raise ValueError(f"cannot import {module_name!r} ({type(exc).__name__}: {exc}); give an importable module "
                         "(on PYTHONPATH) or the path of a .py file") from exc
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise ValueError(f"{module_name!r} has no callable {attr!r}; FACTORY must be a function returning the model")
    return factory



def load_model(spec: str, device: str) -> torch.nn.Module:
    """FACTORY() of "MODULE:FACTORY", which must be an nn.Module."""
    factory = load_factory(spec)
    try:
        model = factory()
    except Exception as exc:
        raise ValueError(f"{spec}() raised {type(exc).__name__}: {exc}") from exc
    if not isinstance(model, torch.nn.Module):
        raise ValueError(f"{spec}() returned {type(model).__name__}, expected a torch.nn.Module mapping "
                         "[B, C, H, W] images in [0, 1] to logits [B, classes]")
    return resolve_model(model, device)


def describe(cfg: AuditConfig) -> str:
    attack = (f"BPDA through {cfg.purifier_stage!r} into {cfg.classifier_stage!r}" if cfg.gradient == "bpda"
              else "PGD through the model's own gradient")
    return (f"Auditing {cfg.model} on {cfg.dataset}: {cfg.n_samples} samples in chunks of {cfg.batch_size}; "
            f"{attack}, l_{cfg.norm} eps={cfg.eps:.4f} (= {cfg.eps * 255:.1f}/255), {cfg.steps} steps of "
            f"{cfg.step_size:.4f}, EOT-{cfg.eot}, R={cfg.fresh_evals} fresh tests; keys per {cfg.keys}, seed "
            f"{cfg.seed}; device {cfg.device}.")


ROWS = (("clean", "no attack (clean)"), ("fresh", "PGD, fresh noise"), ("eot", "PGD-EOT-{k}, fresh noise"),
        ("replay", "PGD, replayed noise"))


def _cell(a) -> Accuracy | None:
    return None if a is None else Accuracy(a.mean, a.se, a.n, a.draws, a.spread)


def render(rep: AuditReport, width: int = 100) -> str:
    """The table, its legend, the checks made before the attacks, the toy reading, the verdict and the
    advice, within ``width`` columns."""
    c, r, k = rep.cells, rep.config.fresh_evals, rep.config.eot
    rows = [{"attack": label.format(k=k), "fresh": _cell(c[f"{key}_fresh"]), "replay": _cell(c[f"{key}_replay"]),
             "worst": _cell(c[f"{key}_worst"])} for key, label in ROWS]
    columns = [("attack", "Attack crafted under"), ("fresh", f"Test: fresh (R={r})"), ("replay", "Test: replay"),
               ("worst", f"Test: worst-of-{r}")]
    text = [f"Accuracy in %, mean±SE over {rep.n} samples; fresh tests add [spread of the R per-draw accuracies]. "
            f"Test: fresh = mean over R new draws; replay = the draw the replay attack was crafted under; "
            f"worst-of-{r} = correct under all R draws. 'PGD, replayed noise' tested fresh is Theorem 1's perfect "
            f"attack moved to new noise. Paired drop to replay: fresh {rep.drop.mean:+.1f}±{rep.drop.se:.1f}, EOT "
            f"{rep.drop_eot.mean:+.1f}±{rep.drop_eot.se:.1f} points.", checks_text(rep)]
    t, settings = rep.toy, rep.config.predict
    if t.get("measured_samples"):
        space = "purified images" if rep.config.gradient == "bpda" else "logits"
        text.append(f"Toy model on {t['measured_samples']} replay-broken samples ({space}; fit on "
                    f"{settings.fit_draws} draws, scored on {settings.eval_draws} held-out ones): sigma="
                    f"{t['mean_sigma_sub']:.3f}, n_eff={t['mean_n_eff']:.1f} of {t['n_ambient']}. Replay-crafted "
                    f"under fresh noise: predicted {t['predicted_accuracy']:.1f}±{t['predicted_accuracy_se']:.1f}%, "
                    f"on the held-out draws {t['eval_accuracy']:.1f}±{t['eval_accuracy_se']:.1f}%, measured on all "
                    f"samples {c['replay_fresh'].mean:.1f}%.")
    if t.get("notes"):
        text.append("Toy model: " + "; ".join(t["notes"]) + " (the attack results stand).")
    power = "" if rep.verdict in ("deterministic", "masking") or rep.power is None else (
        f" (power {rep.power:.2f} for a {rep.config.min_effect:g}-point drop; 80% power from "
        f"{rep.detectable:.1f} points)")
    text += [f"Verdict: {rep.verdict}{power}. {rep.recommendation}"]
    wrapped = ["\n".join(textwrap.wrap(paragraph, width, break_on_hyphens=False)) for paragraph in text]
    return "\n\n".join([format_table(rows, columns)] + wrapped)


def checks_text(rep: AuditReport) -> str:
    """One paragraph: what the preflight found (randomness, replay, input dependence, gradient)."""
    pre = rep.preflight
    rnd, rc, dep, gh = (pre.get(k) or {} for k in ("randomness", "replay_check", "input_dependence", "gradient_health"))
    if not rnd:
        return "Checks before the attacks: not recorded."
    text = (f"Checks before the attacks, on {rnd['samples']} samples: randomized: "
            f"{'yes' if rnd['randomized'] else 'no'} ({rnd['calls']} calls under new keys, per {rnd['keys']}: "
            f"{rnd['distinct_outputs']} distinct outputs, {rnd['varying_samples']} of {rnd['samples']} samples vary; "
            f"randomness with up to 16 equally likely outcomes per call is missed with probability <= "
            f"{rnd['miss_bound']:.1e}). Replay: {rc.get('calls')} calls under one key, identical.")
    if dep and not dep["draws"]:
        text += " Discrete draws (bernoulli, multinomial, ...): none."
    elif dep:
        moved = ", ".join(f"{100 * v:.2g}% after a {name} move" for name, v in dep["moved"].items())
        text += (f" Discrete draws under one replayed key ({dep['draws']} per call): changed {moved} (a new key: "
                 f"{100 * dep['fresh']:.2g}%).")
    full = gh.get("full", {})
    bad = sum(s != "healthy" for s in full.get("per_sample", []))
    text += f" Gradient through the whole defence: {full.get('status')}" + (
        f" on {bad} of {full['samples']} samples" if bad else "")
    if gh.get("stages_found"):
        text += (f"; attacking with BPDA through the stages found in the model, {gh['stages_found'][0]!r} -> "
                 f"{gh['stages_found'][1]!r}")
    if gh.get("bpda"):
        text += f"; BPDA gradient: {gh['bpda']['status']}"
    return text + "."


if __name__ == "__main__":
    main()
