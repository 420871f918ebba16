r"""Folding normalization into the preceding synapse for inference.

**The rule (written once, here).** A conv or linear synapse :math:`z = W * x + b` is shared by
all time steps and samples of ``[T, B, ...]``. A norm after it folds into it when, in eval
mode, the norm is one fixed affine map per output channel :math:`c`,
:math:`y_c = s_c z_c + t_c`, shared by all steps and samples; the synapse then becomes

.. math:: W'_c = s_c W_c, \qquad b'_c = s_c b_c + t_c

(:math:`b_c = 0` without a bias; the fused layer always has one) and the norm is removed.
The arithmetic is PyTorch's own (``torch.nn.utils.fusion.fuse_conv_bn_weights`` and
``fuse_linear_bn_weights``; an affine map is a BN with mean 0, variance 1 and
:math:`\epsilon = 0`), in float64, cast back to the synapse's dtype.

**Each norm declares its case** (nothing here is keyed by norm classes):

* ``fold_affine(self) -> (scale, shift)``: the per-channel :math:`(s, t)` in eval mode.
  ``bn`` and ``tdbn`` (:class:`~snntrain.norm.bn.SeqBatchNorm`):
  :math:`s = \gamma / \sqrt{\hat\sigma^2 + \epsilon}`, :math:`t = \beta - s\hat\mu` (tdBN's
  :math:`\gamma` already holds :math:`\lambda\alpha V_{th}`). Returning ``None`` means the
  identity (``none``): the norm is dropped and the synapse left as it is.
* ``cannot_fold``: a string saying why it does not fold (class attribute or property;
  ``None`` or absent when it does): ``bntt`` (statistics and scale per step), ``tebn``
  (BN then a scale :math:`p_t` per step), ``layernorm`` (per-sample statistics),
  ``neunorm`` (after the neuron, a recurrent state), a BN without running statistics.

Torch's own ``nn.BatchNorm{1,2,3}d`` cannot declare anything, so they are read as BNs.

**Finding the pairs.** :func:`fold_model` traces the model with ``torch.fx``, keeping spiking
neurons, stateful layers, sequence wrappers (:class:`~snntrain.layers.SeqWrap`), norms and
every module with no norm inside as leaves, so it sees through residual blocks and shortcuts.
A norm folds into the ``Conv1d/2d/3d`` or ``Linear`` (bare or in a ``SeqWrap``) whose output
is its only input and feeds nothing else, each called once. An ``nn.Sequential`` subclass
whose own ``forward`` cannot be traced (e.g. one checking ``x.dim()``) is read as the chain of
its children. A model fx cannot trace at all is folded by adjacency in ``nn.Sequential``
containers only, with a warning saying why. The model is never modified; the result is a
deep copy of the same class, in eval mode, with the fused synapses in place and each folded
norm removed (deleted from an ``nn.Sequential``, an ``nn.Identity`` elsewhere).

:func:`fuse_conv_bn` fuses one pair. Norms that stay raise a ``ValueError`` naming each
and why (``fold_model(..., strict=False)``: left in place with a warning).

:class:`ConvBatchNorm` is conv and BN in one module (SpikingJelly's
``ConvBatchNorm2d``, for 1d/2d/3d and ``[T, B, ...]`` sequences) whose fused weight
and bias can be read and rescaled, registered as layers ``conv_bn1d/2d/3d``.
"""
from __future__ import annotations

import copy
import inspect
import warnings
from collections import Counter, OrderedDict
from collections.abc import Callable
from typing import Any, Literal

import torch
from torch import Tensor, fx, nn
from torch.nn.modules.batchnorm import _NormBase
from torch.nn.utils.fusion import fuse_conv_bn_weights, fuse_linear_bn_weights

from ..errors import check
from ..layers.containers import is_stateful
from ..layers.synapse import SeqWrap, register_family
from ..neurons.base import SpikingNeuron
from ..registry import entry
from .bn import bn_cannot_fold, bn_fold_affine, check_bn_args

