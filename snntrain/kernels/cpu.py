r"""C++ kernels on the CPU: the fused lif-kind neurons, and bit packing of spike tensors.

**Neurons** (``if``, ``lif``, ``plif``; immediate reset).

The eager engine of the fused lif form (:mod:`snntrain.backends.lif`) runs a handful of PyTorch
operations per time step, each a pass over the layer. This kernel does the whole step
in one pass per element, the loop over T inside, and the elements split across threads
(``at::parallel_for``): forward :math:`H_t = C(V_{t-1}, I_t)`, :math:`S_t = [H_t \ge V_{th}]`,
:math:`V_t = \mathrm{reset}(H_t, S_t)`, from rest or from a given initial membrane; backward the
reverse loop of :mod:`snntrain.backends.lif` with the surrogate's closed-form :math:`g'`; ``backward_compact``
the same loop reading the compact codes of ``grad_storage=bf16|int8`` (derivative and spike in one
code, see :mod:`snntrain.backends.codes`) instead of :math:`H`. The loop over the elements of a step is
vectorised (``-march=native``: AVX2 or AVX-512); every select in it is written so the compiler keeps it
so (see ``pick``): a scalar loop is ten times slower, five times the cost of a ReLU's pass.

The forward is the same arithmetic as the torch backend, operation for operation,
compiled with ``-ffp-contract=off`` (no fused multiply-adds), so spikes and membranes are
bit for bit the same. Surrogates: the built-in ones, numbered by their own
``kernel_id`` (:class:`snntrain.surrogates.Surrogate`; ``sg_grad`` below is the same closed form
as each class's ``derivative``); a user-defined surrogate runs on the eager path.

**Large outputs** (4 MiB and more: H, the spikes, the input gradient, an unpacked input) come
from a small pool of reused buffers: the allocator returns buffers that large to the system on
free (mmap above its threshold, heap trimming below it), and faulting a fresh one in costs more
than the kernel's own pass. A buffer is handed out again only when nothing else holds its
storage; at most eight wait idle.

**Bit packing** (:mod:`snntrain.layers.bits`): ``pack_binary(x)`` checks that every
element is 0 or 1 and packs it, 8 to a byte, in one pass (an empty tensor if it is not
binary); ``unpack(packed, n)`` is the inverse, one pass. Both use compare masks, 16 elements
at a time with AVX-512 and 8 with AVX2, where the CPU has them.

**Building** (``torch.utils.cpp_extension.load`` on the source alone, with ATen's and the Python
binding's headers only, its forward and backward halves compiled in parallel; a C++ compiler is needed, the
build is cached under a name that hashes the source, the flags, the torch it builds
against and the processor it is built for (``-march=native``), so each environment and each
kind of CPU has its own). The build
takes about half a minute on 2 cores, longer than the whole default run, so a run never waits
for it: the first run that wants the kernel starts the build in a background process
(its log: ``build.log`` in the build folder) and itself runs the eager fused path, the
same maths; later runs load the built kernel. ``kernel(wait=True)`` (tests, benchmarks,
``python -m snntrain.kernels.cpu``) builds in the foreground. Without a compiler (the
failed build leaves ``failed.txt``), or with ``SNNTRAIN_CPU_KERNEL=0``, :func:`kernel`
returns None and the eager path runs.

**One engine per run.** The two engines compute the same forward, but their surrogate
gradients can differ in the last bit (``std::exp`` against PyTorch's vectorised ``exp``,
another order of the same operations). A run therefore fixes its engine when it starts
(:func:`pinned`) and writes it into every checkpoint; a resumed run pins the engine it was
written with (it builds the kernel now, or leaves it unused even when it has been built
since), so a stopped and resumed run is bit for bit the run that was never stopped.
"""
from __future__ import annotations

import contextlib
import logging
import os
from typing import TYPE_CHECKING, Any, Iterator

if TYPE_CHECKING:
    from pathlib import Path

log = logging.getLogger(__name__)

