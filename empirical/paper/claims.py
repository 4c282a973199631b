"""Every empirical claim of the paper checked here, declared once: stable id, title, runs, comparison, rule.

A claim names its runs in order of preference: the first one present in `paper_runs/` is its primary
run, the only one whose p enters the multiplicity family; the others share its samples and seed (same
sample ids, seed 0), so they are shown as secondary readings and never count as a second confirmation.
`secondary` adds readings with another comparison (e.g. Table 1 under DiffPure's own estimand).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Callable

from empirical.paper import figure_measures as F
from empirical.paper import measures as M
from empirical.paper import numbers as P
from empirical.paper import sweep_measures as S
from empirical.paper.rules import Evidence

Measure = Callable[[dict, dict], Evidence]
MODULES = {"table1": "empirical.table1", "table1_estimand": "empirical.table1", "table2": "empirical.table2",
           "table2_large": "empirical.table2", "table2_noclip": "empirical.table2",
           "sweep_tstar": "empirical.sweep_tstar", "sweep_tstar_noclip": "empirical.sweep_tstar",
           "subsequence": "empirical.subsequence", "subsequence_one_step": "empirical.subsequence",
           "ema": "empirical.ema", "projection": "empirical.projection", "projection_noclip": "empirical.projection",
           "fig1": "figures.fig1", "fig1_radius": "figures.fig1", "fig3": "figures.fig3", "fig4": "figures.fig4"}
REQUIRED = ("table1", "table2", "sweep_tstar", "subsequence", "ema", "projection", "fig1", "fig3", "fig4")
DIFFPURE = "digits DDPM DiffPure t*=100 (noise-trained CNN classifier)"
TOY = "toy purifier x + N(0, sigma^2 I), sigma 0.45 (noise-trained CNN classifier)"
THREE = "digits DDPM: RevPure, DiffPure, DDIM RevPure"
ACC = "accuracy, per sample (mean over draws and noise replicates)"


@dataclass(frozen=True)
class Claim:
    """id: stable; title: the claim in the paper's words; runs: primary first, then same-sample readings;
    model: the model part of the setup; estimand: what is compared; measure: the comparison and rule."""

    id: str
    title: str
    runs: tuple[str, ...]
    model: str
    estimand: str
    measure: Measure
    secondary: tuple[tuple[str, Measure], ...] = ()


def _table1() -> list[Claim]:
    out = []
    for toy, model in ((False, DIFFPURE), (True, TOY)):
        pre = "toy" if toy else "table1"
        scope = ("Sec. 4.2 mechanism, toy Gaussian purifier on digits (not a paper number)" if toy
                 else f"Table 1 (paper, CIFAR-10: {P.table1('bpda')[0]} -> {P.table1('bpda')[1]})")
        out.append(Claim(f"{pre}.bpda_drop", f"{scope}: fixing the noise lowers BPDA accuracy", ("table1",), model,
                         f"no-fix minus fixed-noise BPDA {ACC}", partial(M.table1_drop, cell="bpda", toy=toy),
                         (("table1_estimand", partial(M.table1_drop, cell="bpda", toy=toy)),
                          ("table1_estimand", partial(M.table1_any_iterate, toy=toy)))))
        eot = ("Sec. 4.2 mechanism, toy Gaussian purifier on digits" if toy
               else f"Table 1 (paper: {P.table1('eot')[0]} -> {P.table1('eot')[1]})")
        out.append(Claim(f"{pre}.eot_drop", f"{eot}: fixing the noise lowers BPDA-EOT accuracy", ("table1",), model,
                         f"no-fix minus fixed-noise BPDA-EOT {ACC}", partial(M.table1_drop, cell="eot", toy=toy)))
        clean = ("Sec. 4.2 mechanism, toy Gaussian purifier on digits" if toy
                 else f"Table 1 (paper: {P.table1('clean')[0]} vs {P.table1('clean')[1]})")
        out.append(Claim(f"{pre}.clean_unchanged", f"{clean}: fixing the noise leaves clean accuracy unchanged "
                         f"(within ±{M.MARGIN:g} points)", ("table1",), model, f"no-fix minus fixed-noise clean {ACC}",
                         partial(M.table1_clean, toy=toy)))
        who = "the toy Gaussian purifier" if toy else "DiffPure"
        out.append(Claim(f"{pre}.toy_prediction", f"Theorem 1 read on {who} (digits; a project claim, not a paper "
                         f"number): the toy model predicts (a), the replay-fooled samples a fresh draw restores, "
                         f"within ±{M.MARGIN:g} points", ("table1",), model,
                         "(a) = share of replay-crafted examples fooled under replay and correct under a fresh draw, "
                         "toy prediction minus held-out draws, per sample", partial(M.table1_prediction, toy=toy)))
    return out


def _table2() -> list[Claim]:
    runs = ("table2_large", "table2")
    order = " > ".join(P.PURIFIERS)
    out = [Claim(f"table2.{c}_order", f"Table 2: {c.upper() if c == 'bpda' else c} accuracy {order} at t*=150, fixed "
                 f"noise (paper: {' > '.join(str(P.table2(m, c)) for m in P.PURIFIERS)})", runs, THREE,
                 f"{c} {ACC}, fixed noise", partial(M.table2_order, cell=c)) for c in ("bpda", "clean")]
    out.append(Claim("table2.eot_equals_bpda", f"Table 2: with fixed noise BPDA-EOT = BPDA (within ±{M.MARGIN:g})", runs,
                     THREE, f"BPDA-EOT minus BPDA {ACC}, on the EOT samples", M.table2_eot))
    return out


def _sweeps() -> list[Claim]:
    t, s = ("sweep_tstar",), ("subsequence", "subsequence_one_step")
    out = [Claim(f"s1.clean_monotone.{m.replace(' ', '_')}", f"Table S1 / Fig. 2a: {m} clean accuracy decreases "
                 "monotonically with t*", t, THREE, f"clean {ACC}, fixed noise", partial(S.s1_clean_monotone, m=m))
           for m in P.PURIFIERS]
    out += [Claim("s1.bpda_rise", "Table S1 / Fig. 2a: BPDA accuracy rises from ~0 at t*=1 to the paper's optimum "
                  "(t*=200 DiffPure, 150 RevPure and DDIM)", t, THREE, f"BPDA {ACC}, fixed noise", S.s1_bpda_rise),
            Claim("s1.bpda_fall", "Table S1 / Fig. 2a: past the optimum BPDA accuracy falls (RevPure and DDIM, "
                  "t*=150 -> 200)", t, THREE, f"BPDA {ACC}, fixed noise", S.s1_bpda_fall)]
    out += [Claim(f"fig2a.order.t{v}", f"Fig. 2a: BPDA accuracy {' > '.join(P.PURIFIERS)} at t*={v}", t, THREE,
                  f"BPDA {ACC}, fixed noise", partial(S.s1_order, t=v)) for v in P.T_STARS if v >= 50]
    out.append(Claim("fig2a.clean_revpure", "Fig. 2a: RevPure's clean accuracy exceeds DiffPure's at every t* >= 50",
                     t, THREE, f"clean {ACC}, fixed noise", S.s1_clean_revpure))
    out += [Claim(f"s2.bpda_lowered.{m.replace(' ', '_')}", f"Table S2 / Fig. 2b: subsequencing (s* < t*=150) lowers "
                  f"{m}'s BPDA accuracy", s, THREE, f"BPDA {ACC}, fixed noise", partial(S.s2_bpda_lowered, m=m))
            for m in P.PURIFIERS]
    out += [Claim("s2.collapse", f"Table S2 / Fig. 2b: BPDA accuracy drops at every s* <= {M.SMALL_S} (to 0.0 for "
                  "every purifier in the paper)", s, THREE, f"BPDA {ACC}, fixed noise", S.s2_collapse),
            Claim("s2.ddim_clean", "Table S2: DDIM clean accuracy increases with subsequencing (paper: 95.2 at s*=5 vs "
                  "77.6 at 150)", s, THREE, f"clean {ACC}", S.s2_ddim_clean),
            Claim("s2.ddpm_dip", f"Table S2: DDPM clean accuracy first falls then rises as s* shrinks (the paper's "
                  f"minimum at s*={M.SMALL_S})", s, THREE, f"clean {ACC}", S.s2_ddpm_dip)]
    return out


def _table3_s3() -> list[Claim]:
    ema, model = ("ema",), "digits DDPM RevPure t*=150, EMA vs non-EMA weights"
    out = [Claim("table3.fd", f"Table 3: EMA weights generate better samples (paper FID {P.table3(True, 'fid')} vs "
                 f"{P.table3(False, 'fid')})", ema, model, "Fréchet distance of generated samples (no SE)", M.ema_fd)]
    out += [Claim(f"table3.{c}", f"Table 3: EMA weights give higher {c.upper() if c == 'bpda' else c} accuracy (paper "
                  f"{P.table3(True, c)} vs {P.table3(False, c)})", ema, model, f"{c} {ACC}, fixed noise",
                  partial(M.ema_accuracy, cell=c)) for c in ("clean", "bpda")]
    out.append(Claim("sec54.relative_gap", "Sec. 5.4: the robustness gap is much smaller than the sample-quality gap",
                     ema, model, "relative BPDA gap minus relative FD gap, per sample", M.ema_relative_gap))
    pr, order = ("projection",), " > ".join(F.INV)
    out += [Claim("s3.projection_order", f"Table S3: remaining adversarial projection {order} (paper "
                  f"{' > '.join(str(P.table_s3(k, 'projection')) for k in F.INV)})", pr, THREE,
                  "remaining adversarial projection per sample", F.projection_order)]
    out += [Claim(f"s3.{key}_order", f"Table S3: {name} accuracy {' > '.join(P.PURIFIERS)} (paper "
                  f"{' > '.join(str(P.table_s3(k, key)) for k in P.PURIFIERS)})", pr, THREE, f"{name} accuracy per sample",
                  partial(F.projection_accuracy, field=field))
            for field, key, name in (("correct", "bpda", "BPDA"), ("pgd_l2", "pgd_l2", "PGD-l2 at eps = projection"))]
    out += [Claim("s3.projection_vs_bpda", "Table S3: a higher remaining projection goes with a lower BPDA accuracy "
                  "(per pair of models)", pr, THREE, "BPDA accuracy difference per pair, direction set by the projection",
                  partial(F.projection_vs, field="end_projection", sign=-1)),
            Claim("s3.pgd_vs_bpda", "Table S3: PGD-l2 on the bare classifier at eps = projection ranks the models as "
                  "BPDA does (per pair of models)", pr, THREE, "BPDA accuracy difference per pair, direction set by "
                  "PGD-l2", partial(F.projection_vs, field="pgd_l2", sign=+1))]
    return out


def _figures() -> list[Claim]:
    ddpm = "digits DDPM DiffPure and RevPure"
    out = [Claim("fig1a", "Fig. 1a: same state, different noises -> different but positively correlated directions "
                 "(0 < correlation < 0.99)", ("fig1",), ddpm, "per-image mean correlation", F.fig1a),
           Claim("fig1b", "Fig. 1b: different states in a small l2 ball, same noise -> correlation > 0.99",
                 ("fig1", "fig1_radius"), ddpm, "per-image mean correlation minus 0.99", F.fig1b,
                 (("fig1_radius", F.fig1b_radius),))]
    for k in ("DiffPure", "RevPure"):
        out.append(Claim(f"fig3a.rise_fall.{k}", f"Fig. 3a: {k} ||x_t - x0|| first increases then decreases",
                         ("fig3",), f"digits DDPM {k}", "||x_t - x0|| at the peak minus start / end (unpaired)",
                         partial(F.fig3_rise_fall, k=k)))
    out += [Claim("fig3a.end_exceeds_start", "Fig. 3a: the end distance exceeds the initial perturbation's for all "
                  "models", ("fig3",), THREE, "||x_0' - x0|| minus ||x_adv - x0|| per sample", F.fig3_end_exceeds_start),
            Claim("fig3a.ddim_smallest", "Fig. 3a: DDIM has the smallest end distance", ("fig3",), THREE,
                  "end distance minus DDIM's per sample", F.fig3_ddim_smallest),
            Claim("fig3b.cosine", f"Fig. 3b: the reverse process removes the adversarial direction (end cosine within "
                  f"±{M.COS_ORTHO})", ("fig3",), THREE, "end cosine per sample", F.fig3_cosine),
            Claim("fig3c.ranking", "Fig. 3c: the remaining projection ranks the models' robustness (higher projection, "
                  "lower BPDA; per pair of models)", ("fig3",), THREE, "BPDA accuracy difference per pair",
                  partial(F.projection_vs, field="end_projection", sign=-1))]
    out += [Claim(f"fig4{w}", f"Fig. 4{w} (RevPure; paper {P.FIG4_PERTURBATIONS:,} perturbations): " + (
        "initial perturbations uncorrelated, purified directions positively correlated" if w == "b" else
        "purified directions lie in a much lower-dimensional space"), ("fig4",), "digits DDPM RevPure, one image",
        "mean pairwise correlation" if w == "b" else "components for 90% variance", partial(F.fig4, k="RevPure", which=w))
        for w in ("b", "c")]
    return out


def _variants() -> list[Claim]:
    note = "x0 clamp (not in eqs. 2-3; the digits scheduler clamps)"
    out = [Claim(f"clamp.table2_{c}", f"{note}: Table 2 {c.upper() if c == 'bpda' else c} is unchanged without it "
                 f"(within ±{M.MARGIN:g} points)", ("table2_noclip",), THREE, f"clamp off minus clamp on, {c} {ACC}",
                 partial(M.clamp_table2, cell=c)) for c in ("clean", "bpda")]
    out += [Claim("clamp.s1_bpda", f"{note}: Table S1 BPDA of RevPure and DDIM is unchanged without it (within "
                  f"±{M.MARGIN:g} points)", ("sweep_tstar_noclip",), "digits DDPM RevPure and DDIM RevPure",
                  f"clamp off minus clamp on, BPDA {ACC}", M.clamp_sweep),
            Claim("clamp.s3_bpda", f"{note}: Table S3 BPDA is unchanged without it (within ±{M.MARGIN:g} points)",
                  ("projection_noclip",), THREE, "clamp off minus clamp on, BPDA accuracy per sample",
                  M.clamp_projection)]
    return out


# The project's question, fixed before the data: is DiffPure's robustness on the digits default gradient
# masking, does the toy Gaussian purifier show the mechanism, and does the toy model predict the part of the
# drop it describes? These are the primary claims of the gatekeeping procedure (empirical.multiplicity);
# every other tested claim is secondary and inherits the alpha of the rejected primaries.
PRIMARY = ("table1.bpda_drop", "toy.bpda_drop", "table1.toy_prediction")

CLAIMS: tuple[Claim, ...] = tuple(_table1() + _table2() + _sweeps() + _table3_s3() + _figures() + _variants())
