r"""Spiking LSTM cells with a thresholded hidden state: ``slstm`` and ``sconv2dlstm``.

Both are snnTorch's cells (``SLSTM``, ``SConv2dLSTM``) with the hidden size equal to
the input size, so that they fit the neuron slot of a model (``linear -> norm ->
neuron``). The LSTM hidden state :math:`h` is the membrane ``mem`` and the cell state
:math:`c` the synaptic current ``syn``; spikes are :math:`S_t = \Theta(h_t - V_{th})`,
and a reset acts on :math:`h` only. Since :math:`h = o \odot \tanh(c) \in (-1, 1)`, the
threshold must be below 1 (snnTorch's default threshold 1.0 never fires). The default
here is 0.1: with PyTorch's initialisation :math:`|h|` rarely exceeds 0.5 at first.
The default reset is ``none``, as in snnTorch.
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple

import torch
from torch import Tensor, nn

from ..errors import check
from ..registry import register
from .base import SpikingNeuron, Spiking, quant, settle
from .synaptic import SynapticState


class LSTMParams(NamedTuple):
    k: Spiking
    cell: Callable[[Tensor, Tensor, Tensor], tuple[Tensor, Tensor]]  # (x, h, c) -> (h, c)


def lstm_step(p: LSTMParams, state: SynapticState, x: Tensor) -> tuple[Tensor, SynapticState]:
    """One spiking-LSTM step: the cell updates :math:`(h, c)`, then fire on :math:`h` and reset it (:func:`settle`)."""
    syn, mem = state
    h, syn = p.cell(x, mem, syn)
    s, mem = settle(p.k, h, None, mem)
    return s, SynapticState(quant(p.k, syn), mem)


class SpikingLSTM(SpikingNeuron):
    """Shared step: ``cell(x, h, c) -> (h, c)``, then fire on ``h`` and reset ``h``."""

    state_names = ("syn", "mem")
    option_defaults = {"threshold": 0.1, "reset": "none"}
    fixed_options = {"v_reset": 0.0}

    def __init__(self, shape: tuple[int, ...] | None, **options: Any):
        threshold = options.get("threshold", 0.1)
        check(threshold < 1, "threshold", f"must be < 1: the LSTM hidden state o*tanh(c) lies in (-1, 1), got {threshold}")
        super().__init__(**options)
        check(shape is not None, "shape", "the cell size comes from the layer shape; build the neuron inside a model")

    def cell(self, x: Tensor, h: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:  # pragma: no cover - abstract
        raise NotImplementedError

    def params(self) -> LSTMParams:
        return LSTMParams(self.spiking(), self.cell)

    step_fn = staticmethod(lstm_step)

    def init_state(self, x: Tensor) -> SynapticState:
        return SynapticState(torch.zeros_like(x), torch.zeros_like(x))


@register("neuron", "slstm")
class SLSTM(SpikingLSTM):
    r"""Spiking LSTM: :math:`c_t = f_t c_{t-1} + i_t g_t`, :math:`h_t = o_t \tanh(c_t)`, :math:`S_t = \Theta(h_t - V_{th})`.

    .. math::
        \begin{aligned}
        i_t &= \sigma(W_{ii} x_t + b_{ii} + W_{hi} h_{t-1} + b_{hi}), &
        f_t &= \sigma(W_{if} x_t + b_{if} + W_{hf} h_{t-1} + b_{hf}),\\
        g_t &= \tanh(W_{ig} x_t + b_{ig} + W_{hg} h_{t-1} + b_{hg}), &
        o_t &= \sigma(W_{io} x_t + b_{io} + W_{ho} h_{t-1} + b_{ho}),\\
        c_t &= f_t \odot c_{t-1} + i_t \odot g_t, &
        h_t &= o_t \odot \tanh(c_t), \qquad S_t = \Theta(h_t - V_{th}),
        \end{aligned}

    then :math:`h_t \leftarrow h_t - V_{th} S_t` (subtract), :math:`(1 - S_t) h_t` (zero)
    or unchanged (none, default); :math:`c` is never reset. The weights are an
    ``nn.LSTMCell(F, F, bias)`` (``lstm_cell``) for a dense layer ``(F,)``. On a layer
    ``(C, H, W)`` the same ``LSTMCell(C, C)`` runs over the channels at every position
    (weights shared across positions, i.e. a 1x1 ``sconv2dlstm``), so the size does not
    grow with the image. State ``(syn, mem)`` = :math:`(c, h)`.

    Source: snnTorch ``SLSTM`` (Eshraghian et al., Proc. IEEE 2023); LSTM: Hochreiter &
    Schmidhuber, Neural Comput. 1997.

    **Mapping to snnTorch** ``SLSTM(input_size=F, hidden_size=F, bias, threshold,
    reset_mechanism)``: copy ``lstm_cell`` across; ``reset=reset_mechanism``; for
    ``subtract``/``zero`` add ``reset_delay=True, detach_reset=True``: then
    :math:`h_t = \mathrm{LSTM}(x_t, h_{t-1}, c_{t-1}) - V_{th} R_t` or
    :math:`(1 - R_t)\,\mathrm{LSTM}(\dots)`, :math:`R_t = \Theta(h_{t-1} - V_{th})`, which
    are snnTorch's spikes, ``syn`` and ``mem``. snnTorch ignores ``inhibition`` for this
    cell; here it applies. (snnTorch's ``SLSTM`` with ``hidden_size != input_size``
    re-zeroes its state at every step, since it compares the state shape with the input
    shape; equal sizes here avoid that.)
    """

    def __init__(self, bias: bool = True, shape: tuple[int, ...] | None = None, **options: Any):
        super().__init__(shape, **options)
        self.lstm_cell = nn.LSTMCell(shape[0], shape[0], bias=bias)

    def cell(self, x: Tensor, h: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
        if x.dim() == 2:
            return self.lstm_cell(x, (h, c))
        # channels last, positions into the batch: one LSTM per position, shared weights
        to_rows = lambda t: t.movedim(1, -1).reshape(-1, t.shape[1])  # noqa: E731
        h2, c2 = self.lstm_cell(to_rows(x), (to_rows(h), to_rows(c)))
        back = lambda t: t.reshape(*x.shape[:1], *x.shape[2:], x.shape[1]).movedim(-1, 1)  # noqa: E731
        return back(h2), back(c2)


@register("neuron", "sconv2dlstm")
class SConv2dLSTM(SpikingLSTM):
    r"""Spiking conv-LSTM: gates :math:`\sigma/\tanh(W \star [x_t, h_{t-1}] + b)`, :math:`c_t = f_t c_{t-1} + i_t g_t`, :math:`h_t = o_t \tanh(c_t)`, :math:`S_t = \Theta(h_t - V_{th})`.

    .. math::
        [z_i, z_f, z_o, z_g] = W \star [x_t; h_{t-1}] + b, \quad
        i, f, o = \sigma(z_{i,f,o}), \ g = \tanh(z_g), \quad
        c_t = f \odot c_{t-1} + i \odot g, \quad h_t = o \odot \tanh(c_t),

    :math:`S_t = \Theta(h_t - V_{th})`, where :math:`\star` is a 2-d cross-correlation
    (``conv``: ``Conv2d(2C, 4C, kernel_size, padding="same", bias)``) and
    :math:`[\cdot;\cdot]` concatenates channels. Reset on :math:`h` as in ``slstm``
    (default none). A dense layer ``(F,)`` is treated as ``F`` channels of a 1x1 image
    (with a 1x1 kernel: the other taps would only ever see the zero padding).
    State ``(syn, mem)`` = :math:`(c, h)`.

    Source: snnTorch ``SConv2dLSTM``; ConvLSTM: Shi et al., "Convolutional LSTM
    Network", NeurIPS 2015.

    **Mapping to snnTorch** ``SConv2dLSTM(in_channels=C, out_channels=C, kernel_size,
    bias, threshold, reset_mechanism)`` (odd ``kernel_size``: snnTorch pads ``k // 2``,
    which is ``same`` for odd kernels): copy ``conv`` across (same gate order i, f, o, g);
    for ``subtract``/``zero`` add ``reset_delay=True, detach_reset=True``. snnTorch's
    ``max_pool``/``avg_pool`` options change the output shape and are not offered (pool
    in the model instead); snnTorch ignores ``inhibition`` here.
    """

    def __init__(self, kernel_size: int = 3, bias: bool = True, shape: tuple[int, ...] | None = None, **options: Any):
        check(kernel_size >= 1, "kernel_size", f"must be >= 1, got {kernel_size}")
        super().__init__(shape, **options)
        check(len(shape) in (1, 3), "shape", f"needs a dense (F,) or conv (C, H, W) layer, got {tuple(shape)}")
        C, k = shape[0], kernel_size if len(shape) == 3 else 1  # 1x1 image: other taps see only padding
        self.conv = nn.Conv2d(2 * C, 4 * C, k, padding="same", bias=bias)

    def cell(self, x: Tensor, h: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
        if x.dim() == 2:  # dense: F channels of a 1x1 image
            h2, c2 = self.cell(x[..., None, None], h[..., None, None], c[..., None, None])
            return h2.flatten(1), c2.flatten(1)
        z_i, z_f, z_o, z_g = self.conv(torch.cat([x, h], dim=1)).chunk(4, dim=1)
        c = torch.sigmoid(z_f) * c + torch.sigmoid(z_i) * torch.tanh(z_g)
        return torch.sigmoid(z_o) * torch.tanh(c), c
