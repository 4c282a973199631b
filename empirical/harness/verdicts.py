"""Reading the run JSONs (both config layouts) and turning paired differences into paper_checks statuses.

Two layouts of a run JSON exist. The older one keeps `config.protocol`, `config.setup` and `config.t_star`
(plus table options such as `config.s_stars`) inside `config`; the current entry points write a typed
`config` (`config.data`, `config.sizes`, `config.run`, `config.purifier.t_star`, table options in
`config.extra`) and, beside it, top-level `protocol` and `resolved` (the loaded setup; keyed by prefix for
sweeps and Table 3). Every field paper_checks needs is read through the accessors below, in one place.
Records (`records[cell] = [chunk, ...]`) have the same layout in both.

Statuses are the three verdicts of `empirical.stats` (reproduced / contradicted / inconclusive), each with
a short note: for an inconclusive row how many samples would resolve the paper's own effect size at the
measured per-sample spread (`stats.samples_to_resolve`), for a contradicted row its cause.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from empirical import stats
from empirical.harness import records as rec

# ---- the two config layouts --------------------------------------------------------------------------


def is_typed(d: dict) -> bool:
    """True for the current layout (typed config with `sizes`), False for the older one."""
    return isinstance(d.get("config"), dict) and "sizes" in d["config"]


def option_of(d: dict, name: str, default: Any = None) -> Any:
    """A table's own option (s_stars, t_stars, radius, m, ...): config.extra[name] or the old config[name]."""
    c = d.get("config", {})
    return c.get("extra", {}).get(name, default) if is_typed(d) else c.get(name, default)


def dataset_of(d: dict) -> str:
    """config.data.dataset or the old config.dataset."""
    c = d.get("config", {})
    return c.get("data", {}).get("dataset", "?") if is_typed(d) else c.get("dataset", "?")


def t_star_of(d: dict) -> int | None:
    """The run's t* (the old config.t_star or config.purifier.t_star; a figure's option otherwise)."""
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
    """steps, eps, fresh_evals, noise_keys, ...: top-level `protocol`, the old config.protocol, or (sweeps
    and Table 3 in the typed layout) the resolved budget with config.run."""
    if "protocol" in d:
        return d["protocol"]
    c = d.get("config", {})
    if not is_typed(d):
        return c.get("protocol", {})
    budget = _resolved(d).get("budget", {})
    return {**{k: v for k, v in c["sizes"].items() if v is not None}, **budget,
            "fresh_evals": c["run"]["fresh_evals"], "noise_keys": c["run"]["noise_keys"]}


def estimand_of(d: dict, purifier: str, method: str) -> str:
    """The rule of a Table 1 run's no-fix cells: the rows' own label if they carry one, else the project's
    single-draw accuracy averaged over R fresh draws (R from the protocol)."""
    for r in d.get("rows", []):
        if (r.get("purifier"), r.get("method"), r.get("fix")) == (purifier, method, "no"):
            rule = r.get("rule") or r.get("estimand") or (r.get("bpda") or {}).get("rule")
            if rule:
                return f"rule: {rule}"
    return f"single-draw accuracy, mean of R={protocol_of(d).get('fresh_evals', '?')} fresh draws"


def setting_of(d: dict) -> str:
    """How the run differs from the paper's CIFAR-10 setting (8/255), from what the JSON records."""
    p, data = protocol_of(d), dataset_of(d)
    eps, steps = p.get("eps", option_of(d, "eps", d.get("eps"))), p.get("steps")
    parts = ["digits at 16x16 with the project's small DDPM, not CIFAR-10" if data == "digits" else data]
    if eps is not None:
        parts.append(f"l_inf eps {eps * 255:.0f}/255" + (f" with {steps} PGD steps" if steps is not None else ""))
    return "; ".join(parts)