__all__ = [
    "ConvBatchNorm", "conv_bn1d", "conv_bn2d", "conv_bn3d", "fold_declaration", "fold_model", "fuse_conv_bn", "is_norm",
]

_CONVS = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
_BNS = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d, 3: nn.BatchNorm3d}
#: exact types (a subclass may change forward)
SYNAPSES = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)
#: torch's own BNs, which cannot declare fold_affine themselves
_TORCH_BNS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)

Affine = Callable[[], "tuple[Tensor, Tensor] | None"]


def is_norm(m: nn.Module) -> bool:
    """A normalization layer: one that declares how it folds (or why not), or one of torch's."""
    return hasattr(m, "fold_affine") or hasattr(m, "cannot_fold") or isinstance(m, (_NormBase, nn.LayerNorm, nn.GroupNorm))


def fold_declaration(norm: nn.Module) -> tuple[str | None, Affine | None]:
    """``(None, fold_affine)`` if ``norm`` folds into a preceding synapse, else ``(reason, None)``."""
    if type(norm) in _TORCH_BNS:
        why = bn_cannot_fold(norm)
        return (why, None) if why else (None, lambda: bn_fold_affine(norm))
    why = getattr(norm, "cannot_fold", None)
    affine = getattr(norm, "fold_affine", None)
    if why is None and affine is None:
        why = (
            f"{type(norm).__name__} does not declare how it folds (a norm defines fold_affine() -> (scale, shift), "
            f"or says why it cannot in cannot_fold)"
        )
    return (why, None) if why else (None, affine)


def _synapse(m: nn.Module) -> nn.Module | None:
    """The conv/linear inside ``m`` (bare or in a SeqWrap), or None."""
    layer = m.module if isinstance(m, SeqWrap) else m
    return layer if type(layer) in SYNAPSES else None


def _out_view(v: Tensor, weight: Tensor) -> Tensor:
    """A per-output-channel vector shaped to broadcast over a weight ``[out, in, *k]``."""
    return v.view(-1, *([1] * (weight.dim() - 1)))


def _fuse(layer: nn.Module, scale: Tensor, shift: Tensor, norm_name: str) -> nn.Module:
    """A copy of ``layer`` computing ``scale * layer(x) + shift`` per output channel, with a bias."""
    out = layer.out_features if isinstance(layer, nn.Linear) else layer.out_channels
    if scale.numel() != out:
        raise ValueError(f"fuse_conv_bn: {type(layer).__name__} has {out} outputs but {norm_name} has {scale.numel()} features")
    with torch.no_grad():
        w = layer.weight.detach().double()
        b = None if layer.bias is None else layer.bias.detach().double()
        s, t = scale.detach().double().flatten(), shift.detach().double().flatten()
        zero, one = torch.zeros_like(s), torch.ones_like(s)  # the affine map as a BN: mean 0, var 1, eps 0
        fuse = fuse_linear_bn_weights if isinstance(layer, nn.Linear) else fuse_conv_bn_weights
        weight, bias = fuse(w, b, zero, one, 0.0, s, t)
    fused = copy.deepcopy(layer)
    dtype = layer.weight.dtype
    fused.weight = nn.Parameter(weight.to(dtype), requires_grad=layer.weight.requires_grad)
    fused.bias = nn.Parameter(bias.to(dtype), requires_grad=layer.weight.requires_grad)
    return fused


