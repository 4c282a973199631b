"""Randomness replay for defences that draw from torch's global generators (paper Sec. 4.3, Algorithm 1).

A researcher's randomized defence (random resizing, noise injection, test-time dropout, a diffusion
purifier written with ``torch.randn``) takes its randomness from torch's global generators, not from a
noise source. ``GlobalRNGReplay`` runs such a model inside ``torch.random.fork_rng`` after seeding the
global generators from a key, so every call's draws are a deterministic function of the key while the
caller's own RNG state is left exactly as it was. Algorithm 1 stores the draws eta of the attack and
replays them at test time; here the key stands for eta: the same key gives the same draws.

Keys (``RNGKeys``) are per batch (the paper's rule, eq. 5: one seed per batch and call) or per sample
(each sample is run on its own with its own seed, so its output does not depend on the batch it is in).
Randomness the wrapper cannot control (Python's ``random``, NumPy's global RNG, a generator the model
owns) makes replayed outputs differ; ``check_replay`` detects it over ``PROBE_CALLS`` calls (so a coin with
few outcomes cannot pass by luck), names the likely source and raises ``UncontrolledRandomnessError``.
"""
from __future__ import annotations

import inspect
import math
import random
import zlib
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch

KEY_MODES = ("batch", "sample")
_SEED_BITS = 63
MISS_BOUND = 1e-6
# Calls that expose per-call randomness with k equally likely outcomes: all N calls agree with probability
# k^(1 - N) <= 2^(1 - N) for every k >= 2, and 2^(1 - 21) < 1e-6 = MISS_BOUND.
PROBE_CALLS = 1 + math.ceil(math.log2(1 / MISS_BOUND))


class UncontrolledRandomnessError(ValueError):
    """The model's output is not a function of the replay key: replay cannot be applied to it."""


def key_seed(run_seed: int, purpose: str, *parts: int) -> int:
    """A well-mixed 63-bit seed for (run seed, purpose, parts...) from numpy's SeedSequence."""
    words = [int(run_seed), zlib.crc32(purpose.encode())] + [int(p) for p in parts]
    if min(words) < 0:
        raise ValueError(f"run seed and key parts must be >= 0, got {words}")
    return int(np.random.SeedSequence(words).generate_state(1, np.uint64)[0] >> np.uint64(64 - _SEED_BITS))


class RNGKeys:
    """The seeds a ``GlobalRNGReplay`` call runs under: one per call ("batch") or one per row ("sample").

    replay=True: every call gets the same seeds (the attack's stored randomness, Algorithm 1).
    replay=False: every call gets new seeds (a counter per batch or per sample), yet a run stays
    reproducible; subsets share their parent's counters, as ``noise.SampleFreshNoise`` does.
    """

    def __init__(self, mode: str, run_seed: int, purpose: str, *, ids: Sequence[int] | torch.Tensor | None = None,
                 batch_index: int = 0, replay: bool = True, _counters: dict | None = None):
        if mode not in KEY_MODES:
            raise ValueError(f"key mode must be one of {KEY_MODES}, got {mode!r}")
        self.ids = None if ids is None else [int(i) for i in torch.as_tensor(ids).flatten().tolist()]
        if mode == "sample" and not self.ids:
            raise ValueError("per-sample keys need the sample ids")
        if int(batch_index) < 0 or int(run_seed) < 0 or (self.ids and min(self.ids) < 0):
            raise ValueError("run_seed, batch_index and sample ids must be >= 0")
        self.mode, self.run_seed, self.purpose = mode, int(run_seed), str(purpose)
        self.batch_index, self.replay = int(batch_index), bool(replay)
        self._counters = {} if _counters is None else _counters

    def _next(self, *key: int) -> int:
        if self.replay:
            return 0
        k = self._counters.get(key, 0) + 1
        self._counters[key] = k
        return k

    def call_seeds(self, rows: int) -> list[int]:
        """Seeds for one call on ``rows`` rows: [one seed] per batch, or one seed per sample."""
        if self.mode == "batch":
            if self.ids is not None and rows != len(self.ids):
                raise ValueError(f"batch keys are for {len(self.ids)} rows, called on {rows}")
            return [key_seed(self.run_seed, self.purpose, 0, self.batch_index, self._next(self.batch_index))]
        if rows != len(self.ids):
            raise ValueError(f"per-sample keys hold {len(self.ids)} sample ids, called on {rows} rows")
        return [key_seed(self.run_seed, self.purpose, 1, i, self._next(i)) for i in self.ids]

    def subset(self, index: torch.Tensor) -> "RNGKeys":
        """Keys of rows ``index``. Per-batch replay draws depend on the whole batch, so they have no subset."""
        idx = torch.as_tensor(index, dtype=torch.long).flatten().tolist()
        if self.mode == "batch":
            if self.ids is not None and idx == list(range(len(self.ids))):
                return self
            raise ValueError("per-batch keys cannot be cut to a subset of rows (the draws depend on the whole "
                             "batch); run the full batch, or use per-sample keys")
        return RNGKeys("sample", self.run_seed, self.purpose, ids=[self.ids[i] for i in idx], replay=self.replay,
                       _counters=self._counters)