# ---- rows and claimed comparisons -------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """One line of the generated table; `key` names the claim across runs (e.g. both respacings)."""

    claim: str
    command: str
    measured: str
    status: str
    key: str = ""

    @property
    def verdict(self) -> str:
        return self.status.split(" ")[0]

    def markdown(self) -> str:
        esc = lambda s: s.replace("|", "\\|")
        return f"| {esc(self.claim)} | `{self.command}` | {esc(self.measured)} | {esc(self.status)} |"


@dataclass(frozen=True)
class Step:
    """One claimed comparison: its paired difference, the claimed sign and the paper's own difference."""

    label: str
    diff: stats.Difference | None
    sign: int
    paper: float


# ---- per-sample records ------------------------------------------------------------------------------


def per_sample(chunks: list[dict], cell: str) -> dict[int, float]:
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


def pair(a: dict[int, float], b: dict[int, float]) -> stats.Difference | None:
    """Paired a - b (percent points) over the samples both cells measured; None if they share none."""
    ids = sorted(set(a) & set(b))
    if not ids:
        return None
    return stats.paired_difference([a[i] for i in ids], [b[i] for i in ids])


def raw_difference(a, b) -> stats.Difference:
    """Paired difference of per-sample real values in their own units (not percent points)."""
    d = stats.paired_difference(a, b)
    return stats.Difference(mean=d.mean / 100, se=d.se / 100, n=d.n, sd=d.sd / 100)


def record_key(records: dict, method: str, prefix: str = "") -> str:
    """The record of `method` ("DiffPure", ...) among keys "prefix + label|method|t*=..."."""
    keys = [k for k in records if k.startswith(prefix) and k[len(prefix):].split("|")[1:2] == [method]]
    if len(keys) != 1:
        raise ValueError(f"expected one record for {prefix}{method}, found {keys}")
    return keys[0]


def paper_at(table: dict, metric: str, method: str, grid: tuple, value: int) -> float:
    """The paper's value of `metric` for `method` at t* or s* = value (nan off the paper's grid)."""
    return dict(zip(grid, table[metric][method])).get(value, float("nan"))


def pct(values: dict) -> str:
    """Accuracy in percent of per-sample outcomes ("-" when none)."""
    return f"{100 * sum(values.values()) / len(values):.1f}" if values else "-"


def sweep_cells(d: dict, tag: str) -> dict:
    """{(value, method, "clean" | "bpda"): per-sample outcomes} from records keyed "t50:..." or "s5:..."."""
    out = {}
    for key, chunks in d["records"].items():
        prefix, rest = key.split(":", 1)
        value, method = int(prefix[len(tag):]), rest.split("|")[1]
        for c in ("clean", "bpda"):
            out[value, method, c] = per_sample(chunks, f"{c}_replay")
    return out


def step(cells: dict, a: tuple, b: tuple, paper: float, label: str, sign: int = +1) -> Step:
    """a - b over the same samples, or not measured when either cell is missing from the run."""
    diff = pair(cells[a], cells[b]) if a in cells and b in cells else None
    return Step(label, diff, sign, paper)


def series(cells: dict, method: str, metric: str) -> str:
    """"value:accuracy" for each t* or s* of a sweep."""
    vals = sorted(k[0] for k in cells if k[1:] == (method, metric))
    return ", ".join(f"{t}:{pct(cells[t, method, metric])}" for t in vals)


# ---- statuses ----------------------------------------------------------------------------------------


def fmt(diff: stats.Difference | None, digits: int = 1) -> str:
    """mean±SE (n=N) of a difference, or "not measured"."""
    if diff is None:
        return "not measured"
    se = "?" if math.isnan(diff.se) else f"{diff.se:.{digits}f}"
    return f"{diff.mean:+.{digits}f}±{se} (n={diff.n})"


def steps_text(steps: list[Step], digits: int = 1) -> str:
    """Each step's label and difference."""
    return "; ".join(f"{s.label} {fmt(s.diff, digits)}" for s in steps)