def fuse_conv_bn(conv: nn.Module, bn: nn.Module) -> nn.Module:
    r"""One layer equal to ``bn(conv(x))`` with ``bn`` in eval mode.

    :math:`W' = s W` per output channel and :math:`b' = s b + t` (``b = 0`` without a
    bias), where ``(s, t) = bn.fold_affine()``; for a BN :math:`s = \gamma / \sqrt{\hat\sigma^2 + \epsilon}`,
    :math:`t = \beta - s \hat\mu`. ``conv`` is an ``nn.Conv1d/2d/3d`` or ``nn.Linear`` (or a
    :class:`SeqWrap` of one); the result is a new layer of the same type with a bias,
    computed in float64 by ``torch.nn.utils.fusion`` and cast back to the conv's dtype.
    ``bn`` is any norm that declares ``fold_affine`` (``bn``, ``tdbn``; ``none`` gives an
    unchanged copy of the layer) or a plain ``nn.BatchNorm{1,2,3}d``; running statistics
    are used whether or not it is in training mode. For ``nn.Linear`` the norm must
    normalize the linear's output features, i.e. the ``[T*B, F]`` case of a SpikingNet's dense layers.

    Raises ``ValueError`` for norms that cannot fold (their ``cannot_fold`` reason:
    ``bntt``, ``tebn``, ``layernorm``, ``neunorm``, BN without running statistics) and for other layers.
    """
    layer = _synapse(conv)
    if layer is None:
        inner = conv.module if isinstance(conv, SeqWrap) else conv
        raise ValueError(
            f"fuse_conv_bn: can fold a norm only into nn.Conv1d/2d/3d or nn.Linear, got {type(inner).__name__}"
        )
    why, affine = fold_declaration(bn)
    if why is not None:
        raise ValueError(f"fuse_conv_bn: cannot fold {type(bn).__name__} into {type(layer).__name__}: {why}.")
    fold = affine()
    return copy.deepcopy(layer) if fold is None else _fuse(layer, *fold, type(bn).__name__)


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
        why = bn_cannot_fold(self.bn)
        if why is not None:
            raise ValueError(f"ConvBatchNorm: {why}.")

    def _scale(self) -> Tensor:
        return bn_fold_affine(self.bn)[0]

    def get_fused_weight(self) -> Tensor:
        r""":math:`W_f = W \cdot \gamma / \sqrt{\hat\sigma^2 + \epsilon}` per output channel (differentiable)."""
        self._fold_check()
        w = self.conv.weight
        return w * _out_view(self._scale(), w)

    def get_fused_bias(self) -> Tensor:
        r""":math:`b_f = \beta - \hat\mu\,\gamma / \sqrt{\hat\sigma^2 + \epsilon}` (differentiable)."""
        self._fold_check()
        return bn_fold_affine(self.bn)[1]

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
#: the registered builders, also for Python use (``conv_bn2d(in_channels=3, out_channels=8)``)
conv_bn1d, conv_bn2d, conv_bn3d = (entry("layer", f"conv_bn{d}d").obj for d in (1, 2, 3))


# ------------------------------------------------------------------------ whole models


class _FoldTracer(fx.Tracer):
    """An fx tracer that stops at the modules folding is about, and sees through the rest.

    Leaves: spiking neurons, stateful layers (their ``step`` carries a state over time),
    sequence wrappers (``SeqWrap``, ``ConvBatchNorm``: one torch module on ``[T*B, ...]``),
    norms, torch's layers, and any module with no norm inside (nothing to fold there, and
    its forward need not be traceable).
    """

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        if isinstance(m, (SpikingNeuron, SeqWrap, ConvBatchNorm)) or is_stateful(m) or is_norm(m):
            return True
        if not any(is_norm(d) for d in m.modules()):
            return True
        return super().is_leaf_module(m, module_qualified_name)

    def call_module(self, m: nn.Module, forward: Callable[..., Any], args: tuple, kwargs: dict) -> Any:
        if not isinstance(m, nn.Sequential) or type(m).forward is nn.Sequential.forward:
            return super().call_module(m, forward, args, kwargs)
        nodes, stack = len(self.graph.nodes), len(self.module_stack)
        try:
            return super().call_module(m, forward, args, kwargs)
        except Exception:  # its own forward is not traceable (say, it checks x.dim()): read it as the chain
            for node in reversed(list(self.graph.nodes)[nodes:]):
                self.graph.erase_node(node)
            while len(self.module_stack) > stack:
                self.module_stack.popitem()
            return super().call_module(m, nn.Sequential.forward.__get__(m), args, kwargs)


