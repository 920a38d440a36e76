"""Small C++ kernels for decode-sized matmuls over quantized weights: ``y = x @ (q * scale + zero)^T`` computed
straight from the int8 values (or packed int4 nibbles), never inflating the weight to fp32.

Why: at batch 1 a matmul is bound by the bytes of weight it reads. torch's CPU int4/int8 kernels have no fast path
on AVX2 (see gguf/linear.py) and dequantizing to fp32 first writes and re-reads 4 bytes per weight, so both lose to
fp32 weights. These kernels read 1 byte (int8) or half a byte (int4) per weight plus a scale (and zero) per group,
and accumulate per group: ``y[n] = sum_g scale[n,g] * (x_g . q[n,g]) + zero[n,g] * sum(x_g)``. Two forms:

- ``group_mm``: float activations; the same value as the dequantized matmul up to fp32 rounding order.
- ``group_mm_q8``: activations quantized to int8 per run of 32 values (llama.cpp's Q8_0), integer dot products
  (AVX2 ``maddubs``); relative error ~5e-3 against ``group_mm``. Measured at batch 1, 1 thread, weights cold,
  medians per call over several runs (this host is noisy): int4 g64 (3072, 768) 235-346 -> 98-148 us, (768, 3072)
  227-331 -> 86-142 us, GPT-2's (50257, 768) head 3887-5476 -> 1806-2424 us; int8 per channel (3072, 768)
  222-289 -> 140-186 us, head 3526-4436 -> 1992-2451 us. GPT-2-124M int4 decode went 1.98x -> 2.91x transformers
  fp32 (bench/quantization.py).

Weight layouts (N output rows, K inputs, groups of ``group_size`` inputs, a multiple of 32):

- int8 values: ``q`` int8 (N, K); GGUF Q4_0/Q4_1/Q8_0 blocks (group 32) and hugkit's per-channel int8
  (group K) both use it.
- int4 nibbles: ``q`` uint8 (N, K/2); each run of 32 weights is 16 bytes, weight ``j`` in the low nibble of byte
  ``j`` and weight ``j + 16`` in the high nibble (GGUF's order), values 0..15 (hugkit.quantization.int4).
- ``scale`` float32 (N, K/group_size); ``zero`` float32 of the same shape, or empty for symmetric schemes.

Compiled once per machine with torch's cpp_extension (cached under ~/.cache/torch_extensions, or
TORCH_EXTENSIONS_DIR) the first time a quantized model runs; without a compiler, or with ``HUGKIT_GGUF_KERNEL=0``,
callers fall back to dequantize + fp32 matmul. Used for inputs of at most ``MAX_ROWS`` rows (decode); longer inputs
(prefill) are compute-bound and go to BLAS after ``group_dequant`` (vectorized ``q * scale + zero``, compiled with
``-ffp-contract=off`` so it is bit-identical to gguf's dequantization; ~6x faster than the same expression in torch
ops here).
"""

from __future__ import annotations

import logging
import os
import threading

import torch

logger = logging.getLogger(__name__)