def resolve_note(effect: float, diff: stats.Difference, what: str, goal: str = "",
                 enough: str = "the effect here is smaller than the paper's") -> str:
    """How many samples would put `effect` (from the paper) at 2 paired SE at this run's per-sample SD; when
    this run already had that many, the note says why it still did not resolve (`enough`)."""
    sd = diff.sd
    if not math.isfinite(effect):
        return f"{what}: the paper gives no value here to size a run against"
    if effect == 0:
        return f"{what}: the paper's difference is 0, so no sample count resolves it"
    if math.isnan(sd):
        return f"{what}: one sample carries no spread"
    if sd == 0:
        return f"{what}: no sample changed between the cells, so the spread gives no sample count"
    n = stats.samples_to_resolve(effect, sd)
    goal = goal or f"resolve the paper's {effect:+.3g}"
    if n <= diff.n:
        return (f"{what}: {n} samples would {goal} at this run's per-sample SD {sd:.3g}, and this run had "
                f"{diff.n}, so {enough}")
    return f"{what}: ~{n} samples would {goal} at this run's per-sample SD {sd:.3g} (this run: {diff.n})"


def order_status(steps: list[Step], cause: str = "") -> str:
    """Verdict of a chain or conjunction of paired comparisons (stats.order_verdict) with its note."""
    measured = [s for s in steps if s.diff is not None]
    if not measured:
        return f"{stats.INCONCLUSIVE} (not measured in this run)"
    ov = stats.order_verdict([s.diff for s in measured], [s.sign for s in measured])
    missing = [s.label for s in steps if s.diff is None]
    if ov.verdict == stats.REPRODUCED and not missing:
        return stats.REPRODUCED
    if ov.verdict == stats.REPRODUCED:
        return f"{stats.INCONCLUSIVE} (the measured steps agree; not measured in this run: {', '.join(missing)})"
    if ov.verdict == stats.CONTRADICTED:
        bad = [s.label for s, v in zip(measured, ov.steps) if v == stats.CONTRADICTED]
        return f"{stats.CONTRADICTED} ({', '.join(bad)} reversed at >= 2 paired SE; cause: {cause or 'not identified'})"
    open_ = [s for s, v in zip(measured, ov.steps) if v != stats.REPRODUCED]
    need = [(stats.samples_to_resolve(s.paper, s.diff.sd), i) for i, s in enumerate(open_)
            if s.paper and math.isfinite(s.paper) and math.isfinite(s.diff.sd) and s.diff.sd > 0]
    worst = open_[max(need)[1]] if need else open_[0]
    return f"{stats.INCONCLUSIVE} ({resolve_note(worst.paper, worst.diff, worst.label)})"


def null_status(label: str, diff: stats.Difference | None, paper: float, margin: float, cause: str = "") -> str:
    """A claim of no difference: stats.null_verdict with `margin`; an inconclusive row says how many samples
    would bound the paper's own difference inside +-margin."""
    if diff is None:
        return f"{stats.INCONCLUSIVE} (not measured in this run)"
    v = stats.null_verdict(diff.mean, diff.se, margin)
    if v == stats.REPRODUCED:
        return v
    if v == stats.CONTRADICTED:
        return f"{v} ({label} differs by >= {margin:g} points at >= 2 paired SE; cause: {cause or 'not identified'})"
    room = margin - abs(paper)
    if room <= 0:
        return f"{v} ({label}: the paper's own difference {paper:+.3g} is not within ±{margin:g})"
    goal = f"bound the paper's {paper:+.3g} within ±{margin:g}"
    enough = f"the difference here ({diff.mean:+.3g}) is further from 0 than the paper's"
    return f"{v} ({resolve_note(room, diff, label, goal, enough)})"


def band_status(mean: float, se: float, lo: float, hi: float) -> str:
    """mean ± 2 SE inside (lo, hi): reproduced; wholly outside: contradicted; straddling: inconclusive."""
    a, b = mean - stats.Z_DEFAULT * se, mean + stats.Z_DEFAULT * se
    if math.isnan(se):
        return stats.INCONCLUSIVE
    if lo < a and b < hi:
        return stats.REPRODUCED
    if b <= lo or a >= hi:
        return stats.CONTRADICTED
    return stats.INCONCLUSIVE


