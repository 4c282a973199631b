"""The one runner: cells x chunks, the atomic per-chunk store, --resume, and torchrun sharding.

A cell is one column block of a table (a purifier at one t*, say) with a function that measures one
chunk of samples; a chunk is the unit of resume and of sharding. Chunks are dealt round-robin to ranks
(`sharding.World.owns`); every rank stores its own chunks, and the main rank gathers all of them.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Callable

from tqdm import tqdm

from empirical.harness.sharding import World, gather
from empirical.harness.store import ResultStore


@dataclass(frozen=True)
class Chunk:
    """Sample ids of one chunk, its position in the plan, and whether its samples are attacked."""

    index: int
    ids: tuple[int, ...]
    attacked: bool = True


@dataclass(frozen=True)
class Cell:
    """`measure(chunk, tick)` returns the chunk's JSON-able measurements; it calls `tick()` after each of
    its `phases` phases so that the progress bar moves inside a chunk."""

    key: str
    label: str
    measure: Callable[[Chunk, Callable[[], None]], dict]
    phases: Callable[[Chunk], int] = lambda chunk: 1


def plan_chunks(ids: list[int], n_attacked: int, batch_size: int) -> list[Chunk]:
    """Attacked samples first, then clean-only ones, in chunks of at most batch_size."""
    out = []
    for lo, hi, attacked in ((0, n_attacked, True), (n_attacked, len(ids), False)):
        for s in range(lo, hi, batch_size):
            out.append(Chunk(len(out), tuple(int(i) for i in ids[s:min(s + batch_size, hi)]), attacked))
    return out


def run_cells(cells: list[Cell], chunks: list[Chunk], store: ResultStore, world: World,
              quiet: bool = False) -> dict[str, list[dict]]:
    """Measure every (cell, chunk) this rank owns that the store lacks; return, on the main rank, every
    cell's chunk measurements in chunk order (gathered over ranks), and {} on the others."""
    keys = [c.key for c in cells]
    if len(set(keys)) != len(keys):
        raise ValueError(f"cell keys must be unique, got {keys}")
    todo = [(cell, chunk) for cell in cells for chunk in chunks
            if world.owns(chunk.index) and not store.has(f"{cell.key}/{chunk.index}")]
    total = sum(cell.phases(chunk) for cell, chunk in todo)
    local: dict[str, dict] = {}
    with tqdm(total=total, disable=quiet or not world.is_main or total == 0, file=sys.stderr, unit="phase",
              dynamic_ncols=True) as bar:
        for cell, chunk in todo:
            bar.set_description(f"{cell.label} chunk {chunk.index + 1}/{len(chunks)}")
            data = cell.measure(chunk, lambda: bar.update(1))
            store.put(f"{cell.key}/{chunk.index}", list(chunk.ids), data)
    for cell in cells:
        for chunk in chunks:
            if world.owns(chunk.index):
                key = f"{cell.key}/{chunk.index}"
                local[key] = store.get(key, list(chunk.ids))
    merged = {k: v for part in gather(local, world) for k, v in part.items()}
    if not world.is_main:
        return {}
    return {cell.key: [merged[f"{cell.key}/{chunk.index}"] for chunk in chunks] for cell in cells}
