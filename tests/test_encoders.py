"""Encoders against their definitions and snnTorch's spikegen."""
from __future__ import annotations

import math

import pytest
import torch

from snntrain import build
from snntrain.data.encoders import delta_encode

T = 8


def test_direct_repeats_the_input():
    x = torch.rand(3, 1, 4, 4)
    s = build("encoder", "direct", context={"T": T})(x)
    assert s.shape == (T, 3, 1, 4, 4) and all(torch.equal(s[t], x) for t in range(T))


@pytest.mark.parametrize("p", [0.05, 0.3, 0.5, 0.9])
def test_rate_firing_probability_matches_intensity(p):
    # N Bernoulli draws: the empirical rate has std sqrt(p(1-p)/N); allow 5 standard deviations
    torch.manual_seed(0)
    x = torch.full((2500, 8), p)
    s = build("encoder", "rate", context={"T": T})(x)
    n = s.numel()
    assert set(s.unique().tolist()) <= {0.0, 1.0}
    assert abs(float(s.mean()) - p) <= 5 * math.sqrt(p * (1 - p) / n)


def test_rate_gain_and_clipping():
    torch.manual_seed(0)
    s = build("encoder", "rate", context={"T": 200}, gain=2.0)(torch.tensor([0.0, 0.2, 0.7]))
    rates = s.mean(0)
    assert rates[0] == 0 and rates[2] == 1  # 2 * 0.7 clipped to 1
    assert abs(float(rates[1]) - 0.4) <= 5 * math.sqrt(0.4 * 0.6 / 200)


def test_latency_first_spike_time_decreases_with_intensity():
    x = torch.linspace(0.02, 1.0, 50)
    enc = build("encoder", "latency", context={"T": 64})
    s = enc(x)
    assert torch.equal(s.sum(0), torch.ones(50))  # exactly one spike each
    first = s.argmax(0)
    assert (first[1:] <= first[:-1]).all() and first[0] > first[-1]
    assert first[-1] == 0  # the brightest input fires first
    below = enc(torch.tensor([0.0, 0.005]))
    assert below.sum() == 0  # under the threshold: no spike


@pytest.mark.parametrize("mode", ["linear", "log"])
def test_latency_matches_snntorch(mode):
    spikegen = pytest.importorskip("snntorch.spikegen")
    torch.manual_seed(0)
    x = torch.rand(4, 30) * 0.8 + 0.2  # log mode: keep every time inside T
    ours = build("encoder", "latency", context={"T": 10}, mode=mode, tau=2.0, threshold=0.01)(x)
    if mode == "linear":
        peer = spikegen.latency(x, num_steps=10, threshold=0.01, linear=True, normalize=True, clip=True)
    else:
        peer = spikegen.latency(x, num_steps=10, threshold=0.01, tau=2.0, clip=True)
    assert torch.equal(ours, peer)


def test_delta_spikes_only_on_changes_above_threshold():
    seq = torch.tensor([0.0, 0.05, 0.5, 0.55, 0.2, 0.2, 0.9]).view(-1, 1)
    on = delta_encode(seq, threshold=0.1).flatten().tolist()
    both = delta_encode(seq, threshold=0.1, off_spike=True).flatten().tolist()
    # changes: 0, +.05, +.45, +.05, -.35, 0, +.7
    assert on == [0, 0, 1, 0, 0, 0, 1]
    assert both == [0, 0, 1, 0, -1, 0, 1]


def test_delta_matches_snntorch():
    spikegen = pytest.importorskip("snntorch.spikegen")
    torch.manual_seed(0)
    seq = torch.rand(12, 3, 5)
    for off in (False, True):
        assert torch.equal(delta_encode(seq, 0.2, off), spikegen.delta(seq, threshold=0.2, off_spike=off))


def test_delta_encoder_on_static_images():
    x = torch.tensor([[[[0.05, 0.6], [0.0, 1.0]]]])  # [B, C, H, W]
    s = build("encoder", "delta", context={"T": 4}, threshold=0.1)(x)
    assert s[0].flatten().tolist() == [0, 1, 0, 1] and s[1:].sum() == 0  # onset only
    torch.manual_seed(1)
    moving = build("encoder", "delta", context={"T": 16}, threshold=0.1, jitter=1)(torch.rand(2, 1, 8, 8))
    assert moving[1:].abs().sum() > 0  # saccades keep edges spiking after onset
