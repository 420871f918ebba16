"""``neuron.backend=triton``: the Triton kernels equal the ``torch`` backend.

Without a GPU the kernels run under Triton's interpreter (``TRITON_INTERPRET=1``, set
here before :mod:`snntrain.kernels.triton_lif` is first imported; numpy on the CPU), on
small shapes; with a GPU they run compiled, on CUDA tensors. Outputs and states within
1e-6 relative, gradients within 1e-5 (as ``tests/test_backends.py``); the compact
storage codes within their bound of the exact path. Skipped where triton does not import.
"""
from __future__ import annotations

import os
import sys

import pytest
import torch

GPU = torch.cuda.is_available()
_env = os.environ.get("TRITON_INTERPRET")
if not GPU and "triton" not in sys.modules:  # triton decorates its kernels (and its own library) at import
    os.environ["TRITON_INTERPRET"] = "1"
try:
    triton = pytest.importorskip("triton")
    from snntrain.kernels import triton_lif
finally:  # the rest of the session (torch.compile) sees the environment it had
    if _env is None:
        os.environ.pop("TRITON_INTERPRET", None)
    else:
        os.environ["TRITON_INTERPRET"] = _env

from snntrain import ConfigError, available, build  # noqa: E402

from .test_backends import FUSED, SHAPES, close, make, run  # noqa: E402

DEVICE = "cuda" if GPU else "cpu"
T, B = 6, 2
LIF_KIND = ["if", "lif", "lif_decay_input", "lif_fixed", "plif", "plif_no_decay_input"]
RESETS = [(r, det) for r in ("subtract", "zero", "none") for det in (False, True)]


def interpreter_ok() -> bool:
    return GPU or triton_lif.interpreting()


def compare(case, reset, detach, surrogate):
    if not interpreter_ok():
        pytest.skip("triton was imported before this module could set TRITON_INTERPRET=1; run TRITON_INTERPRET=1 pytest tests/test_triton.py")
    shape = SHAPES["conv"] if case == "lif" else SHAPES["dense"]
    g = torch.Generator().manual_seed(3)
    x = (torch.randn(T, B, *shape, generator=g) * 1.2 + 0.6).to(DEVICE)
    ref = make(case, "torch", reset, False, detach, surrogate, shape).to(DEVICE)
    tri = make(case, "triton", reset, False, detach, surrogate, shape).to(DEVICE)
    tri.load_state_dict(ref.state_dict())
    s1, tr1, g1 = run(ref, x)
    s2, tr2, g2 = run(tri, x)
    assert (s1 > 0).any() and (s1 == 0).any()
    torch.testing.assert_close(s2, s1, rtol=1e-6, atol=0)
    torch.testing.assert_close(tr2["mem"], tr1["mem"], rtol=1e-6, atol=1e-6)
    assert g1.keys() == g2.keys()
    for name in g1:
        assert close(g2[name], g1[name], 1e-5), (name, float((g2[name] - g1[name]).abs().max()))


@pytest.mark.parametrize("surrogate", sorted(available("surrogate")))
def test_triton_equals_torch_every_surrogate(surrogate):
    compare("lif", "subtract", False, surrogate)


# every reset rule on the three charge forms (lif with v_reset, plif with and without decay_input), the rest once
NEURON_CASES = [(c, r, d) for c in ("lif", "lif_decay_input", "plif") for r, d in RESETS] + [
    ("if", "subtract", False), ("lif_fixed", "subtract", False), ("plif_no_decay_input", "subtract", False),
    ("plif_no_decay_input", "zero", False),
]


@pytest.mark.parametrize("case,reset,detach", NEURON_CASES, ids=[f"{c}-{r}-{'det' if d else 'grad'}" for c, r, d in NEURON_CASES])
def test_triton_equals_torch_every_neuron_and_reset(case, reset, detach):
    compare(case, reset, detach, "sigmoid")


