"""What the Table S1 / S2 (Fig. 2a / 2b) claims measure: paired steps along t* and s*."""
from __future__ import annotations

from empirical.paper import numbers as P
from empirical.paper import runs as R
from empirical.paper.measures import SMALL_S, acc_step, directional
from empirical.paper.rules import Evidence


def _s1(metric: str, m: str, t: int) -> float | None:
    return P.at(P.TABLE_S1, P.T_STARS, metric, m, t)


def _s2(metric: str, m: str, s: int) -> float | None:
    return P.at(P.TABLE_S2, P.S_STARS, metric, m, s)


def _diff(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def _step(cells: dict, a: tuple, b: tuple, paper: float | None, label: str, sign: int = +1):
    return acc_step(label, cells.get(a), cells.get(b), sign, paper)


def series(cells: dict, m: str, metric: str) -> str:
    vals = sorted(k[0] for k in cells if k[1:] == (m, metric))
    return ", ".join(f"{t}:{R.pct(cells[t, m, metric])}" for t in vals)


def s1_clean_monotone(d: dict, runs: dict, m: str) -> Evidence:
    cells = R.sweep_cells(d, "t")
    ts = sorted({k[0] for k in cells})
    steps = [_step(cells, (a, m, "clean"), (b, m, "clean"), _diff(_s1("clean", m, a), _s1("clean", m, b)),
                   f"t*={a} > {b}") for a, b in zip(ts, ts[1:])]
    return directional(series(cells, m, "clean"), steps)


def s1_bpda_rise(d: dict, runs: dict) -> Evidence:
    cells = R.sweep_cells(d, "t")
    steps = [_step(cells, (P.OPTIMUM_T_STAR[m], m, "bpda"), (1, m, "bpda"),
                   _diff(_s1("bpda", m, P.OPTIMUM_T_STAR[m]), _s1("bpda", m, 1)),
                   f"{m} t*={P.OPTIMUM_T_STAR[m]} > 1") for m in P.PURIFIERS]
    return directional("; ".join(f"{m}: {series(cells, m, 'bpda')}" for m in P.PURIFIERS), steps)


def s1_bpda_fall(d: dict, runs: dict) -> Evidence:
    cells = R.sweep_cells(d, "t")
    steps = [_step(cells, (150, m, "bpda"), (200, m, "bpda"), _diff(_s1("bpda", m, 150), _s1("bpda", m, 200)),
                   f"{m} t*=150 > 200") for m in ("RevPure", "DDIM RevPure")]
    return directional("", steps)


def s1_order(d: dict, runs: dict, t: int) -> Evidence:
    cells = R.sweep_cells(d, "t")
    steps = [_step(cells, (t, a, "bpda"), (t, b, "bpda"), _diff(_s1("bpda", a, t), _s1("bpda", b, t)), f"{a} > {b}")
             for a, b in zip(P.PURIFIERS, P.PURIFIERS[1:])]
    return directional(", ".join(f"{m} {R.pct(cells.get((t, m, 'bpda'), {}))}" for m in P.PURIFIERS), steps)


def s1_clean_revpure(d: dict, runs: dict) -> Evidence:
    cells = R.sweep_cells(d, "t")
    steps = [_step(cells, (t, "RevPure", "clean"), (t, "DiffPure", "clean"),
                   _diff(_s1("clean", "RevPure", t), _s1("clean", "DiffPure", t)), f"t*={t}")
             for t in sorted({k[0] for k in cells}) if t >= 50]
    return directional("RevPure minus DiffPure", steps)


def _collapse(cells: dict, full: int, m: str, values, prefix: str = "") -> list:
    return [_step(cells, (full, m, "bpda"), (s, m, "bpda"), _diff(_s2("bpda", m, 150), _s2("bpda", m, s)),
                  f"{prefix}s*={full} > {s}") for s in values if s < full]


def _tag(d: dict) -> str:
    return f"respacing {R.respacing_of(d)}"


def s2_bpda_lowered(d: dict, runs: dict, m: str) -> Evidence:
    cells, full = R.sweep_cells(d, "s"), R.t_star_of(d)
    ss = sorted({k[0] for k in cells if k[0] < full})
    return directional(f"{_tag(d)}; {series(cells, m, 'bpda')}", _collapse(cells, full, m, ss))


def s2_collapse(d: dict, runs: dict) -> Evidence:
    cells, full = R.sweep_cells(d, "s"), R.t_star_of(d)
    small = sorted({k[0] for k in cells if k[0] <= SMALL_S})
    steps = [st for m in P.PURIFIERS for st in _collapse(cells, full, m, small, f"{m} ")]
    return directional(_tag(d), steps)


def s2_ddim_clean(d: dict, runs: dict) -> Evidence:
    cells, full, dd = R.sweep_cells(d, "s"), R.t_star_of(d), "DDIM RevPure"
    s0 = min(k[0] for k in cells)
    step = _step(cells, (s0, dd, "clean"), (full, dd, "clean"), _diff(_s2("clean", dd, s0), _s2("clean", dd, 150)),
                 f"s*={s0} > {full}")
    return directional(f"{_tag(d)}; {series(cells, dd, 'clean')}", [step])


def s2_ddpm_dip(d: dict, runs: dict) -> Evidence:
    cells, full = R.sweep_cells(d, "s"), R.t_star_of(d)
    s0 = min(k[0] for k in cells)
    steps = [_step(cells, (a, m, "clean"), (SMALL_S, m, "clean"), _diff(_s2("clean", m, a), _s2("clean", m, SMALL_S)),
                   f"{m} s*={a} > {SMALL_S}") for m in ("DiffPure", "RevPure") for a in (full, s0)]
    return directional(_tag(d), steps)
