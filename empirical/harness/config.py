"""The typed run configuration: built from argparse in one place, validated in one place, digested for resume.

A `Config` is frozen and whole: every option that can change a number lives in `Config.digest_view()`;
output paths, progress and the thread count (`OutputConfig`) do not. Entry points declare a `TableSpec`
(their CPU-sized defaults, which option groups they offer, their own extra options) and call
`parse(spec, argv)`, the only reader of the argparse Namespace on a table's path: inside it the results store
checks the output options (`store.use_default_store` returns the cache store's options, `store.check_outputs`
reads them) before `from_namespace` builds the Config; past `parse` the entry points see only the Config.
`empirical.audit` keeps its own parser.
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Callable

from empirical.harness.options import (  # noqa: F401  (re-exported: entry points read them as cfg.*)
    DATASET_DEFAULTS, DATASETS, MAX_AUTO_WORKERS, MAX_BATCH, MAX_EOT, MAX_FRESH_EVALS, MAX_REPLICATES, MAX_SEED,
    MAX_STEPS, MAX_THREADS, MAX_TOY_SIGMA, MAX_UNET_BATCH, PURIFIERS, T_STAR_DEFAULTS, TableSpec, _check_ranges,
    build_parser, parse_fraction)
from empirical.protocol import Protocol


@dataclass(frozen=True)
class DataConfig:
    """Which data and weights: the digits default, or local files / hub ids for CIFAR-10 and ImageNet."""

    dataset: str = "digits"
    data: str | None = None
    purifier_model: str | None = None
    classifier: str | None = None
    non_ema: bool = False


@dataclass(frozen=True)
class PurifierConfig:
    """The purifiers of the table and their settings (paper eqs. 1-3; Sec. 5.3 for s*)."""

    names: tuple[str, ...] = ("diffpure", "gaussian")
    t_star: int | None = None
    s_star: int | None = None
    toy_sigma: float | None = None
    unet_batch: int | None = None
    x0_clip: str = "auto"
    variance: str = "auto"
    respacing: str = "respaced"
    mixed_precision: bool = False


@dataclass(frozen=True)
class Sizes:
    """How many samples: attacked (n_samples), clean-only up to n_clean, BPDA-EOT on eot_samples.

    None means "the table's default" (all of the test set under --full)."""

    n_samples: int | None = None
    n_clean: int | None = None
    eot_samples: int | None = None
    steps: int | None = None
    eot: int | None = None
    eps: float | None = None
    step_size: float | None = None
    full: bool = False
    norm: str = "linf"


@dataclass(frozen=True)
class RunConfig:
    """Seed, noise keys, chunking and device: they change numbers, so they are digested."""

    seed: int = 0
    noise_keys: str = "sample"
    fresh_evals: int = 3
    batch_size: int = 64
    device: str = "auto"
    predict: bool = True
    replicates: int = 1         # noise replicates per sample (independent noise keys; the sample stays the unit)


@dataclass(frozen=True)
class OutputConfig:
    """Where results go and how the run looks: never part of the digest."""

    results: str | None = None
    resume: bool = False
    overwrite: bool = False
    json: str | None = None
    csv: str | None = None
    png: str | None = None
    quiet: bool = False
    threads: int | None = None
    workers: int | None = None       # local single-thread worker processes (None: automatic)
    format: str = "compact"
    allow_download: bool = False
    allow_code_change: bool = False
    default_store: bool = False      # results is the cache's store for this configuration and code


@dataclass(frozen=True)
class Config:
    """One run of one table: what the results store compares on --resume and every JSON output holds."""

    table: str
    data: DataConfig = field(default_factory=DataConfig)
    purifier: PurifierConfig = field(default_factory=PurifierConfig)
    sizes: Sizes = field(default_factory=Sizes)
    run: RunConfig = field(default_factory=RunConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    extra: tuple[tuple[str, Any], ...] = ()

    def option(self, name: str, default: Any = None) -> Any:
        """A table's own option (e.g. t_stars, k, radius)."""
        return dict(self.extra).get(name, default)

    def to_dict(self) -> dict:
        out = dataclasses.asdict(self)
        out["extra"] = dict(self.extra)
        return out

    def digest_view(self) -> dict:
        """Everything that changes a number: the configuration without its output options."""
        out = self.to_dict()
        out.pop("output")
        return out


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def digest(view: dict) -> str:
    """A short stable hash of a digest view (canonical JSON)."""
    return hashlib.sha256(canonical_json(view).encode()).hexdigest()[:16]


