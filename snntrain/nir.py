r"""Import a NIR graph as a trainable snntrain network: :func:`from_nir`, :func:`read`.

    import nir, snntrain.nir
    net = snntrain.nir.from_nir(nir.read("net.nir"))     # a SpikingNet: [T, B, ...] -> [T, B, ...]
    snntrain model=nir model.path=net.nir                # train, fine-tune, sweep or evaluate it

NIR (the Neuromorphic Intermediate Representation, Pedersen et al., Nature Communications
2024) describes neurons in continuous time. A graph written by a discrete-time framework
(snnTorch, SpikingJelly, snntrain) is read back with that framework's time step ``dt``
(``1e-4`` s by default, the one all three write with) and the forward-Euler step of each
node, the reading snnTorch's and SpikingJelly's importers use:

* ``LIF`` :math:`\tau \dot v = (v_{leak} - v) + R\,I`: :math:`v \leftarrow \beta v + (1-\beta) v_{leak} + g\,I`
  with :math:`\beta = 1 - dt/\tau` and input gain :math:`g = R\,dt/\tau`; it fires when
  :math:`v > v_{threshold}` and then sets :math:`v = v_{reset}` (a hard reset). This is our
  ``lif`` with ``decay`` :math:`\beta`, ``reset=zero``, ``v_reset`` :math:`= v_{leak} = v_{reset}`,
  and ``decay_input`` when :math:`g = 1 - \beta` (:math:`R = 1`, SpikingJelly's
  ``decay_input=True``) or :math:`c = 1` when :math:`g = 1` (:math:`R = \tau/dt`, snnTorch's ``Leaky``).
* ``IF`` :math:`\dot v = R\,I`: our ``if`` (:math:`g = R\,dt`).
* ``CubaLIF``: :math:`I \leftarrow \alpha I + \frac{dt}{\tau_{syn}} w_{in} X`,
  :math:`v \leftarrow \beta v + \frac{dt}{\tau_{mem}} R\,I` (:math:`\alpha = 1 - dt/\tau_{syn}`,
  :math:`\beta = 1 - dt/\tau_{mem}`): our ``synaptic`` with ``reset=zero`` (snnTorch's ``Synaptic``
  with ``reset_delay=False``), gain :math:`g = \frac{dt}{\tau_{syn}} w_{in} \frac{dt}{\tau_{mem}} R`.
* ``LI`` (no spikes): :class:`LeakyIntegrator`, :math:`v \leftarrow \beta v + (1-\beta) v_{leak} + g\,I`,
  whose output is :math:`v`.

**Any other gain** :math:`g > 0` is absorbed by the neuron's scale: the spikes of a neuron with
membrane :math:`v` are those of one with membrane :math:`v / g` and threshold and reset divided
by :math:`g`, so the imported neuron takes :math:`c = 1` and :math:`V_{th} = v_{threshold} / g`
(its membrane is the graph's divided by :math:`g`; its spikes are the graph's). Parameters may be
one per neuron (they are stored so); a neuron whose thresholds differ runs on the ``torch`` backend.

Layers: ``Affine`` and ``Linear`` (our ``linear``), ``Conv1d``/``Conv2d`` (``conv1d``/``conv2d``),
``AvgPool2d`` (``avgpool2d``), ``SumPool2d`` (average pooling times the window size), ``Flatten``
(``flatten``; NIR counts axes without the batch), ``Input``/``Output``. The graph must be a
chain from its input to its output; recurrent subgraphs, ``Delay``, ``Threshold`` and other nodes
are refused with a :class:`NIRImportError` naming the node. The network is built from
snntrain's layers and neurons, so everything the framework does (surrogate gradients,
firing-rate monitors, checkpoints, export) applies to it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from .errors import ConfigError
from .models.net import SpikingNet

#: the time step NIR graphs are read with (snnTorch's, SpikingJelly's and snntrain's default)
DT = 1e-4


class NIRImportError(ConfigError):
    """A graph (or a node of it) that cannot become an snntrain network; the message names the node."""


def _nir() -> Any:
    try:
        import nir
    except ImportError:
        raise NIRImportError(
            "reading NIR graphs needs the Python package 'nir', which is not installed. Install the export extra: "
            "pip install \"snntrain[export]\"."
        ) from None
    return nir


def read(path: str | Path) -> Any:
    """The ``nir.NIRGraph`` stored at ``path``; a missing or unreadable file is a :class:`NIRImportError`."""
    nir = _nir()
    p = Path(path)
    if not p.is_file():
        raise NIRImportError(
            f"model.path: no NIR file at {str(p)!r}. Give the path of a graph written by nir.write (snnTorch's "
            f"export_to_nir, SpikingJelly's export_to_nir or snntrain-export --format nir)."
        )
    try:
        return nir.read(str(p))
    except Exception as err:  # h5py and nir raise many kinds for a file that is not a NIR graph
        raise NIRImportError(
            f"model.path: {str(p)!r} is not a readable NIR graph ({type(err).__name__}: {' '.join(str(err).split())[:200]}). "
            f"Give a file written by nir.write."
        ) from None


class LeakyIntegrator(nn.Module):
    r"""NIR's ``LI`` node: a leaky integrator without spikes, :math:`v_t = \beta v_{t-1} + (1-\beta) v_{leak} + g I_t`.

    The output is the membrane :math:`v` (a readout), :math:`v_0 = v_{leak}`;
    :math:`\beta = 1 - dt/\tau`, :math:`g = R\,dt/\tau` per neuron (forward-Euler reading of
    :math:`\tau \dot v = v_{leak} - v + R I`).
    """

    stateful = True

    def __init__(self, beta: Tensor, gain: Tensor, v_leak: Tensor):
        super().__init__()
        self.register_buffer("beta", beta)
        self.register_buffer("gain", gain)
        self.register_buffer("v_leak", v_leak)

    def step(self, x: Tensor, state: Tensor | None = None) -> tuple[Tensor, Tensor]:
        v = self.v_leak.expand_as(x) if state is None else state
        v = self.beta * v + (1 - self.beta) * self.v_leak + self.gain * x
        return v, v

    def forward(self, x_seq: Tensor) -> Tensor:
        out, state = [], None
        for x in x_seq:
            y, state = self.step(x, state)
            out.append(y)
        return torch.stack(out)


# ---------------------------------------------------------------- the graph as a chain
def chain_of(graph: Any) -> list[tuple[str, Any]]:
    """The graph's nodes from input to output (each followed by exactly one node), as ``(name, node)``."""
    nir = _nir()
    nodes, edges = dict(graph.nodes), list(graph.edges)
    for name, node in nodes.items():
        if isinstance(node, nir.NIRGraph):
            raise NIRImportError(f"from_nir: node {name!r} is a subgraph (a recurrent layer); snntrain imports chains "
                                 f"of layers and neurons, not recurrent subgraphs.")
    inputs = [k for k, n in nodes.items() if isinstance(n, nir.Input)]
    if len(inputs) != 1:
        raise NIRImportError(f"from_nir: the graph has {len(inputs)} Input nodes ({', '.join(inputs) or 'none'}); "
                             f"snntrain imports graphs with one input.")
    after: dict[str, list[str]] = {}
    for a, b in edges:
        after.setdefault(a, []).append(b)
    order, seen, here = [], set(), inputs[0]
    while True:
        order.append((here, nodes[here]))
        seen.add(here)
        nxt = after.get(here, [])
        if isinstance(nodes[here], nir.Output):
            break
        if len(nxt) != 1 or nxt[0] in seen:
            why = "ends without reaching an Output" if not nxt else f"branches to {', '.join(nxt)}" if len(nxt) > 1 \
                else f"loops back to {nxt[0]!r}"
            raise NIRImportError(f"from_nir: node {here!r} {why}; snntrain imports graphs that are one chain from "
                                 f"Input to Output.")
        here = nxt[0]
    if len(seen) != len(nodes):
        rest = sorted(set(nodes) - seen)
        raise NIRImportError(f"from_nir: nodes {', '.join(rest)} are not on the path from Input to Output; "
                             f"snntrain imports graphs that are one chain.")
    return order


