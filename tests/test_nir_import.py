"""NIR import: graphs written by snnTorch's, SpikingJelly's and our own exporters run here with the same spikes.

Each round trip builds a network in the peer framework, writes it with that framework's
exporter, imports it with :func:`snntrain.nir.from_nir` and compares the spikes of every
spiking stage and the output on the same input. Hand-built graphs check the mapping
against the forward-Euler equations (gains other than 1, LI, CubaLIF).
"""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import nir
import pytest
import torch
from torch import nn

from snntrain.export import folded, write_nir
from snntrain.neurons.base import SpikingNeuron
from snntrain.nir import LeakyIntegrator, NIRImportError, from_nir

T, B = 8, 3


def stage_spikes(net: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """snntrain's output and the spikes of every neuron layer."""
    seen = []
    hooks = [m.register_forward_hook(lambda m, i, o: seen.append(o)) for m in net.modules() if isinstance(m, SpikingNeuron)]
    with torch.no_grad():
        out = net(x)
    for h in hooks:
        h.remove()
    return out, seen


def test_snntorch_graph_imports_with_equal_spikes():
    """snnTorch Leaky and Synaptic (zero reset, reset_delay=False) -> export_to_nir -> from_nir."""
    snn = pytest.importorskip("snntorch")
    import snntorch.utils
    from snntorch.export_nir import export_to_nir

    torch.manual_seed(0)
    # per-neuron parameters: snnTorch's exporter writes the shapes it is given, and NIR's type check needs them
    lif = snn.Leaky(beta=torch.full((20,), 0.8), threshold=torch.full((20,), 0.5), init_hidden=True,
                    reset_mechanism="zero", reset_delay=False)
    syn = snn.Synaptic(alpha=torch.full((10,), 0.6), beta=torch.full((10,), 0.7), threshold=torch.full((10,), 0.5),
                       init_hidden=True, reset_mechanism="zero", reset_delay=False, output=True)
    net = nn.Sequential(nn.Linear(12, 20), lif, nn.Linear(20, 10), syn)
    graph = export_to_nir(net, torch.zeros(1, 12), ignore_dims=[0])
    ours = from_nir(graph)
    assert [type(m).__name__ for m in ours] == ["SeqWrap", "LIF", "SeqWrap", "Synaptic"]
    x = torch.rand(T, B, 12) * 2
    theirs: dict[int, list] = {1: [], 3: []}
    hooks = [net[i].register_forward_hook(lambda m, i_, o, i=i: theirs[i].append(o[0] if isinstance(o, tuple) else o))
             for i in theirs]
    snntorch.utils.reset(net)
    with torch.no_grad():
        for xt in x:
            net(xt)
    for h in hooks:
        h.remove()
    out, mine = stage_spikes(ours, x)
    for m, i in zip(mine, (1, 3)):
        assert 0 < m.mean() < 1
        assert torch.equal(m, torch.stack(theirs[i]))
    assert torch.equal(out, torch.stack(theirs[3]))


def test_spikingjelly_graph_imports_with_equal_spikes():
    """SpikingJelly conv -> LIF (decay_input) -> avgpool -> flatten -> linear -> IF -> linear -> LIF, multi-step."""
    pytest.importorskip("spikingjelly")
    from spikingjelly.activation_based import functional, layer, neuron
    from spikingjelly.activation_based.nir_exchange import export_to_nir

    torch.manual_seed(0)
    net = nn.Sequential(
        layer.Conv2d(1, 4, 3, padding=1), neuron.LIFNode(tau=2.5, decay_input=True, v_reset=0.0, v_threshold=0.3),
        layer.AvgPool2d(2), layer.Flatten(), layer.Linear(64, 10), neuron.IFNode(v_reset=0.0, v_threshold=0.5),
        layer.Linear(10, 5), neuron.LIFNode(tau=3.0, decay_input=False, v_reset=0.0, v_threshold=0.4),
    )
    functional.set_step_mode(net, "m")
    x = torch.rand(T, B, 1, 8, 8) * 2
    graph = export_to_nir(net, x[:, :1])
    ours = from_nir(graph)
    functional.reset_net(net)
    theirs = []
    hooks = [m.register_forward_hook(lambda m, i, o: theirs.append(o)) for m in net if isinstance(m, neuron.BaseNode)]
    with torch.no_grad():
        ref = net(x)
    for h in hooks:
        h.remove()
    out, mine = stage_spikes(ours, x)
    assert len(mine) == 3
    for m, t in zip(mine, theirs):
        assert 0 < m.mean() < 1
        assert torch.equal(m, t)
    assert torch.equal(out, ref)


@pytest.mark.parametrize("neuron", [{"name": "lif", "decay": 0.7, "reset": "zero", "threshold": 0.4},
                                    {"name": "lif", "tau": 2.5, "decay_input": True, "reset": "zero", "threshold": 0.2},
                                    {"name": "if", "reset": "zero", "threshold": 0.8}])
def test_our_export_imports_back_with_equal_spikes(neuron, tmp_path):
    from .test_export import SHAPE, trained

    model = trained("vgg", neuron, plan=[8, "M", 16, "M"], pool="avg")
    ours = from_nir(write_nir(model, SHAPE, tmp_path / "net.nir"))
    x = torch.rand(T, B, *SHAPE) * 2
    ref, ref_spikes = stage_spikes(folded(model), x)
    out, spikes = stage_spikes(ours, x)
    assert len(spikes) == len(ref_spikes) == 2
    for a, b in zip(spikes, ref_spikes):
        assert 0 < b.mean() < 1 and torch.equal(a, b)
    assert torch.allclose(out, ref, atol=1e-5, rtol=0)


def euler_lif(x: np.ndarray, tau, r, v_leak, v_th, v_reset, dt: float) -> np.ndarray:
    """NIR's LIF by forward Euler, hard reset: the spikes [T, N]."""
    v, out = np.full(x.shape[1:], v_leak, dtype=np.float64), []
    for xt in x:
        v = v + dt / tau * (v_leak - v + r * xt)
        s = (v > v_th).astype(np.float64)
        v = np.where(s > 0, v_reset, v)
        out.append(s)
    return np.stack(out)


def graph_of(*nodes: tuple[str, object], n_in: int, n_out: int | None = None) -> nir.NIRGraph:
    """A chain input -> nodes -> output over vectors of n_in (and n_out) values."""
    names = ["input", *[k for k, _ in nodes], "output"]
    graph = {"input": nir.Input(input_type={"input": np.array([n_in])}), **dict(nodes),
             "output": nir.Output(output_type={"output": np.array([n_out or n_in])})}
    return nir.NIRGraph(nodes=graph, edges=list(zip(names, names[1:])))


def digits_graph(folder) -> str:
    """A NIR file of a small network for the default dataset (digits: 1x8x8 inputs, 10 classes)."""
    from snntrain.models.net import make_factories
    from snntrain.registry import build

    torch.manual_seed(0)
    neuron, norm = make_factories({"name": "lif", "reset": "zero"}, {"name": "atan"}, {"name": "none"}, 4)
    model = build("model", "mlp", context={"in_shape": (1, 8, 8), "num_classes": 10, "neuron": neuron, "norm": norm,
                                            "T": 4}, hidden=[16])
    return str(write_nir(model, (1, 8, 8), folder / "digits.nir"))


def test_any_positive_gain_and_per_neuron_values_follow_the_euler_equation():
    """R that is neither tau/dt nor 1, per-neuron tau and thresholds: spikes equal the Euler step of the graph."""
    dt, n = 1e-3, 6
    tau = np.linspace(2e-3, 9e-3, n)
    r, v_th = np.linspace(0.5, 3.0, n), np.linspace(0.2, 0.7, n)
    w = np.eye(n)
    g = graph_of(("lin", nir.Linear(weight=w)),
                 ("lif", nir.LIF(tau=tau, r=r, v_leak=np.zeros(n), v_threshold=v_th, v_reset=np.zeros(n))), n_in=n)
    net = from_nir(g, dt=dt)
    x = np.random.default_rng(0).random((20, n)) * 2
    got = net(torch.tensor(x, dtype=torch.float32)[:, None]).detach().numpy()[:, 0]
    want = euler_lif(x, tau, r, 0.0, v_th, 0.0, dt)
    assert 0 < want.mean() < 1 and np.array_equal(got, want)


def test_leaky_integrator_and_cubalif_follow_their_equations():
    dt, n = 1e-4, 4
    li = nir.LI(tau=np.full(n, 4e-4), r=np.full(n, 2.0), v_leak=np.full(n, 0.1))
    m = from_nir(graph_of(("li", li), n_in=n))
    assert isinstance(m[0], LeakyIntegrator)
    x = np.random.default_rng(1).random((20, n))
    v, want = np.full(n, 0.1), []
    for xt in x:
        v = v + dt / 4e-4 * (0.1 - v + 2.0 * xt)
        want.append(v)
    assert np.allclose(m(torch.tensor(x, dtype=torch.float32)[:, None]).detach().numpy()[:, 0], np.stack(want), atol=1e-6)

    cuba = nir.CubaLIF(tau_syn=np.full(n, 2e-4), tau_mem=np.full(n, 5e-4), r=np.full(n, 3.0), v_leak=np.zeros(n),
                       v_threshold=np.full(n, 0.6), v_reset=np.zeros(n), w_in=np.full(n, 1.5))
    net = from_nir(graph_of(("cuba", cuba), n_in=n))
    i, v, want = np.zeros(n), np.zeros(n), []
    for xt in x:
        i = i + dt / 2e-4 * (-i + 1.5 * xt)  # the synaptic current first, the membrane reads the new one
        v = v + dt / 5e-4 * (-v + 3.0 * i)
        s = (v > 0.6).astype(float)
        v = np.where(s > 0, 0.0, v)
        want.append(s)
    got = net(torch.tensor(x, dtype=torch.float32)[:, None]).detach().numpy()[:, 0]
    assert 0 < np.mean(want) < 1 and np.array_equal(got, np.stack(want))


def test_imported_network_trains():
    """Gradients reach every imported weight through the surrogate; a few steps lower the loss."""
    g = graph_of(("a", nir.Affine(weight=np.random.default_rng(0).normal(0, 0.5, (6, 4)), bias=np.zeros(6))),
                 ("lif", nir.LIF(tau=np.full(6, 5e-4), r=np.full(6, 5.0), v_leak=np.zeros(6), v_threshold=np.full(6, 0.5),
                                 v_reset=np.zeros(6))), n_in=4, n_out=6)
    net = from_nir(g)
    x, y = torch.rand(T, 16, 4) * 2, torch.randint(0, 6, (16,))
    opt = torch.optim.Adam(net.parameters(), lr=0.05)
    losses = []
    for _ in range(15):
        loss = nn.functional.cross_entropy(net(x).mean(0) * 5, y)
        opt.zero_grad()
        loss.backward()
        assert net[0].module.weight.grad.abs().sum() > 0
        opt.step()
        losses.append(float(loss))
    assert losses[-1] < losses[0]


def test_graphs_it_cannot_take_are_refused_naming_the_node():
    n = 3
    lif = nir.LIF(tau=np.full(n, 1e-3), r=np.ones(n), v_leak=np.full(n, 0.2), v_threshold=np.ones(n), v_reset=np.zeros(n))
    with pytest.raises(NIRImportError, match=r"node 'lif': v_leak differs from v_reset"):
        from_nir(graph_of(("lif", lif), n_in=n))
    with pytest.raises(NIRImportError, match=r"node 'd' \(Delay\) has no snntrain counterpart"):
        from_nir(graph_of(("d", nir.Delay(delay=np.ones(n))), n_in=n))
    branch = graph_of(("lin", nir.Linear(weight=np.eye(n))), n_in=n)
    branch.edges.append(("input", "output"))
    with pytest.raises(NIRImportError, match=r"node 'input' branches to"):
        from_nir(branch)


@pytest.mark.slow
def test_command_trains_a_nir_graph(tmp_path):
    """``snntrain model=nir model.path=<file>`` trains a graph written by SpikingJelly; a bad file is exit 2."""
    pytest.importorskip("spikingjelly")
    from spikingjelly.activation_based import functional, layer, neuron
    from spikingjelly.activation_based.nir_exchange import export_to_nir

    torch.manual_seed(0)
    net = nn.Sequential(layer.Flatten(), layer.Linear(64, 32),
                        neuron.LIFNode(tau=2.0, decay_input=False, v_reset=0.0, v_threshold=0.2), layer.Linear(32, 10))
    functional.set_step_mode(net, "m")
    path = tmp_path / "sj.nir"
    export_to_nir(net, torch.zeros(4, 1, 1, 8, 8), save_path=path)
    run = tmp_path / "run"
    done = subprocess.run([sys.executable, "-m", "snntrain", "model=nir", f"model.path={path}", "trainer.epochs=2",
                           "trainer.progress=false", f"hydra.run.dir={run}"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["test_acc"] > 0.3  # ten digit classes: trained, not chance
    # a single run is named by its overrides in TensorBoard's HParams table, and they are its differing keys
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    ev = EventAccumulator(str(run / "tensorboard"), size_guidance={"tensors": 0})
    ev.Reload()
    content = ev.PluginTagToContent("hparams")
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"]).session_start_info
    assert start.group_name == f"model=nir,model.path={path},trainer.epochs=2"
    exp = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"]).experiment
    assert {h.name for h in exp.hparam_infos if h.differs} == {"model.name", "model.path", "trainer.epochs", "seed"}
    saved = torch.load(run / "checkpoints" / "last.pt", map_location="cpu", weights_only=False)["model"]
    assert not torch.equal(saved["1.module.weight"], net[1].weight.detach())  # the imported weights moved
    for bad, says in (("nosuch.nir", "no NIR file at"), (str(run / "metrics.json"), "is not a readable NIR graph")):
        out = subprocess.run([sys.executable, "-m", "snntrain", "model=nir", f"model.path={bad}",
                              f"hydra.run.dir={tmp_path / 'bad'}"], capture_output=True, text=True)
        assert out.returncode == 2 and says in out.stderr and "Traceback" not in out.stderr, out.stderr
