"""Neuron backends: every fused neuron x surrogate x reset rule equals the ``torch`` backend.

The ``torch`` backend (``step_fn`` in a loop, autograd per step) is the reference. The
fused backend must give the same spikes and state traces (bit for bit: it runs the same
operations; checked to 1e-6 relative) and the same gradients of a random projection of
spikes and traces with respect to the input and every learnable parameter (decay,
threshold, graded-spike factor) within 1e-5 (relative above magnitude 1).
"""
from __future__ import annotations

import logging
import os
import zlib

import pytest
import torch

from snntrain import ConfigError, available, build

T, B = 8, 3
# the parity tests run on this device (benchmarks/gpu_check.py sets cuda); the C++ kernel cases are CPU-only
DEVICE = os.environ.get("SNNTRAIN_TEST_DEVICE", "cpu")
SHAPES = {"dense": (5,), "conv": (2, 3, 3)}

# name -> (constructor arguments with every parameter learnable, reset_delay offered)
FUSED = {
    "if": (dict(learn_threshold=True), True),
    "lif": (dict(decay=0.7, learn_decay=True, decay_shape="channel", learn_threshold=True), True),
    "lif_decay_input": (dict(decay=0.6, decay_input=True, learn_decay=True, v_reset=-0.1), True),
    "lif_fixed": (dict(decay=0.5), True),  # nothing learnable: the fused lif saves H only
    "plif": (dict(init_tau=3.0, learn_threshold=True), False),
    "plif_no_decay_input": (dict(init_tau=2.5, decay_input=False, v_reset=0.2), False),
    "alif": (dict(decay=0.8, learn_decay=True, adapt=0.5, rho=0.8, learn_threshold=True), False),
    "synaptic": (dict(alpha=0.8, beta=0.7, learn_alpha=True, learn_beta=True, learn_threshold=True), True),
    "alpha": (dict(alpha=0.9, beta=0.8, learn_alpha=True, learn_beta=True, learn_threshold=True), False),
    "lapicque": (dict(decay=0.6, learn_threshold=True), True),
}
RESET_MODES = [(r, d, det) for r in ("subtract", "zero", "none") for d in (False, True) for det in (False, True)]


def neuron_name(case: str) -> str:
    return case.split("_")[0]


def make(case, backend, reset, delay, detach, surrogate, shape):
    kw, _ = FUSED[case]
    kw = dict(kw, reset=reset, detach_reset=detach, backend=backend, graded_spikes_factor=1.5, learn_graded_spikes_factor=True)
    if delay:
        kw["reset_delay"] = True
    torch.manual_seed(0)
    sg = build("surrogate", surrogate)
    return build("neuron", neuron_name(case), context={"surrogate": sg, "shape": shape}, **kw)


def run(neuron, x, seed=1):
    xi = x.clone().requires_grad_()
    s, tr = neuron(xi, return_state=True)
    g = torch.Generator().manual_seed(seed)
    loss = (s * torch.randn(s.shape, generator=g).to(s.device)).sum()
    for name in sorted(tr):
        loss = loss + (tr[name] * torch.randn(tr[name].shape, generator=g).to(s.device)).sum()
    loss.backward()
    grads = {"x": xi.grad}
    grads.update({n: p.grad for n, p in neuron.named_parameters()})
    return s.detach(), {k: v.detach() for k, v in tr.items()}, grads


def close(a, b, tol):
    scale = max(1.0, float(b.abs().max())) if b.numel() else 1.0
    return float((a - b).abs().max()) <= tol * scale if a.numel() else True


CASES = [
    (case, reset, delay, detach, impl)
    for case, (_, delayable) in FUSED.items()
    for reset, delay, detach in RESET_MODES
    if delayable or not delay
    # the C++ kernel runs the lif kind (if, lif, plif) with an immediate reset; "eager": the PyTorch-op loop
    for impl in (("kernel", "eager") if not delay and case.split("_")[0] in ("if", "lif", "plif") else ("eager",))
]


def use_kernel(impl, monkeypatch):
    """The fused lif kind runs the C++ kernel where it builds (``kernel``), or the eager loop."""
    from snntrain.kernels import cpu as cpu_lif

    if impl == "eager":
        monkeypatch.setattr(cpu_lif, "_KERNEL", None)
        monkeypatch.setattr(cpu_lif, "_TRIED", True)
    elif cpu_lif.kernel(wait=True) is None:
        pytest.skip("the C++ lif kernel does not build here (no compiler?)")
    return impl


