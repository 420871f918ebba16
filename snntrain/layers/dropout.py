r"""Dropout for spiking sequences: one mask per sequence, shared by all T steps.

In an ANN a dropout mask is drawn per forward pass. A spiking network's forward pass
is T time steps; drawing a new mask at each step averages dropout out over the
sequence (Lee et al., 2020). Here the mask is drawn **once per forward call**, i.e.
per sequence ``[T, B, ...]``, and applied at every step; the next call (the next
sequence) draws a new one. Nothing is kept between calls, so there is nothing to
reset (SpikingJelly keeps the mask in the module until ``reset_net``).

Streaming: ``step(x, mask=None) -> (y, mask)`` draws the mask on the first step and
returns it; pass it back for the following steps of the same sequence.

``dropconnect_linear`` drops *connections* (weights) instead of units (Wan et al.,
ICML 2013), with the same per-sequence mask option (``invariant``).
"""
from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import check
from ..neurons.base import unroll
from ..registry import register


class Dropout(nn.Module):
    r"""Dropout with one mask per sequence, shared by all T steps (Lee et al., Front. Neurosci. 2020).

    Training, for a sequence :math:`x[t]`, :math:`t = 0..T-1`, each of shape ``[B, ...]``:

    .. math::
        m \sim \mathrm{Bernoulli}(1-p)^{B \times \dots}, \qquad
        y[t] = \frac{m}{1-p} \odot x[t] \quad \text{for every } t,

    with :math:`m` drawn once per forward call (per sequence, per sample and element)
    and redrawn at the next call. Evaluation: :math:`y = x`.

    Source: C. Lee, S. S. Sarwar, P. Panda, G. Srinivasan, K. Roy, "Enabling
    Spike-Based Backpropagation for Training Deep Neural Network Architectures",
    Frontiers in Neuroscience 14:119, 2020; SpikingJelly ``layer.Dropout``. The mask is
    drawn exactly as SpikingJelly draws it (``F.dropout`` of a tensor of ones shaped
    like one step), so the same RNG seed gives the same mask.
    """

    stateful = True  # step(x, mask) -> (y, mask)

    def __init__(self, p: float = 0.5):
        super().__init__()
        check(0 <= p < 1, "p", f"the drop probability must be in [0, 1), got {p}")
        self.p = float(p)

    def create_mask(self, x: Tensor) -> Tensor:
        """A scaled mask (values 0 or ``1/(1-p)``) for one step ``x`` of shape ``[B, ...]``."""
        return F.dropout(torch.ones_like(x), self.p, training=True)

    def step(self, x: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        if not self.training:
            return x, mask
        if mask is None:
            mask = self.create_mask(x)
        return x * mask, mask

    def forward(self, x_seq: Tensor) -> Tensor:
        if not self.training:
            return x_seq
        return x_seq * self.create_mask(x_seq[0])

    def extra_repr(self) -> str:
        return f"p={self.p}"


class Dropout2d(Dropout):
    r"""Channel dropout with one mask per sequence: whole channels zeroed at all T steps (Tompson et al., CVPR 2015).

    Training, for steps :math:`x[t]` of shape ``[B, C, *spatial]``:

    .. math::
        m \sim \mathrm{Bernoulli}(1-p)^{B \times C}, \qquad
        y[t]_{b,c,\dots} = \frac{m_{b,c}}{1-p}\, x[t]_{b,c,\dots} \quad \text{for every } t,

    :math:`m` drawn once per forward call (per sequence) and redrawn at the next call.
    Evaluation: :math:`y = x`. The mask has shape ``[B, C, 1, ...]`` (broadcast over the
    spatial axes); it is drawn as ``torch.nn.functional.dropout2d`` draws its noise,
    so a 4-d step ``[B, C, H, W]`` gets the same mask as SpikingJelly's ``Dropout2d``
    for the same RNG seed.

    Source: J. Tompson, R. Goroshin, A. Jain, Y. LeCun, C. Bregler, "Efficient Object
    Localization Using Convolutional Networks", CVPR 2015 (spatial dropout); the
    per-sequence mask as in ``dropout``; SpikingJelly ``layer.Dropout2d``.
    """

    def __init__(self, p: float = 0.2):
        super().__init__(p)

    def create_mask(self, x: Tensor) -> Tensor:
        if x.dim() < 2:
            raise ValueError(f"dropout2d needs steps shaped [B, C, ...], got a step of shape {tuple(x.shape)}")
        shape = (x.shape[0], x.shape[1]) + (1,) * (x.dim() - 2)
        keep = 1.0 - self.p
        return x.new_empty(shape).bernoulli_(keep).div_(keep)


register("layer", "dropout")(Dropout)
register("layer", "dropout2d")(Dropout2d)


@register("layer", "dropconnect_linear")
class DropConnectLinear(nn.Module):
    r"""DropConnect linear layer (Wan et al., ICML 2013): random weights dropped in training, Gaussian moment matching at inference.

    **Training.** Each sample :math:`b` gets its own Bernoulli masks on the weights and
    the bias (every connection kept with probability :math:`1-p`, no rescaling):

    .. math::
        u_b = (M_b \odot W)\, x_b + m_b \odot b, \qquad
        M_b \sim \mathrm{Bernoulli}(1-p)^{out \times in},\ m_b \sim \mathrm{Bernoulli}(1-p)^{out},
        \qquad y_b = a(u_b),

    with :math:`a` the ``activation`` (``none``: identity, ``relu``). With
    ``invariant=True`` (the default here) the masks are drawn once per forward call and
    shared by all T steps of the sequence, like ``dropout``; with ``invariant=False`` they
    are redrawn at every time step. (SpikingJelly's ``invariant`` means the same: keep
    the dropped weights until ``reset()``; its default is ``False``.)

    **Inference** (Algorithm 2 of the paper): :math:`u` is approximated by a Gaussian
    with the moments of the masked sum,

    .. math::
        \mu = (1-p)(W x + b), \qquad
        \sigma^2 = p(1-p)\left((W \odot W)(x \odot x) + b \odot b\right),

    and the output is the average of the activation over ``samples_num`` draws,
    :math:`y = \frac{1}{S}\sum_{s=1}^{S} a(u_s)`, :math:`u_s \sim \mathcal{N}(\mu, \sigma^2)`.
    With ``activation="none"`` the average of the draws is an estimate of :math:`\mu`,
    so :math:`\mu` is returned exactly (deterministic; SpikingJelly still samples).
    Draws use :math:`u_s = \mu + \sigma \varepsilon_s` (the same random numbers as
    SpikingJelly's ``Normal(mu, sigma).sample``), so gradients flow in eval mode too.

    Inputs are ``[T, B, ..., in_features]``; memory in training is one
    ``[B, out, in]`` mask per draw, and ``samples_num * B * ... * out`` values per
    step at inference with ``relu``.

    Source: L. Wan, M. Zeiler, S. Zhang, Y. LeCun, R. Fergus, "Regularization of Neural
    Networks using DropConnect", ICML 2013; SpikingJelly ``layer.DropConnectLinear``
    (same parameter names and initialisation, so its ``state_dict`` loads directly).

    Streaming: ``step(x, state=None) -> (y, state)``; the state is the pair of boolean
    keep-masks ``(M, m)`` (``m`` is ``None`` without bias), reused while ``invariant``.
    """

    stateful = True

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        p: float = 0.5,
        samples_num: int = 1024,
        invariant: bool = True,
        activation: Literal["none", "relu"] = "none",
    ):
        super().__init__()
        check(in_features > 0, "in_features", f"must be > 0, got {in_features}")
        check(out_features > 0, "out_features", f"must be > 0, got {out_features}")
        check(0 <= p < 1, "p", f"the drop probability must be in [0, 1), got {p}")
        check(samples_num > 0, "samples_num", f"must be > 0, got {samples_num}")
        check(activation in ("none", "relu"), "activation", f"must be 'none' or 'relu', got {activation!r}")
        self.in_features, self.out_features = in_features, out_features
        self.p, self.samples_num, self.invariant = float(p), samples_num, invariant
        self.activation = activation
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        self.bias = nn.Parameter(torch.empty(out_features)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1 / math.sqrt(self.in_features)
            nn.init.uniform_(self.bias, -bound, bound)

    def _act(self, u: Tensor) -> Tensor:
        return torch.relu(u) if self.activation == "relu" else u

    def draw(self, batch_size: int) -> tuple[Tensor, Tensor | None]:
        """Keep-masks for one draw: ``[B, out, in]`` for the weights, ``[B, out]`` for the bias (SpikingJelly's order)."""
        w = self.weight
        mask_w = torch.rand(batch_size, *w.shape, device=w.device, dtype=w.dtype) >= self.p
        mask_b = None
        if self.bias is not None:
            mask_b = torch.rand(batch_size, self.out_features, device=w.device, dtype=w.dtype) >= self.p
        return mask_w, mask_b

    def _masked(self, x: Tensor, masks: tuple[Tensor, Tensor | None], time: bool) -> Tensor:
        """``(M_b W) x_b + m_b b`` for ``x`` of shape ``[(T,) B, ..., in]``."""
        mask_w, mask_b = masks
        dropped_w = self.weight * mask_w
        lead = "t" if time else ""
        u = torch.einsum(f"{lead}b...i,boi->{lead}b...o", x, dropped_w)
        if self.bias is not None:
            b = self.bias * mask_b  # [B, out]
            extra = x.dim() - (3 if time else 2)  # axes between B and the features
            u = u + b.view(b.shape[0], *([1] * extra), b.shape[1])
        return u

    def _infer(self, x: Tensor) -> Tensor:
        mu = (1 - self.p) * F.linear(x, self.weight, self.bias)
        if self.activation == "none":
            return mu
        b2 = None if self.bias is None else self.bias.square()
        var = self.p * (1 - self.p) * F.linear(x.square(), self.weight.square(), b2)
        eps = torch.randn(self.samples_num, *mu.shape, device=mu.device, dtype=mu.dtype)
        pos = var > 0  # sqrt'(0) is infinite: take sd = 0 there without a NaN gradient
        sd = torch.where(pos, var, torch.ones_like(var)).sqrt() * pos
        samples = mu + sd * eps
        return self._act(samples).mean(0)

    def step(self, x: Tensor, state: tuple[Tensor, Tensor | None] | None = None):
        if x.dim() < 2:
            raise ValueError(f"dropconnect_linear needs steps shaped [B, ..., in_features], got {tuple(x.shape)}")
        if not self.training:
            return self._infer(x), state
        if state is None or not self.invariant:
            state = self.draw(x.shape[0])
        return self._act(self._masked(x, state, time=False)), state

    def forward(self, x_seq: Tensor) -> Tensor:
        if self.training and self.invariant:
            masks = self.draw(x_seq.shape[1])
            return self._act(self._masked(x_seq, masks, time=True))
        return unroll(self.step, x_seq)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}, "
            f"p={self.p}, samples_num={self.samples_num}, invariant={self.invariant}, activation={self.activation}"
        )
