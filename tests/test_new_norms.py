"""MPBN against SpikingJelly's ``MPBNLIFNode``; TAB against the equations of its paper (Jiang et al. ICLR 2024).

MPBN: a stage ``bn -> lif`` with the membrane BN, built through the model factories,
against ``nn.BatchNorm2d -> MPBNLIFNode`` with the same parameters: spikes, input and
parameter gradients over two training forwards, running statistics (updated once per
step), then eval; the folded threshold of the paper's re-parameterization.

TAB: written out in float64 with plain torch ops (the statistics of the concatenated
steps 1..t), forward and gradients (input, gamma, beta, p_t); running statistics once per
sequence; eval; truncated BPTT chunks equal to the whole sequence.
"""
from __future__ import annotations

import pytest
import torch
from torch import nn

import snntrain
from snntrain.errors import ConfigError
from snntrain.models import make_factories
from snntrain.norm.mpbn import MembraneBN

T, B, C = 4, 6, 3


def close(a, b, what, tol=1e-5):
    d = (a.double() - b.double()).abs().max().item()
    assert d <= tol, f"{what}: max abs diff {d:.3g} > {tol}"


# ------------------------------------------------------------------ MPBN
def mpbn_pair(seed=0):
    sj_neuron = pytest.importorskip("spikingjelly.activation_based.neuron")
    from spikingjelly.activation_based import surrogate

    neuron, norm = make_factories({"name": "lif", "tau": 2.0, "reset": "zero"}, {"name": "atan"}, {"name": "mpbn"}, T)
    ours = nn.Sequential(norm((C, 5, 5)), neuron((C, 5, 5)))
    peer_node = sj_neuron.MPBNLIFNode(tau=2.0, v_reset=0.0, surrogate_function=surrogate.ATan(), out_channels=C,
                                      step_mode="m")
    peer_bn = nn.BatchNorm2d(C)
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in [*ours.parameters()]:
            p.uniform_(0.5, 1.5)
        peer_bn.weight.copy_(ours[0].weight), peer_bn.bias.copy_(ours[0].bias)
        peer_node.vbn.weight.copy_(ours[1].membrane_bn.weight), peer_node.vbn.bias.copy_(ours[1].membrane_bn.bias)
    return ours, peer_bn, peer_node


def peer_forward(bn, node, x):
    from spikingjelly.activation_based import functional

    functional.reset_net(node)
    h = bn(x.flatten(0, 1)).view(x.shape)
    return node(h)


def test_mpbn_equals_spikingjelly_train_and_eval():
    ours, bn, node = mpbn_pair()
    mb = ours[1].membrane_bn
    assert isinstance(mb, MembraneBN) and ours[1].state_quant is not None
    for step in range(2):  # two training steps: the running statistics move twice
        x = (torch.randn(T, B, C, 5, 5) * 2 + 0.5).requires_grad_()
        xp = x.detach().clone().requires_grad_()
        s, sp = ours(x), peer_forward(bn, node, xp)
        close(s, sp, "spikes")
        w = torch.randn_like(s)
        (s * w).sum().backward()
        (sp * w).sum().backward()
        close(x.grad, xp.grad, "input grad")
        for a, b_, what in [(ours[0].weight, bn.weight, "bn gamma"), (ours[0].bias, bn.bias, "bn beta"),
                            (mb.weight, node.vbn.weight, "membrane gamma"), (mb.bias, node.vbn.bias, "membrane beta")]:
            close(a.grad, b_.grad, what, 1e-4)
        close(mb.running_mean, node.vbn.running_mean, "membrane running mean")
        close(mb.running_var, node.vbn.running_var, "membrane running var")
        close(ours[0].running_var, bn.running_var, "bn running var")
    assert int(mb.num_batches_tracked) == int(node.vbn.num_batches_tracked) == 2 * T  # once per step
    ours.eval(), bn.eval(), node.eval()
    x = torch.randn(T, B, C, 5, 5) * 2 + 0.5
    close(ours(x), peer_forward(bn, node, x), "eval spikes")


def test_mpbn_reaches_every_neuron_and_trains_a_model():
    neuron, norm = make_factories({"name": "lif"}, {"name": "atan"}, {"name": "mpbn"}, 2)
    model = snntrain.build("model", "resnet18", context={"in_shape": (3, 8, 8), "num_classes": 10, "T": 2,
                                                         "neuron": neuron, "norm": norm}, width=0.125)
    neurons = [m for m in model.modules() if isinstance(m, snntrain.neurons.SpikingNeuron)]
    assert neurons and all(isinstance(getattr(n, "membrane_bn", None), MembraneBN) for n in neurons)
    model(torch.rand(2, 2, 3, 8, 8)).sum().backward()
    assert all(n.membrane_bn.weight.grad is not None for n in neurons)


def test_mpbn_folded_threshold_is_the_firing_rule_in_eval():
    ours, _, _ = mpbn_pair(1)
    ours.train()
    ours(torch.randn(T, B, C, 5, 5))  # move the running statistics
    ours.eval()
    lif, mb = ours[1], ours[1].membrane_bn
    h = torch.randn(1, B, C, 5, 5) * 3  # one step from rest: the charged membrane is the input
    v = mb.folded_threshold(1.0).view(1, 1, C, 1, 1)
    assert torch.equal(lif(h), (h > v).float())
    with torch.no_grad():
        mb.weight[0] = -1.0
    with pytest.raises(ValueError, match="gamma"):
        mb.folded_threshold(1.0)


