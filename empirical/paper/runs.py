"""Reading the run JSONs of `paper_runs/`: both config layouts, per-sample outcomes, setups and commands.

Two layouts of a run JSON exist. The older one keeps `config.protocol`, `config.setup` and `config.t_star`
(plus table options such as `config.s_stars`) inside `config`; the current entry points write a typed
`config` (`config.data`, `config.sizes`, `config.run`, `config.purifier.t_star`, table options in
`config.extra`) and, beside it, top-level `protocol` and `resolved` (the loaded setup; keyed by prefix for
sweeps and Table 3). Records (`records[key] = [chunk, ...]`) have the same layout in both; noise
replicates of a record are stored under `f"{key}#r{k}"` (k >= 1; replicate 0 is the key itself).
"""
from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np

from empirical.harness import records as rec



def is_typed(d: dict) -> bool:
    """True for the current layout (typed config with `sizes`), False for the older one."""
    return isinstance(d.get("config"), dict) and "sizes" in d["config"]


def option_of(d: dict, name: str, default: Any = None) -> Any:
    """A table's own option (s_stars, radius, m, ...): config.extra[name] or the old config[name]."""
    c = d.get("config", {})
    return c.get("extra", {}).get(name, default) if is_typed(d) else c.get(name, default)


def dataset_of(d: dict) -> str:
    c = d.get("config", {})
    return c.get("data", {}).get("dataset", "?") if is_typed(d) else c.get("dataset", "?")


def t_star_of(d: dict) -> int | None:
    """The run's t* (config.purifier.t_star or the old config.t_star; a figure's option otherwise)."""
    c = d.get("config", {})
    t = c.get("purifier", {}).get("t_star") if is_typed(d) else c.get("t_star")
    return option_of(d, "t_star") if t is None else t


def respacing_of(d: dict) -> str:
    """The subsequencing coefficients. Older outputs predate the option and always used "respaced"."""
    return d["config"].get("purifier", {}).get("respacing", "respaced") if is_typed(d) else "respaced"


def _resolved(d: dict) -> dict:
    r = d.get("resolved") or {}
    if r and "n_samples" not in r:            # sweeps and Table 3: one resolved setup per prefix
        r = next(iter(r.values()))
    return r


def setup_of(d: dict) -> dict:
    """n_samples, n_clean, eot_ids of the run: the old config.setup, else top-level `resolved`."""
    if is_typed(d):
        r, sizes = _resolved(d), d["config"]["sizes"]
        return {"n_samples": r.get("n_samples", sizes.get("n_samples")),
                "n_clean": r.get("n_clean", sizes.get("n_clean")), "eot_ids": list(r.get("eot_ids", []))}
    s = d["config"]["setup"]
    return {"n_samples": s["n_samples"], "n_clean": s["n_clean"], "eot_ids": list(s.get("eot_ids", []))}


def protocol_of(d: dict) -> dict:
    """steps, eps, fresh_evals, noise_keys, ...: top-level `protocol`, the old config.protocol, or the
    resolved budget with config.run."""
    if "protocol" in d:
        return d["protocol"]
    c = d.get("config", {})
    if not is_typed(d):
        return c.get("protocol", {})
    budget = _resolved(d).get("budget", {})
    return {**{k: v for k, v in c["sizes"].items() if v is not None}, **budget,
            "fresh_evals": c["run"]["fresh_evals"], "noise_keys": c["run"]["noise_keys"]}


def threat_of(d: dict) -> str:
    """The threat model as the JSON records it: norm, eps and PGD steps."""
    p = protocol_of(d)
    eps, steps = p.get("eps", option_of(d, "eps", d.get("eps"))), p.get("steps")
    norm = p.get("norm") or (d.get("config", {}).get("sizes", {}) or {}).get("norm") or "linf"
    if eps is None:
        return f"{norm} threat"
    text = f"l_inf eps {eps * 255:.0f}/255" if norm == "linf" else f"{norm} eps {eps:g}"
    return text + (f", {steps} PGD steps" if steps is not None else "")


def setup_text(d: dict, model: str) -> str:
    """Dataset, model and threat model of one run, e.g. for a verdict's `setup` field."""
    data = d and dataset_of(d)
    where = "digits 16x16 (the project's small DDPM and CNN classifier)" if data == "digits" else data
    return f"{where}; {model}; {threat_of(d)}"


def estimand_of(d: dict, purifier: str, method: str) -> str:
    """The rule of a Table 1 run's no-fix cells: the rows' own label if they carry one, else the project's
    single-draw accuracy averaged over R fresh draws."""
    for r in d.get("rows", []):
        if (r.get("purifier"), r.get("method"), r.get("fix")) == (purifier, method, "no"):
            rule = r.get("rule") or r.get("estimand") or (r.get("bpda") or {}).get("rule")
            if rule:
                return str(rule)
    return f"single-draw accuracy, mean of R={protocol_of(d).get('fresh_evals', '?')} fresh draws"


# ---- per-sample records ------------------------------------------------------------------------------