def _trace(model: nn.Module) -> fx.Graph:
    """The fx graph of ``model`` (module calls named by their qualified names)."""
    try:
        return _FoldTracer().trace(model)
    except Exception:
        if not isinstance(model, nn.Sequential) or type(model).forward is nn.Sequential.forward:
            raise
    return _FoldTracer().trace(nn.Sequential(OrderedDict(model.named_children())))  # same modules, same names


def _describe(arg: Any, modules: dict[str, nn.Module]) -> str:
    if isinstance(arg, fx.Node):
        if arg.op == "call_module":
            return f"the output of {arg.target} ({type(modules[arg.target]).__name__})"
        if arg.op == "placeholder":
            return "the model's input"
        return f"the result of {getattr(arg.target, '__name__', arg.target)}"
    return repr(arg)


Plan = tuple[list[tuple[str, str]], list[str], dict[str, str]]


def _plan_from_graph(graph: fx.Graph, modules: dict[str, nn.Module]) -> Plan:
    """``(synapse, norm)`` pairs to fuse, identity norms to drop, and why each other foldable norm stays."""
    calls = Counter(n.target for n in graph.nodes if n.op == "call_module")
    pairs: list[tuple[str, str]] = []
    drops: list[str] = []
    why: dict[str, str] = {}
    for node in graph.nodes:
        if node.op != "call_module" or node.target in why or node.target in drops:
            continue
        norm = modules[node.target]
        if not is_norm(norm) or fold_declaration(norm)[0] is not None:
            continue
        if fold_declaration(norm)[1]() is None:
            drops.append(node.target)
            continue
        src = node.args[0] if len(node.args) == 1 and not node.kwargs else None
        if calls[node.target] > 1:
            why[node.target] = f"it is called {calls[node.target]} times; each call would need its own synapse"
        elif not (isinstance(src, fx.Node) and src.op == "call_module" and _synapse(modules[src.target]) is not None):
            why[node.target] = f"its input is {_describe(src, modules)}, not a Conv1d/2d/3d or Linear layer"
        elif len(src.users) > 1:
            others = ", ".join(
                "the model's output" if u.op == "output" else str(u.target) if u.op == "call_module"
                else getattr(u.target, "__name__", str(u.target))
                for u in src.users if u is not node
            )
            why[node.target] = f"the output of {src.target} also feeds {others}, which must not see the norm"
        elif calls[src.target] > 1:
            why[node.target] = f"{src.target} is called {calls[src.target]} times"
        else:
            pairs.append((src.target, node.target))
    for name, m in modules.items():
        if is_norm(m) and name not in calls and fold_declaration(m)[0] is None:
            why.setdefault(name, "it sits inside a module fold_model keeps whole (a neuron, stateful layer or sequence wrapper)")
    return pairs, drops, why


def _plan_from_sequentials(model: nn.Module) -> Plan:
    """The fallback: a norm folds into a synapse directly before it in an ``nn.Sequential``."""
    pairs: list[tuple[str, str]] = []
    drops: list[str] = []
    why: dict[str, str] = {}
    for prefix, seq in model.named_modules():
        if not isinstance(seq, nn.Sequential):
            continue
        prev = None
        for name, m in seq.named_children():
            qual = f"{prefix}.{name}" if prefix else name
            if is_norm(m) and fold_declaration(m)[0] is None:
                if fold_declaration(m)[1]() is None:
                    drops.append(qual)
                elif prev is not None and _synapse(prev[1]) is not None:
                    pairs.append((prev[0], qual))
                else:
                    why[qual] = "it is not directly after a conv/linear layer in an nn.Sequential"
            prev = (qual, m)
    return pairs, drops, why


