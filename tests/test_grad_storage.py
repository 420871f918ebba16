"""``neuron.grad_storage=bf16|int8``: the compact surrogate derivative, tested against its documented bound.

Per element: bf16 keeps :math:`g'` to a relative :math:`2^{-8}`, int8 to an absolute
:math:`g'_{max}/254`, and the spike exactly. End to end: the input gradient differs from
the exact path's by at most the bound of :mod:`snntrain.backends.codes` (the exact backward
run on absolute values with the per-step sources :math:`|\\bar S_t|\\,\\delta_t`), computed
here from the exact path's own quantities.
"""
from __future__ import annotations

import logging

import pytest
import torch

from snntrain import ConfigError, available, build
from snntrain.backends.codes import decode, encode

from .test_backends import DEVICE, use_kernel

T, B, N = 12, 4, 16
U = 2.0**-8  # bf16's unit roundoff


def bound_per_element(d: torch.Tensor, storage: str, gmax: float) -> torch.Tensor:
    return U * d if storage == "bf16" else torch.full_like(d, gmax / 254)


@pytest.mark.parametrize("storage", ["bf16", "int8"])
@pytest.mark.parametrize("surrogate", sorted(available("surrogate")))
def test_stored_derivative_within_its_bound_and_spike_exact(surrogate, storage):
    sg = build("surrogate", surrogate)
    derivative, args = sg.spec()
    z = torch.cat([torch.linspace(-4, 4, 4001), torch.tensor([0.0, -0.0, 1e-30, -1e-30])])
    d = derivative(z, *args)
    gmax = sg.peak()
    assert (d >= 0).all() and (d <= gmax).all(), "every built-in g' lies in [0, peak]"
    s = z >= 0
    d_hat, s_hat = decode(encode(d, s, storage, gmax), storage, gmax, torch.float32)
    assert torch.equal(s_hat, s)
    assert ((d_hat - d).abs() <= bound_per_element(d, storage, gmax) * (1 + 1e-6) + 1e-38).all()


CASES = [("subtract", False), ("subtract", True), ("none", False), ("zero", True)]


def lif(backend, reset, detach, surrogate, storage="exact", **kw):
    torch.manual_seed(0)
    return build("neuron", "lif", context={"surrogate": build("surrogate", surrogate)}, decay=0.8, reset=reset,
                 detach_reset=detach, backend=backend, grad_storage=storage, **kw)


@pytest.mark.parametrize("storage", ["bf16", "int8"])
@pytest.mark.parametrize("surrogate", ["atan", "sigmoid", "triangle", "erf"])
@pytest.mark.parametrize("reset,detach", CASES)
@pytest.mark.parametrize("impl", ["kernel", "eager"])
def test_input_gradient_within_the_documented_bound(reset, detach, surrogate, storage, impl, monkeypatch):
    if DEVICE != "cpu" and impl == "kernel":
        pytest.skip("the C++ kernel runs on the CPU only")
    use_kernel(impl, monkeypatch)
    g = torch.Generator().manual_seed(7)
    x = torch.randn(T, B, N, generator=g) * 1.2 + 0.6
    g_out = torch.randn(T, B, N, generator=g)
    grads, mems = {}, {}
    for st in ("exact", storage):  # on SNNTRAIN_TEST_DEVICE; the bound is computed here on the CPU
        neuron = lif("fused", reset, detach, surrogate, st).to(DEVICE)
        xi = x.clone().to(DEVICE).requires_grad_()
        s, tr = neuron(xi, return_state=True)
        (s * g_out.to(DEVICE)).sum().backward()
        grads[st], mems[st] = xi.grad.cpu(), tr["mem"].detach().cpu()
    assert torch.equal(mems["exact"], mems[storage])  # the forward is unchanged
    # the exact backward's quantities, and the bound's recursion (module docstring of snntrain.backends.codes)
    sgm = build("surrogate", surrogate)
    derivative, args = sgm.spec()
    gmax, beta, theta = sgm.peak(), 0.8, 1.0
    V = mems["exact"]
    H = beta * torch.cat([torch.zeros_like(V[:1]), V[:-1]]) + x
    d = derivative(H - theta, *args)
    S = (H >= theta).float()
    a = 1 - S if reset == "zero" else torch.ones_like(S)
    c = torch.full_like(S, -theta) if reset == "subtract" and not detach else torch.zeros_like(S)
    delta = bound_per_element(d, storage, gmax)
    G = torch.zeros(B, N)
    bound = torch.zeros(B, N)
    for t in range(T - 1, -1, -1):
        gV = beta * G
        gS = g_out[t] + c[t] * gV
        G = a[t] * gV + gS * d[t]
        bound = beta * bound * (a[t].abs() + c[t].abs() * (d[t] + delta[t])) + gS.abs() * delta[t]
        assert torch.allclose(grads["exact"][t], G, atol=1e-5, rtol=1e-5)
        err = (grads[storage][t] - grads["exact"][t]).abs()
        assert (err <= bound + 1e-5 * (1 + G.abs())).all(), (t, float((err - bound).max()))
    assert float((grads[storage] - grads["exact"]).abs().max()) > 0 or surrogate == "rectangular"


def saved_bytes(neuron, x):
    total = [0]

    def pack(t):
        total[0] += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        neuron(x).sum().backward()
    return total[0]


