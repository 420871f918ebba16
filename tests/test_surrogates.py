"""Surrogate gradients: closed forms, peer libraries, normalisation, user-defined surrogates.

The formulas below are written out again from the docstrings, independently of
``snntrain/surrogates.py``; a surrogate added without an entry here fails
``test_every_builtin_surrogate_is_covered``.
"""
from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
import torch
import yaml

from snntrain import ConfigError, available, build, registry
from snntrain.registry import entry, register
from snntrain.surrogates import Surrogate

from .conftest import compose_cfg

PI = math.pi
CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "surrogate"


def _sigmoid_grad(x, alpha=4.0):
    e = torch.exp(-alpha * x)  # fine on the sampled range (|alpha * x| <= 30)
    return alpha * e / (1 + e) ** 2


# name -> g'(x; **kwargs), with the documented defaults as keyword defaults
CLOSED_FORM = {
    "atan": lambda x, alpha=2.0: (alpha / 2) / (1 + (PI / 2 * alpha * x) ** 2),
    "sigmoid": _sigmoid_grad,
    "fast_sigmoid": lambda x, slope=25.0: 1 / (1 + slope * x.abs()) ** 2,
    "triangle": lambda x, width=1.0: torch.where(x.abs() < width, (width - x.abs()) / width**2, 0.0),
    "piecewise_quadratic": lambda x, alpha=1.0: torch.where(x.abs() <= 1 / alpha, alpha - alpha**2 * x.abs(), 0.0),
    "rectangular": lambda x, width=1.0: torch.where(x.abs() < width / 2, 1 / width, 0.0),
    "erf": lambda x, alpha=2.0: alpha / math.sqrt(PI) * torch.exp(-(alpha**2) * x**2),
    "gaussian": lambda x, sigma=0.5: torch.exp(-(x**2) / (2 * sigma**2)) / math.sqrt(2 * PI * sigma**2),
    "straight_through": lambda x, width=None: (
        torch.ones_like(x) if width is None else torch.where(x.abs() <= width, 1.0, 0.0)
    ),
    "heaviside": lambda x: torch.zeros_like(x),
}

NON_DEFAULT = {
    "atan": {"alpha": 3.5},
    "sigmoid": {"alpha": 10.0},
    "fast_sigmoid": {"slope": 3.0},
    "triangle": {"width": 0.625},
    "piecewise_quadratic": {"alpha": 2.5},
    "rectangular": {"width": 0.5},
    "erf": {"alpha": 0.7},
    "gaussian": {"sigma": 1.3},
    "straight_through": {"width": 0.75},
    "heaviside": {},
}

# integral of g' over the real line, as each docstring states it (None: diverges)
INTEGRAL = {
    "atan": lambda **kw: 1.0,
    "sigmoid": lambda **kw: 1.0,
    "fast_sigmoid": lambda slope=25.0: 2 / slope,
    "triangle": lambda **kw: 1.0,
    "piecewise_quadratic": lambda **kw: 1.0,
    "rectangular": lambda **kw: 1.0,
    "erf": lambda **kw: 1.0,
    "gaussian": lambda **kw: 1.0,
    "straight_through": lambda width=None: None if width is None else 2 * width,
    "heaviside": lambda: 0.0,
}

BUILTIN = sorted(n for n in available("surrogate") if entry("surrogate", n).obj.__module__ == "snntrain.surrogates")
CASES = [(n, {}) for n in BUILTIN] + [(n, NON_DEFAULT[n]) for n in BUILTIN if NON_DEFAULT.get(n)]
IDS = [f"{n}-{'default' if not kw else 'custom'}" for n, kw in CASES]


def test_every_builtin_surrogate_is_covered():
    assert set(BUILTIN) == set(CLOSED_FORM) == set(NON_DEFAULT) == set(INTEGRAL)