@pytest.fixture(params=["kernel", "eager"])
def cpu_kernel(request, monkeypatch):
    return use_kernel(request.param, monkeypatch)


@pytest.mark.parametrize("surrogate", sorted(available("surrogate")))
@pytest.mark.parametrize(
    "case,reset,delay,detach,impl", CASES,
    ids=[f"{c}-{r}-{'delay' if d else 'now'}-{'det' if t else 'grad'}-{i}" for c, r, d, t, i in CASES],
)
def test_fused_equals_torch(case, reset, delay, detach, impl, surrogate, monkeypatch):
    if DEVICE != "cpu" and impl == "kernel":
        pytest.skip("the C++ kernel runs on the CPU only")
    use_kernel(impl, monkeypatch)
    shape = SHAPES["conv"] if "lif" == case else SHAPES["dense"]
    g = torch.Generator().manual_seed(zlib.crc32(f"{case}{reset}{delay}".encode()))
    x = (torch.randn(T, B, *shape, generator=g) * 1.2 + 0.6).to(DEVICE)
    ref = make(case, "torch", reset, delay, detach, surrogate, shape).to(DEVICE)
    fused = make(case, "fused", reset, delay, detach, surrogate, shape).to(DEVICE)
    fused.load_state_dict(ref.state_dict())
    s1, tr1, g1 = run(ref, x)
    s2, tr2, g2 = run(fused, x)
    assert (s1 > 0).any() and (s1 == 0).any(), "the input should make some, not all, neurons fire"
    assert torch.equal(s1, s2)
    for name in tr1:
        torch.testing.assert_close(tr2[name], tr1[name], rtol=1e-6, atol=1e-6)
    assert g1.keys() == g2.keys() and len(g1) >= (2 if case == "lif_fixed" else 3)  # x, graded factor, decay/threshold
    for name in g1:
        assert g2[name] is not None, name
        assert close(g2[name], g1[name], 1e-5), (name, float((g2[name] - g1[name]).abs().max()))
    if surrogate != "heaviside":
        assert g1["x"].abs().sum() > 0


def test_fused_without_traces_saves_one_value_per_element_and_step(cpu_kernel):
    """The fused lif keeps H only: the bytes autograd saves are T*B*N floats plus the scalars."""
    x = (torch.randn(T, B, 64) + 0.5).requires_grad_()
    saved = {}
    for backend in ("torch", "fused"):
        lif = build("neuron", "lif", decay=0.5, backend=backend)
        total = [0]

        def pack(t, total=total):
            total[0] += t.numel() * t.element_size()
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            lif(x).sum().backward()
        saved[backend] = total[0]
    per_step = T * B * 64 * 4
    assert saved["fused"] <= per_step + 64  # H plus the threshold and decay scalars
    assert saved["torch"] > saved["fused"]


def test_fused_rejects_what_it_cannot_run_naming_the_option():
    with pytest.raises(ConfigError, match=r"^neuron\.inhibition:"):
        build("neuron", "lif", inhibition=True, backend="fused")
    with pytest.raises(ConfigError, match=r"^neuron\.backend:.*RLeaky"):
        build("neuron", "rleaky", context={"shape": (4,)}, backend="fused")
    lif = build("neuron", "lif", backend="fused")
    lif.state_quant = torch.round
    with pytest.raises(ConfigError, match=r"^neuron\.state_quant:"):
        lif(torch.ones(2, 1, 3))


def test_auto_falls_back_to_torch_with_one_log_line(caplog):
    lif = build("neuron", "lif", inhibition=True)  # auto
    x = torch.randn(4, 2, 3)
    with caplog.at_level(logging.INFO, logger="snntrain.backends"):
        out1, out2 = lif(x), lif(x)
    lines = [r for r in caplog.records if "runs on torch" in r.getMessage()]
    assert len(lines) == 1 and "inhibition" in lines[0].getMessage()
    ref = build("neuron", "lif", inhibition=True, backend="torch")
    assert torch.equal(out1, ref(x)) and torch.equal(out2, out1)