def combine(verdicts: list[str]) -> str:
    """All reproduced -> reproduced; any contradicted -> contradicted; else inconclusive."""
    base = [v.split(" ")[0] for v in verdicts]
    if base and all(v == stats.REPRODUCED for v in base):
        return stats.REPRODUCED
    return stats.CONTRADICTED if stats.CONTRADICTED in base else stats.INCONCLUSIVE


def mean_se(values) -> tuple[float, float]:
    """Mean and SE over independent units (images); SE nan for one unit."""
    a = np.asarray(values, dtype=float)
    return float(a.mean()), float(a.std(ddof=1) / math.sqrt(a.size)) if a.size > 1 else float("nan")


def combine_status(statuses: list[str]) -> str:
    """One status from several (combine), keeping the notes of the statuses that decided it."""
    verdict = combine(statuses)
    if verdict == stats.REPRODUCED:
        return verdict
    notes = [s[s.index("(") + 1:s.rindex(")")] for s in statuses if s.split(" ")[0] == verdict and "(" in s]
    return f"{verdict} ({'; '.join(notes)})" if notes else verdict


def unpaired_status(steps: list[tuple[str, float, float]], cause: str = "") -> str:
    """Claimed-positive differences (label, mean, unpaired SE) without per-sample records behind them."""
    verdicts = [stats.verdict(m, se, +1) for _, m, se in steps]
    verdict = combine(verdicts)
    if verdict == stats.REPRODUCED:
        return verdict
    labels = ", ".join(lab for (lab, _, _), x in zip(steps, verdicts) if x == verdict)
    if verdict == stats.CONTRADICTED:
        return f"{verdict} ({labels} reversed at >= 2 SE; cause: {cause or 'not identified'})"
    return f"{verdict} ({labels} within 2 unpaired SE; no per-sample records to size a larger run)"


def correspondence(x: dict[str, list], y: dict[str, list], sign: int, paper_y: dict[str, float],
                   cause: str = "") -> tuple[str, str]:
    """Does x rank the models as y does (sign +1) or inversely (sign -1)? Per pair of models (paired over
    samples): where x differs at >= 2 SE, y must differ in the matching direction at >= 2 SE. Returns
    (measured text, status)."""
    models, steps, texts, open_ = list(x), [], [], []
    for i, a in enumerate(models):
        for b in models[i + 1:]:
            dx, dy = raw_difference(x[a], x[b]), stats.paired_difference(y[a], y[b])
            vx = stats.verdict(dx.mean, dx.se, +1)
            texts.append(f"{a} - {b}: {dx.mean:+.3g}±{dx.se:.2g} vs {fmt(dy)}")
            if vx == stats.INCONCLUSIVE:
                open_.append(f"{a} vs {b}")
                continue
            expected = sign if vx == stats.REPRODUCED else -sign
            steps.append(Step(f"{a} vs {b}", dy, expected, paper_y[a] - paper_y[b]))
    if not steps:
        return "; ".join(texts), f"{stats.INCONCLUSIVE} (no pair of models differs at >= 2 SE in the ranking quantity)"
    status = order_status(steps, cause)
    if status == stats.REPRODUCED and open_:
        status = f"{stats.INCONCLUSIVE} ({', '.join(open_)}: ranking quantity within 2 SE)"
    return "; ".join(texts), status


