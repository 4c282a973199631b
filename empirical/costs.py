"""What a computation costs: wall and CPU seconds of a call, the peak memory during a block (CUDA's
allocator, else the process's resident memory sampled in a thread), and the bytes of activations autograd
would keep for a backward pass, measured without keeping them. Used by the dry run and the benchmarks."""
from __future__ import annotations

import os
import resource
import threading
import time
from typing import Callable

import torch


class PeakMemory:
    """Peak memory during a block: CUDA's max_memory_allocated, else the process RSS sampled every 5 ms
    (psutil if installed, else /proc/self/statm), else the process-wide ru_maxrss high-water mark."""

    def __init__(self, device: torch.device):
        self.device, self.peak, self._stop = device, 0, threading.Event()
        if device.type == "cuda":
            self.method = "torch.cuda.max_memory_allocated"
        elif rss() is not None:
            self.method = "process RSS sampled every 5 ms"
        else:
            self.method = "ru_maxrss (process high-water mark)"

    def _poll(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, rss() or 0)

    def __enter__(self) -> "PeakMemory":
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        elif rss() is not None:
            self.peak = rss()
            self._thread = threading.Thread(target=self._poll, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.peak = torch.cuda.max_memory_allocated(self.device)
        elif hasattr(self, "_thread"):
            self._stop.set()
            self._thread.join()
            self.peak = max(self.peak, rss() or 0)
        else:
            self.peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def rss() -> int | None:
    try:
        import psutil
        return int(psutil.Process().memory_info().rss)
    except ImportError:
        pass
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def timed(fn, device: torch.device) -> tuple[float, float]:
    """(wall seconds, process CPU seconds) of one call, synchronising CUDA around it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - wall, time.process_time() - cpu


def saved_activation_bytes(fn: Callable[[], torch.Tensor], exclude: list[torch.Tensor]) -> int:
    """Bytes of the distinct tensors autograd would keep for the backward pass of fn() (storages of
    `exclude`, e.g. the weights, not counted), measured without keeping them: each is dropped as it is saved,
    so the forward pass costs no more memory than one without autograd."""
    seen = {t.untyped_storage().data_ptr() for t in exclude}
    total = 0

    def pack(t: torch.Tensor):
        nonlocal total
        storage = t.untyped_storage()
        if storage.data_ptr() not in seen:
            seen.add(storage.data_ptr())
            total += storage.nbytes()
        return None

    def unpack(_):
        raise RuntimeError("saved_activation_bytes measures the forward pass only")

    with torch.autograd.graph.saved_tensors_hooks(pack, unpack), torch.enable_grad():
        fn()
    return total
