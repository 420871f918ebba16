r"""Encoders: turn a static batch ``[B, ...]`` into a spike/current sequence ``[T, B, ...]``.

**Where encoding runs.** Inside the training step, after the batch has moved to the
model's device. ``benchmarks/encoding_placement.py`` measures both placements side by
side and writes ``benchmarks/results/encoding_placement.json``. What it shows:

* encoding in the step carries T times fewer bytes from host to device per batch (the
  static batch instead of the ``[T, B, ...]`` sequence);
* on a CPU-only machine with idle cores, encoding inside DataLoader workers overlaps with
  the main process and can raise load+encode throughput. But rate/latency/delta coding
  is one broadcast or random draw per batch, a small share of a training step.

So encoding runs in the step: that wins where speed matters (GPU training,
host-to-device bandwidth), and it keeps the DataLoader's output independent of T, so
the same cached tensors serve any T. Temporal datasets (events binned into frames) skip
the encoder.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from typing import Literal

from ..errors import check
from ..registry import register


@register("encoder", "direct")
class Direct(nn.Module):
    r"""Direct (analog) input: :math:`x_t = x` for every step t (the first layer does the encoding)."""

    def __init__(self, T: int):
        super().__init__()
        self.T = T

    def forward(self, x: Tensor) -> Tensor:
        return x.unsqueeze(0).expand(self.T, *x.shape)


@register("encoder", "rate")
class Rate(nn.Module):
    r"""Rate (Bernoulli) coding: :math:`s_t \sim \mathrm{Bernoulli}(\mathrm{clip}(g\,x, 0, 1))` i.i.d. over t.

    Intensities are expected in [0, 1]; ``gain`` g scales them first. The expected
    spike count over T steps is :math:`T \cdot \mathrm{clip}(g x, 0, 1)` (the
    discrete-time Poisson approximation used by snnTorch's ``spikegen.rate``).
    """

    def __init__(self, T: int, gain: float = 1.0):
        super().__init__()
        check(gain > 0, "gain", f"must be > 0, got {gain}")
        self.T, self.gain = T, float(gain)

    def forward(self, x: Tensor) -> Tensor:
        p = (self.gain * x).clamp(0, 1)
        # s = [u < p] with u ~ U[0, 1): a Bernoulli(p) draw (exactly 0 at p = 0, 1 at p = 1); one vectorised
        # uniform draw and a compare, which on the CPU takes about 0.6x of torch.bernoulli's time
        u = torch.rand((self.T, *x.shape), dtype=p.dtype, device=p.device)
        return torch.lt(u, p).to(p.dtype)


@register("encoder", "latency")
class Latency(nn.Module):
    r"""Latency (time-to-first-spike) coding: one spike per input at :math:`t(x)`, earlier for larger x.

    ``linear``: :math:`t(x) = \mathrm{round}((T-1)(1 - x))`.
    ``log``: :math:`t(x) = \mathrm{round}(\tau \ln\frac{x}{x - \theta})`, the time an RC neuron
    driven by a constant current x needs to reach threshold :math:`\theta`
    (Gerstner & Kistler 2002). Times after T-1 are dropped.
    Inputs below ``threshold`` never spike. Intensities are expected in [0, 1].
    ``linear`` equals snnTorch's ``spikegen.latency(linear=True, normalize=True, clip=True)``;
    ``log`` equals its default (``normalize=False, clip=True``) with the same tau.
    """

    def __init__(self, T: int, mode: Literal["linear", "log"] = "linear", tau: float = 1.0, threshold: float = 0.01):
        super().__init__()
        check(0 <= threshold < 1, "threshold", f"must be in [0, 1), got {threshold}")
        check(tau > 0, "tau", f"must be > 0, got {tau}")
        self.T, self.mode, self.tau, self.threshold = T, mode, float(tau), float(threshold)

    def spike_time(self, x: Tensor) -> Tensor:
        """The (real-valued) spike time of every input; inf where it never spikes."""
        x = x.clamp(0, 1)
        if self.mode == "linear":
            t = (self.T - 1) * (1 - x)
        else:
            t = self.tau * torch.log(x / (x - self.threshold).clamp(min=1e-12))
        return torch.where(x < self.threshold, torch.full_like(t, float("inf")), t)

    def forward(self, x: Tensor) -> Tensor:
        t = torch.round(self.spike_time(x))
        steps = torch.arange(self.T, device=x.device, dtype=x.dtype).view(-1, *([1] * x.dim()))
        return (steps == t.unsqueeze(0)).to(x.dtype)


def delta_encode(x_seq: Tensor, threshold: float = 0.1, off_spike: bool = False) -> Tensor:
    r"""Temporal-contrast spikes of a sequence ``[T, ...]``: :math:`S_t = 1` where
    :math:`x_t - x_{t-1} \ge \theta` (and -1 where :math:`\le -\theta` with ``off_spike``),
    with :math:`x_{-1} = 0`. Equals snnTorch's ``spikegen.delta(padding=False)``.
    """
    prev = torch.cat([torch.zeros_like(x_seq[:1]), x_seq[:-1]])
    diff = x_seq - prev
    on = (diff >= threshold).to(x_seq.dtype)
    return on - (diff <= -threshold).to(x_seq.dtype) if off_spike else on


@register("encoder", "delta")
class Delta(nn.Module):
    r"""Delta (temporal contrast) coding: spike where the input changes by at least the threshold.

    A static image is presented from a blank screen (:math:`x_{-1} = 0`) and then held,
    so each pixel with :math:`x \ge \theta` spikes once at onset. With ``jitter`` > 0 the
    held image is shifted by a random 1-pixel saccade each step, so edges keep
    producing spikes, like an event camera watching a moving scene (Orchard et al.
    2015, N-MNIST). See :func:`delta_encode` for the rule.
    """

    def __init__(self, T: int, threshold: float = 0.1, off_spike: bool = False, jitter: int = 0):
        super().__init__()
        check(threshold > 0, "threshold", f"must be > 0, got {threshold}")
        check(jitter >= 0, "jitter", f"must be >= 0, got {jitter}")
        self.T, self.threshold, self.off_spike, self.jitter = T, float(threshold), off_spike, jitter

    def forward(self, x: Tensor) -> Tensor:
        seq = x.unsqueeze(0).expand(self.T, *x.shape)
        if self.jitter and x.dim() >= 3:
            shifts = torch.randint(-self.jitter, self.jitter + 1, (self.T, 2)).tolist()
            seq = torch.stack([torch.roll(x, (dy, dx), dims=(-2, -1)) for dy, dx in shifts])
        return delta_encode(seq, self.threshold, self.off_spike)
