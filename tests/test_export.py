"""Export: NIR read back and run by SpikingJelly's and snnTorch's importers, ONNX in onnxruntime, the command.

The networks are trained for a few SGD steps (weights and BN statistics move away from
their initial values) and then folded; the peers' importers must give the same spikes
at every spiking stage and the same readout as snntrain on the same input.
"""
from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from torch import nn

from snntrain.export import ExportError, folded, main, to_nir, to_onnx, to_torch, write_nir
from snntrain.models.net import make_factories
from snntrain.neurons.base import SpikingNeuron
from snntrain.registry import available, build

import nir  # noqa: E402  (test extras: a missing one fails, it is never skipped)
import nirtorch  # noqa: E402, F401

T, B, SHAPE = 6, 4, (1, 8, 8)


def built(model_name: str, neuron: dict, norm: str = "bn", **model_args) -> nn.Module:
    torch.manual_seed(0)
    n, nm = make_factories(neuron, {"name": "atan"}, {"name": norm}, T)
    ctx = {"in_shape": SHAPE, "num_classes": 10, "neuron": n, "norm": nm, "T": T}
    return build("model", model_name, context=ctx, **model_args)


def trained(model_name: str, neuron: dict, norm: str = "bn", **model_args) -> nn.Module:
    """A small network after 5 SGD steps on random data (weights and BN statistics not the initial ones)."""
    model = built(model_name, neuron, norm, **model_args)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(5):
        x, y = torch.rand(T, 16, *SHAPE) * 2, torch.randint(0, 10, (16,))
        loss = nn.functional.cross_entropy(model(x).mean(0), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():  # settle the BN running statistics, so that every stage fires in eval mode
        for _ in range(20):
            model(torch.rand(T, 16, *SHAPE) * 2)
    return model.eval()


def spikes_of(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """snntrain's readout and the spikes ``[T, B, ...]`` of every neuron layer, in order."""
    seen = []
    hooks = [m.register_forward_hook(lambda m, i, o: seen.append(o)) for m in model.modules() if isinstance(m, SpikingNeuron)]
    with torch.no_grad():
        out = model(x)
    for h in hooks:
        h.remove()
    return out, seen


def run_imported(net: nn.Module, x: torch.Tensor, neurons: list[str], stateful: bool) -> tuple[torch.Tensor, list]:
    """Step an imported NIR graph over ``x`` ``[T, B, ...]``: its readout and the spikes of the ``neurons`` submodules."""
    seen: dict[str, list] = {k: [] for k in neurons}
    hooks = [net.get_submodule(k).register_forward_hook(
        lambda m, i, o, k=k: seen[k].append(o[0] if isinstance(o, tuple) else o)) for k in neurons]
    outs, state = [], None
    with torch.no_grad():
        for xt in x:
            if stateful:  # SpikingJelly: the state goes in and out explicitly
                y, state = net(xt, state)
            else:  # snnTorch: hidden state inside the modules (reset before the sequence)
                y = net(xt)
                y = y[0] if isinstance(y, tuple) else y
            outs.append(y)
    for h in hooks:
        h.remove()
    return torch.stack(outs), [torch.stack(seen[k]) for k in neurons]


NEURONS = {
    "lif": {"name": "lif", "decay": 0.8, "reset": "zero"},
    "lif_decay_input_vreset": {"name": "lif", "tau": 2.5, "decay_input": True, "reset": "zero", "v_reset": -0.2,
                               "threshold": 0.2},
    "if": {"name": "if", "reset": "zero", "threshold": 0.8},
    "plif": {"name": "plif", "init_tau": 3.0, "reset": "zero", "threshold": 0.3},
}
MODELS = {"mlp": ("mlp", {"hidden": [48, 32]}), "conv": ("vgg", {"plan": [8, "M", 16, "M"], "pool": "avg"})}


@pytest.mark.parametrize("model_key,neuron_key", [("mlp", k) for k in NEURONS] + [("conv", "lif"), ("conv", "plif")])
def test_nir_through_spikingjelly_gives_the_same_spikes(model_key, neuron_key, tmp_path):
    """nir.write -> nir.read -> SpikingJelly's import_from_nir: every stage's spikes equal, readout to 1e-5."""
    import spikingjelly.activation_based.nir_exchange as sj_nir
    name, args = MODELS[model_key]
    model = trained(name, NEURONS[neuron_key], **args)
    graph = nir.read(str(write_nir(model, SHAPE, tmp_path / "net.nir")))
    assert set(graph.nodes) >= {"input", "output"} and any(isinstance(n, (nir.LIF, nir.IF)) for n in graph.nodes.values())
    neurons = [k for k, n in graph.nodes.items() if isinstance(n, (nir.LIF, nir.IF))]
    x = torch.rand(T, B, *SHAPE) * 2
    ref, ref_spikes = spikes_of(folded(model), x)
    out, their_spikes = run_imported(sj_nir.import_from_nir(graph, dt=1e-4), x, neurons, stateful=True)
    assert len(their_spikes) == len(ref_spikes) >= 2
    for mine, theirs in zip(ref_spikes, their_spikes):
        assert 0 < mine.mean() < 1  # spikes, but not everywhere: the comparison means something
        assert torch.equal(mine, theirs.view_as(mine))
    assert torch.allclose(out.view_as(ref), ref, atol=1e-5, rtol=0)
    assert torch.allclose(ref, spikes_of(model, x)[0], atol=1e-4)  # folding kept the function


@pytest.mark.parametrize("model_key", ["mlp", "conv"])
def test_nir_through_snntorch_gives_the_same_spikes(model_key):
    """snnTorch's import_nir (Leaky, zero reset) on the LIF networks.

    snnTorch's importer turns NIR ``Flatten(start_dim=0)`` into ``nn.Flatten(0)``, which also
    flattens the batch, so samples run one at a time; its ``IF`` is a Leaky with beta=0.9
    (snnTorch 1.0), so only ``lif`` is compared here.
    """
    import snntorch.import_nir as snn_nir
    import snntorch.utils

    name, args = MODELS[model_key]
    model = trained(name, NEURONS["lif"], **args)
    graph = to_nir(model, SHAPE)
    neurons = [k for k, n in graph.nodes.items() if isinstance(n, nir.LIF)]
    net = snn_nir.import_from_nir(graph)
    x = torch.rand(T, 2, *SHAPE) * 2
    ref, ref_spikes = spikes_of(folded(model), x)
    for b in range(x.shape[1]):
        snntorch.utils.reset(net)
        out, their_spikes = run_imported(net, x[:, b:b + 1], neurons, stateful=False)
        for mine, theirs in zip(ref_spikes, their_spikes):
            assert torch.equal(mine[:, b:b + 1], theirs.view_as(mine[:, b:b + 1]))
        assert torch.allclose(out.view_as(ref[:, b:b + 1]), ref[:, b:b + 1], atol=1e-5, rtol=0)


def test_nir_parameters_follow_the_mapping():
    """tau = dt / (1 - beta), R = tau/dt (or 1 with decay_input), v_leak = v_reset; IF: R = 1/dt; per neuron."""
    model = built("mlp", {"name": "lif", "decay": 0.8, "reset": "zero", "decay_shape": "neuron"}, hidden=[5])
    lif = to_nir(model, SHAPE, dt=1e-3).nodes["lif_3"]
    assert lif.tau.shape == (5,) and lif.tau == pytest.approx(1e-3 / 0.2) and lif.r == pytest.approx(5.0)
    assert (lif.v_leak == 0).all() and (lif.v_reset == 0).all() and (lif.v_threshold == 1).all()
    node = to_nir(built("mlp", NEURONS["if"], hidden=[5]), SHAPE).nodes["if_3"]
    assert isinstance(node, nir.IF) and node.r == pytest.approx(1e4) and node.v_threshold == pytest.approx(0.8)


def test_onnx_runs_in_onnxruntime_with_equal_outputs(tmp_path):
    import onnx  # noqa: F401
    import onnxruntime as ort
    name, args = MODELS["conv"]
    model = trained(name, {"name": "lif", "decay": 0.8}, **args)  # soft reset: fine outside NIR
    path = to_onnx(model, torch.zeros(T, 1, *SHAPE), tmp_path / "net.onnx")
    session = ort.InferenceSession(str(path))
    for batch in (1, 5):  # the batch axis is dynamic
        x = torch.rand(T, batch, *SHAPE) * 2
        got = session.run(None, {"input": x.numpy()})[0]
        ref = spikes_of(folded(model), x)[0]
        assert got.shape == tuple(ref.shape)
        assert torch.allclose(torch.from_numpy(got), ref, atol=1e-5, rtol=0)


def test_torch_export_program(tmp_path):
    model = trained("mlp", {"name": "lif", "decay": 0.8}, hidden=[16])
    x = torch.rand(2, 3, *SHAPE)
    program = torch.export.load(str(to_torch(model, x, tmp_path / "net.pt2"))).module()
    with torch.no_grad():
        assert torch.allclose(program(x), folded(model)(x), atol=1e-6, rtol=0)


@pytest.mark.parametrize("model_name,neuron,norm,model_args,match", [
    ("mlp", {"name": "lif", "reset": "zero"}, "bntt", {"hidden": [8]}, r"  2 \(BatchNormThroughTime\): bntt keeps its own running statistics"),
    ("mlp", {"name": "alif", "reset": "zero"}, "bn", {"hidden": [8]}, r"layer 3 \(ALIF\) cannot be exported to NIR"),
    ("mlp", {"name": "lif"}, "bn", {"hidden": [8]}, r"layer 3 \(LIF\).*reset=subtract.*neuron\.reset=zero"),
    ("vgg", {"name": "lif", "reset": "zero"}, "bn", {"plan": [4, "M"], "pool": "max"}, r"layer 3 \(MaxPool2d\).*max pooling"),
])
def test_refusals_name_the_layer(model_name, neuron, norm, model_args, match):
    with pytest.raises(ExportError, match=match):
        to_nir(built(model_name, neuron, norm, **model_args), SHAPE)


def test_unfoldable_norm_is_refused_by_nir(tmp_path):
    model = built("mlp", {"name": "lif", "reset": "zero"}, "bntt", hidden=[8])
    with pytest.raises(ExportError, match=r"^export folds every norm.*\n  2 \(BatchNormThroughTime\): .*\nExport a network trained with norm=bn"):
        to_nir(model, SHAPE)


@pytest.mark.parametrize("norm", ["bntt", "tebn"])
def test_per_step_norms_export_to_onnx_and_torch_with_equal_outputs(norm, tmp_path):
    """bntt and tebn become per-step constants in the unrolled graph; outputs equal the model's (<= 1e-5)."""
    ort = pytest.importorskip("onnxruntime")
    from snntrain.export import StepAffine

    name, args = MODELS["conv"]
    model = trained(name, {"name": "lif", "decay": 0.8}, norm, **args)  # the default subtract reset
    net = folded(model, torch.zeros(T, 1, *SHAPE))
    steps = [m for m in net.modules() if isinstance(m, StepAffine)]
    assert len(steps) == 2 and steps[0].scale.shape == (T, 1, 8, 1, 1)
    assert not torch.allclose(steps[0].scale[0], steps[0].scale[1])  # a constant per step, not one for all
    onnx_file = to_onnx(model, torch.zeros(T, 1, *SHAPE), tmp_path / "net.onnx")
    program = torch.export.load(str(to_torch(model, torch.rand(T, 3, *SHAPE), tmp_path / "net.pt2"))).module()
    session = ort.InferenceSession(str(onnx_file))
    for batch in (1, 3):
        x = torch.rand(T, batch, *SHAPE) * 2
        ref, spikes = spikes_of(model, x)
        assert all(0 < s.mean() < 1 for s in spikes)
        got = torch.from_numpy(session.run(None, {"input": x.numpy()})[0])
        assert torch.allclose(got, ref, atol=1e-5, rtol=0)
        if batch == 3:
            with torch.no_grad():
                assert torch.allclose(program(x), ref, atol=1e-5, rtol=0)


def test_norms_that_are_not_affine_per_step_are_refused_by_onnx(tmp_path):
    model = built("mlp", {"name": "lif"}, "layernorm", hidden=[8])
    with pytest.raises(ExportError, match=r"layer 2 \(LayerNorm\) is neither folded .* nor an affine map per time step"):
        to_onnx(model, torch.zeros(T, 1, *SHAPE), tmp_path / "a.onnx")


def test_hard_reset_opt_in_writes_a_hard_reset():
    """Without the opt-in a subtract reset is refused; with it the graph holds a hard reset to v_reset."""
    model = built("mlp", {"name": "lif", "decay": 0.8}, hidden=[5])
    with pytest.raises(ExportError, match="--hard-reset"):
        to_nir(model, SHAPE)
    graph = to_nir(model, SHAPE, hard_reset=True)
    lif = graph.nodes["lif_3"]
    assert isinstance(lif, nir.LIF) and (lif.v_reset == 0).all() and lif.tau == pytest.approx(1e-4 / 0.2)


@pytest.mark.slow
def test_command_exports_a_trained_run(tmp_path, capsys):
    """A real short run on digits, then ``snntrain-export`` in each format; user mistakes exit 2 without a traceback."""
    import onnxruntime  # noqa: F401

    from snntrain.training import train

    from .conftest import compose_cfg

    run = tmp_path / "run"
    train(compose_cfg("neuron.reset=zero", "norm=bn", "model.hidden=[32]", "T=4", "trainer.epochs=1",
                      "trainer.limit_batches=3", "trainer.progress=false"), run)
    for fmt, suffix in (("nir", ".nir"), ("onnx", ".onnx")):
        main([str(run), "--format", fmt])
        assert capsys.readouterr().out.strip() == str(run / "export" / f"last{suffix}")
    assert isinstance(nir.read(str(run / "export" / "last.nir")), nir.NIRGraph)
    for bad, says in ((["nosuch.key=1"], "nosuch.key"), (["neuron.reset=subtract"], "reset=subtract"),
                      (["--checkpoint", "best", "--format", "nir", "model.hidden=[7]"], "float32[7, 64]")):
        with pytest.raises(SystemExit) as stop:
            main([str(run), *bad])
        assert stop.value.code == 2 and says in capsys.readouterr().err
    out = subprocess.run([sys.executable, "-m", "snntrain.export", str(tmp_path / "nowhere")], capture_output=True, text=True)
    assert out.returncode == 2 and "no checkpoint at" in out.stderr and "Traceback" not in out.stderr


@pytest.mark.slow
def test_default_run_exports_to_nir_with_the_hard_reset_measured(tmp_path, capsys):
    """The default run (subtract reset) -> --hard-reset: the accuracies are printed and stored, and they are the
    trained model's (metrics.json) and that of the model with a hard reset (the function the graph computes)."""
    import json

    from snntrain.evaluation import evaluate_checkpoint
    from snntrain.training import train

    from .conftest import compose_cfg

    run = tmp_path / "run"
    train(compose_cfg("model.hidden=[32]", "T=8", "neuron.threshold=0.25", "trainer.epochs=1", "trainer.limit_batches=5",
                      "trainer.progress=false"), run)
    with pytest.raises(SystemExit) as stop:
        main([str(run)])
    assert stop.value.code == 2 and "--hard-reset" in capsys.readouterr().err
    main([str(run), "--hard-reset"])
    printed = capsys.readouterr().out
    report = json.loads((run / "export" / "last.nir.json").read_text())
    assert "hard reset in 1 layer(s): test accuracy" in printed and f"{report['test_acc_change']:+.4f}" in printed
    assert report["hard_reset_layers"] == ["3 (reset=subtract)"]
    assert report["test_acc_model"] == pytest.approx(json.loads((run / "metrics.json").read_text())["test_acc"], abs=1e-9)
    hard = evaluate_checkpoint(str(run), ["neuron.reset=zero"])["test_acc"]
    assert report["test_acc_exported"] == pytest.approx(hard, abs=1e-9)
    assert report["test_acc_change"] == pytest.approx(hard - report["test_acc_model"]) != 0  # the reset mattered here
    # the graph is the network with a hard reset: equal to it, not to the trained (subtract-reset) one
    import copy

    from snntrain.export import load_network
    from snntrain.nir import from_nir

    model, in_shape, T_run = load_network(str(run))
    hard_model = copy.deepcopy(model).eval()
    for m in hard_model.modules():
        if isinstance(m, SpikingNeuron):
            m.reset = "zero"
    x = torch.rand(T_run, 16, *in_shape) * 3
    with torch.no_grad():
        graph_out = from_nir(str(run / "export" / "last.nir"))(x)
        assert torch.allclose(graph_out, hard_model(x), atol=1e-5) and not torch.allclose(graph_out, model.eval()(x), atol=1e-3)


@pytest.mark.slow
@pytest.mark.parametrize("norm", ["tebn", "bntt"])
def test_vgg_run_with_per_step_norm_exports_to_onnx_and_torch(norm, tmp_path, capsys):
    """``snntrain model=vgg norm=tebn|bntt``, then snntrain-export --format onnx and torch: outputs equal (<= 1e-5)."""
    ort = pytest.importorskip("onnxruntime")
    from snntrain.export import load_network
    from snntrain.training import train

    from .conftest import compose_cfg

    run = tmp_path / "run"
    train(compose_cfg("model=vgg", f"norm={norm}", "T=4", "trainer.epochs=1", "trainer.limit_batches=3",
                      "trainer.progress=false"), run)
    for fmt in ("onnx", "torch"):
        main([str(run), "--format", fmt])
    model, in_shape, T_run = load_network(str(run))
    x = torch.rand(T_run, 5, *in_shape)
    with torch.no_grad():
        ref = model.eval()(x)
    got = torch.from_numpy(ort.InferenceSession(str(run / "export" / "last.onnx")).run(None, {"input": x.numpy()})[0])
    assert torch.allclose(got, ref, atol=1e-5, rtol=0)
    program = torch.export.load(str(run / "export" / "last.pt2")).module()  # the batch axis is dynamic
    with torch.no_grad():
        assert torch.allclose(program(x), ref, atol=1e-5, rtol=0)
        assert torch.allclose(program(x[:, :1]), ref[:, :1], atol=1e-5, rtol=0)


#: norms ONNX and torch.export cannot hold as constants: statistics per sample, a state across steps
NOT_EXPORTABLE = {"layernorm", "neunorm"}


@pytest.mark.slow
@pytest.mark.parametrize("norm", available("norm"))
def test_every_norm_exports_to_onnx_or_is_refused_by_name(norm, tmp_path):
    """Every norm the framework trains: ONNX and torch.export outputs equal the model's (<= 1e-5), or a refusal."""
    ort = pytest.importorskip("onnxruntime")
    name, args = MODELS["conv"]
    model = trained(name, {"name": "lif", "decay": 0.8, "threshold": 0.5}, norm, **args)
    example = torch.zeros(T, 1, *SHAPE)
    if norm in NOT_EXPORTABLE:
        with pytest.raises(ExportError, match=r"layer \d+ \(\w+\) is neither folded"):
            to_onnx(model, example, tmp_path / "net.onnx")
        return
    x = torch.rand(T, 3, *SHAPE) * 2
    ref, spikes = spikes_of(model, x)
    assert any(0 < s.mean() < 1 for s in spikes)
    got = ort.InferenceSession(str(to_onnx(model, example, tmp_path / "net.onnx"))).run(None, {"input": x.numpy()})[0]
    assert torch.allclose(torch.from_numpy(got), ref, atol=1e-5, rtol=0)
    program = torch.export.load(str(to_torch(model, x, tmp_path / "net.pt2"))).module()
    with torch.no_grad():
        assert torch.allclose(program(x), ref, atol=1e-5, rtol=0)