@pytest.mark.parametrize("impl", ["kernel", "eager"])
def test_saved_bytes_two_or_one_per_element_and_step(impl, monkeypatch):
    use_kernel(impl, monkeypatch)
    x = (torch.randn(T, B, N) + 0.5).requires_grad_()
    got = {st: saved_bytes(lif("fused", "subtract", False, "atan", st), x) for st in ("exact", "bf16", "int8")}
    n = T * B * N
    assert got["exact"] - 4 * n == got["bf16"] - 2 * n == got["int8"] - n >= 0  # plus the same scalars
    assert got["int8"] - n <= 64


def test_bad_value_names_the_key():
    with pytest.raises(ConfigError, match=r"^neuron\.grad_storage: expected one of 'exact', 'bf16', 'int8'"):
        build("neuron", "lif", grad_storage="fp8")


def test_backends_that_cannot_honour_it_say_so():
    with pytest.raises(ConfigError, match=r"^neuron\.grad_storage:.*torch backend"):
        build("neuron", "lif", backend="torch", grad_storage="bf16")
    with pytest.raises(ConfigError, match=r"^neuron\.grad_storage:.*ALIF"):
        build("neuron", "alif", backend="fused", grad_storage="int8")
    with pytest.raises(ConfigError, match=r"^neuron\.grad_storage:.*reset_delay"):
        build("neuron", "lif", backend="fused", grad_storage="int8", reset_delay=True)
    with pytest.raises(ConfigError, match=r"^neuron\.grad_storage:.*detach_reset=true"):
        build("neuron", "lif", backend="fused", grad_storage="bf16", reset="zero")
    learnt = build("neuron", "lif", backend="fused", grad_storage="bf16", learn_decay=True)
    with pytest.raises(ConfigError, match=r"^neuron\.grad_storage:.*decay is learnt"):
        learnt(torch.ones(2, 1, 3, requires_grad=True))
    with torch.no_grad():  # no backward, nothing stored: fine
        learnt(torch.ones(2, 1, 3))


def test_auto_falls_back_to_exact_with_one_log_line(caplog):
    x = torch.randn(4, 2, 3, requires_grad=True)
    plif = build("neuron", "plif", grad_storage="int8")  # w is learnt
    with caplog.at_level(logging.INFO, logger="snntrain.backends"):
        plif(x).sum().backward()
        plif(x).sum().backward()
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and "runs on fused with grad_storage=exact" in lines[0] and "w is learnt" in lines[0]
    caplog.clear()
    alif = build("neuron", "alif", grad_storage="bf16")
    with caplog.at_level(logging.INFO, logger="snntrain.backends"):
        alif(x)
    assert "runs on torch with grad_storage=exact" in caplog.text


def test_training_runs_with_compact_storage():
    """A few Adam steps on a small MLP: the loss falls with int8 as with exact storage."""
    from torch import nn

    from snntrain.layers.synapse import SeqWrap

    losses = {}
    for st in ("exact", "int8"):
        torch.manual_seed(0)
        net = nn.Sequential(SeqWrap(nn.Linear(8, 32)), lif("fused", "subtract", False, "atan", st), SeqWrap(nn.Linear(32, 3)))
        opt = torch.optim.Adam(net.parameters(), lr=1e-2)
        g = torch.Generator().manual_seed(1)
        x, y = torch.randn(64, 8, generator=g), torch.randint(0, 3, (64,), generator=g)
        for _ in range(30):
            opt.zero_grad()
            loss = nn.functional.cross_entropy(net(x.expand(6, -1, -1)).mean(0), y)
            loss.backward()
            opt.step()
        losses[st] = loss.item()
    assert losses["int8"] < 0.8 * 1.0986 and abs(losses["int8"] - losses["exact"]) < 0.1


@pytest.mark.parametrize("storage", ["bf16", "int8"])
@pytest.mark.parametrize("surrogate", sorted(available("surrogate")))
def test_the_kernel_writes_the_codes_of_encode(surrogate, storage):
    """The C++ forward writes the codes itself: the same spike bits and, but for a last-bit difference
    of g' (std::exp against torch's) crossing a rounding boundary, the same codes as ``encode``."""
    from snntrain.kernels.cpu import kernel

    K = kernel()
    if K is None:
        pytest.skip("the C++ CPU kernel cannot be built here")
    sg = build("surrogate", surrogate)
    derivative, args = sg.spec()
    sg_id, a = sg.kernel()
    gmax = sg.peak()
    x = torch.randn(T, 5000, generator=torch.Generator().manual_seed(3)) * 1.5 + 0.5
    beta = torch.tensor([0.8])
    H, _, _ = K.forward(x, beta, 0, False, 0.0, 1.0, 0, 0.0, False, x.new_empty(0), 0, -1, sg_id, a, 0.0)
    codes, S, _ = K.forward(x, beta, 0, False, 0.0, 1.0, 0, 0.0, False, x.new_empty(0), 0,
                            {"bf16": 0, "int8": 1}[storage], sg_id, a, 127.0 / gmax if gmax > 0 else 0.0)
    want = encode(derivative(H - 1.0, *args), H - 1.0 >= 0, storage, gmax)
    assert codes.dtype == want.dtype
    d, s = decode(codes, storage, gmax, torch.float32)
    d_want, s_want = decode(want, storage, gmax, torch.float32)
    assert torch.equal(s, S.bool()) and torch.equal(s, s_want)
    step = 2 * U * torch.maximum(d, d_want) if storage == "bf16" else torch.full_like(d, gmax / 127)  # one unit
    assert ((d - d_want).abs() <= step * 1.01).all()  # at most one unit of the code apart
    assert float((d == d_want).float().mean()) > 0.99  # and nearly always the same code (rounding to nearest)
