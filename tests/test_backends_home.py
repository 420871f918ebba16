"""The backends' one home: one entry for forward, streaming and truncated-BPTT chunks; one loop; one-way imports.

* A truncated-BPTT chunk runs on the neuron's backend (a spy on the fused engines shows it
  ran), continues from the carried state exactly as the whole sequence does, and its
  gradients (input, parameters and the carried state) equal the torch backend's.
* There is one Python loop over T for neurons (``snntrain/backends/loop.py``); the other
  loops over time are the engines' own (forward and reverse loops of a fused form).
* ``snntrain.neurons`` imports no backend module when it is imported, and the backends
  never import the neurons package.
"""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from snntrain import build
from snntrain.backends import generic, lif
from snntrain.layers.carry import carry_state

from .conftest import compose_cfg
from .test_backends import use_kernel

ROOT = Path(__file__).resolve().parents[1] / "snntrain"


def _chunked(neuron, x, K, v_grad=False):
    """Spikes, final state and gradients of chunks of K steps; the state is carried with its gradient (no detach)."""
    xi = x.clone().requires_grad_()
    with carry_state(neuron):
        out = torch.cat([neuron(c) for c in xi.split(K)])
    g = torch.Generator().manual_seed(3)
    (out * torch.randn(out.shape, generator=g)).sum().backward()
    return out.detach(), {"x": xi.grad, **{n: p.grad for n, p in neuron.named_parameters()}}


@pytest.mark.parametrize("impl", ["kernel", "eager"])
@pytest.mark.parametrize("case", [
    ("lif", dict(decay=0.7, learn_threshold=True)),
    ("lif", dict(decay=0.6, decay_input=True, learn_decay=True, decay_shape="channel", v_reset=-0.1, reset="zero")),
    ("plif", dict(init_tau=3.0, reset="zero", detach_reset=True)),
    ("alif", dict(decay=0.8, learn_decay=True, adapt=0.5, rho=0.8)),
    ("synaptic", dict(alpha=0.8, beta=0.7, learn_beta=True)),
])
def test_fused_chunks_continue_the_state_and_match_torch(case, impl, monkeypatch):
    """Chunks of 3 steps on the fused backend: the engine runs, spikes equal the whole sequence, gradients equal torch."""
    use_kernel(impl, monkeypatch)
    name, kw = case
    torch.manual_seed(0)
    shape = (2, 3, 3)
    x = torch.randn(8, 4, *shape) * 1.2 + 0.6
    ref = build("neuron", name, context={"shape": shape}, backend="torch", **kw)
    fused = build("neuron", name, context={"shape": shape}, backend="fused", **kw)
    fused.load_state_dict(ref.state_dict())
    calls = []
    target = lif.LIFFused if name in ("lif", "plif") else generic.GenericFused
    monkeypatch.setattr(target, "apply", lambda *a, _f=target.apply: calls.append(1) or _f(*a))
    s_ref, g_ref = _chunked(ref, x, 3)
    assert calls == []
    s_fused, g_fused = _chunked(fused, x, 3)
    assert len(calls) == 3  # one fused call per chunk (8 steps in chunks of 3)
    assert torch.equal(s_fused, s_ref) and torch.equal(s_fused, fused(x).detach())
    assert (s_ref > 0).any() and (s_ref == 0).any()
    for n in g_ref:
        torch.testing.assert_close(g_fused[n], g_ref[n], rtol=1e-5, atol=1e-6, msg=n)


def test_the_initial_state_gets_its_gradient():
    """dL/dV_0 of a lif chunk from a given state equals autograd through the torch loop."""
    torch.manual_seed(0)
    x = torch.randn(5, 3, 4) + 0.5
    v0 = torch.randn(3, 4).requires_grad_()
    grads = []
    for backend in ("torch", "fused"):
        n = build("neuron", "lif", decay=0.6, backend=backend)
        s, state = n.forward_chunk(x, v0)
        v0.grad = None
        (s.sum() + 0.3 * state.sum()).backward()
        grads.append(v0.grad.clone())
    assert grads[0].abs().sum() > 0
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-5, atol=1e-6)