def input_shape(graph: Any) -> tuple[int, ...]:
    """The shape of one step of one sample at the graph's Input node."""
    nir = _nir()
    node = next(n for n in graph.nodes.values() if isinstance(n, nir.Input))
    return tuple(int(s) for s in np.asarray(node.input_type["input"]).reshape(-1))


# ---------------------------------------------------------------- nodes
def _arr(v: Any, shape: tuple[int, ...], name: str, what: str) -> np.ndarray:
    a = np.asarray(v, dtype=np.float64)
    try:
        return np.broadcast_to(a.reshape(a.shape if a.size != 1 else ()), shape).copy()
    except ValueError:
        raise NIRImportError(f"from_nir: node {name!r}: {what} has shape {a.shape}, which does not fit the layer's "
                             f"shape {shape}.") from None


def _decay(tau: np.ndarray, dt: float, name: str, what: str = "tau") -> np.ndarray:
    if not np.all(tau > dt * (1 - 1e-9)):
        raise NIRImportError(f"from_nir: node {name!r}: {what} must be >= dt = {dt:g} s in every neuron (the decay "
                             f"per step is 1 - dt/{what}); got a minimum of {tau.min():g}. Pass the dt the graph was "
                             f"written with.")
    return np.clip(1.0 - dt / tau, 0.0, 1.0)


