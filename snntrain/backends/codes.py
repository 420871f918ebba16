r"""Compact gradient storage (``neuron.grad_storage=bf16|int8``): one code per element and step.

The lif form's backward (:mod:`snntrain.backends.lif`) keeps :math:`H_t` (fp32) under
``exact``. It only needs :math:`d_t = g'(z_t)` and :math:`S_t` from it (for subtract and
none resets, and zero with ``detach_reset``), so ``bf16`` and ``int8`` keep one code instead:

* ``bf16`` (2 bytes): :math:`d_t` rounded to nearest bf16, :math:`S_t` in the sign bit
  (:math:`g' \ge 0`). Stored error :math:`|\hat d - d| \le u\,d`, :math:`u = 2^{-8}`.
* ``int8`` (1 byte): :math:`S_t` in the top bit, :math:`q = \lfloor 127\,d/g'_{max} + \tfrac12\rfloor`
  in the low seven, :math:`\hat d = q\,g'_{max}/127`, with :math:`g'_{max}` the surrogate's
  peak (:meth:`snntrain.surrogates.Surrogate.peak`, :math:`g'(0)`). Stored error
  :math:`|\hat d - d| \le g'_{max}/254`.

The forward (spikes, membranes) is unchanged. Error of the gradients: with
:math:`\delta_t` the stored error, :math:`a_t = \partial V_t/\partial H_t`,
:math:`c_t = \partial V_t/\partial S_t` and :math:`\bar S_t` the exact gradient of the
spike, the gradient w.r.t. :math:`H` (the input's, times the constant input gain)
satisfies

.. math::
    |\hat{\bar H}_t - \bar H_t| \le E_t, \qquad
    E_t = \beta\,E_{t+1}\,(|a_t| + |c_t|\,(d_t + \delta_t)) + |\bar S_t|\,\delta_t, \quad E_{T+1} = 0,

i.e. the exact backward run on absolute values with the per-step sources
:math:`|\bar S_t|\,\delta_t`: for bf16 at most :math:`u (1+u)^T` times that
absolute-value backward of :math:`|\bar S_t|\,d_t` (a relative :math:`2^{-8}` where the
terms do not cancel), for int8 :math:`g'_{max}/254` times the same backward with
:math:`d_t` replaced by 1 in the sources (``tests/test_grad_storage.py`` checks both
against the exact path). The threshold's gradient, a sum of the same terms, gets the sum
of their errors. Not possible, and refused naming the key (``auto``: runs exact, one log
line; the rules are in :mod:`snntrain.backends.support`): a zero reset without
``detach_reset`` (its gradient needs :math:`V_{reset} - H` itself), a learnt decay (its
gradient needs the input, which the backward then keeps in fp32 anyway), the generic
form, and the ``torch`` backend. The C++ and Triton kernels write and read the same codes.
"""
from __future__ import annotations

import torch
from torch import Tensor

#: the codes' ids in the compiled kernels
STORE_IDS = {"bf16": 0, "int8": 1}


def encode(d: Tensor, s: Tensor, storage: str, gmax: float) -> Tensor:
    """One code per element: ``bf16``: :math:`g'` rounded to bf16, S in the sign bit; ``int8``: S, then 7 bits of :math:`g'`."""
    if storage == "bf16":
        return torch.where(s, -d, d).to(torch.bfloat16)
    q = (d * (127.0 / gmax) + 0.5).floor_().clamp_(0, 127) if gmax > 0 else torch.zeros_like(d)
    return q.to(torch.uint8) | (s.to(torch.uint8) << 7)


def decode(code: Tensor, storage: str, gmax: float, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """``(g'(z), S as bool)`` from :func:`encode`'s codes."""
    if storage == "bf16":
        return code.abs().to(dtype), torch.signbit(code)
    return (code & 127).to(dtype) * (gmax / 127.0), code >= 128


def code_dtype(storage: str) -> torch.dtype:
    return torch.bfloat16 if storage == "bf16" else torch.uint8


__all__ = ["encode", "decode", "code_dtype", "STORE_IDS"]