# ---- parsing ---------------------------------------------------------------------------------------


def parse(spec: TableSpec, argv: list[str] | None = None,
          extra: Callable[[argparse.ArgumentParser], None] | None = None,
          check: Callable[[argparse.ArgumentParser, argparse.Namespace], dict] | None = None) -> Config:
    """Parse and validate the command line of one entry point into a frozen Config.

    `extra(group)` adds the entry point's own options to a group of their own; `check(parser, args)` validates them and returns
    them as a dict (they join the digest). CPU defaults fill options left unset unless --full."""
    parser = build_parser(spec)
    if extra is not None:
        extra(parser.add_argument_group(f"options of {spec.prog.split()[-1]}"))
    parsed = vars(parser.parse_args(argv))
    if not parsed["full"]:
        parsed.update({k: v for k, v in spec.cpu_defaults.items() if parsed.get(k) is None})
    args = argparse.Namespace(**parsed)
    _check_ranges(parser, args)
    own = check(parser, args) if check is not None else {}
    from empirical.harness import store
    try:
        chosen = store.use_default_store(args, spec.table, from_namespace(spec.table, args, own).digest_view(),
                                         spec.prog) if spec.attacks and not getattr(args, "dry_run", False) else None
        default = chosen is not None
        args = argparse.Namespace(**{**vars(args), **(chosen or {})})
        store.check_outputs(args)
    except ValueError as err:
        parser.error(str(err))
    config = from_namespace(spec.table, args, own)
    return dataclasses.replace(config, output=dataclasses.replace(
        config.output, allow_code_change=bool(getattr(args, "allow_code_change", False)), default_store=default))


def from_namespace(table: str, args: argparse.Namespace, own: dict | None = None) -> Config:
    """The one place a Namespace becomes typed values."""
    g = lambda name, default=None: getattr(args, name, default)
    return Config(
        table=table,
        data=DataConfig(args.dataset, g("data"), g("purifier_model"), g("classifier"), bool(g("non_ema", False))),
        purifier=PurifierConfig(tuple(g("purifiers") or ()), g("t_star"), g("s_star"), g("toy_sigma"), g("unet_batch"),
                                g("x0_clip", "auto"), g("variance", "auto"), g("respacing", "respaced"),
                                bool(g("mixed_precision", False))),
        sizes=Sizes(g("n_samples"), g("n_clean"), g("eot_samples"), g("steps"), g("eot"), g("eps"), g("step_size"),
                    bool(g("full", False)), g("norm", "linf")),
        run=RunConfig(args.seed, g("noise_keys", "sample"), g("fresh_evals", 3), g("batch_size", 64), args.device,
                      not g("no_predict", False), g("replicates") or 1),
        output=OutputConfig(g("results"), bool(g("resume", False)), bool(g("overwrite", False)), g("json"), g("csv"),
                            g("png"), bool(g("quiet", False)), g("threads"), g("workers"),
                            g("format", "compact"), bool(g("allow_download", False))),
        extra=tuple(sorted((own or {}).items())))


def replace(config: Config, **changes: Any) -> Config:
    """A copy with nested fields changed, e.g. replace(c, purifier={"t_star": 50})."""
    out = {}
    for key, value in changes.items():
        current = getattr(config, key)
        if isinstance(value, dict) and dataclasses.is_dataclass(current):
            out[key] = dataclasses.replace(current, **value)
        else:
            out[key] = value
    return dataclasses.replace(config, **out)


def make_protocol(config: Config, budget: dict, fresh_cells: bool = True) -> Protocol:
    """The library's attack protocol from a resolved budget (setup.resolve_budget) and the run options."""
    return Protocol(eps=budget["eps"], steps=budget["steps"], step_size=budget["step_size"], eot=budget["eot"],
                    norm=config.sizes.norm, fresh_evals=config.run.fresh_evals, seed=config.run.seed, noise_keys=config.run.noise_keys,
                    fresh_cells=fresh_cells)