MAX_ROWS = 16  # measured: up to ~16 rows the kernel beats dequantize + BLAS; beyond, BLAS wins
_SOURCE = r"""
#include <torch/extension.h>
#include <vector>
#include <algorithm>
#include <cmath>
#include <ATen/Parallel.h>
#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#endif

// The 32 weights of run r of row n as floats: 4 vectors of 8 (AVX2) -- int8 values or int4 nibbles.
#if defined(__AVX2__) && defined(__FMA__)
template <bool NIBBLES>
static inline void load32(const uint8_t* row, int64_t r, __m256* q) {
  if (NIBBLES) {
    const __m128i raw = _mm_loadu_si128((const __m128i*)(row + r * 16));
    const __m128i mask = _mm_set1_epi8(0x0F);
    const __m128i lo = _mm_and_si128(raw, mask);                     // weights 0..15
    const __m128i hi = _mm_and_si128(_mm_srli_epi16(raw, 4), mask);  // weights 16..31
    q[0] = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(lo));
    q[1] = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(lo, 8)));
    q[2] = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(hi));
    q[3] = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(hi, 8)));
  } else {
    const int8_t* qg = (const int8_t*)row + r * 32;
    const __m128i raw0 = _mm_loadu_si128((const __m128i*)qg);
    const __m128i raw1 = _mm_loadu_si128((const __m128i*)(qg + 16));
    q[0] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(raw0));
    q[1] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(raw0, 8)));
    q[2] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(raw1));
    q[3] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(raw1, 8)));
  }
}
#endif

template <bool NIBBLES>
static inline float weight_at(const uint8_t* row, int64_t k) {
  if (NIBBLES) {
    const uint8_t byte = row[(k / 32) * 16 + (k % 32) % 16];
    return (float)((k % 32) < 16 ? (byte & 0x0F) : (byte >> 4));
  }
  return (float)((const int8_t*)row)[k];
}

// y (M, N) = x (M, K) @ (q * scale + zero)^T for output rows [n0, n1), input rows [m0, m0 + mc), mc <= 8.
// Each run of 32 weights is converted to floats once and used for every input row; its dot product is scaled and
// accumulated at once (scale * sum(x q) per run, as the dequantized weight would give up to rounding order).
// MC > 0 fixes the row count at compile time so the accumulators stay in registers (decode at batch 1: MC = 1);
// MC = 0 takes it from mc. (Measured: a per-group partial sum in a stack array, or interleaving two output rows,
// was 2-4x slower here.)
template <bool NIBBLES, int MC>
static void row_block(const float* X, const float* XS, const uint8_t* Q, const float* S, const float* Z, float* Y,
                      int64_t K, int64_t N, int64_t GS, int64_t n0, int64_t n1, int64_t m0, int64_t mc_runtime) {
  const int64_t G = K / GS, runs = GS / 32, row_bytes = NIBBLES ? K / 2 : K;
  const int64_t mc = MC > 0 ? MC : mc_runtime;
  for (int64_t n = n0; n < n1; ++n) {
    const uint8_t* qn = Q + n * row_bytes;
    const float* sn = S + n * G;
    const float* zn = Z ? Z + n * G : nullptr;
    float tail[8] = {0, 0, 0, 0, 0, 0, 0, 0};
#if defined(__AVX2__) && defined(__FMA__)
    __m256 acc[8];
    for (int64_t m = 0; m < mc; ++m) acc[m] = _mm256_setzero_ps();
    for (int64_t g = 0; g < G; ++g) {
      const __m256 sg = _mm256_set1_ps(sn[g]);
      for (int64_t r = g * runs; r < (g + 1) * runs; ++r) {
        __m256 q[4];
        load32<NIBBLES>(qn, r, q);
        for (int64_t m = 0; m < mc; ++m) {
          const float* xr = X + (m0 + m) * K + r * 32;
          __m256 p = _mm256_mul_ps(q[0], _mm256_loadu_ps(xr));
          p = _mm256_fmadd_ps(q[1], _mm256_loadu_ps(xr + 8), p);
          p = _mm256_fmadd_ps(q[2], _mm256_loadu_ps(xr + 16), p);
          p = _mm256_fmadd_ps(q[3], _mm256_loadu_ps(xr + 24), p);
          acc[m] = _mm256_fmadd_ps(sg, p, acc[m]);
        }
      }
      if (zn)
        for (int64_t m = 0; m < mc; ++m) tail[m] += zn[g] * XS[(m0 + m) * G + g];
    }
    for (int64_t m = 0; m < mc; ++m) {
      __m128 lo = _mm_add_ps(_mm256_castps256_ps128(acc[m]), _mm256_extractf128_ps(acc[m], 1));
      lo = _mm_hadd_ps(lo, lo);
      lo = _mm_hadd_ps(lo, lo);
      Y[(m0 + m) * N + n] = _mm_cvtss_f32(lo) + tail[m];
    }
#else
    for (int64_t m = 0; m < mc; ++m) {
      const float* xm = X + (m0 + m) * K;
      float acc = 0.f;
      for (int64_t g = 0; g < G; ++g) {
        float dot = 0.f;
        for (int64_t k = g * GS; k < (g + 1) * GS; ++k) dot += xm[k] * weight_at<NIBBLES>(qn, k);
        acc += sn[g] * dot + (zn ? zn[g] * XS[(m0 + m) * G + g] : 0.f);
      }
      Y[(m0 + m) * N + n] = acc;
    }
#endif
  }
}

template <bool NIBBLES>
static void rows(const float* X, const float* XS, const uint8_t* Q, const float* S, const float* Z, float* Y,
                 int64_t M, int64_t K, int64_t N, int64_t GS, int64_t n0, int64_t n1) {
  if (M == 1) return row_block<NIBBLES, 1>(X, XS, Q, S, Z, Y, K, N, GS, n0, n1, 0, 1);
  for (int64_t m0 = 0; m0 < M; m0 += 8)
    row_block<NIBBLES, 0>(X, XS, Q, S, Z, Y, K, N, GS, n0, n1, m0, std::min<int64_t>(8, M - m0));
}

static void check_weights(const torch::Tensor& q, const torch::Tensor& scale, const torch::Tensor& zero, int64_t K,
                          int64_t group_size, bool nibbles) {
  TORCH_CHECK(q.is_contiguous() && q.scalar_type() == (nibbles ? torch::kByte : torch::kChar),
              "q: contiguous ", nibbles ? "uint8 nibbles" : "int8");
  TORCH_CHECK(group_size > 0 && group_size % 32 == 0 && K % group_size == 0, "group_size must be a multiple of 32 dividing K");
  const int64_t N = q.numel() / (nibbles ? K / 2 : K), groups = N * (K / group_size);
  TORCH_CHECK(q.numel() == N * (nibbles ? K / 2 : K), "q shape");
  TORCH_CHECK(scale.is_contiguous() && scale.scalar_type() == torch::kFloat && scale.numel() == groups, "scale: float32 (N, K/group)");
  TORCH_CHECK(zero.numel() == 0 || (zero.is_contiguous() && zero.scalar_type() == torch::kFloat && zero.numel() == groups),
              "zero: float32 (N, K/group) or empty");
}

// Output rows per parallel task: at least ~1M weights, so a thread is only woken for work that outlasts the
// wake-up (measured here: GPT-2 decode at 2 threads was 10% slower than at 1 with 64-row tasks, ~49 calls per token).
static inline int64_t rows_per_task(int64_t K) { return std::max<int64_t>(64, (int64_t(1) << 20) / K); }

// y (..., N) += bias (N) when a bias is given (numel 0: none): here rather than as a separate torch op per layer.
static torch::Tensor add_bias(torch::Tensor y, const torch::Tensor& bias) {
  if (bias.numel() == 0) return y;
  const int64_t N = y.size(-1), M = y.numel() / N;
  float* Y = y.data_ptr<float>();
  const float* B = bias.data_ptr<float>();
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = 0; n < N; ++n) Y[m * N + n] += B[n];
  return y;
}

// x's shape with the last dimension replaced by N: the matmuls take x as (..., K), rows flattened.
static std::vector<int64_t> output_shape(const torch::Tensor& x, int64_t N) {
  std::vector<int64_t> shape = x.sizes().vec();
  shape.back() = N;
  return shape;
}

// The inputs both matmuls take; returns N, the number of output features.
static int64_t check_matmul(const torch::Tensor& x, const torch::Tensor& q, const torch::Tensor& scale,
                            const torch::Tensor& zero, int64_t group_size, bool nibbles, const torch::Tensor& bias) {
  TORCH_CHECK(x.dim() >= 1 && x.size(-1) > 0 && x.scalar_type() == torch::kFloat && x.is_contiguous(),
              "x: contiguous float32 (..., K)");
  const int64_t K = x.size(-1);
  check_weights(q, scale, zero, K, group_size, nibbles);
  const int64_t N = q.numel() / (nibbles ? K / 2 : K);
  TORCH_CHECK(bias.numel() == 0 || (bias.is_contiguous() && bias.scalar_type() == torch::kFloat && bias.numel() == N),
              "bias: float32 (N,) or empty");
  return N;
}

// y (..., N) = x (..., K) @ (q * scale + zero)^T + bias, one scale/zero per group of group_size inputs
// (M rows: x's leading dimensions flattened).
torch::Tensor group_mm(torch::Tensor x, torch::Tensor q, torch::Tensor scale, torch::Tensor zero, int64_t group_size,
                       bool nibbles, torch::Tensor bias) {
  const int64_t N = check_matmul(x, q, scale, zero, group_size, nibbles, bias);
  const int64_t K = x.size(-1), M = x.numel() / K, G = K / group_size;
  auto y = torch::empty(output_shape(x, N), x.options());
  const bool has_zero = zero.numel() > 0;
  const float* X = x.data_ptr<float>();
  // Per-group sums of x for the zero term, here rather than as a torch op (a decode step makes ~200 such calls).
  std::vector<float> xs(has_zero ? M * G : 0);
  for (int64_t i = 0; has_zero && i < M * G; ++i) {
    float total = 0.f;
    for (int64_t k = 0; k < group_size; ++k) total += X[i * group_size + k];
    xs[i] = total;
  }
  const float* XS = has_zero ? xs.data() : nullptr;
  const uint8_t* Q = (const uint8_t*)q.data_ptr();
  const float* S = scale.data_ptr<float>();
  const float* Z = has_zero ? zero.data_ptr<float>() : nullptr;
  float* Y = y.data_ptr<float>();
  at::parallel_for(0, N, rows_per_task(K), [&](int64_t begin, int64_t end) {
    if (nibbles) rows<true>(X, XS, Q, S, Z, Y, M, K, N, group_size, begin, end);
    else rows<false>(X, XS, Q, S, Z, Y, M, K, N, group_size, begin, end);
  });
  return add_bias(y, bias);
}

// w (N, K) float = q * scale + zero per group (the prefill path's dequantization, vectorized by the compiler).
torch::Tensor group_dequant(torch::Tensor q, torch::Tensor scale, torch::Tensor zero, int64_t K, int64_t group_size,
                            bool nibbles) {
  check_weights(q, scale, zero, K, group_size, nibbles);
  const int64_t N = q.numel() / (nibbles ? K / 2 : K), runs = N * (K / 32), per_group = group_size / 32;
  auto w = torch::empty({N, K}, scale.options());
  const uint8_t* Q = (const uint8_t*)q.data_ptr();
  const float* S = scale.data_ptr<float>();
  const float* Z = zero.numel() ? zero.data_ptr<float>() : nullptr;
  float* W = w.data_ptr<float>();
  at::parallel_for(0, runs, 1024, [&](int64_t begin, int64_t end) {
    float values[32];
    for (int64_t r = begin; r < end; ++r) {
      if (nibbles) {
        const uint8_t* qb = Q + r * 16;
        for (int k = 0; k < 16; ++k) { values[k] = (float)(qb[k] & 0x0F); values[k + 16] = (float)(qb[k] >> 4); }
      } else {
        const int8_t* qb = (const int8_t*)Q + r * 32;
        for (int k = 0; k < 32; ++k) values[k] = (float)qb[k];
      }
      const int64_t g = r / per_group;
      const float s = S[g], z = Z ? Z[g] : 0.f;
      float* wb = W + r * 32;
      if (Z) for (int k = 0; k < 32; ++k) wb[k] = values[k] * s + z;
      else for (int k = 0; k < 32; ++k) wb[k] = values[k] * s;
    }
  });
  return w;
}

// ---- int8 activations: integer dot products ---------------------------------------------------------------
// x is quantized per run of 32 values (each row separately) to int8 with one float scale: xq = round(x / dx),
// dx = max|x| / 127 (llama.cpp's Q8_0 activations). A run's dot product with 32 weights is then exact integer
// arithmetic (_mm256_maddubs_epi16: unsigned x signed bytes -> int16 pairs, no saturation since |q| <= 128 and
// |xq| <= 127), converted to float once per run instead of once per weight: 1.2-2.6x faster than the float kernel
// above per call (measured; see the module docstring).
static void quantize_activations(const float* X, int8_t* XQ, float* DX, int64_t runs_total) {
  for (int64_t i = 0; i < runs_total; ++i) {
    const float* x = X + i * 32;
    int8_t* xq = XQ + i * 32;
#if defined(__AVX2__) && defined(__FMA__)
    const __m256 sign = _mm256_set1_ps(-0.0f);
    const __m256 v0 = _mm256_loadu_ps(x), v1 = _mm256_loadu_ps(x + 8);
    const __m256 v2 = _mm256_loadu_ps(x + 16), v3 = _mm256_loadu_ps(x + 24);
    __m256 m = _mm256_max_ps(_mm256_max_ps(_mm256_andnot_ps(sign, v0), _mm256_andnot_ps(sign, v1)),
                             _mm256_max_ps(_mm256_andnot_ps(sign, v2), _mm256_andnot_ps(sign, v3)));
    __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    h = _mm_max_ps(h, _mm_movehl_ps(h, h));
    h = _mm_max_ss(h, _mm_movehdup_ps(h));
    const float amax = _mm_cvtss_f32(h);
    const float d = amax / 127.f;
    DX[i] = d;
    const __m256 inv = _mm256_set1_ps(amax > 0.f ? 127.f / amax : 0.f);
    __m256i i0 = _mm256_cvtps_epi32(_mm256_mul_ps(v0, inv)), i1 = _mm256_cvtps_epi32(_mm256_mul_ps(v1, inv));
    __m256i i2 = _mm256_cvtps_epi32(_mm256_mul_ps(v2, inv)), i3 = _mm256_cvtps_epi32(_mm256_mul_ps(v3, inv));
    i0 = _mm256_packs_epi16(_mm256_packs_epi32(i0, i1), _mm256_packs_epi32(i2, i3));  // lane-interleaved
    i0 = _mm256_permutevar8x32_epi32(i0, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256((__m256i*)xq, i0);
#else
    float amax = 0.f;
    for (int k = 0; k < 32; ++k) amax = std::max(amax, std::fabs(x[k]));
    DX[i] = amax / 127.f;
    const float inv = amax > 0.f ? 127.f / amax : 0.f;
    for (int k = 0; k < 32; ++k) xq[k] = (int8_t)std::nearbyint(x[k] * inv);
#endif
  }
}

#if defined(__AVX2__) && defined(__FMA__)
// The 32 weights of run r as bytes, and as the unsigned operand of maddubs (nibbles are already 0..15; signed
// int8 values take |q| here and their sign moves onto x in dot32).
template <bool NIBBLES>
static inline __m256i load32_bytes(const uint8_t* row, int64_t r) {
  if (NIBBLES) {
    const __m128i raw = _mm_loadu_si128((const __m128i*)(row + r * 16));
    const __m256i both = _mm256_set_m128i(_mm_srli_epi16(raw, 4), raw);  // high lane: weights 16..31
    return _mm256_and_si256(both, _mm256_set1_epi8(0x0F));
  }
  return _mm256_loadu_si256((const __m256i*)(row + r * 32));
}

static inline float hsum(__m256 v) {
  __m128 lo = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  lo = _mm_hadd_ps(lo, lo);
  lo = _mm_hadd_ps(lo, lo);
  return _mm_cvtss_f32(lo);
}

template <bool NIBBLES>
static inline __m256 dot32(__m256i q, const int8_t* xq) {
  const __m256i x = _mm256_loadu_si256((const __m256i*)xq);
  const __m256i pairs = NIBBLES ? _mm256_maddubs_epi16(q, x)
                                : _mm256_maddubs_epi16(_mm256_sign_epi8(q, q), _mm256_sign_epi8(x, q));
  return _mm256_cvtepi32_ps(_mm256_madd_epi16(pairs, _mm256_set1_epi16(1)));
}

// acc + scale * (run r of a row's weights . the run's 32 quantized inputs)
template <bool NIBBLES>
static inline __m256 add_run(__m256 acc, __m256 scale, const uint8_t* qn, const int8_t* xq, int64_t r) {
  return _mm256_fmadd_ps(scale, dot32<NIBBLES>(load32_bytes<NIBBLES>(qn, r), xq + r * 32), acc);
}
#endif

template <bool NIBBLES>
static inline int32_t idot32_scalar(const uint8_t* row, int64_t r, const int8_t* xq) {
  int32_t total = 0;
  for (int k = 0; k < 32; ++k) {
    const int32_t q = NIBBLES ? (k < 16 ? row[r * 16 + k] & 0x0F : row[r * 16 + k - 16] >> 4)
                              : (int32_t)((const int8_t*)row)[r * 32 + k];
    total += q * (int32_t)xq[k];
  }
  return total;
}

// One output row against one input row (decode at batch 1). The runs are walked in fours with four independent
// accumulators, so consecutive multiply-adds never wait on each other (one accumulator, or an accumulator array
// indexed at run time, which the compiler keeps on the stack, was latency-bound at 7-9 cycles per 32 weights);
// the group's scale follows the runs with a countdown instead of a division.
template <bool NIBBLES>
static inline float row_dot_q8(const uint8_t* qn, const float* sn, const int8_t* xq, const float* dx, int64_t R,
                               int64_t runs) {
#if defined(__AVX2__) && defined(__FMA__)
  __m256 acc0 = _mm256_setzero_ps(), acc1 = acc0, acc2 = acc0, acc3 = acc0;
  const int64_t G = R / runs;
  int64_t g = 0, left = runs;
  float s = sn[0];
  auto next_run = [&]() {  // the scale of the run after this one
    if (--left == 0) { left = runs; if (++g < G) s = sn[g]; }
  };
  float d[4];
  int64_t r = 0;
  for (; r + 4 <= R; r += 4) {
    for (int i = 0; i < 4; ++i) {
      d[i] = s * dx[r + i];
      next_run();
    }
    acc0 = add_run<NIBBLES>(acc0, _mm256_set1_ps(d[0]), qn, xq, r);
    acc1 = add_run<NIBBLES>(acc1, _mm256_set1_ps(d[1]), qn, xq, r + 1);
    acc2 = add_run<NIBBLES>(acc2, _mm256_set1_ps(d[2]), qn, xq, r + 2);
    acc3 = add_run<NIBBLES>(acc3, _mm256_set1_ps(d[3]), qn, xq, r + 3);
  }
  for (; r < R; ++r) {
    acc0 = add_run<NIBBLES>(acc0, _mm256_set1_ps(s * dx[r]), qn, xq, r);
    next_run();
  }
  return hsum(_mm256_add_ps(_mm256_add_ps(acc0, acc1), _mm256_add_ps(acc2, acc3)));
#else
  float total = 0.f;
  for (int64_t r = 0; r < R; ++r) total += sn[r / runs] * dx[r] * (float)idot32_scalar<NIBBLES>(qn, r, xq + r * 32);
  return total;
#endif
}

// sum(a[i] * b[i]) over n floats (the zero term: zero[n, g] * sum of group g's quantized x).
static inline float dot_floats(const float* a, const float* b, int64_t n) {
  float total = 0.f;
  int64_t i = 0;
#if defined(__AVX2__) && defined(__FMA__)
  if (n >= 8) {
    __m256 acc = _mm256_setzero_ps();
    for (; i + 8 <= n; i += 8) acc = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc);
    total = hsum(acc);
  }
#endif
  for (; i < n; ++i) total += a[i] * b[i];
  return total;
}

#ifndef PREFETCH_AHEAD
#define PREFETCH_AHEAD 2048
#endif
#if defined(__AVX2__) && defined(__FMA__)
// int4 nibbles at batch 1, groups of an even number of runs (group_size 64, 128, ...): one 32-byte load holds two
// runs; its low nibbles are both runs' weights 0..15 and its high nibbles their weights 16..31, so x is laid out to
// match (xp: per pair of runs, r0 x[0:16], r1 x[0:16], r0 x[16:32], r1 x[16:32]; dxv: r0's scale in lanes 0-3,
// r1's in 4-7). Two maddubs per pair, their int16 sums added (<= 4 * 15 * 127, no overflow), one madd, one
// convert, and the group's scale applied once per group: ~6 instructions per 32 weights instead of ~12.
static inline float row_dot_q4_pairs(const uint8_t* qn, const float* sn, const int8_t* xp, const float* dxv,
                                     int64_t G, int64_t pairs_per_group) {
  const __m256i mask = _mm256_set1_epi8(0x0F), ones = _mm256_set1_epi16(1);
  __m256 acc0 = _mm256_setzero_ps(), acc1 = acc0;
  int64_t p = 0;
  auto group = [&](int64_t g) {
    __m256 part = _mm256_setzero_ps();
    for (int64_t i = 0; i < pairs_per_group; ++i, ++p) {
      _mm_prefetch((const char*)(qn + p * 32 + PREFETCH_AHEAD), _MM_HINT_T0);
      const __m256i w = _mm256_loadu_si256((const __m256i*)(qn + p * 32));
      const __m256i lo = _mm256_and_si256(w, mask), hi = _mm256_and_si256(_mm256_srli_epi16(w, 4), mask);
      const __m256i x_lo = _mm256_loadu_si256((const __m256i*)(xp + p * 64));
      const __m256i x_hi = _mm256_loadu_si256((const __m256i*)(xp + p * 64 + 32));
      const __m256i pairs = _mm256_add_epi16(_mm256_maddubs_epi16(lo, x_lo), _mm256_maddubs_epi16(hi, x_hi));
      part = _mm256_fmadd_ps(_mm256_loadu_ps(dxv + p * 8), _mm256_cvtepi32_ps(_mm256_madd_epi16(pairs, ones)), part);
    }
    return _mm256_mul_ps(_mm256_set1_ps(sn[g]), part);
  };
  int64_t g = 0;
  for (; g + 2 <= G; g += 2) {  // two accumulators: consecutive groups do not wait on each other
    acc0 = _mm256_add_ps(acc0, group(g));
    acc1 = _mm256_add_ps(acc1, group(g + 1));
  }
  if (g < G) acc0 = _mm256_add_ps(acc0, group(g));
  return hsum(_mm256_add_ps(acc0, acc1));
}

// Signed int8 values with one scale per row (hugkit's per-channel int8) at batch 1: the row's scale is applied at
// the end, each run's x scale is a broadcast load; four accumulators.
static inline float row_dot_i8_channel(const uint8_t* qn, const int8_t* xq, const float* dx, int64_t R) {
  __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
  int64_t r = 0;
  for (; r + 4 <= R; r += 4) {
    _mm_prefetch((const char*)(qn + r * 32 + PREFETCH_AHEAD), _MM_HINT_T0);
    _mm_prefetch((const char*)(qn + r * 32 + 64 + PREFETCH_AHEAD), _MM_HINT_T0);
    acc[0] = add_run<false>(acc[0], _mm256_broadcast_ss(dx + r), qn, xq, r);
    acc[1] = add_run<false>(acc[1], _mm256_broadcast_ss(dx + r + 1), qn, xq, r + 1);
    acc[2] = add_run<false>(acc[2], _mm256_broadcast_ss(dx + r + 2), qn, xq, r + 2);
    acc[3] = add_run<false>(acc[3], _mm256_broadcast_ss(dx + r + 3), qn, xq, r + 3);
  }
  for (; r < R; ++r) acc[0] = add_run<false>(acc[0], _mm256_broadcast_ss(dx + r), qn, xq, r);
  return hsum(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3])));
}
#endif

// Output rows [n0, n1) for input rows [m0, m0 + mc), mc <= 8: each run of weights is loaded once for all mc rows.
template <bool NIBBLES>
static void row_block_q8(const int8_t* XQ, const float* DX, const float* XS, const uint8_t* Q, const float* S,
                         const float* Z, float* Y, int64_t K, int64_t N, int64_t GS, int64_t n0, int64_t n1,
                         int64_t m0, int64_t mc) {
  const int64_t G = K / GS, runs = GS / 32, R = K / 32, row_bytes = NIBBLES ? K / 2 : K;
  for (int64_t n = n0; n < n1; ++n) {
    const uint8_t* qn = Q + n * row_bytes;
    const float* sn = S + n * G;
    float tail[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    if (Z)
      for (int64_t m = 0; m < mc; ++m) tail[m] = dot_floats(Z + n * G, XS + (m0 + m) * G, G);
    if (mc == 1) {
      Y[m0 * N + n] = row_dot_q8<NIBBLES>(qn, sn, XQ + m0 * K, DX + m0 * R, R, runs) + tail[0];
      continue;
    }
#if defined(__AVX2__) && defined(__FMA__)
    __m256 acc[8];  // several input rows: their accumulators are independent chains already
    for (int64_t m = 0; m < mc; ++m) acc[m] = _mm256_setzero_ps();
    for (int64_t g = 0; g < G; ++g) {
      for (int64_t r = g * runs; r < (g + 1) * runs; ++r) {
        const __m256i q = load32_bytes<NIBBLES>(qn, r);
        for (int64_t m = 0; m < mc; ++m) {
          const int64_t row = m0 + m;
          acc[m] = _mm256_fmadd_ps(_mm256_set1_ps(sn[g] * DX[row * R + r]),
                                   dot32<NIBBLES>(q, XQ + row * K + r * 32), acc[m]);
        }
      }
    }
    for (int64_t m = 0; m < mc; ++m) Y[(m0 + m) * N + n] = hsum(acc[m]) + tail[m];
#else
    for (int64_t m = 0; m < mc; ++m)
      Y[(m0 + m) * N + n] = row_dot_q8<NIBBLES>(qn, sn, XQ + (m0 + m) * K, DX + (m0 + m) * R, R, runs) + tail[m];
#endif
  }
}

// y (..., N) ~= x (..., K) @ (q * scale + zero)^T + bias with x quantized to int8 per run of 32 (see above).
torch::Tensor group_mm_q8(torch::Tensor x, torch::Tensor q, torch::Tensor scale, torch::Tensor zero,
                          int64_t group_size, bool nibbles, torch::Tensor bias) {
  const int64_t N = check_matmul(x, q, scale, zero, group_size, nibbles, bias);
  const int64_t K = x.size(-1), M = x.numel() / K, G = K / group_size;
  auto y = torch::empty(output_shape(x, N), x.options());
  const bool has_zero = zero.numel() > 0;
  const float* X = x.data_ptr<float>();
  std::vector<float> xs(has_zero ? M * G : 0), dx(M * K / 32);
  std::vector<int8_t> xq(M * K);
  quantize_activations(X, xq.data(), dx.data(), M * K / 32);
  // The zero term sums the quantized x too: y is then exactly W @ x_quantized, so its error is W @ (x - x_quantized)
  // (small, W is centred); exact float sums next to quantized products leave (W - zero) @ (x - x_quantized), which
  // was 3x larger for int4 groups (all q >= 0).
  for (int64_t i = 0; has_zero && i < M * G; ++i) {
    float total = 0.f;
    for (int64_t r = i * (group_size / 32); r < (i + 1) * (group_size / 32); ++r) {
      int32_t run = 0;
      for (int k = 0; k < 32; ++k) run += xq[r * 32 + k];
      total += dx[r] * (float)run;
    }
    xs[i] = total;
  }
  const float* XS = has_zero ? xs.data() : nullptr;
  const uint8_t* Q = (const uint8_t*)q.data_ptr();
  const float* S = scale.data_ptr<float>();
  const float* Z = has_zero ? zero.data_ptr<float>() : nullptr;
  float* Y = y.data_ptr<float>();
  const int64_t runs = group_size / 32, R = K / 32;
#if defined(__AVX2__) && defined(__FMA__)
  if (M == 1 && nibbles && runs % 2 == 0) {  // decode, int4 groups of 64, 128, ...
    std::vector<int8_t> xp(K);
    std::vector<float> dxv(R * 4);
    for (int64_t pair = 0; pair < R / 2; ++pair) {
      const int8_t* r0 = xq.data() + pair * 64;
      int8_t* out = xp.data() + pair * 64;
      std::copy(r0, r0 + 16, out);
      std::copy(r0 + 32, r0 + 48, out + 16);
      std::copy(r0 + 16, r0 + 32, out + 32);
      std::copy(r0 + 48, r0 + 64, out + 48);
      std::fill(dxv.begin() + pair * 8, dxv.begin() + pair * 8 + 4, dx[pair * 2]);
      std::fill(dxv.begin() + pair * 8 + 4, dxv.begin() + pair * 8 + 8, dx[pair * 2 + 1]);
    }
    at::parallel_for(0, N, rows_per_task(K), [&](int64_t begin, int64_t end) {
      for (int64_t n = begin; n < end; ++n)
        Y[n] = row_dot_q4_pairs(Q + n * (K / 2), S + n * G, xp.data(), dxv.data(), G, runs / 2) +
               (Z ? dot_floats(Z + n * G, XS, G) : 0.f);
    });
    return add_bias(y, bias);
  }
  if (M == 1 && !nibbles && G == 1) {  // decode, per-channel int8
    at::parallel_for(0, N, rows_per_task(K), [&](int64_t begin, int64_t end) {
      for (int64_t n = begin; n < end; ++n)
        Y[n] = S[n] * row_dot_i8_channel(Q + n * K, xq.data(), dx.data(), R) + (Z ? Z[n] * XS[0] : 0.f);
    });
    return add_bias(y, bias);
  }
#endif
  at::parallel_for(0, N, rows_per_task(K), [&](int64_t begin, int64_t end) {
    for (int64_t m0 = 0; m0 < M; m0 += 8) {
      const int64_t mc = std::min<int64_t>(8, M - m0);
      if (nibbles) row_block_q8<true>(xq.data(), dx.data(), XS, Q, S, Z, Y, K, N, group_size, begin, end, m0, mc);
      else row_block_q8<false>(xq.data(), dx.data(), XS, Q, S, Z, Y, K, N, group_size, begin, end, m0, mc);
    }
  });
  return add_bias(y, bias);
}

"""