def test_trainer_tbptt_runs_the_named_backend(monkeypatch):
    """``neuron.backend=fused trainer.tbptt_steps=K``: every chunk runs the fused engine (it used to run torch silently)."""
    from snntrain.training import build_trainer

    calls = []
    monkeypatch.setattr(lif.LIFFused, "apply", lambda *a, _f=lif.LIFFused.apply: calls.append(a[1].shape[0]) or _f(*a))
    cfg = compose_cfg("T=6", "trainer.progress=false", "model.hidden=[16]", "neuron.backend=fused", "trainer.tbptt_steps=2")
    torch.manual_seed(0)
    trainer = build_trainer(cfg)
    calls.clear()  # building may run the model (shape checks); count the training step's chunks only
    trainer.train_step(torch.rand(4, 64), torch.randint(0, 10, (4,)))
    assert calls == [2, 2, 2]


def test_streaming_step_runs_the_backend_and_equals_forward(monkeypatch):
    calls = []
    monkeypatch.setattr(lif.LIFFused, "apply", lambda *a, _f=lif.LIFFused.apply: calls.append(1) or _f(*a))
    n = build("neuron", "lif", decay=0.5, backend="fused")
    x = torch.randn(6, 2, 5) + 0.7
    state, out = None, []
    for xt in x:
        s, state = n.step(xt, state)
        out.append(s)
    assert len(calls) == 6
    assert torch.equal(torch.stack(out), n(x))


def test_one_python_loop_over_time_for_neurons():
    """Only the loop module, the fused engines' own forward/reverse loops, and the kernels loop over T."""
    loops = re.compile(r"for \w+ in (x_seq|x):|for \w+ in range\((x_seq|g_spikes|x)\.shape\[0\]")
    allowed = {"backends/loop.py", "backends/lif.py", "backends/generic.py", "kernels/triton_lif.py"}
    found = set()
    for path in list((ROOT / "neurons").glob("*.py")) + list((ROOT / "backends").glob("*.py")) + [ROOT / "layers" / "carry.py"]:
        if loops.search(path.read_text()):
            found.add(str(path.relative_to(ROOT)))
    assert found <= allowed, found - allowed
    assert "backends/loop.py" in found
    lif_src, gen_src = (ROOT / "backends" / "lif.py").read_text(), (ROOT / "backends" / "generic.py").read_text()
    assert "scan(" in gen_src and "step_fn(" not in lif_src  # the generic forward is the one loop; lif runs its charge


def _modules_after(code: str) -> list[str]:
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys; print(' '.join(sorted(sys.modules)))"],
                         capture_output=True, text=True, check=True)
    return out.stdout.split()


def test_imports_go_one_way():
    after_neurons = _modules_after("import snntrain.neurons")
    assert "snntrain.neurons.lif" in after_neurons
    assert not [m for m in after_neurons if m.startswith("snntrain.backends")]
    after_backends = _modules_after("import snntrain.backends, snntrain.backends.lif, snntrain.backends.generic")
    assert not [m for m in after_backends if m.startswith("snntrain.neurons")]
    for path in (ROOT / "backends").glob("*.py"):  # not even a late import
        text = re.sub(r"if TYPE_CHECKING:.*\n.*\n", "", path.read_text())  # type hints only
        assert not re.search(r"^\s+from \.\.neurons", text, re.M), path.name


def test_surrogates_carry_their_kernel_ids():
    from snntrain import available
    from snntrain.surrogates import ATan

    ids = {name: build("surrogate", name).kernel() for name in available("surrogate")}
    assert all(v is not None for v in ids.values()) and len({v[0] for v in ids.values()}) == len(ids)
    assert ids["atan"] == (0, 2.0) and ids["straight_through"] == (8, -1.0)

    class Steeper(ATan):  # a new g': not the kernels' atan
        @staticmethod
        def derivative(x, alpha):
            return 2 * ATan.derivative(x, alpha)

    assert Steeper().kernel() is None
    n = build("neuron", "lif", context={"surrogate": Steeper()}, backend="fused")
    assert lif.engine(n, n.params(), torch.zeros(2, 1, 3), "fused") is lif._Eager
