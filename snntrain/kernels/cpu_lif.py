r"""A C++ kernel for the fused lif-kind neurons on the CPU (``if``, ``lif``, ``plif``; immediate reset).

The eager fused backend (:mod:`snntrain.neurons.fused`) runs a handful of PyTorch
operations per time step, each a pass over the layer. This kernel does the whole step
in one pass per element, the loop over T inside, and the elements split across threads
(``at::parallel_for``): forward :math:`H_t = C(V_{t-1}, I_t)`, :math:`S_t = [H_t \ge V_{th}]`,
:math:`V_t = \mathrm{reset}(H_t, S_t)`; backward the reverse loop of
:mod:`snntrain.neurons.fused` with the surrogate's closed-form :math:`g'`.

The forward is the same arithmetic as the torch backend, operation for operation,
compiled with ``-ffp-contract=off`` (no fused multiply-adds), so spikes and membranes are
bit for bit the same. Surrogates: the built-in ones, by name (:data:`SURROGATES`); a
user-defined surrogate runs on the eager path.

Built on first use with ``torch.utils.cpp_extension.load_inline`` (a C++ compiler is
needed; the build is cached). Without a compiler, or with ``SNNTRAIN_CPU_KERNEL=0``, the
eager fused path runs instead: :func:`kernel` returns None.
"""
from __future__ import annotations

import logging
import os
from typing import Any

log = logging.getLogger(__name__)

#: surrogate class name -> id in the C++ switch
SURROGATES = {
    "ATan": 0, "Sigmoid": 1, "FastSigmoid": 2, "Triangle": 3, "PiecewiseQuadratic": 4, "Rectangular": 5,
    "Erf": 6, "Gaussian": 7, "StraightThrough": 8, "Heaviside": 9,
}