def base_keys(records: dict) -> list[str]:
    """The record keys without their noise replicates, in stored order."""
    return [k for k in records if rec.split_replicate(k)[1] == 0]


def replicates(records: dict, key: str) -> list[str]:
    """key and its noise replicates key#r1, key#r2, ... in replicate order."""
    reps = sorted((rec.split_replicate(k)[1], k) for k in records if k != key and rec.split_replicate(k)[0] == key)
    return [key] + [k for _, k in reps]


def chunk_outcomes(chunks: list[dict], cell: str) -> dict[int, float]:
    """{sample id: outcome averaged over its draws} for one cell (eot_* cells cover the chunk's eot_ids)."""
    out: dict[int, float] = {}
    for chunk in chunks:
        values = rec.outcomes([chunk], cell)
        if values is None:
            continue
        a = np.asarray(values, dtype=float)
        a = a.mean(axis=0) if a.ndim == 2 else a
        ids = chunk["eot_ids"] if cell.startswith("eot_") else chunk["ids"]
        if len(ids) != a.size:
            raise ValueError(f"cell {cell!r} holds {a.size} samples but its chunk lists {len(ids)} ids")
        out.update(zip((int(i) for i in ids), a.tolist()))
    return out


def per_sample(records: dict, key: str, cell: str) -> dict[int, float]:
    """{sample id: outcome} of one cell, pooled over the key's noise replicates: each replicate gives the
    sample's mean over its draws, and the sample's outcome is the mean over its replicates (the unit stays
    the sample)."""
    pooled: dict[int, list[float]] = defaultdict(list)
    for k in replicates(records, key):
        for i, v in chunk_outcomes(records[k], cell).items():
            pooled[i].append(v)
    return {i: float(np.mean(v)) for i, v in pooled.items()}


def common(a: dict[int, float], b: dict[int, float]) -> tuple[list[float], list[float]]:
    """The two cells' outcomes on the samples both measured, in sample order."""
    ids = sorted(set(a) & set(b))
    return [a[i] for i in ids], [b[i] for i in ids]


def record_key(records: dict, method: str, prefix: str = "") -> str:
    """The record of `method` ("DiffPure", ...) among keys "prefix + label|method|t*=..."."""
    keys = [k for k in base_keys(records) if k.startswith(prefix) and k[len(prefix):].split("|")[1:2] == [method]]
    if len(keys) != 1:
        raise ValueError(f"expected one record for {prefix}{method}, found {keys}")
    return keys[0]


def sweep_cells(d: dict, tag: str) -> dict:
    """{(value, method, "clean" | "bpda"): per-sample outcomes} from records keyed "t50:..." or "s5:..."."""
    out = {}
    for key in base_keys(d["records"]):
        prefix, rest = key.split(":", 1)
        value, method = int(prefix[len(tag):]), rest.split("|")[1]
        for c in ("clean", "bpda"):
            out[value, method, c] = per_sample(d["records"], key, f"{c}_replay")
    return out


def pct(values: dict) -> str:
    """Accuracy in percent of per-sample outcomes ("-" when none)."""
    return f"{100 * sum(values.values()) / len(values):.1f}" if values else "-"


def at_position(trajectory: dict, field: str, position: int) -> tuple[float, float]:
    """(mean, SE) of a stored trajectory field ("l2", "cosine", "inner") at the nearest stored step."""
    pos = trajectory["position"]
    i = min(range(len(pos)), key=lambda j: abs(pos[j] - position))
    return trajectory[f"{field}_mean"][i], trajectory[f"{field}_se"][i]


def command(module: str, name: str, d: dict) -> str:
    """The command that wrote paper_runs/<name>.json, naming its non-default options."""
    cmd = f"python -m {module}"
    c = d.get("config") or {}
    if name.endswith("_large"):
        s, p = setup_of(d), protocol_of(d)
        cmd += f" --n-samples {s['n_samples']} --n-clean {s['n_clean']} --eot-samples {len(s['eot_ids'])}"
        cmd += f" --steps {p.get('steps')}"
    if respacing_of(d) != "respaced":
        cmd += f" --respacing {respacing_of(d)}"
    purifier, extra = c.get("purifier") or {}, c.get("extra") or {}
    if purifier.get("x0_clip", "auto") != "auto":
        cmd += f" --x0-clip {purifier['x0_clip']}"
    if extra.get("radii"):
        cmd += " --purifiers " + " ".join(purifier.get("names") or ()) + " --radii " + " ".join(
            f"{r:g}" for r in extra["radii"])
    if extra.get("estimand"):
        sizes = c.get("sizes") or {}
        cmd += " --purifiers " + " ".join(purifier.get("names") or ())
        cmd += "".join(f" --{k.replace('_', '-')} {sizes[k]}" for k in ("n_samples", "eot_samples") if sizes.get(k))
        cmd += f" --estimand {extra['estimand']}" + ("" if c.get("run", {}).get("predict", True) else " --no-predict")
    return f"{cmd} --json paper_runs/{name}.json"
