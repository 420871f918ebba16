"""Synaptic operations and energy: hand counts on tiny networks, and NeuroBench's metrics on the same models."""
from __future__ import annotations

import copy
import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from snntrain.layers import conv2d, flatten, linear
from snntrain.models import SpikingNet
from snntrain.neurons.lif import IF
from snntrain.training.bptt import evaluate
from snntrain.training.sops import E_AC_PJ, E_MAC_PJ, SynapticOps, layer_ops

from .conftest import compose_cfg

TB = lambda x: x.transpose(0, 1)  # noqa: E731  loader batches [B, T, ...] -> [T, B, ...]
LOSS = lambda out, y: F.cross_entropy(out.mean(0), y)  # noqa: E731


def tiny_mlp(w1: float) -> SpikingNet:
    """Linear(4,3) -> IF (hard reset, threshold 1) -> Linear(3,2); every weight of the first layer ``w1``, no biases."""
    net = SpikingNet(linear(4, 3, bias=False), IF(reset="zero"), linear(3, 2, bias=False))
    with torch.no_grad():
        net[0].module.weight.fill_(w1)
        net[2].module.weight.fill_(1.0)
    return net


# x[t, b]: 2 steps, 2 samples, 4 inputs
SPIKES = torch.tensor([[[1., 1, 0, 0], [0, 0, 1, 0]],
                       [[0., 0, 0, 1], [0, 1, 0, 0]]])


def count(net, x_seq):
    with SynapticOps(net) as ops:
        net.eval()(x_seq)
    return ops.report(samples=x_seq.shape[1], steps=x_seq.shape[0])


def test_hand_count_tiny_mlp_on_spikes():
    # IF currents 0.6 per input spike: t0 b0 has 2 spikes -> H = 1.2, all 3 fire (reset to 0); t0 b1 has 1 -> 0.6;
    # t1 b0: 0 + 0.6 = 0.6, silent; t1 b1: 0.6 + 0.6 = 1.2, all 3 fire. So 6 hidden spikes in 12 entries.
    r = count(tiny_mlp(0.6), SPIKES)
    s = r["sops"]
    # layer 1: 5 input spikes (2 + 1 + 1 + 1) x fan-out 3 = 15 ACs; layer 2: 6 hidden spikes x fan-out 2 = 12 ACs
    # per sample (2 samples): 7.5 + 6 = 13.5 ACs, 6.75 per step (T = 2)
    assert s["stages"]["stage1"] == {"ac": 7.5, "mac": 0.0, "dense": 24.0}  # dense: 4 rows x 4 x 3 = 48, / 2
    assert s["stages"]["readout"] == {"ac": 6.0, "mac": 0.0, "dense": 12.0}  # dense: 4 rows x 3 x 2 = 24, / 2
    assert (s["ac"], s["mac"], s["dense"], s["ac_per_step"], s["mac_per_step"]) == (13.5, 0.0, 36.0, 6.75, 0.0)
    # energy: 13.5 AC x 0.9 pJ = 12.15 pJ; the ANN does one dense pass, 36 / 2 = 18 MACs x 4.6 pJ = 82.8 pJ
    assert (E_AC_PJ, E_MAC_PJ) == (0.9, 4.6)
    e = r["energy_uJ"]
    assert e["snn"] == pytest.approx(12.15e-6) and e["ann"] == pytest.approx(82.8e-6)
    assert e["snn_over_ann"] == pytest.approx(12.15 / 82.8)
    # the evaluation reports the same, and the activation sparsity: 6 of 12 hidden outputs spiked -> 0.5
    ours = evaluate(tiny_mlp(0.6), [(TB(SPIKES), torch.tensor([0, 1]))], TB, LOSS, torch.device("cpu"))
    assert ours["sops"] == s and ours["energy_uJ"] == e and ours["activation_sparsity"] == 0.5


