"""The adversarial-trajectory measurement of Table S3 and Fig. 3 as runner cells (store, resume, sharding).

Per chunk: BPDA under the chunk's fixed noise (exactly as Table 2 crafts it), then the trajectory of each
adversarial example through the purifier with that noise (`empirical.trajectories.adversarial_curves`).
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from empirical.harness.config import Config
from empirical.harness.runner import Cell, Chunk
from empirical.harness.setup import PurifierSpec, Setup
from empirical.harness.tables import execute
from empirical.protocol import Protocol
from empirical.trajectories import adversarial_curves, bpda_fixed_noise

CURVES = ("l2", "cosine", "inner")


def curves_cell(spec: PurifierSpec, setup: Setup, protocol: Protocol, keep_every: int) -> Cell:
    """One purifier: per attacked chunk, BPDA outcomes, end projections and the per-step curves."""
    def measure(chunk: Chunk, tick: Callable[[], None]) -> dict:
        if not chunk.attacked:
            tick()
            return {}
        ids = torch.tensor(chunk.ids, dtype=setup.ids.dtype)
        x, y = setup.batch(ids)
        x_adv, ok, fixed = bpda_fixed_noise(spec.classifier, spec.purifier, x, y, ids, chunk.index, protocol)
        c = adversarial_curves(spec.purifier, x, x_adv, fixed, keep_every)
        tick()
        return {"position": list(c.position), "correct": ok.tolist(), "end_projection": c.end_projection.tolist(),
                "adv_norm": c.adv_norm.tolist(), **{k: getattr(c, k).tolist() for k in CURVES}}

    return Cell(spec.key, f"{spec.method} t*={spec.t_star_text}", measure)


def aggregate(chunks: list[dict]) -> dict:
    """Per purifier: outcomes joined over chunks, and each curve's mean and SE over images per step (the
    sample SD over sqrt(n)). One image has no SE: NaN, which the JSON writer stores as null."""
    chunks = [c for c in chunks if c]
    out = {"position": chunks[0]["position"]}
    for key in ("correct", "end_projection", "adv_norm"):
        out[key] = [v for c in chunks for v in c[key]]
    for key in CURVES:
        full = np.concatenate([np.array(c[key]) for c in chunks], axis=1)
        out[f"{key}_start_per_sample"], out[f"{key}_end_per_sample"] = full[0].tolist(), full[-1].tolist()
        out[f"{key}_mean"] = full.mean(axis=1).tolist()
        out[f"{key}_se"] = ((full.std(axis=1, ddof=1) / np.sqrt(full.shape[1])).tolist() if full.shape[1] > 1
                            else [float("nan")] * full.shape[0])
    return out


def measure_curves(config: Config, setup, protocol) -> dict | None:
    """Per purifier method, the aggregated BPDA trajectories (None on non-main ranks)."""
    cells = [curves_cell(spec, setup, protocol, config.option("keep_every")) for spec in setup.purifiers]
    chunks = [c for c in setup.chunks(config.run.batch_size) if c.attacked]
    resolved = {"run": setup.resolved(), "protocol": protocol.to_dict()}
    records = execute(config, cells, chunks, resolved, setup.device)
    if records is None:
        return None
    return {spec.method: aggregate(records[spec.key]) for spec in setup.purifiers}
