"""Fixed, seeded train/test splits for datasets that ship without one."""
from __future__ import annotations

import torch


def stratified_split(targets: list[int], test_fraction: float, split_seed: int) -> tuple[list[int], list[int]]:
    """Fixed seeded stratified split: ``round(n * test_fraction)`` of every class (at least one of a
    class with two or more samples) goes to test."""
    y = torch.tensor(targets)
    g = torch.Generator().manual_seed(split_seed)
    test = []
    for c in sorted(set(targets)):
        idx = (y == c).nonzero().flatten()
        idx = idx[torch.randperm(len(idx), generator=g)]
        k = round(len(idx) * test_fraction)
        if len(idx) >= 2:
            k = min(max(k, 1), len(idx) - 1)
        test += idx[:k].tolist()
    test_set = set(test)
    return [i for i in range(len(targets)) if i not in test_set], sorted(test)