_lock = threading.Lock()
_module = None
_failed = False


_VERSION = 15  # bump when _SOURCE changes: the compiled module is cached by name


def compile_kernels(vectorized: bool = True):
    """Compile _SOURCE (cached per machine by torch's cpp_extension); ``vectorized=False`` builds the portable C++
    paths that machines without AVX2 run (the tests compare both)."""
    from torch.utils.cpp_extension import load_inline

    flags = ["-O3", "-ffp-contract=off"]  # dequant: two roundings, exactly as gguf
    if vectorized and torch.backends.cpu.get_cpu_capability() in ("AVX2", "AVX512"):
        flags += ["-mavx2", "-mfma"]
    return load_inline(
        name=f"hugkit_gguf_kernels_{_VERSION}{'' if vectorized else '_portable'}", cpp_sources=[_SOURCE + "\n"],
        functions=["group_mm", "group_mm_q8", "group_dequant"], extra_cflags=flags, verbose=False,
    )


def block_mm_kernel():
    """The compiled module (``group_mm``, ``group_mm_q8``, ``group_dequant``), or None when unavailable
    (logged once)."""
    global _module, _failed
    if _module is not None or _failed:
        return _module
    with _lock:
        if _module is not None or _failed:
            return _module
        if os.environ.get("HUGKIT_GGUF_KERNEL", "1") == "0":
            _failed = True
            return None
        try:
            logger.info("Loading the quantized-matmul kernel (compiled once per machine, ~1 minute the first time).")
            _module = compile_kernels()
        except Exception as error:  # no compiler, no headers, ...: the torch fallback is correct, only slower
            _failed = True
            logger.info("Quantized-matmul kernel unavailable (%s: %s); using dequantize + fp32 matmul.",
                        type(error).__name__, str(error).splitlines()[0] if str(error) else "")
    return _module