_SOURCE = r"""
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/Parallel.h>
#if PART == 1
#include <torch/csrc/utils/pybind.h>
#include <pybind11/stl.h>
#endif
#include <cmath>
#include <vector>
#include <atomic>
#include <algorithm>
#include <cstring>
#include <mutex>
#if defined(__AVX512F__) || defined(__AVX2__)
#include <immintrin.h>
#endif

// Outputs of 4 MiB and more come from a small pool of reused buffers. The allocator hands buffers that
// large back to the system on free (above its mmap threshold, at most 32 MiB, or by trimming the heap's top),
// so each new one is faulted in again page by page, which costs more than the kernel's own pass. A pooled
// buffer is reused only when nothing else holds its storage; at most POOL_IDLE of them wait unused (the
// oldest are released first).
at::Tensor out_buf(at::IntArrayRef sizes, const at::TensorOptions& like, at::ScalarType dtype);

#if PART == 1
static std::mutex g_pool_mu;
static std::vector<at::Tensor> g_pool;  // least recently handed out first
constexpr size_t POOL_MIN_BYTES = size_t(4) << 20;
constexpr int POOL_IDLE = 8;

static bool idle(const at::Tensor& t) { return t.use_count() == 1 && t.storage().use_count() == 1; }

at::Tensor out_buf(at::IntArrayRef sizes, const at::TensorOptions& like, at::ScalarType dtype) {
  auto opt = like.dtype(dtype);
  int64_t n = 1;
  for (auto s : sizes) n *= s;
  if (size_t(n) * c10::elementSize(dtype) < POOL_MIN_BYTES) return at::empty(sizes, opt);
  std::lock_guard<std::mutex> lock(g_pool_mu);
  for (size_t i = 0; i < g_pool.size(); ++i) {
    if (g_pool[i].numel() == n && g_pool[i].scalar_type() == dtype && idle(g_pool[i])) {
      at::Tensor t = g_pool[i];
      g_pool.erase(g_pool.begin() + i);
      g_pool.push_back(t);
      return t.view(sizes);  // a view: the pool's own tensor stays the only other holder of the storage
    }
  }
  int idle_count = 0;
  for (const auto& t : g_pool) idle_count += idle(t);
  for (size_t i = 0; i < g_pool.size() && idle_count >= POOL_IDLE;) {
    if (idle(g_pool[i])) { g_pool.erase(g_pool.begin() + i); --idle_count; } else ++i;
  }
  at::Tensor t = at::empty({n}, opt);
  g_pool.push_back(t);
  return t.view(sizes);
}
#endif

static at::Tensor out_f32(at::IntArrayRef sizes, const at::TensorOptions& like) {
  return out_buf(sizes, like, at::kFloat);
}

#if PART == 1
// The number of pooled buffers, how many of them are idle, and the pool's two limits (for tests).
std::vector<int64_t> pool_state() {
  std::lock_guard<std::mutex> lock(g_pool_mu);
  int64_t n_idle = 0;
  for (const auto& t : g_pool) n_idle += idle(t);
  return {(int64_t)g_pool.size(), n_idle, (int64_t)POOL_MIN_BYTES, POOL_IDLE};
}
#endif

// c ? a : b as a bit mask, both sides computed. GCC turns a plain `?:` in these loops, and a select of a value
// computed only for it, into control flow (a conditional add or subtract, a guarded division) and then leaves the
// whole loop scalar, ten times slower. The value is the same.
static inline float pick(bool c, float a, float b) {
  uint32_t ua, ub;
  std::memcpy(&ua, &a, 4); std::memcpy(&ub, &b, 4);
  const uint32_t m = 0u - (uint32_t)c, r = (ua & m) | (ub & ~m);
  float f;
  std::memcpy(&f, &r, 4);
  return f;
}

// SG: the surrogate's kernel_id (snntrain.surrogates), a: its one parameter. The reverse loop is vectorised for each
// of them but sigmoid, erf and gaussian, whose std::exp has no vector form without -ffast-math (that would change bits).
template <int SG>
static inline float sg_grad(float x, float a) {
  const float pi = 3.14159265358979323846f;
  if constexpr (SG == 0) { float u = pi / 2 * a * x; return (a / 2) / (1 + u * u); }                  // atan
  else if constexpr (SG == 1) { float s = 1.0f / (1.0f + std::exp(-a * x)); return a * s * (1 - s); } // sigmoid
  else if constexpr (SG == 2) { float d = 1 + a * std::fabs(x); return 1.0f / (d * d); }              // fast_sigmoid
  else if constexpr (SG == 3) { float r = a - std::fabs(x); return pick(r > 0, r / (a * a), 0.0f); }    // triangle
  else if constexpr (SG == 4) { float r = a - a * a * std::fabs(x); return pick(r > 0, r, 0.0f); }     // piecewise_quadratic
  else if constexpr (SG == 5) { return pick(std::fabs(x) < a / 2, 1.0f / a, 0.0f); }                    // rectangular
  else if constexpr (SG == 6) { return a / std::sqrt(pi) * std::exp(-(a * x) * (a * x)); }             // erf
  else if constexpr (SG == 7) { float u = x / a; return std::exp(-0.5f * u * u) / (a * std::sqrt(2 * pi)); }  // gaussian
  else if constexpr (SG == 8) { return pick((a <= 0) | (std::fabs(x) <= a), 1.0f, 0.0f); }               // straight_through
  else { return 0.0f; }                                                                                // heaviside
}

// charge: 0 lif (c = 1 - beta with decay_input DI, else 1; VR: a nonzero reset potential), 1 plif decay_input,
// 2 plif without (DI and VR are template arguments: a select on them in the loop keeps it scalar, see pick)
template <int KIND, bool DI, bool VR>
static inline float charge(float v, float x, float b, float vr, float q) {
  if constexpr (KIND == 0) {
    float leak;
    if constexpr (VR) leak = b * (v - vr) + vr; else leak = b * v;
    if constexpr (DI) return leak + (1.0f - b) * x; else return leak + x;
  } else if constexpr (KIND == 1) {
    return v + (x - (v - vr)) * q;
  } else {
    return v - (v - vr) * q + x;
  }
}

// Elements are processed in tiles of TILE (the membrane, the decay and the gradient carries of a tile stay in L1),
// T inside each tile; tiles are split across threads. beta: [N], or [1] for one decay for the layer.
constexpr int64_t TILE = 2048;

struct Tile {
  float buf[TILE];
  const float* beta(const float* bp, int64_t nb, int64_t j0, int64_t n) {
    if (nb != 1) return bp + j0;
    std::fill(buf, buf + n, bp[0]);
    return buf;
  }
};

// f(j0, n) for every tile [j0, j0 + n) of [0, N). Tiles hold whole units of `unit` elements: 1, or, with a 2x2
// average pool fused in (rows of width W), 2W, a pair of rows, so that no pooling window straddles two tiles.
template <typename F>
static void for_tiles(int64_t N, int64_t unit, const F& f) {
  const int64_t per = std::max<int64_t>(1, TILE / unit);
  at::parallel_for(0, N / unit, per, [&](int64_t u0, int64_t u1) {
    for (int64_t u = u0; u < u1; u += per) f(u * unit, std::min(per, u1 - u) * unit);
  });
}

// The 2x2 average pool (stride 2) of n spikes in rows of width W, as avg_pool2d computes it: the window's sum / 4.
static void pool2x2(const float* s, int64_t n, int64_t W, float* out) {
  for (int64_t r = 0; r < n / (2 * W); ++r) {
    const float* a = s + r * 2 * W; const float* c = a + W; float* o = out + r * (W / 2);
    for (int64_t w = 0; w < W / 2; ++w) o[w] = (a[2 * w] + a[2 * w + 1] + c[2 * w] + c[2 * w + 1]) / 4.0f;
  }
}

// Its backward, as avg_pool2d_backward computes it: each of the window's four inputs gets the output's gradient / 4.
static const float* unpool2x2(const float* g, int64_t n, int64_t W, float* out) {
  for (int64_t r = 0; r < n / (2 * W); ++r) {
    const float* gr = g + r * (W / 2);
    for (int64_t w = 0; w < W; ++w) out[r * 2 * W + w] = out[r * 2 * W + W + w] = gr[w / 2] / 4.0f;
  }
  return out;
}

static void check_pool(int64_t N, int64_t W) {
  TORCH_CHECK(W == 0 || (W % 2 == 0 && 2 * W <= TILE && N % (2 * W) == 0), "a fused 2x2 pool needs an even width W ",
              "with 2W <= ", TILE, " and whole pairs of rows, got W = ", W, " for ", N, " elements per step");
}

// ---- part 1: bit packing, the buffer pool and the Python module; part 2: the neurons' forward and backward
// (the two files are compiled in parallel; the Python headers alone take as long as part 2)
#if PART == 2
// Compact storage (grad_storage bf16 / int8, see snntrain.backends.codes): per element and step one code holding
// the surrogate derivative d = g'(z), z = H - theta, and the spike s = [z >= 0]. STORE 0: bf16 bits, sign bit = s,
// magnitude = d rounded to nearest even (d is finite and >= 0); STORE 1: uint8, top bit = s, low 7 bits =
// min(127, floor(d * inv + 1/2)), inv = 127 / gmax (0 for a surrogate whose peak is 0). The forward writes one step
// of a tile at a time from its H; the same arithmetic as codes.encode on g'.
struct Codes {
  void (*step)(const float* h, int64_t n, float theta, float a, float inv, void* out);
  void* base;  // [T, N] codes
  int64_t size;  // bytes per code
  float a, inv;
};

template <int SG, int STORE>
static void encode_step(const float* h, int64_t n, float theta, float a, float inv, void* out) {
  if constexpr (STORE == 0) {
    uint16_t* o = (uint16_t*)out;
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) {
      const float z = h[i] - theta, d = sg_grad<SG>(z, a);
      uint32_t u;
      std::memcpy(&u, &d, 4);
      const uint32_t r = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
      o[i] = (uint16_t)(r | ((uint32_t)(z >= 0.0f) << 15));
    }
  } else {
    uint8_t* o = (uint8_t*)out;
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) {
      const float z = h[i] - theta, d = sg_grad<SG>(z, a);
      const int32_t c = std::min((int32_t)(d * inv + 0.5f), 127);  // d * inv + 1/2 > 0: truncation is floor
      o[i] = (uint8_t)(c | ((int32_t)(z >= 0.0f) << 7));
    }
  }
}

template <int STORE>
static void (*encoder(int sg))(const float*, int64_t, float, float, float, void*) {
  switch (sg) {
    case 0: return encode_step<0, STORE>; case 1: return encode_step<1, STORE>; case 2: return encode_step<2, STORE>;
    case 3: return encode_step<3, STORE>; case 4: return encode_step<4, STORE>; case 5: return encode_step<5, STORE>;
    case 6: return encode_step<6, STORE>; case 7: return encode_step<7, STORE>; case 8: return encode_step<8, STORE>;
    default: return encode_step<9, STORE>;
  }
}

// hp: H [T, N], or null with codes: the compact codes instead (H then lives one step of a tile at a time)
template <int KIND, int RESET, bool DI, bool VR>
static void fwd_impl(const float* xp, const float* bp, int64_t nb, float* hp, float* sp, float* vp, const float* v0p,
                     int64_t T, int64_t N, float q, float theta, float vr, int64_t W, const Codes* codes) {
  const int64_t NS = W ? N / 4 : N;  // spikes per step leaving the kernel (pooled: a quarter)
  for_tiles(N, W ? 2 * W : 1, [&](int64_t j0, int64_t n) {
    Tile bt;
    float v[TILE], s_tile[TILE], h_tile[TILE];
    {
      const float* b = bt.beta(bp, nb, j0, n);
      if (v0p) std::copy(v0p + j0, v0p + j0 + n, v); else std::fill(v, v + n, vr);
      for (int64_t t = 0; t < T; ++t) {
        const int64_t o = t * N + j0;
        const float* x = xp + o;
        float* h_out = codes ? h_tile : hp + o; float* s_out = W ? s_tile : sp + o;
#pragma omp simd
        for (int64_t i = 0; i < n; ++i) {
          float h = charge<KIND, DI, VR>(v[i], x[i], b[i], vr, q);
          const float z = h - theta;  // named: `pick(s, h - theta, h)` becomes a conditional subtract (see pick)
          const bool s = z >= 0.0f;
          h_out[i] = h; s_out[i] = pick(s, 1.0f, 0.0f);
          float nv;
          if constexpr (RESET == 0) nv = pick(s, z, h);
          else if constexpr (RESET == 1) {  // GCC vectorises each form in one case only (measured)
            if constexpr (VR) nv = s ? vr : h; else nv = pick(s, vr, h);
          }
          else nv = h;
          v[i] = nv;
        }
        if (codes) codes->step(h_tile, n, theta, codes->a, codes->inv, (char*)codes->base + o * codes->size);
        if (W) pool2x2(s_tile, n, W, sp + t * NS + j0 / 4);
        if (vp) std::copy(v, v + n, vp + o);
      }
    }
  });
}

// x: [T, N]; beta: [N] or [1]; v0: [N] (the initial membrane) or empty (rest); pool_w: 0, or W: the elements are
// maps with rows of width W (an even number of rows each) and the spikes leave through a 2x2 average pool.
// store: -1 (exact: H), 0 bf16 or 1 int8 codes (surrogate sg with parameter a, inv = 127 / gmax; see Codes).
// Returns H [T, N] (float) or the codes [T, N] (bfloat16 / uint8), S [T, N] (0/1; pooled: [T, N / 4]), V [T, N]
// (empty unless keep)
std::vector<at::Tensor> forward(at::Tensor x, at::Tensor beta, int64_t kind, bool decay_input, double q,
                                double theta, int64_t reset, double vr, bool keep, at::Tensor v0, int64_t pool_w,
                                int64_t store, int64_t sg, double a, double inv) {
  const int64_t T = x.size(0), N = x.size(1), nb = beta.numel();
  check_pool(N, pool_w);
  auto H = store < 0 ? out_f32(x.sizes(), x.options())
                     : out_buf(x.sizes(), x.options(), store == 0 ? at::kBFloat16 : at::kByte);
  auto S = out_f32({T, pool_w ? N / 4 : N}, x.options());
  Codes cs{store == 0 ? encoder<0>(sg) : encoder<1>(sg), H.data_ptr(), store == 0 ? 2 : 1, (float)a, (float)inv};
  const Codes* codes = store < 0 ? nullptr : &cs;
  float* hp = store < 0 ? H.data_ptr<float>() : nullptr;
  auto V = keep ? out_f32(x.sizes(), x.options()) : at::empty({0}, x.options());
  float* vp = keep ? V.data_ptr<float>() : nullptr;
  const float* v0p = v0.numel() ? v0.data_ptr<float>() : nullptr;
#define FWD(K, R, D, V) fwd_impl<K, R, D, V>(x.data_ptr<float>(), beta.data_ptr<float>(), nb, hp, S.data_ptr<float>(), \
                                             vp, v0p, T, N, (float)q, (float)theta, (float)vr, pool_w, codes)
#define FWD_R(K, D, V) (reset == 0 ? FWD(K, 0, D, V) : reset == 1 ? FWD(K, 1, D, V) : FWD(K, 2, D, V))
  const bool has_vr = (float)vr != 0.0f;
  if (kind == 0) {
    if (decay_input) { if (has_vr) FWD_R(0, true, true); else FWD_R(0, true, false); }
    else { if (has_vr) FWD_R(0, false, true); else FWD_R(0, false, false); }
  } else if (kind == 1) FWD_R(1, false, false); else FWD_R(2, false, false);
#undef FWD_R
#undef FWD
  return {H, S, V};
}

// The reverse loop. LOAD(o + i, d, s, h) reads the derivative g'(z), the spike and (exact storage) H of one element.
template <int RESET, typename Load>
static void bwd_loop(Load load, const float* gp, const float* tp, const float* bp, int64_t nb, float* op, float* thp,
                     int64_t T, int64_t N, float theta, bool detach, float vr, int64_t W) {
  const float keep_s = detach ? 0.0f : 1.0f;  // the spike's gradient through the reset term
  const int64_t NS = W ? N / 4 : N;  // spike gradients per step (pooled: a quarter)
  for_tiles(N, W ? 2 * W : 1, [&](int64_t j0, int64_t n) {
    Tile bt;
    float gv[TILE], th[TILE], gs_tile[TILE];
    {
      const float* b = bt.beta(bp, nb, j0, n);
      std::fill(gv, gv + n, 0.0f);
      std::fill(th, th + n, 0.0f);
      for (int64_t t = T - 1; t >= 0; --t) {
        const int64_t o = t * N + j0;
        const float* gs = W ? unpool2x2(gp + t * NS + j0 / 4, n, W, gs_tile) : gp + o;
        const float* tr = tp ? tp + o : nullptr;
        float* out = op + o;
        if (tr) for (int64_t i = 0; i < n; ++i) gv[i] += tr[i];
#pragma omp simd
        for (int64_t i = 0; i < n; ++i) {
          float d, h; bool s;
          load(o + i, d, s, h);
          float gV = gv[i], gS = gs[i], g;
          const float fired = pick(s, gV, 0.0f), rest = pick(s, 0.0f, gV);
          if constexpr (RESET == 0) { gS -= keep_s * theta * gV; g = gV + gS * d; th[i] += gS * d + fired; }
          else if constexpr (RESET == 1) { gS += keep_s * gV * (vr - h); g = rest + gS * d; th[i] += gS * d; }
          else { g = gV + gS * d; th[i] += gS * d; }
          out[i] = g;
          gv[i] = b[i] * g;
        }
      }
      if (thp) std::copy(th, th + n, thp + j0);
    }
  });
}

template <int SG, int RESET>
static void bwd_impl(const float* hp, const float* gp, const float* tp, const float* bp, int64_t nb, float* op, float* thp,
                     int64_t T, int64_t N, float theta, bool detach, float vr, float a, int64_t W) {
  auto load = [=](int64_t k, float& d, bool& s, float& h) {
    h = hp[k]; float z = h - theta; d = sg_grad<SG>(z, a); s = z >= 0.0f;
  };
  bwd_loop<RESET>(load, gp, tp, bp, nb, op, thp, T, N, theta, detach, vr, W);
}

// H, gs: [T, N] (pooled, pool_w = W: gs [T, N / 4], the pooled spikes' gradient); gtrace: [T, N] or empty;
// beta: [N] or [1]. Returns dL/dH [T, N] and, if learn_theta, -dL/dtheta summed over t, per element [N] (else empty)
std::vector<at::Tensor> backward(at::Tensor H, at::Tensor gs, at::Tensor gtrace, at::Tensor beta,
                                 double theta, int64_t reset, bool detach, double vr, int64_t sg, double a, bool learn_theta,
                                 int64_t pool_w) {
  const int64_t T = H.size(0), N = H.size(1), nb = beta.numel();
  check_pool(N, pool_w);
  auto gH = out_f32(H.sizes(), H.options()), gth = at::empty({learn_theta ? N : 0}, H.options());
  const float* tp = gtrace.numel() > 0 ? gtrace.data_ptr<float>() : nullptr;
  float* thp = learn_theta ? gth.data_ptr<float>() : nullptr;
#define BWD(G, R) bwd_impl<G, R>(H.data_ptr<float>(), gs.data_ptr<float>(), tp, beta.data_ptr<float>(), nb, \
                                 gH.data_ptr<float>(), thp, T, N, (float)theta, detach, (float)vr, (float)a, pool_w)
#define BWD_R(G) (reset == 0 ? BWD(G, 0) : reset == 1 ? BWD(G, 1) : BWD(G, 2))
  switch (sg) {
    case 0: BWD_R(0); break; case 1: BWD_R(1); break; case 2: BWD_R(2); break; case 3: BWD_R(3); break;
    case 4: BWD_R(4); break; case 5: BWD_R(5); break; case 6: BWD_R(6); break; case 7: BWD_R(7); break;
    case 8: BWD_R(8); break; default: BWD_R(9); break;
  }
#undef BWD_R
#undef BWD
  return {gH, gth};
}

// The reverse loop reading the codes of Codes; scale = gmax / 127. (Zero reset: detach only.)
template <int RESET, int STORE>
static void bwdc_impl(const void* cp, const float* gp, const float* tp, const float* bp, int64_t nb, float* op, float* thp,
                      int64_t T, int64_t N, float theta, bool detach, float scale, int64_t W) {
  auto load = [=](int64_t k, float& d, bool& s, float& h) {
    h = 0.0f;
    if constexpr (STORE == 0) {
      uint16_t u = ((const uint16_t*)cp)[k];
      uint32_t w = (uint32_t)(u & 0x7fffu) << 16;
      std::memcpy(&d, &w, 4); s = (u >> 15) != 0;
    } else {
      uint8_t u = ((const uint8_t*)cp)[k];
      d = (float)(u & 127) * scale; s = (u >> 7) != 0;
    }
  };
  bwd_loop<RESET>(load, gp, tp, bp, nb, op, thp, T, N, theta, detach, 0.0f, W);
}

std::vector<at::Tensor> backward_compact(at::Tensor code, at::Tensor gs, at::Tensor gtrace, at::Tensor beta,
                                         double theta, int64_t reset, bool detach, int64_t store, double scale, bool learn_theta,
                                         int64_t pool_w) {
  const int64_t T = code.size(0), N = code.size(1), nb = beta.numel();
  check_pool(N, pool_w);
  auto gH = out_f32({T, N}, gs.options()), gth = at::empty({learn_theta ? N : 0}, gs.options());
  const float* tp = gtrace.numel() > 0 ? gtrace.data_ptr<float>() : nullptr;
  float* thp = learn_theta ? gth.data_ptr<float>() : nullptr;
  const void* cp = code.data_ptr();
  TORCH_CHECK(reset != 1 || detach, "compact storage with a zero reset needs detach_reset");
#define BWDC(R, S) bwdc_impl<R, S>(cp, gs.data_ptr<float>(), tp, beta.data_ptr<float>(), nb, gH.data_ptr<float>(), \
                                   thp, T, N, (float)theta, detach, (float)scale, pool_w)
  if (store == 0) { if (reset == 0) BWDC(0, 0); else if (reset == 1) BWDC(1, 0); else BWDC(2, 0); }
  else { if (reset == 0) BWDC(0, 1); else if (reset == 1) BWDC(1, 1); else BWDC(2, 1); }
#undef BWDC
  return {gH, gth};
}

#endif

#if PART == 1
// x: float, contiguous. Bits, 8 to a byte, little-endian within the byte; empty if x is not all 0/1.
at::Tensor pack_binary(at::Tensor x) {
  const int64_t n = x.numel(), nb = (n + 7) / 8;
  auto out = at::empty({nb}, x.options().dtype(at::kByte));
  const float* xp = x.data_ptr<float>(); uint8_t* op = out.data_ptr<uint8_t>();
  std::atomic<bool> ok(true);
  at::parallel_for(0, nb, 16384, [&](int64_t b0, int64_t b1) {
    // blocks of 4096 bytes: a non-binary input (an analog map, a pooled one) stops every thread within a block
    for (int64_t c0 = b0; c0 < b1 && ok.load(std::memory_order_relaxed); c0 += 4096) {
      bool good = true;
      const int64_t c1 = std::min<int64_t>(b1, c0 + 4096);
      int64_t b = c0;
#if defined(__AVX512F__)
      // 16 elements at a time: the compare masks are the bits (bit j of byte b: element 8b + j)
      const __m512 one = _mm512_set1_ps(1.0f), zero = _mm512_setzero_ps();
      for (; b + 2 <= c1 && 8 * (b + 2) <= n; b += 2) {
        const __m512 v = _mm512_loadu_ps(xp + 8 * b);
        const __mmask16 is1 = _mm512_cmp_ps_mask(v, one, _CMP_EQ_OQ), is0 = _mm512_cmp_ps_mask(v, zero, _CMP_EQ_OQ);
        good &= (uint16_t)(is0 | is1) == 0xFFFFu;
        const uint16_t nz = (uint16_t)~is0;  // v != 0 (NaN included), as the scalar path writes it
        std::memcpy(op + b, &nz, 2);
      }
#elif defined(__AVX2__)
      // 8 elements at a time: the compare's sign bits are the byte (bit j: element 8b + j)
      const __m256 one = _mm256_set1_ps(1.0f), zero = _mm256_setzero_ps();
      for (; b < c1 && 8 * (b + 1) <= n; ++b) {
        const __m256 v = _mm256_loadu_ps(xp + 8 * b);
        const __m256 is0 = _mm256_cmp_ps(v, zero, _CMP_EQ_OQ), is1 = _mm256_cmp_ps(v, one, _CMP_EQ_OQ);
        good &= _mm256_movemask_ps(_mm256_or_ps(is0, is1)) == 0xFF;
        op[b] = (uint8_t)~_mm256_movemask_ps(is0);  // v != 0 (NaN included), as the scalar path writes it
      }
#endif
      for (; b < c1; ++b) {
        uint8_t byte = 0;
        const int64_t e = std::min<int64_t>(8, n - 8 * b);
        for (int64_t j = 0; j < e; ++j) {
          float v = xp[8 * b + j];
          good &= (v == 0.0f) | (v == 1.0f);
          byte |= (uint8_t)(v != 0.0f) << j;
        }
        op[b] = byte;
      }
      if (!good) ok = false;
    }
  });
  return ok ? out : at::empty({0}, out.options());
}

at::Tensor unpack(at::Tensor packed, int64_t n) {
  auto out = out_f32({n}, packed.options());
  const uint8_t* pp = packed.data_ptr<uint8_t>(); float* op = out.data_ptr<float>();
  at::parallel_for(0, (n + 7) / 8, 16384, [&](int64_t b0, int64_t b1) {
    int64_t b = b0;
#if defined(__AVX512F__)
    const __m512 one = _mm512_set1_ps(1.0f);
    for (; b + 2 <= b1 && 8 * (b + 2) <= n; b += 2) {
      uint16_t m;
      std::memcpy(&m, pp + b, 2);
      _mm512_storeu_ps(op + 8 * b, _mm512_maskz_mov_ps((__mmask16)m, one));
    }
#elif defined(__AVX2__)
    // lane j of 8 takes bit j of the byte: (byte & 1 << j) == 1 << j, as a float 1.0 or 0.0
    const __m256i lane_bit = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
    const __m256 one = _mm256_set1_ps(1.0f);
    for (; b < b1 && 8 * (b + 1) <= n; ++b) {
      const __m256i on = _mm256_cmpeq_epi32(_mm256_and_si256(_mm256_set1_epi32(pp[b]), lane_bit), lane_bit);
      _mm256_storeu_ps(op + 8 * b, _mm256_and_ps(_mm256_castsi256_ps(on), one));
    }
#endif
    for (; b < b1; ++b) {
      const int64_t e = std::min<int64_t>(8, n - 8 * b);
      for (int64_t j = 0; j < e; ++j) op[8 * b + j] = (float)((pp[b] >> j) & 1);
    }
  });
  return out;
}

// in part 2
std::vector<at::Tensor> forward(at::Tensor x, at::Tensor beta, int64_t kind, bool decay_input, double q, double theta,
                                int64_t reset, double vr, bool keep, at::Tensor v0, int64_t pool_w, int64_t store,
                                int64_t sg, double a, double inv);
std::vector<at::Tensor> backward(at::Tensor H, at::Tensor gs, at::Tensor gtrace, at::Tensor beta, double theta,
                                 int64_t reset, bool detach, double vr, int64_t sg, double a, bool learn_theta,
                                 int64_t pool_w);
std::vector<at::Tensor> backward_compact(at::Tensor code, at::Tensor gs, at::Tensor gtrace, at::Tensor beta,
                                         double theta, int64_t reset, bool detach, int64_t store, double scale,
                                         bool learn_theta, int64_t pool_w);

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("forward", &forward);
  m.def("backward", &backward);
  m.def("backward_compact", &backward_compact);
  m.def("pack_binary", &pack_binary);
  m.def("unpack", &unpack);
  m.def("pool_state", &pool_state);
}
#endif
"""

