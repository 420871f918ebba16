r"""Folding batch normalization into the preceding convolution for inference.

In eval mode ``bn`` and ``tdbn`` are a fixed affine map per output channel :math:`c`,
built from the running statistics :math:`\hat\mu_c, \hat\sigma^2_c` and the learned
:math:`\gamma_c, \beta_c` (for tdBN :math:`\gamma_c = \lambda_c \alpha V_{th}` already holds
the threshold scaling, so it folds the same way):

.. math:: \mathrm{BN}(z)_c = s_c (z_c - \hat\mu_c) + \beta_c, \qquad
          s_c = \frac{\gamma_c}{\sqrt{\hat\sigma^2_c + \epsilon}}

Applied to a convolution (or linear layer) :math:`z = W * x + b` it gives one
convolution with

.. math:: W'_{c} = s_c W_{c}, \qquad b'_c = s_c (b_c - \hat\mu_c) + \beta_c

(:math:`W_c` is output channel :math:`c`'s kernel; :math:`b_c = 0` without a bias), so
``conv -> bn`` becomes one ``conv`` at inference time with no BN left. Because the
same conv runs at every time step of ``[T, B, ...]``, only norms that apply one
per-channel affine map shared by all steps and samples fold:

* ``bntt`` has running statistics and a scale per time step: the fold would need a
  different conv per step.
* ``tebn`` multiplies step :math:`t` by its own learned :math:`p_t`; :math:`p_t W'` is
  again one conv per step.
* ``layernorm`` normalizes each sample at each step with that sample's own
  statistics, which change with the input: no fixed weights reproduce it.
* ``neunorm`` sits after the neuron and subtracts a recurrent state of the spikes.

:func:`fuse_conv_bn` and :func:`fold_model` refuse these with a ``ValueError`` that
says why (``fold_model(..., strict=False)`` leaves them in place with a warning).

:class:`ConvBatchNorm` is conv and BN in one module (SpikingJelly's
``ConvBatchNorm2d``, for 1d/2d/3d and ``[T, B, ...]`` sequences) whose fused weight
and bias can be read and rescaled, registered as layers ``conv_bn1d/2d/3d``.
"""
from __future__ import annotations

import copy
import inspect
import warnings
from typing import Literal

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from ..errors import check
from ..layers.synapse import SeqWrap, register_family
from .bn import BatchNorm, check_bn_args
from .bntt import BatchNormThroughTime
from .layernorm import LayerNorm
from .neunorm import NeuNorm
from .tdbn import ThresholdDependentBatchNorm
from .tebn import TemporalEffectiveBatchNorm

__all__ = ["ConvBatchNorm", "conv_bn1d", "conv_bn2d", "conv_bn3d", "fold_model", "fuse_conv_bn"]

_CONVS = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
_BNS = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d, 3: nn.BatchNorm3d}
#: exact types (a subclass may change forward, e.g. TEBN subclasses our BN)
FOLDABLE_NORMS = (BatchNorm, ThresholdDependentBatchNorm, nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
FOLDABLE_LAYERS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)

_WHY_NOT = {
    BatchNormThroughTime: (
        "bntt keeps its own running statistics and scale for every time step t, but the conv is shared "
        "by all steps: folding would need one conv per step"
    ),
    TemporalEffectiveBatchNorm: (
        "tebn scales step t by its own learned p_t; the folded weight p_t * W' would differ per step, "
        "so it cannot become one conv shared by all steps"
    ),
    LayerNorm: (
        "layernorm normalizes every sample at every step by that sample's own mean and variance, "
        "which depend on the input: no fixed conv weights reproduce it"
    ),
    NeuNorm: (
        "neunorm acts after the neuron and subtracts a recurrent state of the spikes; it is not an "
        "affine map of the conv output"
    ),
}


