r"""A spiking neuron and the 2x2 average pool after it, run as one pass of the C++ kernel.

In the conv stages of the VGG and CIFAR nets (``conv -> norm -> neuron -> avgpool 2x2``) the
neuron's full-size spike map exists only to be averaged. Run apart, the neuron writes that map,
the pool reads it, and in the backward ``avg_pool2d_backward`` writes a full-size gradient,
:math:`\bar S_{h,w} = \bar P_{\lfloor h/2 \rfloor, \lfloor w/2 \rfloor} / 4`, that the neuron's
reverse loop then reads. Fused, the kernel's forward averages each 2x2 window of spikes as it
fires them, :math:`P = (S_{2i,2j} + S_{2i,2j+1} + S_{2i+1,2j} + S_{2i+1,2j+1}) / 4`, and its
reverse loop reads :math:`\bar P / 4` in place of :math:`\bar S`; the full-size map and its
gradient are never written. The arithmetic is the unfused pair's (sums of 0 and 1 and divisions
by 4 are exact), so the pooled spikes and every gradient are bit for bit theirs.

:class:`snntrain.models.net.SpikingNet` asks :func:`pooled` for every neuron followed by an
``avgpool2d(2)``. The pair runs fused only where nothing could tell the difference; otherwise the
two modules run as usual:

* the neuron is of the lif form, binary (no graded spikes), on the ``fused`` backend with the C++
  engine (float32 on the CPU, a built-in surrogate, the kernel built), and records no traces;
* the pool is ``nn.AvgPool2d`` with a 2x2 window, stride 2, no padding, no ``ceil_mode`` and no
  divisor override, on maps of even height and width (width at most 1024);
* no module of the pair has hooks or a replaced ``forward`` (truncated BPTT's carry, a user's
  monitor), no global module hooks are set, autocast is off, and nothing traces or compiles.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn
from torch.nn.modules.utils import _pair

from .support import choose, form

if TYPE_CHECKING:
    from ..neurons.base import SpikingNeuron

MAX_WIDTH = 1024  # a pair of rows fits one kernel tile (2048 elements)


def _untouched(m: nn.Module) -> bool:
    """No hooks of any kind on ``m`` and its class's own ``forward``."""
    return not (m._forward_hooks or m._forward_pre_hooks or m._backward_hooks or m._backward_pre_hooks
                or "forward" in m.__dict__)


def _no_global_hooks() -> bool:
    g = torch.nn.modules.module
    return not (g._global_forward_hooks or g._global_forward_pre_hooks or g._global_backward_hooks
                or g._global_backward_pre_hooks)


def pool_width(layer: nn.Module, x_seq: Tensor) -> int:
    """W, the width of ``x_seq``'s maps, where ``layer`` is a wrapped 2x2/2 average pool they can fuse with; else 0."""
    from ..layers.synapse import SeqWrap

    pool = getattr(layer, "module", None)
    if not isinstance(layer, SeqWrap) or type(pool) is not nn.AvgPool2d or not (_untouched(layer) and _untouched(pool)):
        return 0
    if (_pair(pool.kernel_size) != (2, 2) or _pair(pool.stride) != (2, 2) or _pair(pool.padding) != (0, 0)
            or pool.ceil_mode or pool.divisor_override is not None):
        return 0
    if x_seq.dim() != 5 or x_seq.shape[-2] % 2 or x_seq.shape[-1] % 2 or not 2 <= x_seq.shape[-1] <= MAX_WIDTH:
        return 0
    return int(x_seq.shape[-1])


def pooled(neuron: "SpikingNeuron", layer: nn.Module, x_seq: Tensor) -> Tensor | None:
    """``layer(neuron(x_seq))`` as one kernel pass, or None where the pair must run as two modules (see above)."""
    if (x_seq.device.type != "cpu" or x_seq.dtype != torch.float32 or torch.is_autocast_enabled("cpu")
            or torch.jit.is_scripting() or torch.jit.is_tracing() or torch.compiler.is_compiling()):
        return None
    if not _untouched(neuron) or not _no_global_hooks() or neuron.recorder is not None or neuron._graded:
        return None
    width = pool_width(layer, x_seq)
    if not width or form(neuron) != "lif":
        return None
    backend, storage = choose(neuron, x_seq)
    if backend != "fused":
        return None
    from . import lif

    out = lif.run(neuron, x_seq, None, False, backend, storage, pool_w=width)
    return None if out is None else out[0]


__all__ = ["pooled", "pool_width", "MAX_WIDTH"]
