r"""Export a trained network: NIR for neuromorphic tools, ONNX and ``torch.export`` for deployment.

    snntrain-export outputs/2026-11-23/14-00-00 --format nir          # -> <run>/export/last.nir
    snntrain-export <run dir or .pt> --format onnx --out net.onnx
    snntrain-export <run dir> --format torch --checkpoint best dataset.root=/data
    snntrain-export <run dir> --hard-reset                             # subtract reset -> NIR, cost measured

Every format exports the **folded** network (:func:`snntrain.norm.fold.fold_model`: each
``bn``/``tdbn`` merged into the conv/linear before it, in eval mode). ONNX and ``torch.export``
unroll the loop over T, so a norm with its own constants per time step (``bntt``: statistics
and scale per step; ``tebn``: a scale :math:`p_t` per step) is exported as a
:class:`StepAffine` :math:`y_t = s_t x_t + b_t` of those constants. NIR has no time axis: there a
norm that cannot fold (``bntt``, ``tebn``, ``layernorm``, ``neunorm``) is an
:class:`ExportError` naming it, as are ``layernorm`` and ``neunorm`` (not affine per step) in
every format.
The exported network maps the input sequence the model itself sees (``[T, B, ...]``,
after the encoder) to its readout; the encoder is not part of it.

**NIR** (:func:`to_nir`, :func:`write_nir`; the ``nir`` package, ``pip install "snntrain[export]"``).
NIR describes neurons in continuous time; a discrete network is exchanged with a time step
``dt`` (``1e-4`` s, as snnTorch and SpikingJelly do), and an importer's Euler step
:math:`v \leftarrow v + \frac{dt}{\tau}\,(v_{leak} - v + R\,I)` must give back our step.
Our ``lif``/``plif`` charge is :math:`H = V_{reset} + \beta (V - V_{reset}) + c\,I`
(:mod:`snntrain.neurons.lif`), so, as SpikingJelly's ``export_to_nir`` maps ``LIFNode``:

.. math::
    \tau = \frac{dt}{1-\beta}, \qquad R = \begin{cases} 1 & \text{decay\_input } (c = 1-\beta) \\
    \tau/dt = \frac{1}{1-\beta} & \text{otherwise } (c = 1)\end{cases}, \qquad
    v_{leak} = v_{reset} = V_{reset}, \qquad v_{threshold} = V_{th},

(snnTorch's exporter: the same :math:`\tau` and :math:`R = \tau/dt`, with :math:`v_{leak} = 0`).
``plif`` is ``lif`` with :math:`\beta = 1 - \sigma(w)` at its trained :math:`w`. ``if`` (and a
``lif`` whose every :math:`\beta` is 1) becomes NIR ``IF`` with :math:`R = 1/dt`
(:math:`v \leftarrow v + dt\,R\,I = v + I`). Parameters are written per neuron (arrays of the
layer's shape), so ``decay_shape=channel|neuron`` exports too.

NIR neurons fire when :math:`v > v_{threshold}` and then **set** :math:`v` to
:math:`v_{reset}`: that is ``reset=zero``. A ``subtract`` (soft) reset, the default, and
``reset=none`` have no NIR form and are refused, naming the layer (SpikingJelly's exporter
refuses soft resets too; snnTorch's writes them as hard resets without a word, so the
imported network fires differently), unless the export opts in: ``--hard-reset``
(``hard_reset=True``) writes them as hard resets and **measures** what that costs
(:func:`measure_nir`): the graph is read back by a NIR importer (:func:`snntrain.nir.from_nir`)
and scored on the run's test set beside the trained model; both accuracies and the change
are printed and stored beside the file (``last.nir.json``). ``reset_delay``, ``inhibition``,
graded spikes and a state quantizer are refused. Train with ``neuron.reset=zero`` for a graph
that computes what the model computes.

Layers: ``linear`` (NIR ``Affine``/``Linear``), ``conv1d``/``conv2d`` (``Conv1d``/``Conv2d``,
zero padding), ``avgpool2d`` (``AvgPool2d``), ``flatten`` (``Flatten``), ``dropout``/
``dropout2d`` (the identity at inference, left out). Refused, naming the layer: max pooling
(NIR has only ``AvgPool2d`` and ``SumPool2d``; train with ``model.pool=avg``), 1d/3d and
adaptive pooling, ``conv3d``, transposed convolutions, ``dropconnect_linear``, ``upsample``,
every other neuron (``alif``, ``synaptic``, the recurrent and LSTM ones, ...). The network must
be a chain (``mlp``, ``vgg``, ``vgg9``, ...): residual models are refused.

**ONNX** (:func:`to_onnx`): the folded network over a whole sequence, the neurons' loop over
the T steps unrolled into the graph (no state goes in or out, so the ONNX model is the
function ``[T, B, ...] -> [T, B, classes]`` that snntrain computes; the batch axis is dynamic,
T is fixed). It uses torch's TorchScript-based exporter (``dynamo=False``), which needs
nothing beyond ``onnx``; the dynamo exporter would also need ``onnxscript``.

**torch.export** (:func:`to_torch`): the same function as an ``ExportedProgram`` with a dynamic
batch axis, saved with ``torch.export.save`` (load with ``torch.export.load(path).module()``).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Iterator

import torch
from torch import Tensor, nn

from .errors import ConfigError

FORMATS = ("nir", "onnx", "torch")
SUFFIX = {"nir": ".nir", "onnx": ".onnx", "torch": ".pt2"}
#: the time step NIR graphs are exchanged with (snnTorch's and SpikingJelly's default)
DT = 1e-4


class ExportError(ConfigError):
    """A network (or a layer of it) that the chosen format cannot express; the message names the layer."""


def _need(module: str, what: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise ExportError(
            f"{what} needs the Python package {module!r}, which is not installed. Install the export extra: "
            f"pip install \"snntrain[export]\"."
        ) from None


# ---------------------------------------------------------------- preparing the network
def folded(model: nn.Module, example: Tensor | None = None) -> nn.Module:
    """The inference copy of ``model``: norms folded, eval mode, every neuron on the plain ``torch`` loop.

    Without ``example`` every norm must fold into the synapse before it (NIR has no time
    axis). With ``example`` (an input ``[T, B, ...]``: ONNX and ``torch.export``, whose graphs
    are unrolled over T) a norm that does not fold but is, in eval mode, an affine map per
    step (``bntt``, ``tebn``) becomes a :class:`StepAffine` of per-step constants.
    """
    from .neurons.base import SpikingNeuron
    from .norm.fold import fold_model

    if example is None:
        try:
            net = fold_model(model, strict=True)
        except ValueError as err:
            listed = str(err).removeprefix("fold_model: ").replace("\nPass strict=False to keep them unfused.", "")
            raise ExportError(
                f"export folds every norm into the conv/linear before it, but {listed}\nExport a network trained with "
                f"norm=bn, tdbn or none."
            ) from None
    else:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the norms left unfolded become StepAffine just below
            net = fold_model(model, strict=False)
    for m in net.modules():
        if isinstance(m, SpikingNeuron):
            m.backend = "torch"  # a Python loop over T: what exporters trace, the reference numerics
    net = net.eval()
    if example is not None:
        per_step_constants(net, example)
    return net


class StepAffine(nn.Module):
    r"""A norm in eval mode as constants per time step: :math:`y_t = s_t \odot x_t + b_t` over ``[T, B, C, ...]``.

    ``scale`` and ``shift`` are ``[T, 1, C, ...]`` (trailing axes of size 1 where the norm is
    the same over them). ``bntt`` gives :math:`s_t = \gamma^t / \sqrt{(\sigma^t)^2 + \epsilon}`,
    :math:`b_t = -s_t \mu^t`; ``tebn`` gives :math:`s_t = p_t \gamma / \sqrt{\sigma^2 + \epsilon}`,
    :math:`b_t = p_t (\beta - \gamma \mu / \sqrt{\sigma^2 + \epsilon})`.
    """

    def __init__(self, scale: Tensor, shift: Tensor):
        super().__init__()
        self.register_buffer("scale", scale)
        self.register_buffer("shift", shift)

    def forward(self, x_seq: Tensor) -> Tensor:
        return x_seq * self.scale + self.shift

    def extra_repr(self) -> str:
        return f"T={self.scale.shape[0]}, shape={tuple(self.scale.shape[2:])}"


def _squeeze_space(t: Tensor) -> Tensor:
    """``t`` ``[T, 1, C, *space]`` with the spatial axes reduced to size 1 where it is constant along them."""
    for d in range(3, t.dim()):
        if torch.equal(t, t.narrow(d, 0, 1).expand_as(t)):
            t = t.narrow(d, 0, 1)
    return t


def per_step_constants(net: nn.Module, example: Tensor) -> None:
    """Replace, in place, every norm of ``net`` (eval mode) left after folding by its :class:`StepAffine`.

    The constants are read from the norm itself: :math:`b = N(0)`, :math:`s = N(1) - N(0)`
    per step and channel; the norm's output on the input it receives from ``example`` (and
    on a random one) must then equal :math:`s x + b`, or the norm is not affine per step
    (``layernorm``'s per-sample statistics, ``neunorm``'s state over steps) and is refused.
    A norm that is not one layer over the sequence (one a neuron applies at each step, such
    as ``mpbn`` on the membrane) is left to the exporter's trace as it is.
    """
    from .norm.fold import is_norm

    norms = {name: m for name, m in net.named_modules() if name and is_norm(m)}
    if not norms:
        return
    seen: dict[str, list[Tensor]] = {}
    hooks = [m.register_forward_hook(lambda m, i, o, n=n: seen.setdefault(n, []).append(i[0].detach()))
             for n, m in norms.items()]
    try:
        with torch.no_grad():
            net(example)
    finally:
        for h in hooks:
            h.remove()
    for name, norm in norms.items():
        calls = seen.get(name, [])
        if len(calls) != 1 or calls[0].dim() < 3 or calls[0].shape[0] != example.shape[0]:
            continue  # not a layer over the sequence (e.g. a norm a neuron applies at each step): traced as it is
        x = calls[0]
        with torch.no_grad():
            zero = torch.zeros_like(x[:, :1])
            shift = norm(zero)
            scale = norm(zero + 1) - shift
            probe = torch.randn_like(x) * (x.std() + 1) + x.mean()
            ok = all(torch.allclose(norm(v), v * scale + shift, atol=1e-5, rtol=1e-4) for v in (x, probe))
        if not ok:
            raise ExportError(
                f"export: layer {name} ({type(norm).__name__}) is neither folded into the layer before it nor an affine "
                f"map per time step and channel in eval mode, so ONNX and torch.export cannot hold it as constants. "
                f"Export a network trained with norm=bn, tdbn, tebn, bntt or none."
            )
        parent, _, leaf = name.rpartition(".")
        setattr(net.get_submodule(parent) if parent else net, leaf, StepAffine(_squeeze_space(scale), _squeeze_space(shift)))


def chain(model: nn.Module, prefix: str = "") -> Iterator[tuple[str, nn.Module]]:
    """The layers of a sequential network in order, nested ``nn.Sequential`` containers opened."""
    if not isinstance(model, nn.Sequential):
        raise ExportError(
            f"to_nir: {prefix or type(model).__name__} ({type(model).__name__}) is not a chain of layers; NIR export "
            f"covers sequential networks (mlp, vgg, vgg9, ...), not residual ones."
        )
    for name, m in model.named_children():
        full = f"{prefix}.{name}" if prefix else name
        if isinstance(m, nn.Sequential):
            yield from chain(m, full)
        else:
            yield full, m


# ---------------------------------------------------------------- NIR
def _np(t: Tensor) -> Any:
    return t.detach().cpu().double().numpy()


def _refuse(name: str, m: nn.Module, why: str) -> ExportError:
    """The error for layer ``name`` of the model (a sequence wrapper is named by the layer it wraps)."""
    from .layers.synapse import SeqWrap

    kind = type(m.module if isinstance(m, SeqWrap) else m).__name__
    return ExportError(f"to_nir: layer {name} ({kind}) cannot be exported to NIR: {why}.")


def _neuron_node(name: str, m: nn.Module, shape: tuple[int, ...], dt: float, hard_reset: bool = False) -> Any:
    """NIR ``LIF`` or ``IF`` for an ``if``/``lif``/``plif`` layer over ``shape`` (see the module docstring).

    ``hard_reset``: a ``subtract`` or ``none`` reset is written as NIR's hard reset to ``v_reset``.
    """
    import numpy as np
    import nir

    from .neurons.lif import IF, LIF
    from .neurons.plif import PLIF

    if type(m) not in (IF, LIF, PLIF):
        return None
    if m.reset != "zero" and not hard_reset:
        raise _refuse(name, m, f"reset={m.reset}, while NIR neurons set the membrane to v_reset after a spike (a hard "
                               f"reset); train with neuron.reset=zero, or export with --hard-reset (hard_reset=True), "
                               f"which writes a hard reset and measures the test accuracy that costs")
    problems = [(m.reset_delay, "reset_delay=true (snnTorch's delayed reset)"), (m.inhibition, "inhibition=true"),
                (m._graded, "graded spikes (graded_spikes_factor != 1)"), (m.state_quant is not None, "a state_quant")]
    for bad, what in problems:
        if bad:
            raise _refuse(name, m, f"it uses {what}, which NIR has no form for")
    p = m.params()
    full = lambda v: np.broadcast_to(_np(torch.as_tensor(v)), shape).copy()  # noqa: E731
    beta, v_th, v_reset = full(p.decay), full(m.threshold), full(m.v_reset)
    if np.all(beta == 1.0):
        gain = 0.0 if p.decay_input else 1.0
        return nir.IF(r=np.full(shape, gain / dt), v_threshold=v_th, v_reset=v_reset)
    if np.any(beta >= 1.0) or np.any(beta <= 0.0):
        raise _refuse(name, m, "its decays mix beta = 1 (no leak) with beta < 1, or have beta = 0; NIR's LIF needs "
                               "0 < beta < 1 in every neuron (tau = dt / (1 - beta))")
    tau = dt / (1.0 - beta)
    r = np.ones(shape) if p.decay_input else tau / dt
    return nir.LIF(tau=tau, r=r, v_leak=v_reset.copy(), v_threshold=v_th, v_reset=v_reset)


def _layer_node(name: str, m: nn.Module, in_shape: tuple[int, ...], dt: float, hard_reset: bool = False) -> Any:
    """The NIR node of one layer (``None``: the identity at inference), given its input shape without T and B."""
    import numpy as np
    import nir

    from .layers.dropout import Dropout
    from .layers.synapse import SeqWrap

    node = _neuron_node(name, m, in_shape, dt, hard_reset)
    if node is not None:
        return node
    if isinstance(m, (Dropout, nn.Identity, nn.Dropout)):
        return None
    inner = m.module if isinstance(m, SeqWrap) else m
    if type(inner) is nn.Linear:
        w = _np(inner.weight)
        return nir.Linear(weight=w) if inner.bias is None else nir.Affine(weight=w, bias=_np(inner.bias))
    if type(inner) in (nn.Conv1d, nn.Conv2d):
        if inner.padding_mode != "zeros" or isinstance(inner.padding, str):
            raise _refuse(name, m, f"padding_mode={inner.padding_mode!r}, padding={inner.padding!r}; NIR convolutions "
                                   f"take zero padding given as numbers")
        w = _np(inner.weight)
        b = _np(inner.bias) if inner.bias is not None else np.zeros(w.shape[0])
        if type(inner) is nn.Conv1d:
            return nir.Conv1d(input_shape=in_shape[-1], weight=w, stride=inner.stride[0], padding=inner.padding[0],
                              dilation=inner.dilation[0], groups=inner.groups, bias=b)
        return nir.Conv2d(input_shape=tuple(in_shape[-2:]), weight=w, stride=inner.stride, padding=inner.padding,
                          dilation=inner.dilation, groups=inner.groups, bias=b)
    if type(inner) is nn.AvgPool2d:
        if inner.ceil_mode or inner.divisor_override is not None or (inner.padding and not inner.count_include_pad):
            raise _refuse(name, m, "NIR's AvgPool2d has no ceil_mode, divisor_override or count_include_pad=False")
        pair = lambda v: np.array(v if isinstance(v, (tuple, list)) else (v, v))  # noqa: E731
        return nir.AvgPool2d(kernel_size=pair(inner.kernel_size), stride=pair(inner.stride), padding=pair(inner.padding))
    if type(inner) is nn.Flatten:
        if inner.start_dim != 1:
            raise _refuse(name, m, f"it flattens from axis {inner.start_dim}; NIR export takes Flatten(1)")
        return nir.Flatten(input_type={"input": np.array(in_shape)}, start_dim=0, end_dim=-1)
    if isinstance(inner, (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AdaptiveMaxPool2d)):
        why = "NIR has no max pooling (only AvgPool2d and SumPool2d); train with average pooling (model.pool=avg)"
    elif isinstance(m, SeqWrap) or type(inner) in (nn.Conv3d,):
        why = f"NIR has no node for {type(inner).__name__} (it takes Linear, Conv1d, Conv2d, AvgPool2d and Flatten)"
    elif hasattr(m, "step_fn") or hasattr(m, "state_names"):
        why = "NIR export takes the if, lif and plif neurons (NIR IF and LIF) only"
    else:
        why = "NIR export takes linear, conv1d, conv2d, avgpool2d, flatten, dropout and the if, lif and plif neurons"
    raise _refuse(name, m, why)


def to_nir(model: nn.Module, in_shape: tuple[int, ...], dt: float = DT, hard_reset: bool = False) -> Any:
    """The ``nir.NIRGraph`` of ``model`` (folded first) for inputs of shape ``in_shape`` (one step of one sample).

    Nodes are named after the model's layers (``affine_1``, ``lif_2``, ...) between ``input``
    and ``output``; see the module docstring for the neuron mapping and what is refused.
    ``hard_reset=True`` writes neurons with a ``subtract`` or ``none`` reset as NIR's hard
    reset (the graph then computes another function: :func:`export_run` measures its accuracy).
    """
    _need("nir", "NIR export")
    import numpy as np
    import nir

    if not dt > 0:
        raise ExportError(f"to_nir: dt must be > 0 (seconds per step), got {dt}")
    net = folded(model)
    shape = tuple(int(s) for s in in_shape)
    nodes: dict[str, Any] = {"input": nir.Input(input_type={"input": np.array(shape)})}
    edges, last = [], "input"
    x = torch.zeros(1, 1, *shape)
    with torch.no_grad():
        for name, m in chain(net):
            node = _layer_node(name, m, tuple(x.shape[2:]), dt, hard_reset)
            x = m(x)
            if node is None:
                continue
            key = f"{type(node).__name__.lower()}_{name.replace('.', '_')}"
            nodes[key] = node
            edges.append((last, key))
            last = key
    nodes["output"] = nir.Output(output_type={"output": np.array(tuple(x.shape[2:]))})
    edges.append((last, "output"))
    return nir.NIRGraph(nodes=nodes, edges=edges)


def write_nir(model: nn.Module, in_shape: tuple[int, ...], path: str | Path, dt: float = DT,
              hard_reset: bool = False) -> Path:
    """:func:`to_nir` written to ``path`` with ``nir.write`` (HDF5); returns the path."""
    import nir

    graph = to_nir(model, in_shape, dt, hard_reset)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    nir.write(str(path), graph)
    return path


# ---------------------------------------------------------------- ONNX and torch.export
def to_onnx(model: nn.Module, example: Tensor, path: str | Path, opset: int = 17) -> Path:
    """The folded ``model`` over a whole sequence ``example`` ``[T, B, ...]`` as an ONNX file (batch axis dynamic).

    Input ``input`` ``[T, B, ...]``, output ``output`` ``[T, B, classes]``; the loop over T is
    unrolled (T is fixed by ``example``). Runs in onnxruntime with snntrain's outputs.
    """
    _need("onnx", "ONNX export")
    import warnings

    net = folded(model, example)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer notes
        torch.onnx.export(net, (example,), str(path), input_names=["input"], output_names=["output"],
                          dynamic_axes={"input": {1: "batch"}, "output": {1: "batch"}}, opset_version=opset,
                          dynamo=False)
    return path


def to_torch(model: nn.Module, example: Tensor, path: str | Path) -> Path:
    """The folded ``model`` as a ``torch.export`` ExportedProgram over ``example`` ``[T, B, ...]``, saved with ``torch.export.save``.

    The batch axis is dynamic (any B >= 1); T and the sample shape are those of ``example``.
    A network torch.export cannot trace with a symbolic batch is exported for ``example``'s batch.
    """
    net = folded(model, example)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    wide = example[:, :1].expand(example.shape[0], max(2, example.shape[1]), *example.shape[2:]).contiguous()
    with torch.no_grad():
        try:  # B = 1 would be specialised; trace with B >= 2 and a symbolic batch
            program = torch.export.export(net, (wide,), dynamic_shapes=({1: torch.export.Dim("batch", min=1)},))
        except Exception:  # noqa: BLE001 - torch.export's many constraint errors: keep the static program
            program = torch.export.export(net, (example,))
    torch.export.save(program, str(path))
    return path


# ---------------------------------------------------------------- from a run
def load_network(run: str, overrides: list[str] = (), checkpoint: str = "last") -> tuple[nn.Module, tuple[int, ...], int]:  # type: ignore[assignment]
    """``(model, in_shape, T)`` of the checkpoint at ``run`` (a run directory or ``.pt``), rebuilt as ``snntrain-eval`` does."""
    from .evaluation import rebuild

    trainer, ckpt = rebuild(run, overrides, checkpoint, device="cpu")
    return trainer.model, tuple(trainer.data.in_shape), int(ckpt["config"]["T"])


def export_run(run: str, fmt: str, out: str | None = None, overrides: list[str] = (),  # type: ignore[assignment]
               checkpoint: str = "last", dt: float = DT, hard_reset: bool = False) -> Path:
    """Export the network of a run's checkpoint as ``fmt`` (``nir``, ``onnx``, ``torch``); returns the file written.

    The default ``out`` is ``<run dir>/export/<checkpoint>.<nir|onnx|pt2>`` (next to the
    checkpoint file's folder for a ``.pt``). ``hard_reset`` (NIR): write neurons whose reset
    NIR cannot express with a hard reset, then measure what that costs
    (:func:`measure_nir`, stored beside the file as ``<file>.json``).
    """
    if fmt not in FORMATS:
        raise ConfigError(f"--format: unknown format {fmt!r}; choose one of {', '.join(FORMATS)}.")
    if hard_reset and fmt != "nir":
        raise ConfigError(f"--hard-reset: applies to --format nir only (ONNX and torch.export keep every reset); "
                          f"got --format {fmt}.")
    model, in_shape, T = load_network(run, overrides, checkpoint)
    if out is None:
        p = Path(run)
        base = p if p.is_dir() else p.parent.parent if p.parent.name == "checkpoints" else p.parent
        out = str(base / "export" / f"{checkpoint if p.is_dir() else p.stem}{SUFFIX[fmt]}")
    if fmt == "nir":
        path = write_nir(model, in_shape, out, dt, hard_reset)
        if hard_reset:
            measure_nir(run, path, overrides, checkpoint, dt)
        return path
    example = torch.zeros(T, 1, *in_shape)
    return to_onnx(model, example, out) if fmt == "onnx" else to_torch(model, example, out)


def measure_nir(run: str, path: Path, overrides: list[str] = (), checkpoint: str = "last",  # type: ignore[assignment]
                dt: float = DT) -> dict[str, Any]:
    """Test accuracy of the NIR graph at ``path`` against the trained model's, on the run's test set.

    The graph is read back by a NIR importer (:func:`snntrain.nir.from_nir`, the forward-Euler
    reading of snnTorch's and SpikingJelly's importers) and scored by the trainer's own
    evaluation, as ``snntrain-eval`` scores the checkpoint. Returns and writes beside the file
    (``<file>.json``) the two accuracies, their difference and the layers whose reset the
    graph changed.
    """
    import json

    from .errors import StorageError
    from .evaluation import rebuild
    from .training.checkpoint import write_atomic
    from .neurons.base import SpikingNeuron
    from .nir import from_nir
    from .training.bptt import evaluate

    trainer, _ = rebuild(run, overrides, checkpoint, device="cpu")
    graph_net = from_nir(str(path), dt=dt, in_shape=tuple(trainer.data.in_shape))
    scores = {}
    for key, net in (("model", trainer.model), ("exported", graph_net)):
        with trainer.seeded(trainer.parts.seed):
            scores[key] = evaluate(net, trainer.test_loader(), trainer.encoder, trainer.loss_fn, trainer.device)["acc"]
    changed = [f"{name} (reset={m.reset})" for name, m in trainer.model.named_modules()
               if isinstance(m, SpikingNeuron) and m.reset != "zero"]
    report = {"file": str(path), "importer": "snntrain.nir.from_nir", "dt": dt, "hard_reset_layers": changed,
              "test_acc_model": scores["model"], "test_acc_exported": scores["exported"],
              "test_acc_change": scores["exported"] - scores["model"]}
    target = Path(f"{path}.json")
    if target.is_symlink():
        raise ExportError(f"export: {target} is a symbolic link; remove it (nothing is written through links).")
    try:
        write_atomic(target, lambda f: f.write(json.dumps(report, indent=2).encode()), "the export report", of_run=False)
    except StorageError as err:
        raise ExportError(f"export: {err}") from None
    print(f"hard reset in {len(changed)} layer(s): test accuracy {scores['model']:.4f} (trained model) -> "
          f"{scores['exported']:.4f} (NIR graph through snntrain.nir.from_nir), change "
          f"{report['test_acc_change']:+.4f}; stored in {target}")
    return report


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        prog="snntrain-export",
        description="Export the network of a snntrain checkpoint (norms folded) as NIR, ONNX or a torch.export program.",
    )
    ap.add_argument("run", help="a run directory (uses checkpoints/last.pt) or a checkpoint file")
    ap.add_argument("overrides", nargs="*", help="key=value changes to the checkpoint's config (e.g. dataset.root=/data)")
    ap.add_argument("--format", choices=FORMATS, default="nir", help="nir (default), onnx or torch (torch.export)")
    ap.add_argument("--out", default=None, help="the file to write (default: <run dir>/export/<checkpoint>.<suffix>)")
    ap.add_argument("--checkpoint", choices=["last", "best"], default="last", help="which checkpoint of a run directory")
    ap.add_argument("--dt", type=float, default=DT, help=f"NIR: seconds per time step (default {DT:g}, as snnTorch/SpikingJelly)")
    ap.add_argument("--hard-reset", action="store_true",
                    help="NIR: write a subtract (or no) reset as NIR's hard reset, and print and store (<file>.json) the "
                         "test accuracy of the exported graph against the trained model's")
    a = ap.parse_intermixed_args(argv)
    try:
        path = export_run(a.run, a.format, a.out, a.overrides, a.checkpoint, a.dt, a.hard_reset)
    except ConfigError as err:
        print(f"snntrain-export: error: {err}", file=sys.stderr)
        sys.exit(err.exit_code)
    print(path)


if __name__ == "__main__":
    main()