def _why_not_foldable(norm: nn.Module) -> str | None:
    """``None`` if ``norm`` folds into a preceding conv, else the reason it does not."""
    if type(norm) in FOLDABLE_NORMS:
        if not norm.track_running_stats or norm.running_mean is None:
            return (
                f"{type(norm).__name__} has no running statistics (track_running_stats=False), so it "
                f"normalizes with batch statistics in eval mode too: nothing fixed to fold"
            )
        return None
    for cls, why in _WHY_NOT.items():
        if isinstance(norm, cls):
            return why
    return f"only bn and tdbn (one per-channel affine map in eval mode) fold into a conv, not {type(norm).__name__}"


def _scale_shift(bn: _BatchNorm) -> tuple[Tensor, Tensor]:
    r"""Eval-mode BN as :math:`s \odot z + t`: :math:`s = \gamma / \sqrt{\hat\sigma^2 + \epsilon}`, :math:`t = \beta - s\hat\mu`."""
    s = torch.rsqrt(bn.running_var + bn.eps)
    if bn.weight is not None:
        s = bn.weight * s
    shift = -bn.running_mean * s
    if bn.bias is not None:
        shift = bn.bias + shift
    return s, shift


def _out_view(v: Tensor, weight: Tensor) -> Tensor:
    """A per-output-channel vector shaped to broadcast over a weight ``[out, in, *k]``."""
    return v.view(-1, *([1] * (weight.dim() - 1)))


def fuse_conv_bn(conv: nn.Module, bn: nn.Module) -> nn.Module:
    r"""One layer equal to ``bn(conv(x))`` with ``bn`` in eval mode.

    :math:`W' = W \cdot \gamma / \sqrt{\hat\sigma^2 + \epsilon}` per output channel and
    :math:`b' = (b - \hat\mu)\,\gamma / \sqrt{\hat\sigma^2 + \epsilon} + \beta` (``b = 0``
    without a bias). ``conv`` is an ``nn.Conv1d/2d/3d`` or ``nn.Linear`` (or a
    :class:`SeqWrap` of one); the result is a new layer of the same type with a bias,
    computed in float64 and cast back to the conv's dtype. ``bn`` is our ``bn`` or
    ``tdbn`` (or a plain ``nn.BatchNorm{1,2,3}d``); its running statistics are used
    whether or not it is in training mode. For ``nn.Linear`` the BN must normalize the
    linear's output features, i.e. the ``[T*B, F]`` case of a SpikingNet's dense layers.

    Raises ``ValueError`` for norms that cannot fold (``bntt``, ``tebn``, ``layernorm``,
    ``neunorm``, BN without running statistics) with the reason, and for other layers.
    """
    layer = conv.module if isinstance(conv, SeqWrap) else conv
    if type(layer) not in FOLDABLE_LAYERS:
        raise ValueError(
            f"fuse_conv_bn: can fold a BN only into nn.Conv1d/2d/3d or nn.Linear, got {type(layer).__name__}"
        )
    why = _why_not_foldable(bn)
    if why is not None:
        raise ValueError(f"fuse_conv_bn: cannot fold {type(bn).__name__} into {type(layer).__name__}: {why}.")
    out = layer.out_features if isinstance(layer, nn.Linear) else layer.out_channels
    if bn.num_features != out:
        raise ValueError(f"fuse_conv_bn: {type(layer).__name__} has {out} outputs but the BN has {bn.num_features} features")
    w = layer.weight
    with torch.no_grad():
        s, shift = (v.double() for v in _scale_shift(bn))
        weight = w.double() * _out_view(s, w)
        bias = shift if layer.bias is None else layer.bias.double() * s + shift
    factory = {"device": w.device, "dtype": w.dtype}
    if isinstance(layer, nn.Linear):
        fused: nn.Module = nn.Linear(layer.in_features, layer.out_features, bias=True, **factory)
    else:
        fused = type(layer)(
            layer.in_channels, layer.out_channels, layer.kernel_size, layer.stride, layer.padding,
            layer.dilation, layer.groups, True, layer.padding_mode, **factory,
        )
    with torch.no_grad():
        fused.weight.copy_(weight)
        fused.bias.copy_(bias)
    return fused