def _sample_x(dtype=torch.float64):
    torch.manual_seed(0)
    grid = torch.linspace(-3, 3, 601, dtype=dtype)  # includes 0 and the window edges
    return torch.cat([grid, torch.randn(200, dtype=dtype) * 1.5, torch.tensor([0.0, -0.0], dtype=dtype)])


@pytest.mark.parametrize("name,kw", CASES, ids=IDS)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_forward_heaviside_backward_closed_form(name, kw, dtype):
    x = _sample_x(dtype).requires_grad_()
    sg = build("surrogate", name, **kw)
    y = sg(x)
    assert y.dtype == dtype and torch.equal(y, (x >= 0).to(dtype))
    w = torch.rand_like(x) + 0.5  # upstream gradient: backward must multiply by it
    (y * w).sum().backward()
    expected = (w.double() * CLOSED_FORM[name](x.detach().double(), **kw)).to(dtype)  # formula in float64
    assert x.grad.dtype == dtype
    # float32: a few ulps of the largest value (sigmoid's s * (1 - s) loses its tails to rounding)
    scale = max(1.0, expected.abs().max().item())
    tol = dict(rtol=1e-12, atol=1e-14) if dtype == torch.float64 else dict(rtol=1e-5, atol=5e-7 * scale)
    torch.testing.assert_close(x.grad, expected, **tol)


def test_heaviside_backward_is_exactly_zero():
    x = _sample_x().requires_grad_()
    build("surrogate", "heaviside")(x).sum().backward()
    assert torch.equal(x.grad, torch.zeros_like(x))


def test_window_edges():
    # rectangular: open window |x| < w/2; straight_through: closed window |x| <= w
    edges = torch.tensor([-0.25, 0.25, -0.2499, 0.2499], dtype=torch.float64)
    assert build("surrogate", "rectangular", width=0.5).grad(edges).tolist() == [0, 0, 2, 2]
    edges = torch.tensor([-0.75, 0.75, -0.7501, 0.7501], dtype=torch.float64)
    assert build("surrogate", "straight_through", width=0.75).grad(edges).tolist() == [1, 1, 0, 0]


@pytest.mark.parametrize("name", BUILTIN)
def test_config_file_matches_constructor_defaults(name):
    cfg = yaml.safe_load((CONFIGS / f"{name}.yaml").read_text())
    args = next(r["args"] for r in registry.describe("surrogate") if r["name"] == name)
    assert cfg == {"name": name, **args}


@pytest.mark.parametrize("name", BUILTIN)
def test_arguments_are_range_checked(name):
    for arg in NON_DEFAULT[name]:
        for bad in (0.0, -1.0):
            with pytest.raises(ConfigError, match=rf"surrogate\.{arg}"):
                build("surrogate", name, **{arg: bad})
        with pytest.raises(ConfigError, match=rf"surrogate\.{arg}"):
            build("surrogate", name, **{arg: "wide"})


# ---------------------------------------------------------------- normalisation
def _integral(sg, n=2**20):
    """int g'(x) dx through the backward pass: x = tan(theta), midpoint rule on (-pi/2, pi/2)."""
    h = PI / n
    theta = -PI / 2 + h * (torch.arange(n, dtype=torch.float64) + 0.5)
    x = torch.tan(theta).requires_grad_()
    (sg(x) * (h / torch.cos(theta) ** 2)).sum().backward()
    return x.grad.sum().item()


@pytest.mark.parametrize("name,kw", CASES, ids=IDS)
def test_integral_is_as_documented(name, kw):
    doc = entry("surrogate", name).obj.__doc__
    expected = INTEGRAL[name](**kw)
    # the docstring says "integrates to 1" exactly for those that do (at any parameters)
    assert bool(re.search(r"integrates\s+to\s+1\b", doc)) == (INTEGRAL[name](**NON_DEFAULT[name]) == 1.0 == INTEGRAL[name]())
    value = _integral(build("surrogate", name, **kw))
    if expected is None:
        assert value > 1e4  # diverges (the straight-through estimator without a window)
    else:
        assert value == pytest.approx(expected, rel=1e-4, abs=1e-9)


