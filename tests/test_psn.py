"""PSN (Fang et al. NeurIPS 2023) against SpikingJelly's PSN, MaskedPSN and SlidingPSN, and against its equation."""
from __future__ import annotations

import pytest
import torch

from snntrain import ConfigError, build

sj = pytest.importorskip("spikingjelly.activation_based.neuron.psn")
from spikingjelly.activation_based import functional, surrogate  # noqa: E402

T, B, N = 5, 3, (2, 3)


def ours(variant, **kw):
    return build("neuron", "psn", context={"surrogate": build("surrogate", "atan"), "shape": N, "T": T},
                 variant=variant, **kw)


def peer(variant, k=2, lam=1.0):
    if variant == "full":
        return sj.PSN(T, surrogate.ATan())
    if variant == "masked":
        return sj.MaskedPSN(k, T, lam, surrogate.ATan(), step_mode="m")
    return sj.SlidingPSN(k, True, surrogate.ATan(), step_mode="m")


@pytest.mark.parametrize("variant,kw", [("full", {}), ("masked", {"k": 2, "lambda_init": 1.0}),
                                         ("masked", {"k": 3, "lambda_init": 0.3}), ("sliding", {"k": 3})])
def test_psn_equals_spikingjelly(variant, kw):
    torch.manual_seed(0)
    a = ours(variant, **kw)
    b = peer(variant, kw.get("k", 2), kw.get("lambda_init", 1.0))
    with torch.no_grad():  # same random parameters
        a.weight.copy_(torch.randn_like(a.weight))
        a.bias.copy_(torch.randn_like(a.bias) * 0.3 - 0.5)
        b.weight.copy_(a.weight), b.bias.copy_(a.bias.view_as(b.bias))
    x = (torch.randn(T, B, *N) * 2).requires_grad_()
    xb = x.detach().clone().requires_grad_()
    functional.reset_net(b)
    s, sb = a(x), b(xb)
    assert torch.equal(s, sb) and 0 < s.mean() < 1
    w = torch.randn_like(s)
    (s * w).sum().backward()
    (sb * w).sum().backward()
    torch.testing.assert_close(x.grad, xb.grad)
    torch.testing.assert_close(a.weight.grad, b.weight.grad)
    torch.testing.assert_close(a.bias.grad.view_as(b.bias.grad), b.bias.grad)


def test_psn_is_its_equation_and_the_default_init():
    torch.manual_seed(1)
    a = ours("full")
    assert torch.equal(a.bias, torch.full((T, 1), -1.0))  # threshold 1
    x = torch.randn(T, B, *N)
    h = torch.einsum("ts,sbij->tbij", a.weight, x) + a.bias.view(T, 1, 1, 1)
    assert torch.equal(a(x), (h >= 0).float())
    sl = ours("sliding", k=3)
    assert sl.weight.tolist() == [0.25, 0.5, 1.0]
    # sliding: H_t = sum_i w_i X_{t-k+1+i} + b, hand-computed for t = 0 and t = 3
    h0 = 1.0 * x[0] - 1
    h3 = 0.25 * x[1] + 0.5 * x[2] + 1.0 * x[3] - 1
    s = sl(x)
    assert torch.equal(s[0], (h0 >= 0).float()) and torch.equal(s[3], (h3 >= 0).float())


@pytest.mark.parametrize("variant,kw", [("masked", {"k": 2}), ("sliding", {"k": 2}), ("sliding", {"k": 1})])
def test_causal_psn_streams(variant, kw):
    torch.manual_seed(2)
    a = ours(variant, **kw)
    x = torch.randn(T, B, *N) * 2
    state, out = None, []
    for xt in x:
        s, state = a.step(xt, state)
        out.append(s)
    assert torch.equal(torch.stack(out), a(x))
    if variant == "sliding":
        assert state.shape[0] == kw["k"] - 1  # only the last k-1 inputs are kept


def test_non_causal_and_wrong_T_are_errors():
    a = ours("full")
    with pytest.raises(ValueError, match="later steps"):
        a.step(torch.randn(B, *N))
    with pytest.raises(ValueError, match="T=5"):
        a(torch.randn(T + 1, B, *N))
    with pytest.raises(ConfigError, match="neuron.variant"):
        ours("bogus")
    with pytest.raises(ConfigError, match="neuron.k"):
        ours("masked", k=T + 1)
    with pytest.raises(ConfigError, match="neuron.reset"):  # PSN has no reset
        ours("full", reset="zero")


def test_psn_trains_in_a_model():
    from snntrain.models import make_factories

    neuron, norm = make_factories({"name": "psn", "variant": "masked", "k": 2}, {"name": "atan"}, {"name": "bn"}, 2)
    model = build("model", "vgg", context={"in_shape": (1, 8, 8), "num_classes": 10, "T": 2, "neuron": neuron,
                                           "norm": norm})
    model(torch.rand(2, 4, 1, 8, 8)).sum().backward()
    psns = [m for m in model.modules() if type(m).__name__ == "PSN"]
    assert psns and all(p.weight.grad is not None for p in psns)
