r"""Leaky integration without reset, computed for all time steps at once (``leaky_parallel``)."""
from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import Tensor

from ..registry import register
from .base import SpikingNeuron, Spiking, fire, quant
from .lif import DecayShape, shaped
from .synaptic import _fmt, decay_check


def decay_matrix(beta: Tensor, T: int) -> Tensor:
    """``D[t, s, k] = beta_k ** (t - s)`` for ``s <= t``, else 0; ``beta`` flattened to ``k``."""
    t = torch.arange(T, device=beta.device)
    k = (t[:, None] - t[None, :]).clamp(min=0).to(beta.dtype)  # exponents t - s
    mask = (t[:, None] >= t[None, :]).to(beta.dtype)
    return beta.reshape(1, 1, -1) ** k[:, :, None] * mask[:, :, None]


def relu_scan(beta: Tensor, x: Tensor) -> Tensor:
    r""":math:`U_t = \max(0, \beta U_{t-1} + x_t)` for all t by a parallel prefix scan (Hillis-Steele).

    Each step is the map :math:`f_t(u) = \max(c_t, a_t u + b_t)` (:math:`c=0, a=\beta, b=x_t`);
    for :math:`a \ge 0` such maps compose in closed form,
    :math:`f_g \circ f_f = \max(\max(c_g, a_g c_f + b_g),\ a_g a_f u + a_g b_f + b_g)`,
    so :math:`\lceil\log_2 T\rceil` vectorised passes give every prefix, and
    :math:`U_t = \max(c_t, b_t)` (from :math:`U_0 = 0`).
    """
    a, b, c = beta.expand_as(x), x, torch.zeros_like(x)
    d, T = 1, x.shape[0]
    while d < T:
        a2, b2, c2 = a[d:], b[d:], c[d:]
        c = torch.cat([c[:d], torch.maximum(c2, a2 * c[:-d] + b2)])
        b = torch.cat([b[:d], a2 * b[:-d] + b2])
        a = torch.cat([a[:d], a2 * a[:-d]])
        d *= 2
    return torch.maximum(c, b)


class ParallelParams(NamedTuple):
    k: Spiking
    beta: Tensor
    relu_membrane: bool


def leaky_step(p: ParallelParams, mem: Tensor, x: Tensor) -> tuple[Tensor, Tensor]:
    """One step of the recurrence: :math:`U = \\beta U + I` (clamped at 0 with relu_membrane), fire, no reset."""
    mem = p.beta * mem + x
    mem = quant(p.k, torch.relu(mem) if p.relu_membrane else mem)
    return fire(p.k, mem - p.k.threshold), mem


@register("neuron", "leaky_parallel")
class LeakyParallel(SpikingNeuron):
    r"""Parallel leaky integrator without reset: :math:`U_t = \sum_{s \le t} \beta^{t-s} I_s` (one T x T matmul), :math:`S_t = \Theta(U_t - V_{th})`.

    Without a reset the leaky membrane :math:`U_t = \beta U_{t-1} + I_t`,
    :math:`U_0 = 0`, has the closed form

    .. math::
        U_t = \sum_{s \le t} \beta^{t-s} I_s, \quad\text{i.e.}\quad
        U = D\,I, \quad D_{ts} = \begin{cases}\beta^{t-s} & s \le t\\ 0 & s > t\end{cases},
        \qquad S_t = \Theta(U_t - V_{th}),

    so ``forward`` computes every time step with one matmul of the lower-triangular
    :math:`T \times T` decay matrix :math:`D` with the input ``[T, B*...]`` (one such
    matrix per channel/neuron with ``decay_shape``, applied as a batched matmul). ``step``
    is the recurrence, and gives the same result. ``beta`` in (0, 1] (clamped to [0, 1]
    when learned, ``learn_beta``).

    ``relu_membrane=true`` clamps the membrane at zero at every step,
    :math:`U_t = \max(0, \beta U_{t-1} + I_t)`, which is snnTorch's ``LeakyParallel``: it
    runs ``nn.RNN(nonlinearity="relu")``. That recursion has no matmul form; ``forward``
    evaluates it with a parallel prefix scan in :math:`\lceil\log_2 T\rceil` passes.
    If a ``state_quant`` hook is set, ``forward`` runs step by step (the quantised
    membrane feeds back). No reset options (there is no reset); threshold,
    graded spikes and inhibition are supported. State ``mem``.

    Source: snnTorch ``LeakyParallel`` (Eshraghian et al., Proc. IEEE 2023); the
    reset-free closed form is the one used for parallel SNN training by Fang et al.,
    "Parallel Spiking Neurons with High Efficiency and Ability to Learn Long-term
    Dependencies", NeurIPS 2023.

    **Mapping to snnTorch** ``LeakyParallel(input_size, hidden_size, beta, bias,
    threshold, learn_beta, learn_threshold, graded_spikes_factor, weight_hh_enable=False)``:
    its ``rnn.weight_ih_l0`` and biases are a synapse layer (put a ``linear`` layer in
    front); its diagonal ``rnn.weight_hh_l0`` is ``beta`` with
    ``decay_shape="neuron"`` (one decay per neuron); use ``relu_membrane=true``. With
    an identity ``weight_ih_l0`` and ``bias=False`` the spikes and membrane
    (``rnn(x)[0]``) are snnTorch's. Differences on purpose: snnTorch ignores a
    per-neuron ``beta`` tensor (a bug: it keeps the random diagonal), never clamps the
    learned decay, and (``weight_hh_enable=True``) can couple neurons; here ``beta`` is a
    clamped per-neuron decay.
    """

    fixed_options = {"reset": "none", "v_reset": 0.0, "detach_reset": False, "reset_delay": False, "backend": "torch"}

    def __init__(
        self,
        beta: float = 0.5,
        learn_beta: bool = False,
        decay_shape: DecayShape = "scalar",
        relu_membrane: bool = False,
        shape: tuple[int, ...] | None = None,
        **options: Any,
    ):
        b = decay_check(beta, "beta")
        super().__init__(**options)
        self._param_or_buffer("beta", shaped(b, decay_shape, shape), learn_beta)
        self.relu_membrane = relu_membrane

    def params(self) -> ParallelParams:
        return ParallelParams(self.spiking(), self.beta.clamp(0, 1), self.relu_membrane)

    step_fn = staticmethod(leaky_step)

    def membrane(self, x_seq: Tensor) -> Tensor:
        """:math:`U` for the whole sequence ``[T, B, ...]`` at once."""
        beta = self.beta.clamp(0, 1)
        if self.relu_membrane:
            return relu_scan(beta, x_seq)
        T, B = x_seq.shape[:2]
        k = beta.numel()  # 1, C (beta [C, 1, ...]) or every neuron: leading dims of the layer shape
        x = x_seq.reshape(T, B, k, -1)
        return torch.einsum("tsk,sbkp->tbkp", decay_matrix(beta, T), x).reshape(x_seq.shape)

    def forward(self, x_seq: Tensor, return_state: bool = False):
        if self.state_quant is not None:
            return super().forward(x_seq, return_state)
        mem = self.membrane(x_seq)
        k = self.spiking()
        spikes = self.emit(fire(k, mem.flatten(0, 1) - k.threshold)).view_as(mem)
        if self.recorder is not None:
            self.recorder.update({"mem": mem})
        return (spikes, {"mem": mem}) if return_state else spikes

    def extra_repr(self) -> str:
        return f"beta={_fmt(self.beta)}, relu_membrane={self.relu_membrane}, threshold={float(self.threshold):g}"
