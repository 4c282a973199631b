"""Sharded evaluation on torch.distributed: `torchrun --nproc_per_node K -m empirical.<table> ...`.

Chunks are dealt round-robin to ranks; with per-sample noise keys a sample's results do not depend
on which process computes it, so the gathered result set equals a single-process run.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def owns(self, chunk_index: int) -> bool:
        """Round-robin assignment of chunks to ranks."""
        return chunk_index % self.size == self.rank


def under_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_world(device: torch.device) -> World:
    """Join the process group that torchrun describes in the environment (gloo on CPU, nccl on CUDA:
    the same code path, only the backend differs)."""
    if not under_torchrun():
        return World()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return World(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def gather(obj, world: World) -> list:
    """Every rank's object, in rank order (a list of one outside torchrun)."""
    if world.size == 1:
        return [obj]
    out = [None] * world.size
    dist.all_gather_object(out, obj)
    return out


def agree(message: str | None, size: int) -> list[str]:
    """Every rank's message (None: it succeeded), in rank order and without the Nones, so that all ranks
    stop together when one cannot go on (e.g. rank 0 could not lock the results store). Outside an
    initialised process group only this process's message."""
    if size == 1 or not (dist.is_available() and dist.is_initialized()):
        return [message] if message else []
    out: list = [None] * dist.get_world_size()
    dist.all_gather_object(out, message)
    return [m for m in out if m]


def shutdown(world: World) -> None:
    if world.size > 1 and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