def _uniform(a: np.ndarray, name: str, what: str) -> float:
    if not np.allclose(a, a.flat[0], rtol=1e-6, atol=1e-9):
        raise NIRImportError(f"from_nir: node {name!r}: {what} differs between neurons; snntrain's neurons take one "
                             f"value for the layer.")
    return float(a.flat[0])


def _tensor(a: np.ndarray) -> Tensor:
    return torch.as_tensor(a, dtype=torch.get_default_dtype())


def _set_threshold(neuron: nn.Module, th: np.ndarray) -> None:
    """One threshold for the layer, or one per neuron (then the ``torch`` backend runs it)."""
    if np.allclose(th, th.flat[0], rtol=1e-7, atol=0):
        neuron.threshold = _tensor(np.asarray(th.flat[0]))
    else:
        neuron.threshold = _tensor(th)
        neuron.backend = "torch"


def _spiking(kind: str, name: str, shape: tuple[int, ...], surrogate: Any, **args: Any) -> nn.Module:
    from .registry import build
    from .surrogates import ATan

    sg = surrogate() if callable(surrogate) and not isinstance(surrogate, nn.Module) else surrogate
    return build("neuron", kind, context={"surrogate": sg if sg is not None else ATan(), "shape": shape}, **args)


def _neuron(name: str, node: Any, shape: tuple[int, ...], dt: float, surrogate: Any) -> nn.Module | None:
    nir = _nir()
    full = lambda v, what: _arr(v, shape, name, what)  # noqa: E731
    if isinstance(node, (nir.LIF, nir.IF)):
        th = full(node.v_threshold, "v_threshold")
        v_reset = full(node.v_reset if node.v_reset is not None else 0.0, "v_reset")
        if isinstance(node, nir.IF):
            beta = np.ones(shape)
            gain = full(node.r, "r") * dt
            leak = v_reset
        else:
            tau = full(node.tau, "tau")
            beta = _decay(tau, dt, name)
            gain = full(node.r, "r") * dt / tau
            leak = full(node.v_leak, "v_leak")
            if not np.allclose(leak, v_reset, rtol=1e-6, atol=1e-9):
                raise NIRImportError(f"from_nir: node {name!r}: v_leak differs from v_reset; snntrain's lif leaks "
                                     f"towards its reset potential (V_reset + beta (V - V_reset)).")
        if not np.all(gain > 0):
            raise NIRImportError(f"from_nir: node {name!r}: the input gain (R dt/tau, or R dt for IF) must be > 0 in "
                                 f"every neuron.")
        decay_input = not isinstance(node, nir.IF) and np.allclose(gain, 1 - beta, rtol=1e-6) and not np.allclose(gain, 1)
        scale = np.ones(shape) if decay_input else gain  # c = 1: the membrane is the graph's divided by g
        v_reset_s = _uniform(v_reset / scale, name, "v_reset / gain")
        kind = "if" if isinstance(node, nir.IF) else "lif"
        args: dict[str, Any] = {"reset": "zero", "v_reset": v_reset_s}
        if kind == "lif":
            uniform_beta = np.allclose(beta, beta.flat[0], rtol=1e-7, atol=0)
            args.update(decay=float(np.clip(beta.flat[0], 1e-12, 1.0)), decay_input=bool(decay_input),
                        decay_shape="scalar" if uniform_beta else "neuron")
        m = _spiking(kind, name, shape, surrogate, **args)
        if kind == "lif" and not uniform_beta:
            m.decay = _tensor(beta)
        _set_threshold(m, th / scale)
        return m
    if isinstance(node, nir.CubaLIF):
        tau_syn, tau_mem = full(node.tau_syn, "tau_syn"), full(node.tau_mem, "tau_mem")
        alpha, beta = _decay(tau_syn, dt, name, "tau_syn"), _decay(tau_mem, dt, name, "tau_mem")
        for what, v in (("v_leak", node.v_leak), ("v_reset", node.v_reset if node.v_reset is not None else 0.0)):
            if not np.allclose(full(v, what), 0.0):
                raise NIRImportError(f"from_nir: node {name!r}: {what} must be 0 (snntrain's synaptic neuron rests at 0).")
        gain = (dt / tau_syn) * full(node.w_in, "w_in") * (dt / tau_mem) * full(node.r, "r")
        if not np.all(gain > 0):
            raise NIRImportError(f"from_nir: node {name!r}: the input gain (w_in R dt^2 / (tau_syn tau_mem)) must be > 0.")
        uniform = all(np.allclose(a, a.flat[0], rtol=1e-7, atol=0) for a in (alpha, beta))
        m = _spiking("synaptic", name, shape, surrogate, alpha=float(max(alpha.flat[0], 1e-12)),
                     beta=float(max(beta.flat[0], 1e-12)), reset="zero", decay_shape="scalar" if uniform else "neuron")
        if not uniform:
            m.alpha, m.beta = _tensor(alpha), _tensor(beta)
        _set_threshold(m, full(node.v_threshold, "v_threshold") / gain)
        return m
    if isinstance(node, nir.LI):
        tau = full(node.tau, "tau")
        beta = _decay(tau, dt, name)
        return LeakyIntegrator(_tensor(beta), _tensor(full(node.r, "r") * dt / tau), _tensor(full(node.v_leak, "v_leak")))
    return None


