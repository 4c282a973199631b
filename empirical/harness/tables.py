"""Running the protocol's cells for one or more setups: the store, sharding and the accuracy rows.

Every table that measures clean / BPDA / BPDA-EOT cells (Tables 1, 2, S1, S2, 3 and the audit-style
checks) goes through `run_protocol`: one results store, one runner, one record reader (`cell`).
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import torch

from empirical.harness import records as rec
from empirical.harness.records import replicate_key
from empirical.harness.config import Config
from empirical.harness.report import Accuracy, accuracy, paired_drop
from empirical.harness.runner import Cell, Chunk, run_cells
from empirical.harness.setup import PurifierSpec, Setup
from empirical.harness.sharding import World, init_world, shutdown
from empirical.harness.store import ResultStore
from empirical.protocol import Protocol, derived_seed, run_chunk


def evaluations_per_image(purifier) -> int:
    """Network evaluations per purified and classified image: the reverse chain's UNet calls (its timestep
    grid) plus the classifier; 1 for a purifier without a network. The progress bar's cost weight."""
    return len(getattr(purifier, "grid", ()) or ()) + 1


def protocol_cell(spec: PurifierSpec, setup: Setup, protocol: Protocol, key: str, predict: bool) -> Cell:
    """One purifier's column block: run_chunk on each chunk (attacked chunks get the attacks)."""
    def measure(chunk: Chunk, tick: Callable[[int], None]) -> dict:
        ids = torch.tensor(chunk.ids, dtype=setup.ids.dtype)
        x, y = setup.batch(ids)
        eot_mask = torch.tensor([int(i) in setup.eot_ids for i in chunk.ids], dtype=torch.bool)
        return run_chunk(spec.classifier, spec.purifier, x, y, ids, chunk.index, protocol, eot_mask,
                         predict=chunk.attacked and predict, clean_only=not chunk.attacked, tick=tick)

    def work(chunk: Chunk) -> int:
        n_eot = sum(int(i) in setup.eot_ids for i in chunk.ids)
        return protocol.purifications(len(chunk.ids), n_eot, spec.stochastic, predict and chunk.attacked,
                                      chunk.attacked)

    return Cell(key, f"{spec.method} t*={spec.t_star_text}", measure, work,
                float(evaluations_per_image(spec.purifier)), "purification")


def open_store(config: Config, resolved: dict, world: World) -> ResultStore:
    """The run's store; its digest covers the configuration and what loading resolved (sizes, budget,
    weight and data identities)."""
    view = {**config.digest_view(), "resolved": resolved}
    return ResultStore.open(config.output.results, view, resume=config.output.resume,
                            overwrite=config.output.overwrite, rank=world.rank, world_size=world.size,
                            allow_code_change=config.output.allow_code_change)


def replicate_protocol(protocol: Protocol, k: int) -> Protocol:
    """Replicate k's protocol: the same attack under its own run seed, so every noise key of every sample is
    new and independent of replicate 0 (which is the run seed itself, so one replicate is the plain run)."""
    return protocol if k == 0 else dataclasses.replace(protocol, seed=derived_seed(protocol.seed, "replicate", k))


def replicates(records: dict[str, list[dict]], key: str) -> list[list[dict]]:
    """The chunk lists of every noise replicate of a cell present in `records`, replicate 0 first."""
    out, k = [], 0
    while replicate_key(key, k) in records:
        out.append(records[replicate_key(key, k)])
        k += 1
    return out


def pooled(records: dict[str, list[dict]], key: str, name: str) -> list | None:
    """One cell's outcomes over all noise replicates as [K x R][N] rows: each sample's mean over the rows is
    its mean over replicates (each the mean of its R draws), so the sample stays the unit of every paired
    comparison. None when a replicate lacks the cell."""
    rows = []
    for chunks in replicates(records, key):
        values = rec.outcomes(chunks, name)
        if values is None:
            return None
        rows += [list(r) for r in values] if values and isinstance(values[0], list) else [list(values)]
    return rows or None


def run_protocol(config: Config, setups: list[tuple[str, Setup]], protocol_for: Callable[[Setup], Protocol],
                 predict: bool = False) -> dict[str, list[dict]] | None:
    """Every purifier of every (prefix, setup) over the setups' chunks, in one store, sharded under
    torchrun or local workers; config.run.replicates noise replicates per cell (keys `replicate_key`).
    Returns {cell key: chunk measurements} on the main rank, None on the others."""
    first = setups[0][1]
    resolved = {prefix or "run": s.resolved() for prefix, s in setups}
    resolved["protocol"] = {prefix or "run": protocol_for(s).to_dict() for prefix, s in setups}
    cells = [protocol_cell(spec, s, replicate_protocol(protocol_for(s), k), replicate_key(prefix + spec.key, k),
                           predict)
             for k in range(config.run.replicates) for prefix, s in setups for spec in s.purifiers]
    return execute(config, cells, first.chunks(config.run.batch_size), resolved, first.device)


def execute(config: Config, cells: list[Cell], chunks: list[Chunk], resolved: dict,
            device: torch.device) -> dict[str, list[dict]] | None:
    """Open the store, run the cells over the chunks (sharded under torchrun), close the process group.
    Returns the gathered chunk measurements on the main rank, None on the others."""
    world = init_world(device)
    store = open_store(config, resolved, world)
    out = run_cells(cells, chunks, store, world, config.output.quiet)
    store.close()          # on an exception report.run_main names the open store, then closes it
    shutdown(world)
    return out if world.is_main else None


def cell(chunks: list[dict], name: str) -> Accuracy | None:
    """A table cell (mean ± SE over samples) from the chunk measurements."""
    return accuracy(rec.outcomes(chunks, name))


def drop(chunks: list[dict], no_fix: str, fixed: str) -> Accuracy | None:
    """No-fix minus fixed-noise accuracy, paired over the same samples."""
    return paired_drop(rec.outcomes(chunks, no_fix), rec.outcomes(chunks, fixed))


def replay_row(spec: PurifierSpec, chunks: list[dict], **extra) -> dict:
    """Clean / BPDA / BPDA-EOT under fixed noise (the paper's Tables 2, S1, S2, 3)."""
    fix = "yes" if spec.stochastic else "n/a (deterministic)"
    return {"purifier": spec.label, "method": spec.method, "fix": fix, "t_star": spec.t_star_text,
            "clean": cell(chunks, "clean_replay"), "bpda": cell(chunks, "bpda_replay"),
            "eot": cell(chunks, "eot_replay"), **extra}