_KERNEL: Any = None
_TRIED = False
_EAGER_ONLY = False  # pinned to the eager engine for this process (a resumed run that was written with it)
ENGINES = ("compiled", "eager")
_FLAGS = ["-O3", "-march=native", "-ffp-contract=off", "-fopenmp"]


def cpu_info() -> dict[str, str]:
    """The first processor's fields in ``/proc/cpuinfo`` (``model name``, ``flags``, ...); empty where there is none."""
    try:
        info = open("/proc/cpuinfo").read()  # noqa: SIM115
    except OSError:
        return {}
    fields: dict[str, str] = {}
    for line in info.splitlines():
        key, _, value = line.partition(":")
        if not key.strip():
            break  # the first processor's block
        fields.setdefault(key.strip(), value.strip())
    return fields


def _cpu_signature() -> str:
    """The processor's model and instruction-set flags. ``-march=native`` builds for this CPU only, so
    a home folder shared by unlike machines (a cluster's login and compute nodes) must not share a build:
    one made where AVX-512 exists stops another CPU with an illegal instruction."""
    import platform

    fields = cpu_info()
    if not fields:
        return f"{platform.machine()} {platform.processor()}"
    return "\n".join(fields.get(k, "") for k in ("vendor_id", "model name", "flags", "Features", "CPU part"))