def test_fused_lif_hand_computed_gradient():
    """T=2, one neuron, subtract reset, atan(alpha=2): the BPTT chain written out by hand."""
    import math

    lif = build("neuron", "lif", decay=0.5, backend="fused")
    x = torch.tensor([1.2, 0.3]).view(2, 1, 1).requires_grad_()
    s = lif(x)
    s[1].sum().backward()
    # H1 = 1.2 fires, V1 = 0.2; H2 = 0.1 + 0.3 = 0.4. dS2/dx2 = g'(H2 - 1); dS2/dx1 = g'(H2-1) * 0.5 * dV1/dH1,
    # dV1/dH1 = 1 - theta * g'(H1 - 1) (the reset's gradient through S1)
    gp = lambda z: 1.0 / (1 + (math.pi * z) ** 2)  # noqa: E731  (alpha/2 = 1)
    d2 = gp(0.4 - 1.0)
    assert torch.allclose(x.grad.flatten(), torch.tensor([d2 * 0.5 * (1 - gp(0.2)), d2]), atol=1e-6)


def test_cpu_kernel_is_used_for_lif_on_the_cpu(cpu_kernel):
    from snntrain.backends import lif as fused

    lif = build("neuron", "lif", backend="fused")
    engine = fused.engine(lif, lif.params(), torch.zeros(2, 1, 3), "fused")
    assert isinstance(engine, fused._Cpu) == (cpu_kernel == "kernel")
    user = build("neuron", "lif", backend="fused")
    user.surrogate.spec = lambda: (lambda x: torch.ones_like(x), ())  # a Python-only derivative: eager path
    assert fused.engine(user, user.params(), torch.zeros(2, 1, 3), "fused") is fused._Eager


def test_backend_is_a_validated_config_key_of_every_neuron_that_has_a_loop():
    from snntrain import describe

    rows = {r["name"]: r["args"] for r in describe("neuron")}
    assert all(args.get("backend") == "auto" for name, args in rows.items() if name != "leaky_parallel")
    with pytest.raises(ConfigError, match=r"^neuron\.backend: expected one of 'auto', 'torch', 'fused', 'triton'"):
        build("neuron", "lif", backend="cuda")


def test_shared_options_are_defined_once_and_flattened():
    """Every neuron's shared keys come from SpikeOptions, in its order, minus the ones it fixes."""
    from dataclasses import fields

    from snntrain.neurons.base import SpikeOptions
    from snntrain.registry import entry

    shared = [f.name for f in fields(SpikeOptions)]
    for name in available("neuron"):
        cls = entry("neuron", name).obj
        keys = [p.name for p in entry("neuron", name).user_params()]
        expected = [k for k in shared if k not in cls.fixed_options]
        assert keys[-len(expected):] == expected, name
    # a neuron's own default of a shared option, and a fixed one that is not a key
    assert {p.name: p.default for p in entry("neuron", "alpha").user_params()}["reset"] == "zero"
    assert "reset_delay" not in [p.name for p in entry("neuron", "alpha").user_params()]
    with pytest.raises(ConfigError, match=r"^neuron\.reset_delay:"):
        build("neuron", "alpha", reset_delay=False)


def test_plif_runs_its_parents_init():
    from snntrain.neurons.lif import IntegrateFire

    plif = build("neuron", "plif", init_tau=3.0)
    assert isinstance(plif, IntegrateFire) and plif.decay_input and plif.reset_delay is False
    assert torch.allclose(plif.decay, torch.tensor(1 - 1 / 3.0))


@pytest.mark.parametrize("name,kw", [("lif", dict(decay=0.6)), ("plif", {}), ("alif", dict(adapt=0.3))])
def test_mixed_precision_inputs_are_integrated_in_float32_by_the_fused_forms(name, kw, caplog):
    """A bf16 input (autocast): the fused forms run the float32 membrane and emit bf16 spikes; the gradient comes back in bf16."""
    torch.manual_seed(0)
    x = (torch.randn(6, 2, 5) + 0.6).to(torch.bfloat16)
    fused, ref = build("neuron", name, backend="fused", **kw), build("neuron", name, backend="torch", **kw)
    xf, xr = x.clone().requires_grad_(), x.float().requires_grad_()
    with caplog.at_level(logging.INFO, logger="snntrain.backends"):
        out = fused(xf)
    assert "runs on torch" not in caplog.text
    want = ref(xr)
    assert out.dtype == torch.bfloat16 and torch.equal(out.float(), want) and (want > 0).any()
    g = torch.randn(out.shape)
    (out.float() * g).sum().backward()
    (want * g).sum().backward()
    assert xf.grad.dtype == torch.bfloat16
    torch.testing.assert_close(xf.grad.float(), xr.grad, rtol=1e-2, atol=2e-3)  # bf16 rounding of the same gradient
    assert build("neuron", name, backend="torch", **kw)(x).dtype == torch.bfloat16  # the torch loop runs in bf16