def _set(root: nn.Module, qualname: str, new: nn.Module | None) -> None:
    """Put ``new`` at ``qualname``; ``None`` removes it (deleted from an nn.Sequential, nn.Identity elsewhere)."""
    parent_name, _, name = qualname.rpartition(".")
    parent = root.get_submodule(parent_name)
    if new is None and isinstance(parent, nn.Sequential):
        del parent._modules[name]
    else:
        setattr(parent, name, nn.Identity() if new is None else new)


def fold_model(model: nn.Module, strict: bool = True) -> nn.Module:
    r"""An inference copy of ``model`` with every foldable norm folded into its synapse.

    Works on any model, residual ones included: a ``torch.fx`` trace finds each
    ``Conv1d/2d/3d`` or ``Linear`` (bare or in a :class:`SeqWrap`) whose output feeds only a
    norm that declares ``fold_affine`` (``bn``, ``tdbn``, torch's BNs); the synapse becomes
    the fused layer (:func:`fuse_conv_bn`: :math:`W' = s W`, :math:`b' = s b + t`) and the
    norm is removed. ``none`` norms are dropped. Every :class:`ConvBatchNorm` becomes
    ``SeqWrap(get_fused_conv())``. A model fx cannot trace is folded by adjacency inside
    ``nn.Sequential`` containers, with a ``UserWarning`` naming why. ``model`` itself is not
    modified; the copy (same class, same names for the layers kept) is returned in eval
    mode, where it computes what ``model.eval()`` computes.

    A norm that is still there afterwards (``bntt``, ``tebn``, ``layernorm``, ``neunorm``, a
    BN without running statistics or not fed by a conv/linear alone) raises ``ValueError``
    naming the layer and why it cannot fold; with ``strict=False`` it is left in place,
    unfused, and a ``UserWarning`` says so. See the module docstring for the rule.
    """
    folded = copy.deepcopy(model).eval()
    if isinstance(folded, ConvBatchNorm) and bn_cannot_fold(folded.bn) is None:
        return SeqWrap(folded.get_fused_conv()).eval()
    for name, m in list(folded.named_modules()):
        if isinstance(m, ConvBatchNorm) and bn_cannot_fold(m.bn) is None:
            _set(folded, name, SeqWrap(m.get_fused_conv()).eval())

    modules = dict(folded.named_modules())
    pairs, drops, why = [], [], {}
    if any(is_norm(m) and fold_declaration(m)[0] is None for m in modules.values()):
        try:
            pairs, drops, why = _plan_from_graph(_trace(folded), modules)
        except Exception as e:
            warnings.warn(
                f"fold_model: torch.fx cannot trace {type(model).__name__} ({type(e).__name__}: {e}); folding only "
                f"norms directly after a conv/linear layer in an nn.Sequential.", UserWarning, stacklevel=2,
            )
            pairs, drops, why = _plan_from_sequentials(folded)
    for syn, norm_name in pairs:
        wrap, norm = modules[syn], modules[norm_name]
        fused = fuse_conv_bn(wrap, norm)
        if isinstance(wrap, SeqWrap):
            wrap.module = fused
        else:
            _set(folded, syn, fused)
        _set(folded, norm_name, None)
    for name in drops:
        _set(folded, name, None)

    left, inside = [], []
    for name, m in folded.named_modules():
        if any(name.startswith(prefix) for prefix in inside):
            continue  # the BN inside an unfoldable ConvBatchNorm, reported once below
        if isinstance(m, ConvBatchNorm):
            inside.append(name + ".")
            left.append(f"{name} (ConvBatchNorm): {bn_cannot_fold(m.bn)}")
        elif is_norm(m):
            reason = fold_declaration(m)[0] or why.get(name, "fold_model found no conv/linear feeding it")
            left.append(f"{name or type(m).__name__} ({type(m).__name__}): {reason}")
    if left:
        msg = "fold_model: these normalization layers cannot be folded into a conv:\n  " + "\n  ".join(left)
        if strict:
            raise ValueError(msg + "\nPass strict=False to keep them unfused.")
        warnings.warn(msg + "\nThey are left in place, unfused.", UserWarning, stacklevel=2)
    return folded.eval()