def _cuda_devices() -> list[int]:
    return list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []


@contextmanager
def seeded_global_rng(seed: int) -> Iterator[None]:
    """Run a block with torch's global CPU and CUDA generators seeded from ``seed``; the caller's state
    of every generator is restored afterwards (``torch.random.fork_rng``)."""
    with torch.random.fork_rng(devices=_cuda_devices(), device_type="cuda"):
        torch.random.manual_seed(int(seed))
        yield


def _foreign_state() -> tuple:
    return random.getstate(), np.random.get_state(legacy=False)


def _foreign_moved(before: tuple, after: tuple) -> list[str]:
    moved = []
    if before[0] != after[0]:
        moved.append("Python's `random` module")
    b, a = before[1], after[1]
    if (b["state"]["pos"], b["has_gauss"], b["gauss"]) != (a["state"]["pos"], a["has_gauss"], a["gauss"]) \
            or not np.array_equal(b["state"]["key"], a["state"]["key"]):
        moved.append("NumPy's global RNG (np.random.*)")
    return moved


FIX = ("draw every random number from torch's global generators (torch.randn, torch.rand, torch.randint, "
       "torch.randn_like, torch.bernoulli, dropout) so the replay wrapper can seed them")


class GlobalRNGReplay:
    """Call a model whose randomness comes from torch's global generators under a key (Algorithm 1).

    ``model``: an ``nn.Module`` or callable mapping a [B, ...] tensor to a tensor (logits, or images for a
    purifier stage). Its train/eval mode is left as it is (dropout in train mode is randomness to replay).
    Every call also checks that Python's and NumPy's global RNGs did not move: a draw from them is
    randomness the key cannot reproduce, and raises ``UncontrolledRandomnessError`` at once. Draws made on
    CUDA come from the CUDA generators seeded with the same key: replay is exact on one device, while CPU
    and CUDA draws differ (untested here: no CUDA device was available).
    """

    def __init__(self, model: Callable[[torch.Tensor], torch.Tensor]):
        if not callable(model):
            raise ValueError(f"the model must be a torch.nn.Module or a callable, got {type(model).__name__}")
        self.model = model

    def _run(self, x: torch.Tensor, seed: int) -> torch.Tensor:
        before = _foreign_state()
        with seeded_global_rng(seed):
            try:
                out = self.model(x)
            except ValueError:
                raise
            except Exception as exc:
                raise ValueError(f"the model raised {type(exc).__name__} on a {list(x.shape)} input: {exc}") from exc
        moved = _foreign_moved(before, _foreign_state())
        if moved:
            raise UncontrolledRandomnessError(f"the model draws from {' and '.join(moved)}, which replay cannot "
                                              f"control, so its replayed outputs would differ; {FIX}")
        if not isinstance(out, torch.Tensor):
            raise ValueError(f"the model returned {type(out).__name__}, expected a torch.Tensor")
        return out

    def __call__(self, x: torch.Tensor, keys: RNGKeys) -> torch.Tensor:
        """The model's output on x with the global generators seeded from ``keys`` (rows run one by one
        for per-sample keys, so each row's draws depend only on its own key)."""
        if not isinstance(keys, RNGKeys):
            raise ValueError(f"GlobalRNGReplay needs RNGKeys, got {type(keys).__name__}")
        seeds = keys.call_seeds(x.shape[0])
        if keys.mode == "batch":
            return self._run(x, seeds[0])
        return torch.cat([self._run(x[j:j + 1], s) for j, s in enumerate(seeds)])


