r"""Export a trained network: NIR for neuromorphic tools, ONNX and ``torch.export`` for deployment.

    snntrain-export outputs/2026-11-23/14-00-00 --format nir          # -> <run>/export/last.nir
    snntrain-export <run dir or .pt> --format onnx --out net.onnx
    snntrain-export <run dir> --format torch --checkpoint best dataset.root=/data

Every format exports the **folded** network (:func:`snntrain.norm.fold.fold_model`: each
``bn``/``tdbn`` merged into the conv/linear before it, in eval mode); a norm that cannot
fold (``bntt``, ``tebn``, ``layernorm``, ``neunorm``) is an :class:`ExportError` naming it.
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
:math:`v_{reset}`: that is ``reset=zero``. A ``subtract`` (soft) reset, ``reset=none``,
``reset_delay``, ``inhibition``, graded spikes and a state quantizer have no NIR form and are
refused, naming the layer (SpikingJelly's exporter refuses soft resets too; snnTorch's writes
them as hard resets without a word, so the imported network fires differently). Train with
``neuron.reset=zero`` to export to NIR.

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

**torch.export** (:func:`to_torch`): the same function as an ``ExportedProgram``, saved with
``torch.export.save`` (load with ``torch.export.load(path).module()``).
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
def folded(model: nn.Module) -> nn.Module:
    """The inference copy of ``model``: norms folded, eval mode, every neuron on the plain ``torch`` loop."""
    from .neurons.base import SpikingNeuron
    from .norm.fold import fold_model

    try:
        net = fold_model(model, strict=True)
    except ValueError as err:
        listed = str(err).removeprefix("fold_model: ").replace("\nPass strict=False to keep them unfused.", "")
        raise ExportError(
            f"export folds every norm into the conv/linear before it, but {listed}\nExport a network trained with "
            f"norm=bn, tdbn or none."
        ) from None
    for m in net.modules():
        if isinstance(m, SpikingNeuron):
            m.backend = "torch"  # a Python loop over T: what exporters trace, the reference numerics
    return net.eval()


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


def _neuron_node(name: str, m: nn.Module, shape: tuple[int, ...], dt: float) -> Any:
    """NIR ``LIF`` or ``IF`` for an ``if``/``lif``/``plif`` layer over ``shape`` (see the module docstring)."""
    import numpy as np
    import nir

    from .neurons.lif import IF, LIF
    from .neurons.plif import PLIF

    if type(m) not in (IF, LIF, PLIF):
        return None
    if m.reset != "zero":
        raise _refuse(name, m, f"reset={m.reset}, while NIR neurons set the membrane to v_reset after a spike (a hard "
                               f"reset); train with neuron.reset=zero")
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


def _layer_node(name: str, m: nn.Module, in_shape: tuple[int, ...], dt: float) -> Any:
    """The NIR node of one layer (``None``: the identity at inference), given its input shape without T and B."""
    import numpy as np
    import nir

    from .layers.dropout import Dropout
    from .layers.synapse import SeqWrap

    node = _neuron_node(name, m, in_shape, dt)
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


def to_nir(model: nn.Module, in_shape: tuple[int, ...], dt: float = DT) -> Any:
    """The ``nir.NIRGraph`` of ``model`` (folded first) for inputs of shape ``in_shape`` (one step of one sample).

    Nodes are named after the model's layers (``affine_1``, ``lif_2``, ...) between ``input``
    and ``output``; see the module docstring for the neuron mapping and what is refused.
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
            node = _layer_node(name, m, tuple(x.shape[2:]), dt)
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


def write_nir(model: nn.Module, in_shape: tuple[int, ...], path: str | Path, dt: float = DT) -> Path:
    """:func:`to_nir` written to ``path`` with ``nir.write`` (HDF5); returns the path."""
    import nir

    graph = to_nir(model, in_shape, dt)
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

    net = folded(model)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer notes
        torch.onnx.export(net, (example,), str(path), input_names=["input"], output_names=["output"],
                          dynamic_axes={"input": {1: "batch"}, "output": {1: "batch"}}, opset_version=opset,
                          dynamo=False)
    return path


def to_torch(model: nn.Module, example: Tensor, path: str | Path) -> Path:
    """The folded ``model`` as a ``torch.export`` ExportedProgram over ``example`` ``[T, B, ...]``, saved with ``torch.export.save``."""
    net = folded(model)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
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
               checkpoint: str = "last", dt: float = DT) -> Path:
    """Export the network of a run's checkpoint as ``fmt`` (``nir``, ``onnx``, ``torch``); returns the file written.

    The default ``out`` is ``<run dir>/export/<checkpoint>.<nir|onnx|pt2>`` (next to the
    checkpoint file's folder for a ``.pt``).
    """
    if fmt not in FORMATS:
        raise ConfigError(f"--format: unknown format {fmt!r}; choose one of {', '.join(FORMATS)}.")
    model, in_shape, T = load_network(run, overrides, checkpoint)
    if out is None:
        p = Path(run)
        base = p if p.is_dir() else p.parent.parent if p.parent.name == "checkpoints" else p.parent
        out = str(base / "export" / f"{checkpoint if p.is_dir() else p.stem}{SUFFIX[fmt]}")
    if fmt == "nir":
        return write_nir(model, in_shape, out, dt)
    example = torch.zeros(T, 1, *in_shape)
    return to_onnx(model, example, out) if fmt == "onnx" else to_torch(model, example, out)


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
    a = ap.parse_intermixed_args(argv)
    try:
        path = export_run(a.run, a.format, a.out, a.overrides, a.checkpoint, a.dt)
    except ConfigError as err:
        print(f"snntrain-export: error: {err}", file=sys.stderr)
        sys.exit(err.exit_code)
    print(path)


if __name__ == "__main__":
    main()