# ---------------------------------------------------------------- peer libraries
import snntorch.surrogate as snn  # noqa: E402  (test extras: a missing one fails, it is never skipped)
import spikingjelly.activation_based.surrogate as sj  # noqa: E402

# (our name, our kwargs, peer label, peer callable). snnTorch's forward is x > 0 (ours and
# SpikingJelly's x >= 0), so only gradients are compared. Not matched, on purpose:
# snnTorch's triangular() (backward +threshold for x < 0, -threshold for x >= 0: a sign
# function, not a triangle) and heaviside() (backward passes the gradient where x > 0);
# SpikingJelly's SuperSpike(alpha) is alpha / (1+|x|)^2 (alpha scales the height).
PEERS = [
    ("atan", {}, "sj.ATan()", sj.ATan()),
    ("atan", {"alpha": 3.5}, "sj.ATan(3.5)", sj.ATan(alpha=3.5)),
    ("atan", {}, "snn.atan()", snn.atan()),
    ("atan", {"alpha": 3.5}, "snn.atan(3.5)", snn.atan(alpha=3.5)),
    ("sigmoid", {}, "sj.Sigmoid()", sj.Sigmoid()),
    ("sigmoid", {"alpha": 10.0}, "sj.Sigmoid(10)", sj.Sigmoid(alpha=10.0)),
    ("sigmoid", {"alpha": 4.0}, "snn.sigmoid(4)", snn.sigmoid(slope=4.0)),
    ("sigmoid", {"alpha": 25.0}, "snn.sigmoid()", snn.sigmoid()),
    ("fast_sigmoid", {}, "snn.fast_sigmoid()", snn.fast_sigmoid()),
    ("fast_sigmoid", {"slope": 3.0}, "snn.fast_sigmoid(3)", snn.fast_sigmoid(slope=3.0)),
    ("fast_sigmoid", {"slope": 1.0}, "sj.SuperSpike(1)", sj.SuperSpike(alpha=1.0)),
    ("piecewise_quadratic", {}, "sj.PiecewiseQuadratic()", sj.PiecewiseQuadratic()),
    ("piecewise_quadratic", {"alpha": 2.5}, "sj.PiecewiseQuadratic(2.5)", sj.PiecewiseQuadratic(alpha=2.5)),
    ("triangle", {"width": 0.5}, "sj.PiecewiseQuadratic(2)", sj.PiecewiseQuadratic(alpha=2.0)),
    ("rectangular", {}, "sj.Rect()", sj.Rect()),
    ("rectangular", {"width": 0.5}, "sj.Rect(2)", sj.Rect(alpha=2.0)),
    ("rectangular", {"width": 0.5}, "sj.PiecewiseLeakyReLU(0.25,0)", sj.PiecewiseLeakyReLU(w=0.25, c=0.0)),
    ("erf", {}, "sj.Erf()", sj.Erf()),
    ("erf", {"alpha": 0.7}, "sj.Erf(0.7)", sj.Erf(alpha=0.7)),
    ("gaussian", {}, "sj.Erf(sqrt2)", sj.Erf(alpha=1 / (math.sqrt(2) * 0.5))),
    ("gaussian", {"sigma": 1.3}, "sj.Erf(1/(1.3 sqrt2))", sj.Erf(alpha=1 / (math.sqrt(2) * 1.3))),
    ("straight_through", {}, "snn.straight_through_estimator()", snn.straight_through_estimator()),
    ("straight_through", {}, "sj.DeterministicPass()", sj.DeterministicPass()),
]