def _name() -> str:
    """``snntrain_cpu_<hash>`` of the source, the flags, the torch it builds against and the CPU it builds
    for: a changed kernel, another environment (another venv's torch headers) or another processor gets
    its own build, never a stale or foreign one."""
    import hashlib
    import sys

    import torch

    key = "\n".join([_SOURCE, " ".join(_FLAGS), torch.__version__, os.path.dirname(torch.__file__), sys.version,
                     _cpu_signature()])
    return "snntrain_cpu_" + hashlib.sha1(key.encode()).hexdigest()[:12]


def _cpp_extension() -> Any:
    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)  # "no CUDA runtime" on CPU machines
    import torch.utils.cpp_extension

    return torch.utils.cpp_extension


def _build_dir() -> "Path":
    from pathlib import Path

    return Path(_cpp_extension()._get_build_directory(_name(), False))


def _load() -> Any:
    """Build (if needed) and load, always with the ``ninja`` package's binary.

    torch runs whichever ``ninja`` comes first on PATH; two ninja versions discard each
    other's build log (1.11 writes log v5, 1.13 log v7) and so rebuild the kernel from
    scratch, half a minute each time, whenever PATH changes between runs.
    """
    ext, path = _cpp_extension(), os.environ.get("PATH", "")
    try:
        import ninja

        os.environ["PATH"] = ninja.BIN_DIR + os.pathsep + path
    except ImportError:  # torch then uses the system's ninja
        pass
    try:
        # not load_inline, which puts torch/extension.h in front (the whole C++ API, 25 s of the build); the
        # source's two parts are two files, compiled in parallel
        folder = _build_dir()
        folder.mkdir(parents=True, exist_ok=True)
        sources = []
        for part in (1, 2):
            src, text = folder / f"kernel_{part}.cpp", f"#define PART {part}\n{_SOURCE}"
            if not src.exists() or src.read_text() != text:  # rewritten, ninja would rebuild it
                tmp = src.with_name(f"{src.name}.{os.getpid()}")  # whole or not at all: another build may read it
                tmp.write_text(text)
                os.replace(tmp, src)
            sources.append(str(src))
        return ext.load(_name(), sources=sources, extra_cflags=_FLAGS, extra_ldflags=["-fopenmp"], verbose=False)
    finally:
        os.environ["PATH"] = path