class ConvBatchNorm(nn.Module):
    r"""``conv -> BN`` in one module (SpikingJelly's ``ConvBatchNorm2d``, for 1d/2d/3d and sequences).

    The conv has no bias (the BN shift replaces it). ``forward`` takes ``[T, B, C, ...]``
    and normalizes with statistics pooled over T·B·space like ``bn``; ``step`` takes one
    step ``[B, C, ...]``. In eval mode the module equals one conv with

    .. math:: W_f = W \cdot s, \qquad b_f = \beta - \hat\mu\, s, \qquad
              s = \gamma / \sqrt{\hat\sigma^2 + \epsilon}

    (:meth:`get_fused_weight`, :meth:`get_fused_bias`, :meth:`get_fused_conv`).
    :meth:`scale_fused_weight` and :meth:`scale_fused_bias` set :math:`W_f \leftarrow k W_f + b`
    and :math:`b_f \leftarrow k b_f + b` by changing the conv and BN, so afterwards the module
    still equals the rescaled fused conv.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, ...],
        stride: int | tuple[int, ...] = 1,
        padding: int | tuple[int, ...] | str = 0,
        dilation: int | tuple[int, ...] = 1,
        groups: int = 1,
        padding_mode: str = "zeros",
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        dims: int = 2,
    ):
        super().__init__()
        check(dims in _CONVS, "dims", f"must be 1, 2 or 3, got {dims}")
        check(in_channels >= 1, "in_channels", f"must be >= 1, got {in_channels}")
        check(out_channels >= 1, "out_channels", f"must be >= 1, got {out_channels}")
        check(groups >= 1 and in_channels % groups == 0 and out_channels % groups == 0, "groups",
              f"must divide in_channels={in_channels} and out_channels={out_channels}, got {groups}")
        check_bn_args(eps, momentum)
        self.dims = dims
        self.conv = _CONVS[dims](
            in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias=False,
            padding_mode=padding_mode,
        )
        self.bn = _BNS[dims](out_channels, eps, momentum, affine, track_running_stats)

    def step(self, x: Tensor) -> Tensor:
        """One time step ``[B, C, ...]`` (in training mode: that step's batch statistics)."""
        return self.bn(self.conv(x))

    def forward(self, x_seq: Tensor) -> Tensor:
        if x_seq.dim() != self.dims + 3:
            raise ValueError(f"conv_bn{self.dims}d expects [T, B, C, {self.dims} spatial axes], got {tuple(x_seq.shape)}")
        y = self.step(x_seq.flatten(0, 1))
        return y.view(x_seq.shape[0], x_seq.shape[1], *y.shape[1:])

    def _fold_check(self) -> None:
        why = _why_not_foldable(self.bn)
        if why is not None:
            raise ValueError(f"ConvBatchNorm: {why}.")

    def _scale(self) -> Tensor:
        return _scale_shift(self.bn)[0]

    def get_fused_weight(self) -> Tensor:
        r""":math:`W_f = W \cdot \gamma / \sqrt{\hat\sigma^2 + \epsilon}` per output channel (differentiable)."""
        self._fold_check()
        w = self.conv.weight
        return w * _out_view(self._scale(), w)

    def get_fused_bias(self) -> Tensor:
        r""":math:`b_f = \beta - \hat\mu\,\gamma / \sqrt{\hat\sigma^2 + \epsilon}` (differentiable)."""
        self._fold_check()
        return _scale_shift(self.bn)[1]

    @torch.no_grad()
    def scale_fused_weight(self, k: float | Tensor | None = None, b: float | Tensor | None = None) -> None:
        r"""Set the fused weight to :math:`k W_f + b`.

        Done on the conv: :math:`W \leftarrow k W + b / s` (so :math:`W s = k W_f + b`), which
        needs :math:`s = \gamma / \sqrt{\hat\sigma^2+\epsilon} \ne 0` when ``b`` is given.
        (SpikingJelly's code adds ``b`` to the raw conv weight, which moves the fused
        weight by :math:`b s`, not ``b``; that matches its documented rule only when
        :math:`s = 1`.)
        """
        self._fold_check()
        w = self.conv.weight
        new = w.double()
        if k is not None:
            new = new * torch.as_tensor(k, dtype=torch.float64, device=w.device)
        if b is not None:
            s = _out_view(self._scale(), w).double()
            if (s == 0).any():
                raise ValueError("scale_fused_weight: a channel has gamma = 0, so its fused weight is 0 whatever b is")
            new = new + torch.as_tensor(b, dtype=torch.float64, device=w.device) / s
        w.copy_(new)  # computed in float64, stored in the weight's dtype

    @torch.no_grad()
    def scale_fused_bias(self, k: float | Tensor | None = None, b: float | Tensor | None = None) -> None:
        r"""Set the fused bias to :math:`k b_f + b`.

        As the seed: :math:`\beta \leftarrow k\beta`, :math:`\hat\mu \leftarrow k\hat\mu`, then
        :math:`\beta \leftarrow \beta + b`. Without an affine BN (no :math:`\beta`) ``b`` goes
        into the running mean instead: :math:`\hat\mu \leftarrow \hat\mu - b / s`. This edits the
        running mean, so use it on a trained module for inference.
        """
        self._fold_check()
        bn = self.bn
        if k is not None:
            if bn.bias is not None:
                bn.bias.mul_(k)
            bn.running_mean.mul_(k)
        if b is not None:
            if bn.bias is not None:
                bn.bias.add_(b)
            else:
                s = self._scale()
                if (s == 0).any():
                    raise ValueError("scale_fused_bias: a channel has scale 0")
                bn.running_mean.sub_(torch.as_tensor(b, dtype=s.dtype, device=s.device) / s)

    def get_fused_conv(self) -> nn.Module:
        """A new ``nn.Conv{1,2,3}d`` with weight :math:`W_f` and bias :math:`b_f` (per step; wrap in SeqWrap for sequences)."""
        return fuse_conv_bn(self.conv, self.bn)


Size = int | list[int]


def _size(name: str, v: Size, low: int) -> int | tuple[int, ...]:
    vals = list(v) if isinstance(v, (list, tuple)) else [v]
    check(all(x >= low for x in vals), name, f"must be >= {low}, got {v}")
    return tuple(vals) if isinstance(v, (list, tuple)) else v


def _conv_bn(
    dims: int, in_channels, out_channels, kernel_size, stride, padding, dilation, groups, padding_mode,
    eps, momentum, affine, track_running_stats,
) -> ConvBatchNorm:
    return ConvBatchNorm(
        in_channels, out_channels, _size("kernel_size", kernel_size, 1), _size("stride", stride, 1),
        _size("padding", padding, 0), _size("dilation", dilation, 1), groups, padding_mode,
        eps, momentum, affine, track_running_stats, dims=dims,
    )


PaddingMode = Literal["zeros", "reflect", "replicate", "circular"]


register_family(
    "conv_bn{d}d", (1, 2, 3),
    [("in_channels", int, inspect.Parameter.empty), ("out_channels", int, inspect.Parameter.empty),
     ("kernel_size", Size, 3), ("stride", Size, 1), ("padding", Size, 1), ("dilation", Size, 1), ("groups", int, 1),
     ("padding_mode", PaddingMode, "zeros"), ("eps", float, 1e-5), ("momentum", float | None, 0.1),
     ("affine", bool, True), ("track_running_stats", bool, True)],
    "Conv{d}d (no bias) -> BN over T·B·space per channel (SpikingJelly's ConvBatchNorm2d for d=2), foldable into one conv.",
    lambda d, **kw: _conv_bn(d, **kw),
)


# ------------------------------------------------------------------------ whole models

_NORM_TYPES = (_BatchNorm, BatchNormThroughTime, NeuNorm, LayerNorm)


def _fold_sequential(seq: nn.Sequential) -> None:
    """Fuse every ``SeqWrap(conv|linear) -> bn|tdbn`` pair of ``seq`` in place (names kept, BN dropped)."""
    items = list(seq._modules.items())
    kept: list[tuple[str, nn.Module]] = []
    i = 0
    while i < len(items):
        name, m = items[i]
        nxt = items[i + 1][1] if i + 1 < len(items) else None
        if (
            isinstance(m, SeqWrap)
            and type(m.module) in FOLDABLE_LAYERS
            and nxt is not None
            and type(nxt) in FOLDABLE_NORMS
            and _why_not_foldable(nxt) is None
        ):
            kept.append((name, SeqWrap(fuse_conv_bn(m.module, nxt))))
            i += 2
            continue
        kept.append((name, m))
        i += 1
    seq._modules.clear()
    for name, m in kept:
        seq.add_module(name, m)


def fold_model(model: nn.Module, strict: bool = True) -> nn.Module:
    r"""An inference copy of ``model`` with every foldable BN folded into its conv.

    In every ``nn.Sequential`` (a :class:`~snntrain.models.SpikingNet` and any nested
    one), each ``SeqWrap(Conv1d/2d/3d or Linear)`` directly followed by a ``bn`` or
    ``tdbn`` layer becomes one ``SeqWrap`` of the fused conv (:func:`fuse_conv_bn`:
    :math:`W' = s W`, :math:`b' = s(b - \hat\mu) + \beta`, :math:`s = \gamma/\sqrt{\hat\sigma^2+\epsilon}`)
    and the BN is removed; the remaining layers keep their names. Every
    :class:`ConvBatchNorm` becomes ``SeqWrap(get_fused_conv())``. All other layers are
    deep-copied unchanged, ``model`` itself is not modified, and the copy is returned in
    eval mode, where it computes what ``model.eval()`` computes.

    A normalization layer that is still there afterwards (``bntt``, ``tebn``,
    ``layernorm``, ``neunorm``, a BN without running statistics or not directly after
    a conv/linear) raises ``ValueError`` naming the layer and why it cannot fold; with
    ``strict=False`` it is left in place, unfused, and a ``UserWarning`` says so.
    """
    folded = copy.deepcopy(model)
    if isinstance(folded, ConvBatchNorm) and _why_not_foldable(folded.bn) is None:
        return SeqWrap(folded.get_fused_conv()).eval()
    for parent in list(folded.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, ConvBatchNorm) and _why_not_foldable(child.bn) is None:
                setattr(parent, name, SeqWrap(child.get_fused_conv()))
    for m in list(folded.modules()):
        if isinstance(m, nn.Sequential):
            _fold_sequential(m)
    left, inside = [], []
    for name, m in folded.named_modules():
        if any(name.startswith(prefix) for prefix in inside):
            continue  # the BN inside an unfoldable ConvBatchNorm, reported once below
        if isinstance(m, ConvBatchNorm):
            inside.append(name + ".")
            left.append(f"{name} (ConvBatchNorm): {_why_not_foldable(m.bn)}")
        elif isinstance(m, _NORM_TYPES):
            why = _why_not_foldable(m) or (
                "it is not directly after a SeqWrap(conv/linear) in an nn.Sequential, so there is nothing to fold it into"
            )
            left.append(f"{name} ({type(m).__name__}): {why}")
    if left:
        msg = "fold_model: these normalization layers cannot be folded into a conv:\n  " + "\n  ".join(left)
        if strict:
            raise ValueError(msg + "\nPass strict=False to keep them unfused.")
        warnings.warn(msg + "\nThey are left in place, unfused.", UserWarning, stacklevel=2)
    return folded.eval()