_SOURCE = r"""
#include <torch/extension.h>
#include <ATen/Parallel.h>
#include <cmath>
#include <vector>

static inline float sg_grad(int id, float x, float a) {
  const float pi = 3.14159265358979323846f;
  switch (id) {
    case 0: { float u = pi / 2 * a * x; return (a / 2) / (1 + u * u); }                    // atan
    case 1: { float s = 1.0f / (1.0f + std::exp(-a * x)); return a * s * (1 - s); }         // sigmoid
    case 2: { float d = 1 + a * std::fabs(x); return 1.0f / (d * d); }                      // fast_sigmoid (slope)
    case 3: { float r = a - std::fabs(x); return r > 0 ? r / (a * a) : 0.0f; }              // triangle (width)
    case 4: { float r = a - a * a * std::fabs(x); return r > 0 ? r : 0.0f; }                // piecewise_quadratic
    case 5: return std::fabs(x) < a / 2 ? 1.0f / a : 0.0f;                                   // rectangular (width)
    case 6: return a / std::sqrt(pi) * std::exp(-(a * x) * (a * x));                          // erf
    case 7: { float u = x / a; return std::exp(-0.5f * u * u) / (a * std::sqrt(2 * pi)); }   // gaussian (sigma)
    case 8: return a <= 0 ? 1.0f : (std::fabs(x) <= a ? 1.0f : 0.0f);                        // straight_through
    default: return 0.0f;                                                                    // heaviside
  }
}

// charge: 0 lif (decay_input: c = 1 - beta), 1 plif decay_input, 2 plif without
static inline float charge(int kind, float v, float x, float b, bool decay_input, float vr, float q) {
  if (kind == 0) {
    float leak = vr != 0.0f ? b * (v - vr) + vr : b * v;
    return leak + (decay_input ? (1.0f - b) * x : x);
  }
  if (kind == 1) return v + (x - (v - vr)) * q;
  return v - (v - vr) * q + x;
}

// x: [T, N]; beta: [N]. Returns H [T, N], S [T, N] (0/1), V [T, N] (empty unless keep)
std::vector<torch::Tensor> forward(torch::Tensor x, torch::Tensor beta, int kind, bool decay_input, double q_,
                                   double theta_, int reset, double vr_, bool keep) {
  const int64_t T = x.size(0), N = x.size(1);
  auto H = torch::empty_like(x), S = torch::empty_like(x);
  auto V = keep ? torch::empty_like(x) : torch::empty({0}, x.options());
  const float* xp = x.data_ptr<float>(); const float* bp = beta.data_ptr<float>();
  float* hp = H.data_ptr<float>(); float* sp = S.data_ptr<float>(); float* vp = keep ? V.data_ptr<float>() : nullptr;
  const float theta = theta_, vr = vr_, q = q_;
  at::parallel_for(0, N, 4096, [&](int64_t i0, int64_t i1) {
    std::vector<float> v(i1 - i0, vr);
    for (int64_t t = 0; t < T; ++t) {
      const int64_t o = t * N;
      for (int64_t i = i0; i < i1; ++i) {
        float h = charge(kind, v[i - i0], xp[o + i], bp[i], decay_input, vr, q);
        bool s = (h - theta) >= 0.0f;
        hp[o + i] = h; sp[o + i] = s ? 1.0f : 0.0f;
        float nv = h;
        if (s && reset == 0) nv = h - theta;
        else if (s && reset == 1) nv = vr;
        v[i - i0] = nv;
        if (keep) vp[o + i] = nv;
      }
    }
  });
  return {H, S, V};
}

// H, gs: [T, N]; gtrace: [T, N] or empty; beta: [N]. Returns dL/dH [T, N] and -dL/dtheta summed over t, per element [N]
std::vector<torch::Tensor> backward(torch::Tensor H, torch::Tensor gs, torch::Tensor gtrace, torch::Tensor beta,
                                    double theta_, int reset, bool detach, double vr_, int sg, double a_) {
  const int64_t T = H.size(0), N = H.size(1);
  auto gH = torch::empty_like(H), gth = torch::zeros({N}, H.options());
  const bool trace = gtrace.numel() > 0;
  const float* hp = H.data_ptr<float>(); const float* gp = gs.data_ptr<float>();
  const float* tp = trace ? gtrace.data_ptr<float>() : nullptr; const float* bp = beta.data_ptr<float>();
  float* op = gH.data_ptr<float>(); float* thp = gth.data_ptr<float>();
  const float theta = theta_, vr = vr_, a = a_;
  at::parallel_for(0, N, 4096, [&](int64_t i0, int64_t i1) {
    std::vector<float> gv(i1 - i0, 0.0f);
    for (int64_t t = T - 1; t >= 0; --t) {
      const int64_t o = t * N;
      for (int64_t i = i0; i < i1; ++i) {
        float h = hp[o + i], z = h - theta, d = sg_grad(sg, z, a);
        bool s = z >= 0.0f;
        float gV = gv[i - i0] + (trace ? tp[o + i] : 0.0f);
        float gS = gp[o + i], g;
        if (reset == 0) { if (!detach) gS -= theta * gV; g = gV + gS * d; thp[i] += gS * d + (s ? gV : 0.0f); }
        else if (reset == 1) { if (!detach) gS += gV * (vr - h); g = (s ? 0.0f : gV) + gS * d; thp[i] += gS * d; }
        else { g = gV + gS * d; thp[i] += gS * d; }
        op[o + i] = g;
        gv[i - i0] = bp[i] * g;
      }
    }
  });
  return {gH, gth};
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("forward", &forward);
  m.def("backward", &backward);
}
"""

_KERNEL: Any = None
_TRIED = False


def kernel() -> Any:
    """The compiled module (``forward``, ``backward``), or None where it cannot be built."""
    global _KERNEL, _TRIED
    if _TRIED:
        return _KERNEL
    _TRIED = True
    if os.environ.get("SNNTRAIN_CPU_KERNEL", "1") == "0":
        return None
    try:
        from torch.utils.cpp_extension import load_inline

        _KERNEL = load_inline(
            "snntrain_cpu_lif_v1", cpp_sources=_SOURCE, extra_cflags=["-O3", "-ffp-contract=off", "-fopenmp"],
            extra_ldflags=["-fopenmp"], verbose=False,
        )
    except Exception as e:  # no compiler, no headers: the eager path runs
        log.info("snntrain CPU lif kernel unavailable (%s: %s); the fused backend runs eagerly", type(e).__name__, e)
        _KERNEL = None
    return _KERNEL
