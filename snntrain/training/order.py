"""The order in which a run sees its training samples: a function of (seed, epoch) alone.

:class:`EpochBatches` is the DataLoader's batch sampler. Epoch ``e`` shuffles with a
generator seeded by ``seed * 1_000_003 + e``, cuts the permutation into batches and
yields them from batch ``start`` on, so a run resumed in the middle of an epoch sees
exactly the batches the uninterrupted run would have seen next. A final batch of a
single sample is dropped (it breaks batch-norm statistics).

In a data-parallel run of ``world`` processes, ``batch_size`` is the global batch and
process ``rank`` takes the ``rank``-th of its ``world`` equal slices; a last batch that
does not split evenly over the processes is dropped.
"""
from __future__ import annotations

from typing import Iterator

import torch
from torch.utils.data import Sampler


class EpochBatches(Sampler[list[int]]):
    """Shuffled batches of ``range(n)``, reproducible per epoch, resumable at any batch."""

    def __init__(self, n: int, batch_size: int, seed: int, limit: int | None = None, rank: int = 0, world: int = 1):
        self.n, self.batch_size, self.seed, self.rank, self.world = n, batch_size, seed, rank, world
        full, rest = divmod(n, batch_size)
        total = full + (1 if rest > 1 and rest % world == 0 else 0)  # a lone (or unevenly split) last batch is dropped
        self.per_epoch = total if limit is None else min(limit, total)
        self.epoch, self.start = 0, 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """The next iteration yields epoch ``epoch``'s batches ``start, start + 1, ...``."""
        self.epoch, self.start = epoch, start

    def permutation(self, epoch: int) -> torch.Tensor:
        g = torch.Generator()
        g.manual_seed(self.seed * 1_000_003 + epoch)
        return torch.randperm(self.n, generator=g)

    def __iter__(self) -> Iterator[list[int]]:
        perm = self.permutation(self.epoch)
        for b in range(self.start, self.per_epoch):
            batch = perm[b * self.batch_size: (b + 1) * self.batch_size]
            share = len(batch) // self.world
            yield batch[self.rank * share: (self.rank + 1) * share].tolist()

    def __len__(self) -> int:
        return max(self.per_epoch - self.start, 0)
