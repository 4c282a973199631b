"""The one runner: cells x chunks, the atomic per-chunk store, --resume, and torchrun sharding.

A cell is one column block of a table (a purifier at one t*, say) with a function that measures one
chunk of samples; a (cell, chunk) pair is the unit of resume and of sharding. Pairs are dealt to ranks by
their estimated cost, largest first, each to the least loaded rank (`assign`: the same plan on every rank,
whatever the store already holds, so a resumed run with another rank count still covers every pair once);
every rank stores its own pairs, and the main rank gathers all of them. Progress counts the work a cell
reports (purifications, say) and weights its ETA by each unit's relative cost.
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
    """`measure(chunk, tick)` returns the chunk's JSON-able measurements; it calls `tick(n)` for every n
    units of work done (`work(chunk)` units in all, each costing `weight`: e.g. purifications of a purifier
    with `weight` network evaluations per image), so the progress bar moves inside a chunk and its ETA
    follows the cost, not the count."""

    key: str
    label: str
    measure: Callable[[Chunk, Callable[..., None]], dict]
    work: Callable[[Chunk], int] = lambda chunk: 1
    weight: float = 1.0
    unit: str = "step"


def assign(costs: list[float], ranks: int) -> list[int]:
    """The rank of each task: longest-processing-time first onto the least loaded rank (ties to the lower
    index), a deterministic plan within 4/3 of the best makespan."""
    load, out = [0.0] * ranks, [0] * len(costs)
    for i in sorted(range(len(costs)), key=lambda i: (-costs[i], i)):
        r = min(range(ranks), key=lambda k: (load[k], k))
        out[i], load[r] = r, load[r] + costs[i]
    return out


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
    pairs = [(cell, chunk) for cell in cells for chunk in chunks]
    owner = assign([cell.work(chunk) * cell.weight for cell, chunk in pairs], world.size)
    mine = [pair for pair, rank in zip(pairs, owner) if rank == world.rank]
    todo = [(cell, chunk) for cell, chunk in mine if not store.has(f"{cell.key}/{chunk.index}")]
    with Progress(todo, quiet or not world.is_main) as progress:
        for cell, chunk in todo:
            progress.start(cell, chunk, len(chunks))
            data = cell.measure(chunk, progress.tick)
            progress.finish(cell.work(chunk))
            store.put(f"{cell.key}/{chunk.index}", list(chunk.ids), data)
    local = {f"{cell.key}/{chunk.index}": store.get(f"{cell.key}/{chunk.index}", list(chunk.ids))
             for cell, chunk in mine}
    merged = {k: v for part in gather(local, world) for k, v in part.items()}
    if not world.is_main:
        return {}
    return {cell.key: [merged[f"{cell.key}/{chunk.index}"] for chunk in chunks] for cell in cells}


class Progress:
    """One tqdm bar on stderr over the cost of the pairs to do: it advances by work x weight, so its ETA
    weights every unit by its cost, and shows the work itself (e.g. "1,234/9,000 purifications")."""

    def __init__(self, todo: list[tuple[Cell, Chunk]], disable: bool):
        self.total_work = sum(cell.work(chunk) for cell, chunk in todo)
        total = sum(cell.work(chunk) * cell.weight for cell, chunk in todo)
        units = {cell.unit for cell, _ in todo}
        self.unit = (next(iter(units)) if len(units) == 1 else "unit") + "s"
        self.done, self.pair_done, self.weight, self.label = 0, 0, 1.0, ""
        self.bar = tqdm(total=total, disable=disable or total == 0, file=sys.stderr, dynamic_ncols=True, smoothing=0,
                        bar_format="{desc}{percentage:3.0f}%|{bar}| [{elapsed}<{remaining}]")

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.bar.close()

    def start(self, cell: Cell, chunk: Chunk, n_chunks: int) -> None:
        self.weight, self.label = cell.weight, f"{cell.label} chunk {chunk.index + 1}/{n_chunks}"
        self.pair_done = 0
        self.tick(0)

    def finish(self, announced: int) -> None:
        """A pair is done: the bar moves to where its announced work ends (the announcement is an upper
        bound where the work depends on the data), so the ETA of the rest is not skewed by the difference; the
        count of work shown stays the work done."""
        self.bar.update(max(0, announced - self.pair_done) * self.weight)

    def tick(self, n: int = 1) -> None:
        self.done, self.pair_done = self.done + n, self.pair_done + n
        self.bar.set_description(f"{self.label}, {self.done:,}/{self.total_work:,} {self.unit}", refresh=False)
        self.bar.update(n * self.weight)
