"""The C++ kernel's large outputs (4 MiB and more) come from a pool of reused buffers.

A buffer is handed out again only when nothing else holds its storage (a spike map the caller
keeps, H saved for the backward), so reuse never changes a value anyone can see; at most eight
idle buffers are kept.
"""
from __future__ import annotations

import pytest
import torch

from snntrain.kernels.cpu import kernel

K = kernel(wait=True)
pytestmark = pytest.mark.skipif(K is None, reason="the C++ CPU kernel cannot be built here")

_, _, MIN_BYTES, MAX_IDLE = K.pool_state() if K is not None else (0, 0, 2 ** 22, 8)
T, N = 4, MIN_BYTES // 16  # MIN_BYTES per [T, N] float32 output
BETA = torch.tensor([0.5])


def forward(x):
    return K.forward(x, BETA, 0, False, 0.0, 1.0, 0, 0.0, False, x.new_empty(0), 0, -1, 0, 2.0, 0.0)


def test_held_outputs_are_never_reused_and_released_ones_are():
    x = torch.randn(T, N, generator=torch.Generator().manual_seed(0))
    h1, s1, _ = forward(x)
    kept_h, kept_s = h1.clone(), s1.clone()
    h2, s2, _ = forward(x * 2)  # h1, s1 still held: new buffers
    ptrs = {t.data_ptr() for t in (h1, s1, h2, s2)}
    assert len(ptrs) == 4
    assert torch.equal(h1, kept_h) and torch.equal(s1, kept_s)  # the second call wrote nothing of the first's
    old = {h1.data_ptr(), s1.data_ptr()}
    del h1, s1
    h3, s3, _ = forward(x)
    assert {h3.data_ptr(), s3.data_ptr()} == old  # released: handed out again
    assert torch.equal(h3, kept_h) and torch.equal(s3, kept_s)  # and fully overwritten
    # a view of an output holds its storage as well
    view = h3[1:]
    del h3, s3
    h4, s4, _ = forward(x)
    assert view.untyped_storage().data_ptr() not in (h4.data_ptr(), s4.data_ptr())


def test_at_most_eight_idle_buffers_are_kept():
    assert (MIN_BYTES, MAX_IDLE) == (4 << 20, 8)
    outs = [forward(torch.zeros(T, N + 64 * i)) for i in range(MAX_IDLE)]  # eight sizes, sixteen buffers held
    del outs
    total, n_idle, _, _ = K.pool_state()
    assert n_idle >= 2 * MAX_IDLE
    forward(torch.zeros(T, N + 64 * 99))  # a new size: idle buffers beyond eight are released before it allocates
    after, idle_after, _, _ = K.pool_state()
    assert idle_after <= MAX_IDLE + 2 and after <= MAX_IDLE + 2 < total  # (+ this call's two outputs, dropped at once)


def test_small_outputs_are_plain_allocations():
    x = torch.randn(4, N // 2)  # half the pool's least size
    before = K.pool_state()[0]
    forward(x)
    assert K.pool_state()[0] == before
