"""Explicit noise sources for diffusion purifiers (paper Sec. 4.3, Algorithm 1; Sec. 5.1, eq. 5).

Every Gaussian draw of a purifier goes through ``source.draw(phase, t, shape, device, dtype)``;
nothing here touches the global RNG. Replay sources draw on the CPU from freshly seeded
generators, so their noise is identical on every call and on every device.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any, Protocol, Sequence, runtime_checkable

import numpy as np
import torch

PHASES = ("forward", "reverse")
_PHASE_CODE = {"forward": 1, "reverse": 0}


@runtime_checkable
class NoiseSource(Protocol):
    """Where a purifier takes its Gaussian noise from; ``replay`` says whether draws repeat."""

    replay: bool

    def draw(self, phase: str, t: int, shape: Sequence[int], device: Any, dtype: torch.dtype) -> torch.Tensor: ...

    def subset(self, index: torch.Tensor) -> "NoiseSource": ...


def _check(phase: str, t: int, shape: Sequence[int]) -> None:
    if phase not in PHASES:
        raise ValueError(f"unknown noise phase {phase!r}; expected one of {PHASES}")
    if int(t) < 0:
        raise ValueError(f"diffusion step t must be >= 0, got {t}")
    if len(shape) < 1 or shape[0] < 1:
        raise ValueError(f"noise shape must have a leading batch dimension >= 1, got {tuple(shape)}")


def _draw_dtype(dtype: torch.dtype) -> torch.dtype:
    """Half-precision noise is drawn in float32 and cast, so mixed precision sees the same numbers."""
    return dtype if dtype in (torch.float32, torch.float64) else torch.float32


def paper_seed(batch_index: int, t: int, phase: str) -> int:
    """Seed(i, t) of eq. 5: 2(1000 i + t) + 1 for the forward process, 2(1000 i + t) for the reverse."""
    if phase not in PHASES:
        raise ValueError(f"unknown noise phase {phase!r}; expected one of {PHASES}")
    if batch_index < 0 or t < 0:
        raise ValueError(f"batch_index and t must be >= 0, got {batch_index}, {t}")
    return 2 * (1000 * int(batch_index) + int(t)) + _PHASE_CODE[phase]


@lru_cache(maxsize=1 << 20)
def sample_seed(run_seed: int, sample_id: int, phase: str, t: int) -> int:
    """Well-mixed 64-bit seed for one (run, sample, phase, step), via numpy's SeedSequence."""
    words = [int(run_seed), int(sample_id), _PHASE_CODE[phase], int(t)]
    if min(words) < 0:
        raise ValueError(f"run_seed, sample_id and t must be >= 0, got {words}")
    return int(np.random.SeedSequence(words).generate_state(1, np.uint64)[0])


def _rows_from_seeds(gen: torch.Generator, seeds: list[int], phase: str, t: int, shape: Sequence[int],
                     device: Any, dtype: torch.dtype) -> torch.Tensor:
    """One row of noise per seed (row j from a generator seeded with seeds[j]): batch-invariant by design."""
    _check(phase, t, shape)
    if shape[0] != len(seeds):
        raise ValueError(f"source holds {len(seeds)} sample ids, asked for {shape[0]} rows")
    row_shape, ddt = tuple(shape[1:]), _draw_dtype(dtype)
    out = torch.empty((shape[0], *row_shape), dtype=ddt)
    for j, seed in enumerate(seeds):
        gen.manual_seed(seed)
        torch.randn(row_shape, generator=gen, dtype=ddt, out=out[j])
    return out.to(device=device, dtype=dtype)


class FreshNoise:
    """New noise on every call, from a generator the caller owns (the standard, non-replayed protocol)."""

    replay = False

    def __init__(self, generator: torch.Generator):
        if not isinstance(generator, torch.Generator):
            raise ValueError("FreshNoise needs a torch.Generator")
        self.generator = generator

    def draw(self, phase: str, t: int, shape: Sequence[int], device: Any, dtype: torch.dtype) -> torch.Tensor:
        _check(phase, t, shape)
        z = torch.randn(tuple(shape), generator=self.generator, device=self.generator.device, dtype=_draw_dtype(dtype))
        return z.to(device=device, dtype=dtype)

    def subset(self, index: torch.Tensor) -> "FreshNoise":
        """Rows of fresh noise are independent, so the restriction is the same stream."""
        return self


class BatchReplayNoise:
    """The paper's replay (eq. 5): the whole batch's draw at (phase, t) comes from Seed(i, t).

    ``subset`` cuts rows from the full-batch draw, so it needs the batch size: ``batch_size`` or,
    if not given, the batch size of the first draw (a source is then tied to that batch).
    """

    replay = True

    def __init__(self, batch_index: int, batch_size: int | None = None):
        if int(batch_index) < 0:
            raise ValueError(f"batch_index must be >= 0, got {batch_index}")
        self.batch_index = int(batch_index)
        self.batch_size = None if batch_size is None else int(batch_size)

    def seed(self, phase: str, t: int) -> int:
        return paper_seed(self.batch_index, t, phase)

    def draw(self, phase: str, t: int, shape: Sequence[int], device: Any, dtype: torch.dtype) -> torch.Tensor:
        _check(phase, t, shape)
        if self.batch_size is None:
            self.batch_size = int(shape[0])
        if shape[0] != self.batch_size:
            raise ValueError(f"batch replay source is for batches of {self.batch_size}, asked for {shape[0]} rows")
        g = torch.Generator(device="cpu").manual_seed(self.seed(phase, t))
        return torch.randn(tuple(shape), generator=g, dtype=_draw_dtype(dtype)).to(device=device, dtype=dtype)

    def subset(self, index: torch.Tensor) -> "_RowSubset":
        if self.batch_size is None:
            raise ValueError("BatchReplayNoise.subset needs the full batch size: pass batch_size=... or draw once first")
        return _RowSubset(self, torch.as_tensor(index, dtype=torch.long), self.batch_size)

    def to_dict(self) -> dict:
        return {"kind": "batch_replay", "batch_index": self.batch_index, "batch_size": self.batch_size}