def identical(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Bit-identical values, NaN matching NaN (so a model returning NaN is reported for its NaN)."""
    return a.shape == b.shape and bool(torch.isclose(a, b, rtol=0, atol=0, equal_nan=True).all())


def check_replay(wrapper: GlobalRNGReplay, x: torch.Tensor, keys: RNGKeys, calls: int = PROBE_CALLS) -> torch.Tensor:
    """Run ``calls`` times under the same replay keys and require bit-identical outputs; return the output.

    A difference means randomness the key does not control: a generator object the model owns, state
    the model changes between calls (a counter, a cache), or nondeterministic kernels. With the default
    ``PROBE_CALLS`` a source with k <= 16 equally likely outcomes per call passes with probability below
    ``MISS_BOUND``; two calls would let a coin through half the time. The error names the likely source.
    """
    if not keys.replay:
        raise ValueError("check_replay needs replay keys (replay=True)")
    if int(calls) != calls or calls < 2:
        raise ValueError(f"check_replay needs calls >= 2, got {calls}")
    before = _mutable_state(wrapper.model)
    with torch.no_grad():
        first = wrapper(x, keys)
        for _ in range(int(calls) - 1):
            other = wrapper(x, keys)
            if not identical(first, other):
                diff = (first - other).abs().max().item() if first.shape == other.shape else float("nan")
                changed = [name for name, value in _mutable_state(wrapper.model).items()
                           if not _same(value, before.get(name))]
                raise UncontrolledRandomnessError(
                    f"the model's output differs between calls with the same replay key ({calls} calls, max "
                    f"difference {diff:.3g}); likely source: {_likely_source(wrapper.model, changed)}; {FIX}")
    return first


_OWNED_RNGS = (random.Random, np.random.Generator, np.random.RandomState, np.random.BitGenerator, torch.Generator)


def _objects(model: Any) -> Iterator[tuple[str, Any]]:
    """(dotted name, object) of the model and, for an nn.Module, every submodule."""
    if isinstance(model, torch.nn.Module):
        for name, module in model.named_modules():
            yield ("model" + (f".{name}" if name else "")), module
    else:
        yield "model", model


def owned_generators(model: Any) -> list[str]:
    """Random generators the model holds as attributes (``random.Random``, NumPy generators,
    ``torch.Generator``): randomness that the global-RNG replay cannot seed."""
    found = []
    for prefix, obj in _objects(model):
        for attr, value in getattr(obj, "__dict__", {}).items():
            if isinstance(value, _OWNED_RNGS):
                found.append(f"{prefix}.{attr} (a {type(value).__module__}.{type(value).__name__} the model owns)")
    return found


def _mutable_state(model: Any) -> dict[str, Any]:
    """Buffers and plain number attributes of the model's modules, copied: state a call may change."""
    out: dict[str, Any] = {}
    for prefix, obj in _objects(model):
        for attr, value in getattr(obj, "__dict__", {}).items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                out[f"{prefix}.{attr}"] = value
        if isinstance(obj, torch.nn.Module):
            for name, buf in obj.named_buffers(recurse=False):
                out[f"{prefix}.{name}"] = buf.detach().clone()
    return out


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        return identical(a, b)
    return a == b


def _likely_source(model: Any, changed: list[str]) -> str:
    owned = owned_generators(model)
    if owned:
        return ", ".join(owned)
    if changed:
        return "state the model changes between calls: " + ", ".join(changed)
    return ("none found among the model's attributes (a generator held elsewhere, a closure, or nondeterministic "
            "CUDA kernels: torch.use_deterministic_algorithms(True))")


class ReplayedDefence:
    """A global-RNG model as a purifier for ``empirical.attacks``: ``noise`` is the RNGKeys of the call.

    Used as the purifier stage of BPDA (outputs images) or, with ``torch.nn.Identity()`` as the
    classifier, as the whole model attacked through its own gradient (outputs logits).
    """

    def __init__(self, model: Callable[[torch.Tensor], torch.Tensor], stochastic: bool = True, name: str = "model"):
        self.wrapper = GlobalRNGReplay(model)
        self.stochastic, self.name = bool(stochastic), name

    def _forward(self, x: torch.Tensor, noise: RNGKeys | None) -> torch.Tensor:
        if noise is None:
            if self.stochastic:
                raise ValueError(f"{self.name} is randomized: pass RNGKeys (replay or fresh)")
            noise = RNGKeys("batch", 0, "deterministic")
        return self.wrapper(x, noise)

    def differentiable(self, x: torch.Tensor, noise: RNGKeys | None = None, *, checkpoint: bool = True) -> torch.Tensor:
        """Output with autograd (``checkpoint`` is accepted for the attacks' interface and unused)."""
        with torch.enable_grad():
            return self._forward(x, noise)

    def __call__(self, x: torch.Tensor, noise: RNGKeys | None = None) -> torch.Tensor:
        with torch.no_grad():
            return self._forward(x, noise)


class StreamReplayNoise:
    """A NoiseSource for the project's own purifiers that replays what the global generator would draw.

    Under ``GlobalRNGReplay`` a sampler written with ``torch.randn`` sees, call after call, the stream of
    a CPU generator seeded by the key. This source hands a native purifier (``DiffusionPurifier``) the
    same stream: draw after draw from a generator seeded by the same key, restarted whenever the first
    (phase, t) of a purification comes round again. Per-sample keys give row j its own stream, as the
    wrapper's one-by-one runs do. CPU draws only; used to test the wrapper against the native replay.
    """

    replay = True

    def __init__(self, keys: RNGKeys):
        if not keys.replay:
            raise ValueError("StreamReplayNoise replays: it needs replay keys")
        self.keys, self._first, self._gens = keys, None, None

    def draw(self, phase: str, t: int, shape: Sequence[int], device: Any, dtype: torch.dtype) -> torch.Tensor:
        if self._first is None:
            self._first = (phase, int(t))
        if self._gens is None or (phase, int(t)) == self._first:
            self._gens = [torch.Generator().manual_seed(s) for s in self.keys.call_seeds(int(shape[0]))]
        if self.keys.mode == "batch":
            z = torch.randn(tuple(shape), generator=self._gens[0], dtype=dtype)
        else:
            z = torch.cat([torch.randn((1, *shape[1:]), generator=g, dtype=dtype) for g in self._gens])
        return z.to(device)

    def subset(self, index: torch.Tensor) -> "StreamReplayNoise":
        return StreamReplayNoise(self.keys.subset(index))


def resolve_model(factory_or_model: Any, device: str = "cpu") -> Any:
    """The model to audit: an nn.Module, a zero-argument factory returning one (or a callable model), or a
    one-argument callable model. Modules are moved to ``device``."""
    model = factory_or_model
    if callable(model) and not isinstance(model, torch.nn.Module) and _takes_no_arguments(model):
        model = _call(model)
    if not callable(model):
        raise ValueError(f"the factory returned {type(model).__name__}, expected a torch.nn.Module mapping "
                         "[B, C, H, W] images in [0, 1] to logits [B, classes]")
    return model.to(device) if isinstance(model, torch.nn.Module) else model


def _call(factory: Callable[[], Any]) -> Any:
    try:
        return factory()
    except Exception as exc:
        raise ValueError(f"the model factory raised {type(exc).__name__}: {exc}") from exc


def _takes_no_arguments(fn: Callable) -> bool:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    return all(p.default is not p.empty or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in params)