@pytest.mark.parametrize("case", ["lif", "plif"])
def test_triton_chunks_continue_from_the_carried_state(case, monkeypatch):
    """Truncated-BPTT chunks on triton start from the carried membrane (the kernel's initial state) and equal torch's."""
    if not interpreter_ok():
        pytest.skip("triton was imported before this module could set TRITON_INTERPRET=1")
    from snntrain.backends import lif as lif_form
    from snntrain.layers.carry import carry_state

    shape = SHAPES["conv"] if case == "lif" else SHAPES["dense"]
    x = (torch.randn(T, B, *shape, generator=torch.Generator().manual_seed(5)) * 1.2 + 0.6).to(DEVICE)
    outs, grads, engines = [], [], []
    monkeypatch.setattr(lif_form, "engine", lambda *a, _f=lif_form.engine: engines.append(_f(*a)) or engines[-1])
    for backend in ("torch", "triton"):
        n = make(case, backend, "subtract", False, False, "atan", shape).to(DEVICE)
        xi = x.clone().requires_grad_()
        with carry_state(n):
            out = torch.cat([n(c) for c in xi.split(4)])
        out.sum().backward()
        if backend == "triton":
            assert len(engines) == 2 and all(isinstance(e, lif_form._Triton) for e in engines)
        outs.append(out.detach())
        grads.append(xi.grad)
    assert torch.equal(outs[0], outs[1]) and (outs[0] > 0).any()
    assert close(grads[1], grads[0], 1e-5)


@pytest.mark.parametrize("storage", ["bf16", "int8"])
def test_triton_compact_storage_matches_fused(storage):
    """The same codes as the fused backend's (up to one code where g'(z) rounds differently), the same spikes."""
    if not interpreter_ok():
        pytest.skip("triton was imported before this module could set TRITON_INTERPRET=1; run TRITON_INTERPRET=1 pytest tests/test_triton.py")
    g = torch.Generator().manual_seed(5)
    x = (torch.randn(T, B, 7, generator=g) + 0.6).to(DEVICE)
    grads = {}
    for backend in ("fused", "triton"):
        torch.manual_seed(0)
        n = build("neuron", "lif", decay=0.8, backend=backend, grad_storage=storage, learn_threshold=True).to(DEVICE)
        xi = x.clone().requires_grad_()
        s = n(xi)
        (s * torch.linspace(-1, 1, s.numel(), device=DEVICE).view_as(s)).sum().backward()
        grads[backend] = (s.detach(), xi.grad, n.threshold.grad)
    assert torch.equal(grads["fused"][0], grads["triton"][0])
    gmax = build("surrogate", "atan").peak()
    tol = 2.0**-8 if storage == "bf16" else gmax / 127  # one code apart at most, through T steps of gain <= 1
    assert float((grads["fused"][1] - grads["triton"][1]).abs().max()) <= tol * T


def test_triton_on_the_cpu_is_an_error_naming_the_option(monkeypatch):
    monkeypatch.setattr(triton_lif, "INTERPRET", False)
    if GPU:
        with pytest.raises(ConfigError, match=r"^neuron\.backend:.*CUDA"):
            build("neuron", "lif", backend="triton")(torch.ones(2, 1, 3))
        return
    with pytest.raises(ConfigError, match=r"^neuron\.backend:.*CUDA GPU"):
        build("neuron", "lif", backend="triton")


def test_triton_refuses_what_it_cannot_run():
    with pytest.raises(ConfigError, match=r"^neuron\.backend:.*not ALIF"):
        build("neuron", "alif", backend="triton")
    with pytest.raises(ConfigError, match=r"^neuron\.backend:.*reset_delay"):
        build("neuron", "lif", backend="triton", reset_delay=True)
    sg = build("surrogate", "atan")
    sg.spec = lambda: (lambda x: torch.ones_like(x), ())
    with pytest.raises(ConfigError, match=r"^neuron\.surrogate:"):
        build("neuron", "lif", context={"surrogate": sg}, backend="triton")


@pytest.mark.skipif(not GPU, reason="needs a CUDA GPU")
def test_auto_picks_triton_on_cuda():
    from snntrain.backends.support import choose

    lif = build("neuron", "lif").cuda()
    assert choose(lif, torch.zeros(2, 1, 3, device="cuda")) == ("triton", "exact")


assert set(LIF_KIND) <= set(FUSED)