def _peer_grad(fn, x):
    xi = x.clone().requires_grad_()
    fn(xi).sum().backward()
    return xi.grad


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("name,kw,label,peer", PEERS, ids=[p[2] for p in PEERS])
def test_matches_peer_library(name, kw, label, peer, dtype):
    # window edges (powers of two) lie on the grid, and agree
    x = torch.cat([torch.linspace(-5, 5, 2001), torch.randn(500, generator=torch.Generator().manual_seed(1)) * 2])
    x = x.to(dtype)
    ours = _peer_grad(build("surrogate", name, **kw), x)
    theirs = _peer_grad(peer, x)
    assert torch.isfinite(ours).all()
    ok = torch.isfinite(theirs)
    if label.startswith("snn.sigmoid"):
        # snnTorch's sigmoid overflows to NaN in float32 for slope * x < ~-85 (x < -3.4 at
        # slope 25; ours stays finite): compare where it is finite
        assert ok[kw["alpha"] * x > -80].all()
    else:
        assert ok.all()
    diff = (ours[ok] - theirs[ok]).abs().max().item()
    # float64: the same function up to rounding. float32: 1e-6 on a gradient of peak <= 1;
    # scaled by the peak above that (snnTorch's default sigmoid peaks at 25/4: 1.7e-6 there,
    # about 3 float32 ulps, from rounding in both formulas, none in the maths)
    tol = 1e-12 if dtype == torch.float64 else 1e-6 * max(1.0, ours.abs().max().item())
    assert diff <= tol, f"{name}{kw} vs {label}: max abs diff {diff:.3g}"


# ---------------------------------------------------------------- user-defined surrogates
USER_NAME = "_test_user_laplace"


@pytest.fixture
def user_surrogate():
    """Register a Laplace-density surrogate exactly as the module docstring shows; unregister after."""
    calls = []

    @register("surrogate", USER_NAME)
    class Laplace(Surrogate):
        """Laplace: g'(x) = exp(-|x|/b) / (2b), default b=0.5."""

        def __init__(self, b: float = 0.5):
            super().__init__()
            from snntrain.errors import check

            check(b > 0, "b", f"must be > 0, got {b}")
            self.b = float(b)

        def grad(self, x):
            calls.append(x.shape)
            return torch.exp(-x.abs() / self.b) / (2 * self.b)

    try:
        yield Laplace, calls
    finally:  # other tests expect every registered surrogate to have a config file
        registry._REGISTRY["surrogate"].pop(USER_NAME, None)


def test_user_surrogate_via_build(user_surrogate):
    cls, calls = user_surrogate
    assert USER_NAME in available("surrogate")
    sg = build("surrogate", USER_NAME, b=0.3)
    assert isinstance(sg, cls) and sg.b == 0.3
    x = _sample_x().requires_grad_()
    y = sg(x)
    assert torch.equal(y, (x >= 0).double())
    y.sum().backward()
    assert calls  # backward called the user's grad ...
    assert torch.allclose(x.grad, torch.exp(-x.detach().abs() / 0.3) / 0.6, rtol=0, atol=1e-12)  # ... and used it
    assert _integral(sg) == pytest.approx(1.0, rel=1e-4)
    with pytest.raises(ConfigError, match=r"surrogate\.b"):
        build("surrogate", USER_NAME, b=-1.0)


def test_user_surrogate_via_config(user_surrogate, tmp_path):
    from snntrain.training import setup

    cls, calls = user_surrogate
    (tmp_path / "surrogate").mkdir()
    (tmp_path / "surrogate" / f"{USER_NAME}.yaml").write_text(f"name: {USER_NAME}\nb: 0.5\n")
    cfg = compose_cfg(f"hydra.searchpath=[file://{tmp_path}]", f"surrogate={USER_NAME}", "surrogate.b=0.25")
    assert dict(cfg.surrogate) == {"name": USER_NAME, "b": 0.25}
    parts = setup(cfg)
    used = [m for m in parts["model"].modules() if isinstance(m, cls)]
    assert used and all(m.b == 0.25 for m in used)
    x = torch.stack([parts["data"].test[i][0] for i in range(4)])
    parts["model"](parts["encoder"](x)).sum().backward()
    assert calls