def test_hand_count_analog_input_is_macs_and_pruned_weights_cost_nothing():
    # the same currents from analog input 0.5 and weights 1.2: layer 1 now multiplies, 15 MACs (7.5 per sample)
    net = tiny_mlp(1.2)
    with torch.no_grad():
        net[2].module.weight[0, 1] = 0.0  # hidden neuron 1 now reaches one output, not two
    s = count(net, 0.5 * SPIKES)["sops"]
    assert s["stages"]["stage1"]["mac"] == 7.5 and s["stages"]["stage1"]["ac"] == 0.0
    # hidden neuron 1 spiked twice (t0 b0, t1 b1): 12 - 2 = 10 ACs, 5 per sample
    assert s["stages"]["readout"]["ac"] == 5.0
    assert (s["ac"], s["mac"]) == (5.0, 7.5)


def test_hand_count_conv_with_padding_and_stride():
    # Conv2d(1 -> 2, 3x3, stride 2, padding 1) on 4x4: output 2x2; output row i reads input rows 2i-1 .. 2i+1,
    # so input row (and column) r is read by n(r) kernel positions: n(0) = 1, n(1) = 2, n(2) = 1, n(3) = 1.
    conv = nn.Conv2d(1, 2, 3, stride=2, padding=1)
    x = torch.zeros(1, 1, 4, 4)
    for r, c in [(0, 0), (1, 1), (3, 2), (1, 3)]:
        x[0, 0, r, c] = 1.0
    # spikes at (0,0): 1*1, (1,1): 2*2, (3,2): 1*1, (1,3): 2*1 -> 8 positions x 2 output channels = 16 ACs (bias: none)
    assert layer_ops(conv, x) == 16
    # dense: sum over all inputs of n(r) n(c) = (1 + 2 + 1 + 1)^2 = 25 positions x 2 channels = 50
    assert layer_ops(conv, x, dense=True) == 50
    # the same through the sequence wrapper and the hooks: [T=1, B=1, 1, 4, 4]
    net = SpikingNet(conv2d(1, 2, 3, 2, 1), IF(), flatten(), linear(8, 2))
    with torch.no_grad():
        net[0].module.weight.copy_(conv.weight)
    s = count(net, x[None])["sops"]["stages"]["stage1"]
    assert (s["ac"], s["mac"], s["dense"]) == (16.0, 0.0, 50.0)


def brute_force(layer: nn.Module, x: torch.Tensor, dense: bool = False) -> float:
    """NeuroBench's way: run a copy with 0/1 weights, no bias, on the 0/1 input, and sum the outputs."""
    b = copy.deepcopy(layer).double()
    with torch.no_grad():
        b.weight.copy_((b.weight != 0).double() if not dense else torch.ones_like(b.weight))
        if b.bias is not None:
            b.bias.zero_()
        return float(b((x != 0).double() if not dense else torch.ones_like(x, dtype=torch.float64)).sum())


@pytest.mark.parametrize("layer, shape", [
    (nn.Conv2d(4, 6, 3, stride=2, padding=1, groups=2), (5, 4, 7, 6)),
    (nn.Conv2d(3, 4, (3, 2), stride=(1, 2), padding=(2, 0), dilation=2, bias=False), (4, 3, 9, 8)),
    (nn.Conv2d(2, 3, 3, padding=1, padding_mode="reflect"), (3, 2, 5, 5)),
    (nn.Conv1d(3, 6, 5, stride=3, padding=2, groups=3), (4, 3, 11)),
    (nn.Conv3d(2, 2, 3, padding=1, stride=2), (2, 2, 5, 4, 3)),
    (nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1, groups=2), (3, 4, 4, 5)),
    (nn.Linear(7, 5), (6, 7)),
])
def test_counts_equal_a_binarized_forward(layer, shape):
    torch.manual_seed(0)
    with torch.no_grad():
        layer.weight[layer.weight.abs() < 0.1] = 0.0  # some pruned weights
    x = (torch.rand(shape) < 0.3).float()
    assert layer_ops(layer, x) == brute_force(layer, x)
    assert layer_ops(layer, x, dense=True) == brute_force(layer, x, dense=True)