def _pair(v: Any) -> tuple[int, ...]:
    a = np.asarray(v).reshape(-1)
    return tuple(int(x) for x in (a if a.size == 2 else np.repeat(a, 2)))


def _layer(name: str, node: Any, shape: tuple[int, ...]) -> nn.Module | None:
    """Our layer for a synapse, pooling or flatten node (None for Input/Output); weights copied in."""
    nir = _nir()
    from .layers.synapse import SeqWrap
    from .registry import build

    def load(layer: nn.Module, weight: Any, bias: Any = None) -> nn.Module:
        inner = layer.module if isinstance(layer, SeqWrap) else layer
        with torch.no_grad():
            inner.weight.copy_(torch.as_tensor(np.asarray(weight, dtype=np.float64)).reshape(inner.weight.shape))
            if bias is not None:
                inner.bias.copy_(torch.as_tensor(np.asarray(bias, dtype=np.float64)).reshape(inner.bias.shape))
        return layer

    if isinstance(node, (nir.Input, nir.Output)):
        return None
    if isinstance(node, (nir.Affine, nir.Linear)):
        w = np.asarray(node.weight)
        if w.ndim != 2:
            raise NIRImportError(f"from_nir: node {name!r}: a {type(node).__name__} weight must be 2-d, got {w.shape}.")
        if shape[-1:] != (w.shape[1],) or len(shape) != 1:
            raise NIRImportError(f"from_nir: node {name!r} takes {w.shape[1]} inputs but receives shape {shape}.")
        bias = getattr(node, "bias", None)
        return load(build("layer", "linear", in_features=w.shape[1], out_features=w.shape[0], bias=bias is not None),
                    w, bias)
    if isinstance(node, (nir.Conv1d, nir.Conv2d)):
        d = 1 if isinstance(node, nir.Conv1d) else 2
        w = np.asarray(node.weight)
        if w.ndim != d + 2 or len(shape) != d + 1:
            raise NIRImportError(f"from_nir: node {name!r}: a {d}d convolution with weight {w.shape} cannot take "
                                 f"input of shape {shape}.")
        cls = nn.Conv1d if d == 1 else nn.Conv2d
        pad = node.padding if isinstance(node.padding, str) else (int(np.asarray(node.padding).reshape(-1)[0]) if d == 1
                                                                    else _pair(node.padding))
        conv = cls(w.shape[1] * int(node.groups), w.shape[0], w.shape[2:] if d == 2 else w.shape[2],
                   stride=int(np.asarray(node.stride).reshape(-1)[0]) if d == 1 else _pair(node.stride), padding=pad,
                   dilation=int(np.asarray(node.dilation).reshape(-1)[0]) if d == 1 else _pair(node.dilation),
                   groups=int(node.groups), bias=True)
        return load(SeqWrap(conv), w, node.bias if node.bias is not None else np.zeros(w.shape[0]))
    if isinstance(node, (nir.AvgPool2d, nir.SumPool2d)):
        k = _pair(node.kernel_size)
        pool = nn.AvgPool2d(k, _pair(node.stride), _pair(node.padding),
                            divisor_override=1 if isinstance(node, nir.SumPool2d) else None)
        return SeqWrap(pool)
    if isinstance(node, nir.Flatten):
        start, end = int(node.start_dim), int(node.end_dim)
        return SeqWrap(nn.Flatten(start + 1 if start >= 0 else start, end + 1 if end >= 0 else end))
    raise NIRImportError(
        f"from_nir: node {name!r} ({type(node).__name__}) has no snntrain counterpart; snntrain imports Affine, "
        f"Linear, Conv1d, Conv2d, AvgPool2d, SumPool2d, Flatten, IF, LIF, CubaLIF and LI."
    )