def _build_in_background(folder: "Path") -> None:
    """Start ``python -m snntrain.kernels.cpu`` detached, unless a build is already running."""
    import subprocess
    import sys

    folder.mkdir(parents=True, exist_ok=True)
    marker = folder / "building.pid"
    try:
        pid = int(marker.read_text())
        os.kill(pid, 0)  # a build is running
        return
    except (OSError, ValueError):
        pass
    with open(folder / "build.log", "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "snntrain.kernels.cpu"], stdin=subprocess.DEVNULL,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    marker.write_text(str(proc.pid))
    log.info(f"compiling snntrain's C++ CPU kernel in the background (once per environment, about half a minute; log: "
             f"{folder / 'build.log'}); this run uses the same maths through PyTorch ops, later runs the kernel")


def kernel(wait: bool = False) -> Any:
    """The compiled module (``forward``, ``backward``, ...), or None: not built yet (a background build
    is started, unless ``wait``: then it builds now), cannot be built, or ``SNNTRAIN_CPU_KERNEL=0``."""
    global _KERNEL, _TRIED
    if _EAGER_ONLY:
        return None
    if _KERNEL is not None or (_TRIED and not wait):
        return _KERNEL
    _TRIED = True
    if os.environ.get("SNNTRAIN_CPU_KERNEL", "1") == "0":
        return None
    try:
        folder = _build_dir()
        failed = folder / "failed.txt"
        if failed.exists() and not wait:
            return None
        if not wait and not (folder / f"{_name()}.so").exists():
            _build_in_background(folder)
            return None
        _KERNEL = _load()
    except Exception as e:  # no compiler, no headers: the eager path runs
        log.info("snntrain CPU kernels unavailable (%s: %s); the fused backend runs eagerly", type(e).__name__, e)
        _KERNEL = None
    return _KERNEL


@contextlib.contextmanager
def pinned(engine: str | None = None) -> Iterator[str]:
    """Within the block, the fused CPU neurons of this process use one engine; yields it (``"compiled"`` or
    ``"eager"``).

    ``None`` (a new run): the kernel if it is built, else eager (and a background build starts, see
    :func:`kernel`). ``"eager"``: never the kernel, even when it is built. ``"compiled"``: the kernel,
    built now in the foreground if needed; where it cannot be built the block runs eagerly, with a
    warning that the run is no longer bit for bit the run it continues.
    """
    global _EAGER_ONLY
    if engine not in (None, *ENGINES):
        raise ValueError(f"engine must be one of {ENGINES} or None, not {engine!r}")
    before = _EAGER_ONLY
    try:
        _EAGER_ONLY = engine == "eager"
        if engine is None:
            yield "compiled" if kernel() is not None else "eager"
        elif engine == "eager":
            yield "eager"
        else:
            if _KERNEL is None and not (_build_dir() / f"{_name()}.so").exists():
                log.info("the run being resumed used snntrain's C++ CPU kernel: compiling it now (once per "
                         "environment, about half a minute) so the continuation computes exactly what the run computed")
            if kernel(wait=True) is None:
                log.warning("the run being resumed used snntrain's C++ CPU kernel, which cannot be loaded here "
                            "(SNNTRAIN_CPU_KERNEL=0, or no compiler); it continues on the eager engine, whose "
                            "surrogate gradients can differ in the last bit, so it will not be bit for bit the "
                            "uninterrupted run")
                yield "eager"
            else:
                yield "compiled"
    finally:
        _EAGER_ONLY = before


def _main() -> None:
    """``python -m snntrain.kernels.cpu``: build the kernel now (what a run starts in the background)."""
    folder = _build_dir()
    try:
        _load()
    except Exception as e:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "failed.txt").write_text(f"{type(e).__name__}: {e}\n")
        raise SystemExit(f"snntrain: the C++ CPU kernel did not build ({type(e).__name__}: {e}); runs use the "
                         f"eager fused path. Delete {folder / 'failed.txt'} to try again.")
    finally:
        (folder / "building.pid").unlink(missing_ok=True)
    print(f"built {_name()} in {folder}")


if __name__ == "__main__":
    _main()