# ---------------------------------------------------------------- NeuroBench on the same model
def snntrain_model(*overrides: str) -> tuple[nn.Module, int]:
    from snntrain.training.bptt import setup

    parts = setup(compose_cfg(*overrides, "T=3"))
    return parts["model"], parts["data"]


@pytest.mark.parametrize("overrides", [(), ("model=vgg",)], ids=["mlp", "vgg"])
def test_neurobench_gives_the_same_figures(overrides):
    pytest.importorskip("neurobench")
    from neurobench.benchmarks import Benchmark
    from neurobench.metrics.workload import ActivationSparsity, SynapticOperations
    from neurobench.models import TorchModel

    from snntrain.neurons import SpikingNeuron

    torch.manual_seed(0)
    model, data = snntrain_model(*overrides)
    # direct encoding: the analog image at every step (the first synapse multiplies: MACs), spikes after it (ACs)
    x = torch.stack([data.test[i][0] for i in range(40)])
    y = torch.tensor([int(data.test[i][1]) for i in range(40)])
    seq = x[:, None].expand(-1, 3, *x.shape[1:]).contiguous()  # NeuroBench's layout [B, T, ...]
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(seq, y), batch_size=16)

    class SeqModel(TorchModel):  # our network takes [T, B, ...]
        def __call__(self, batch):
            return self.net(batch.transpose(0, 1)).transpose(0, 1)

    nb_model = SeqModel(model)
    nb_model.add_activation_module(SpikingNeuron)
    with torch.no_grad():  # as our evaluation runs (with autograd on, SeqWrap may bypass the inner layer's hooks)
        nb = Benchmark(nb_model, loader, [], [], [[], [SynapticOperations, ActivationSparsity]]).run(quiet=True)
    ours = evaluate(model, loader, TB, LOSS, torch.device("cpu"))
    nb_ops = nb["SynapticOperations"]
    assert ours["sops"]["mac"] > 0 and ours["sops"]["ac"] > 0
    assert ours["sops"]["ac"] == pytest.approx(nb_ops["Effective_ACs"], rel=1e-12)
    assert ours["sops"]["mac"] == pytest.approx(nb_ops["Effective_MACs"], rel=1e-12)
    assert ours["sops"]["dense"] == pytest.approx(nb_ops["Dense"], rel=1e-12)
    assert ours["activation_sparsity"] == pytest.approx(nb["ActivationSparsity"], rel=1e-12)


# ---------------------------------------------------------------- the run's outputs
def test_default_run_metrics_json_has_sops_and_energy(tmp_path):
    from snntrain.training import train

    train(compose_cfg("trainer.epochs=1", "trainer.limit_batches=2", "trainer.progress=false"), tmp_path)
    m = json.loads((tmp_path / "metrics.json").read_text())
    s = m["sops"]
    assert set(s["stages"]) == {"stage1", "readout"}
    # the default mlp: the first synapse gets analog pixels (MACs, 64 -> 256 per nonzero pixel and step), the readout spikes
    assert s["stages"]["stage1"]["ac"] == 0 and s["stages"]["stage1"]["mac"] > 0
    assert s["stages"]["readout"]["mac"] == 0 and s["stages"]["readout"]["ac"] > 0
    assert s["ac"] + s["mac"] <= s["dense"]
    assert m["energy_uJ"]["snn"] > 0 and m["energy_uJ"]["ann"] > 0
    assert 0 <= m["activation_sparsity"] <= 1
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tags = EventAccumulator(str(tmp_path / "tensorboard")).Reload().Tags()["scalars"]
    assert {"sops/ac", "sops/mac", "sops/stage1/mac", "sops/readout/ac", "energy/snn_uJ", "energy/ann_uJ",
            "activation_sparsity"} <= set(tags)