class _RowSubset:
    """Rows ``index`` of a parent source whose draws are defined for the full batch."""

    def __init__(self, parent: Any, index: torch.Tensor, full_size: int):
        if index.numel() and (int(index.min()) < 0 or int(index.max()) >= full_size):
            raise ValueError(f"subset index out of range for a batch of {full_size}")
        self.parent, self.index, self.full_size = parent, index.flatten(), full_size
        self.replay = parent.replay

    def draw(self, phase: str, t: int, shape: Sequence[int], device: Any, dtype: torch.dtype) -> torch.Tensor:
        _check(phase, t, shape)
        if shape[0] != self.index.numel():
            raise ValueError(f"subset source has {self.index.numel()} rows, asked for {shape[0]}")
        full = self.parent.draw(phase, t, (self.full_size, *shape[1:]), device, dtype)
        return full[self.index.to(full.device)]

    def subset(self, index: torch.Tensor) -> "_RowSubset":
        return _RowSubset(self.parent, self.index[torch.as_tensor(index, dtype=torch.long)], self.full_size)


class SampleReplayNoise:
    """Per-sample replay: row j's noise depends only on (run_seed, sample_ids[j], phase, t).

    A sample's purification is therefore identical whatever the batch size, order or process.
    """

    replay = True

    def __init__(self, sample_ids: Sequence[int] | torch.Tensor, run_seed: int):
        ids = [int(i) for i in torch.as_tensor(sample_ids).flatten().tolist()]
        if not ids:
            raise ValueError("SampleReplayNoise needs at least one sample id")
        if min(ids) < 0 or int(run_seed) < 0:
            raise ValueError("sample ids and run_seed must be >= 0")
        self.sample_ids, self.run_seed = ids, int(run_seed)
        self._gen = torch.Generator(device="cpu")

    def draw(self, phase: str, t: int, shape: Sequence[int], device: Any, dtype: torch.dtype) -> torch.Tensor:
        _check(phase, t, shape)
        seeds = [sample_seed(self.run_seed, sid, phase, int(t)) for sid in self.sample_ids]
        return _rows_from_seeds(self._gen, seeds, phase, t, shape, device, dtype)

    def subset(self, index: torch.Tensor) -> "SampleReplayNoise":
        idx = torch.as_tensor(index, dtype=torch.long).flatten().tolist()
        return SampleReplayNoise([self.sample_ids[i] for i in idx], self.run_seed)

    def to_dict(self) -> dict:
        return {"kind": "sample_replay", "sample_ids": list(self.sample_ids), "run_seed": self.run_seed}


_MASK64 = (1 << 64) - 1


def _splitmix64(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


class SampleFreshNoise:
    """Fresh noise that is still a deterministic function of each sample: the k-th draw at (phase, t)
    of sample j uses a seed mixed from (run_seed, sample_ids[j], k, phase, t).

    Every purification gets new noise (``replay`` is False), yet a run is reproducible and a sample's
    k-th draw does not depend on the batch it is in. Subsets share the draw counters of their parent.
    """

    replay = False

    def __init__(self, sample_ids: Sequence[int] | torch.Tensor, run_seed: int, _counters: dict | None = None):
        self._ids = SampleReplayNoise(sample_ids, run_seed)       # validates ids and seed
        self.sample_ids, self.run_seed = self._ids.sample_ids, self._ids.run_seed
        self._counters = {} if _counters is None else _counters
        self._gen = torch.Generator(device="cpu")

    def draw(self, phase: str, t: int, shape: Sequence[int], device: Any, dtype: torch.dtype) -> torch.Tensor:
        _check(phase, t, shape)
        seeds = []
        for sid in self.sample_ids:
            key = (sid, phase, int(t))
            k = self._counters.get(key, 0)
            self._counters[key] = k + 1
            seeds.append(_splitmix64(sample_seed(self.run_seed, sid, phase, int(t)) ^ _splitmix64(k + 1)))
        return _rows_from_seeds(self._gen, seeds, phase, t, shape, device, dtype)

    def subset(self, index: torch.Tensor) -> "SampleFreshNoise":
        idx = torch.as_tensor(index, dtype=torch.long).flatten().tolist()
        return SampleFreshNoise([self.sample_ids[i] for i in idx], self.run_seed, _counters=self._counters)


def noise_from_dict(d: dict) -> BatchReplayNoise | SampleReplayNoise:
    """Rebuild a replay source from its ``to_dict()`` key (e.g. read back from JSON)."""
    kind = d.get("kind")
    if kind == "batch_replay":
        return BatchReplayNoise(d["batch_index"], d.get("batch_size"))
    if kind == "sample_replay":
        return SampleReplayNoise(d["sample_ids"], d["run_seed"])
    raise ValueError(f"unknown noise key kind {kind!r}; expected 'batch_replay' or 'sample_replay'")