def test_mpbn_bad_args_name_the_key():
    with pytest.raises(ConfigError, match="norm.eps"):
        make_factories({"name": "lif"}, {"name": "atan"}, {"name": "mpbn", "eps": 0.0}, T)


# ------------------------------------------------------------------ TAB
def tab_reference(x, gamma, beta, p, eps=1e-5):
    """Jiang et al. 2024: step t by the statistics of x_1..x_t pooled over batch and space, times p_t (float64)."""
    x = x.double()
    dims = [0, 1, *range(3, x.dim())]
    view = [1, -1] + [1] * (x.dim() - 3)
    out = []
    for t in range(x.shape[0]):
        prefix = x[: t + 1]
        mu = prefix.mean(dims)
        var = ((prefix - mu.view(1, *view)) ** 2).mean(dims)
        y = gamma.double().view(view) * (x[t] - mu.view(view)) / torch.sqrt(var.view(view) + eps) + beta.double().view(view)
        out.append(p.double()[t] * y)
    return torch.stack(out)


def tab(spatial=(5, 5), **kw):
    m = snntrain.build("norm", "tab", context={"num_features": C, "T": T, "shape": (C, *spatial)}, **kw)
    with torch.no_grad():
        m.weight.uniform_(0.5, 1.5), m.bias.uniform_(-0.5, 0.5), m.scale.uniform_(0.5, 1.5)
    return m


@pytest.mark.parametrize("spatial", [(), (7,), (5, 5)], ids=["1d", "1dL", "2d"])
def test_tab_forward_and_gradients_match_its_equations(spatial):
    torch.manual_seed(0)
    m = tab(spatial)
    # statistics that drift over time, as a membrane's input does
    x = (torch.randn(T, B, C, *spatial) * torch.arange(1, T + 1).view(-1, *[1] * (2 + len(spatial)))
         + 3.0).requires_grad_()
    xr = x.detach().double().requires_grad_()
    params = [m.weight, m.bias, m.scale]
    ref_params = [p.detach().double().requires_grad_() for p in params]
    y, yr = m(x), tab_reference(xr, *ref_params)
    close(y, yr, "forward")
    w = torch.randn_like(yr)
    (y * w.float()).sum().backward()
    (yr * w).sum().backward()
    close(x.grad, xr.grad, "input grad", 1e-4)
    for p, r, name in zip(params, ref_params, ["gamma", "beta", "p_t"]):
        close(p.grad, r.grad, name, 1e-4)


def test_tab_is_not_bn_and_first_step_uses_its_own_statistics():
    torch.manual_seed(1)
    m = tab()
    x = torch.randn(T, B, C, 5, 5) + torch.arange(T).view(-1, 1, 1, 1, 1).float()
    y = m(x)
    bn = nn.functional.batch_norm(x[0], None, None, m.weight, m.bias, True, 0.0, 1e-5) * m.scale[0]
    close(y[0], bn, "t=1: BN of step 1 alone")
    pooled = nn.functional.batch_norm(x.flatten(0, 1), None, None, m.weight, m.bias, True, 0.0, 1e-5).view(x.shape)
    close(y[-1], pooled[-1] * m.scale[-1], "t=T: BN over all steps")
    assert (y[1] - pooled[1] * m.scale[1]).abs().max() > 0.1  # in between: neither


def test_tab_running_statistics_once_per_sequence_and_eval():
    torch.manual_seed(2)
    m = tab(momentum=0.25)
    x = torch.randn(T, B, C, 5, 5) * 2 + 1
    m(x)
    mean = x.mean([0, 1, 3, 4])
    var = x.transpose(0, 2).reshape(C, -1).var(1, unbiased=True)
    close(m.running_mean, 0.25 * mean, "running mean")
    close(m.running_var, 0.75 + 0.25 * var, "running var")
    assert int(m.num_batches_tracked) == 1
    m.eval()
    x2 = torch.randn(T, B, C, 5, 5)
    view = (1, C, 1, 1)
    expect = ((x2 - m.running_mean.view(view)) / torch.sqrt(m.running_var.view(view) + 1e-5) * m.weight.view(view)
              + m.bias.view(view)) * m.scale.view(-1, 1, 1, 1, 1)
    close(m(x2), expect, "eval")


def test_tab_chunks_equal_the_whole_sequence():
    from snntrain.layers.carry import carry_state

    torch.manual_seed(3)
    m = tab()
    x = torch.randn(T, B, C, 5, 5) * 2 + torch.arange(T).view(-1, 1, 1, 1, 1).float()
    whole = m(x)
    m2 = tab()
    m2.load_state_dict({k: v for k, v in m.state_dict().items() if "running" not in k and "num_batches" not in k},
                       strict=False)
    outs = []
    with carry_state(nn.Sequential(m2)) as carry:
        for chunk in x.split(2):
            outs.append(nn.Sequential(m2)(chunk))
            carry.next_chunk()
    close(torch.cat(outs), whole, "chunks")
    close(m2.running_mean, m.running_mean, "running mean after the last chunk")


def test_tab_wrong_T_is_an_error_and_does_not_fold():
    m = tab()
    with pytest.raises(ValueError, match="T=4"):
        m(torch.randn(3, B, C, 5, 5))
    assert "p_t" in m.cannot_fold
    with pytest.raises(ConfigError, match="norm.T|norm.momentum"):
        snntrain.build("norm", "tab", context={"num_features": C, "T": T}, momentum=2.0)