def command(module: str, name: str, d: dict) -> str:
    """The command that wrote paper_runs/<name>.json; larger or variant runs name their non-default sizes."""
    cmd = f"python -m {module}"
    if name.endswith("_large"):
        s, p = setup_of(d), protocol_of(d)
        cmd += f" --n-samples {s['n_samples']} --n-clean {s['n_clean']} --eot-samples {len(s['eot_ids'])}"
        cmd += f" --steps {p.get('steps')}"
    if respacing_of(d) != "respaced":
        cmd += f" --respacing {respacing_of(d)}"
    purifier = (d.get("config") or {}).get("purifier") or {}
    if purifier.get("x0_clip", "auto") != "auto":
        cmd += f" --x0-clip {purifier['x0_clip']}"
    extra = (d.get("config") or {}).get("extra") or {}
    if extra.get("radii"):
        cmd += " --purifiers " + " ".join(purifier.get("names") or ()) + " --radii " + " ".join(
            f"{r:g}" for r in extra["radii"])
    if extra.get("estimand"):
        sizes = (d.get("config") or {}).get("sizes") or {}
        cmd += " --purifiers " + " ".join(purifier.get("names") or ())
        cmd += "".join(f" --{k.replace('_', '-')} {sizes[k]}" for k in ("n_samples", "eot_samples") if sizes.get(k))
        cmd += f" --estimand {extra['estimand']}" + ("" if (d.get("config") or {}).get("run", {}).get("predict", True)
                                                     else " --no-predict")
    return f"{cmd} --json paper_runs/{name}.json"


def with_cause(status: str, cause: str) -> str:
    """A contradicted status without a note gets its cause."""
    return f"{status} (cause: {cause})" if status == stats.CONTRADICTED else status


# ---- rules for claims without per-sample records -----------------------------------------------------


def at_position(trajectory: dict, field: str, position: int) -> tuple[float, float]:
    """(mean, SE) of a stored trajectory field ("l2", "cosine", "inner") at the nearest stored step."""
    pos = trajectory["position"]
    i = min(range(len(pos)), key=lambda j: abs(pos[j] - position))
    return trajectory[f"{field}_mean"][i], trajectory[f"{field}_se"][i]


def unpaired_gap(a: tuple[float, float], b: tuple[float, float]) -> tuple[float, float]:
    """(a - b, sqrt(se_a^2 + se_b^2)): the SE when only per-position means and SEs are stored."""
    return a[0] - b[0], math.hypot(a[1], b[1])


def gap_status(smaller: float, larger: float, gap: float) -> str:
    """Claim larger > smaller without an SE: reproduced above a relative gap, contradicted when reversed by
    more than that gap, inconclusive in between."""
    if larger / smaller - 1 > gap:
        return stats.REPRODUCED
    if smaller / larger - 1 > gap:
        return stats.CONTRADICTED
    return f"{stats.INCONCLUSIVE} (the values differ by < {100 * gap:.0f}%; no SE)"


def relative_gap_status(diff: stats.Difference, base: float, quality_gap: float, quality: str) -> str:
    """Sec. 5.4: the relative accuracy gap diff / base (its 2-SE interval) lies below the relative quality gap."""
    rel, rel_se = diff.mean / base, diff.se / base
    if quality.split(" ")[0] != stats.REPRODUCED:
        return f"{stats.INCONCLUSIVE} (no clear sample-quality gap to compare with)"
    if rel + stats.Z_DEFAULT * rel_se < quality_gap:
        return stats.REPRODUCED
    if rel - stats.Z_DEFAULT * rel_se >= quality_gap:
        return stats.CONTRADICTED
    return f"{stats.INCONCLUSIVE} (the accuracy gap's 2-SE interval reaches the quality gap)"


def correlation_status(initial: float, purified: float, zero: float) -> str:
    """Fig. 4b: |initial| < zero and purified > initial + zero; contradicted when purified <= initial."""
    if abs(initial) < zero and purified > initial + zero:
        return stats.REPRODUCED
    if purified <= initial:
        return stats.CONTRADICTED
    return f"{stats.INCONCLUSIVE} (inside the ±{zero} rule; one image, no SE)"


def components_status(initial: int, purified: int) -> str:
    """Fig. 4c: at most half the components is reproduced; as many or more is contradicted."""
    if purified <= initial / 2:
        return stats.REPRODUCED
    if purified >= initial:
        return stats.CONTRADICTED
    return f"{stats.INCONCLUSIVE} (fewer components, but more than half)"
