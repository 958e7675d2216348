"""A sampler whose order is a pure function of (seed, epoch, rank): resumable and DDP-ready."""

from __future__ import annotations

import math
from typing import Iterator

import torch
from torch.utils.data import Sampler


class EpochSampler(Sampler[int]):
    """Shuffled (or sequential) indices, sharded across ranks, resumable mid-epoch.

    Unlike ``RandomSampler`` with a shared generator, the order of epoch ``e`` depends only on
    ``(seed, e)``, so a run resumed at epoch ``e`` (even mid-epoch, via ``start``) sees exactly
    the images the uninterrupted run would have seen. With ``world_size > 1`` each rank takes
    every ``world_size``-th index of the same permutation (padded by wrapping so all ranks run
    the same number of steps, like ``DistributedSampler``).

    Args:
        length: dataset size.
        shuffle: permute each epoch.
        seed: base seed.
        rank, world_size: this process's shard.
    """

    def __init__(self, length: int, *, shuffle: bool = True, seed: int = 0, rank: int = 0, world_size: int = 1) -> None:
        self.length, self.shuffle, self.seed = length, shuffle, seed
        self.rank, self.world_size = rank, world_size
        self.epoch, self.start = 0, 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """Select the epoch's permutation; skip its first ``start`` samples of this rank."""
        self.epoch, self.start = epoch, start

    def _indices(self) -> list[int]:
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
            order = torch.randperm(self.length, generator=g).tolist()
        else:
            order = list(range(self.length))
        per_rank = math.ceil(self.length / self.world_size) if self.length else 0
        total = per_rank * self.world_size
        order += order[: total - len(order)]
        return order[self.rank:total:self.world_size]

    def __iter__(self) -> Iterator[int]:
        return iter(self._indices()[self.start:])

    def __len__(self) -> int:
        per_rank = math.ceil(self.length / self.world_size) if self.length else 0
        return max(0, per_rank - self.start)