def from_nir(graph: Any, dt: float = DT, in_shape: tuple[int, ...] | None = None, surrogate: Any = None) -> SpikingNet:
    """A trainable :class:`~snntrain.models.net.SpikingNet` equal to the NIR ``graph`` read with time step ``dt``.

    ``graph`` is a ``nir.NIRGraph`` or the path of a ``.nir`` file. ``in_shape`` is the shape of
    one step of one sample (default: the graph's Input node). ``surrogate`` is the surrogate
    gradient of the imported neurons (a module or a factory; default ``atan``). The network maps
    ``[T, B, *in_shape]`` to ``[T, B, ...]`` from rest (see the module docstring for the mapping).
    """
    if isinstance(graph, (str, Path)):
        graph = read(graph)
    if not dt > 0:
        raise NIRImportError(f"from_nir: dt must be > 0 (seconds per step), got {dt}.")
    shape = tuple(in_shape) if in_shape is not None else input_shape(graph)
    layers: list[nn.Module] = []
    x = torch.zeros(1, 1, *shape)
    for name, node in chain_of(graph):
        here = tuple(x.shape[2:])
        m = _neuron(name, node, here, dt, surrogate)
        if m is None:
            m = _layer(name, node, here)
        if m is None:
            continue
        try:
            with torch.no_grad():
                x = m(x)
        except RuntimeError as err:
            raise NIRImportError(f"from_nir: node {name!r} ({type(node).__name__}) cannot take input of shape "
                                 f"{here} ({' '.join(str(err).split())[:200]}).") from None
        layers.append(m)
    if not layers:
        raise NIRImportError("from_nir: the graph has no layers between its Input and Output.")
    return SpikingNet(*layers)
