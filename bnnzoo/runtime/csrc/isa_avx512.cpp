// AVX-512 kernels (compiled with -mavx512f/bw/vl/dq -mavx512vpopcntdq): VPXORQ + VPOPCNTQ + VPADDQ,
// 8 pixels x 16 channels of 64-bit accumulators per microkernel call.
#include <immintrin.h>

#include <cmath>
#include <cstdint>

#include "engine.h"

namespace bnnzoo_rt {
namespace avx512_isa {

constexpr int MR = 8;

template <int M>
static inline void bgemm_m(int64_t ntaps, int64_t wg, const uint64_t* a, int64_t ps, const int64_t* taps,
                           const uint64_t* panel, const Epilogue& e, float* c, int64_t ldc) {
  __m512i acc0[M], acc1[M];
#pragma GCC unroll 8
  for (int i = 0; i < M; ++i) acc0[i] = acc1[i] = _mm512_setzero_si512();
  const uint64_t* w = panel;
  for (int64_t t = 0; t < ntaps; ++t) {
    const uint64_t* x = a + taps[t];
    for (int64_t k = 0; k < wg; ++k, w += PANEL) {
      const __m512i w0 = _mm512_loadu_si512(w);
      const __m512i w1 = _mm512_loadu_si512(w + 8);
#pragma GCC unroll 8
      for (int i = 0; i < M; ++i) {
        const __m512i v = _mm512_set1_epi64(static_cast<long long>(x[i * ps + k]));
        acc0[i] = _mm512_add_epi64(acc0[i], _mm512_popcnt_epi64(_mm512_xor_si512(v, w0)));
        acc1[i] = _mm512_add_epi64(acc1[i], _mm512_popcnt_epi64(_mm512_xor_si512(v, w1)));
      }
    }
  }
  // (n - 2 * mismatches) * scale, then fma with the BatchNorm: as the generic epilogue computes it
  const __m512i n = _mm512_set1_epi32(e.nvalid);
  const __m512 scale = _mm512_loadu_ps(e.scale);
  const __m512 bn_a = e.bn_a ? _mm512_loadu_ps(e.bn_a) : scale, bn_b = e.bn_a ? _mm512_loadu_ps(e.bn_b) : scale;
#pragma GCC unroll 8
  for (int i = 0; i < M; ++i) {
    const __m256i lo = _mm512_maskz_cvtepi64_epi32(0xFF, acc0[i]), hi = _mm512_maskz_cvtepi64_epi32(0xFF, acc1[i]);
    const __m512i mismatches = _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
    __m512 v = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(n, _mm512_slli_epi32(mismatches, 1))), scale);
    if (e.bn_a) v = _mm512_fmadd_ps(v, bn_a, bn_b);
    _mm512_storeu_ps(c + i * ldc, v);
  }
}

static void bgemm_ukernel(int mr, int64_t ntaps, int64_t wg, const uint64_t* a, int64_t ps, const int64_t* taps,
                          const uint64_t* panel, const Epilogue& e, float* c, int64_t ldc) {
  switch (mr) {
    case 8: bgemm_m<8>(ntaps, wg, a, ps, taps, panel, e, c, ldc); break;
    case 7: bgemm_m<7>(ntaps, wg, a, ps, taps, panel, e, c, ldc); break;
    case 6: bgemm_m<6>(ntaps, wg, a, ps, taps, panel, e, c, ldc); break;
    case 5: bgemm_m<5>(ntaps, wg, a, ps, taps, panel, e, c, ldc); break;
    case 4: bgemm_m<4>(ntaps, wg, a, ps, taps, panel, e, c, ldc); break;
    case 3: bgemm_m<3>(ntaps, wg, a, ps, taps, panel, e, c, ldc); break;
    case 2: bgemm_m<2>(ntaps, wg, a, ps, taps, panel, e, c, ldc); break;
    default: bgemm_m<1>(ntaps, wg, a, ps, taps, panel, e, c, ldc); break;
  }
}

static void pack_bits(const float* x, const float* mul, const float* thr, int64_t c, uint64_t* out) {
  const __m512 zero = _mm512_setzero_ps();
  for (int64_t w = 0; w * 64 < c; ++w) {
    uint64_t bits = 0;
    for (int q = 0; q < 4; ++q) {
      const int64_t first = w * 64 + q * 16, left = c - first;
      if (left <= 0) break;
      const __mmask16 m = left >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << left) - 1);
      __m512 v = _mm512_maskz_loadu_ps(m, x + first);
      if (mul)
        v = _mm512_fmadd_ps(v, _mm512_maskz_loadu_ps(m, mul + first), _mm512_maskz_loadu_ps(m, thr + first));
      else if (thr)
        v = _mm512_sub_ps(v, _mm512_maskz_loadu_ps(m, thr + first));
      bits |= uint64_t(_mm512_mask_cmp_ps_mask(m, v, zero, _CMP_GE_OQ)) << (q * 16);
    }
    out[w] = bits;
  }
}

constexpr int PEAK_WORDS = 512;
constexpr double PEAK_MACS_PER_REP = PEAK_WORDS * 4.0 * 64.0;  // four XORs per loaded word

static uint64_t peak_kernel(const uint64_t* data, int64_t reps) {
  const __m512i w0 = _mm512_loadu_si512(data + PEAK_WORDS), w1 = _mm512_loadu_si512(data + PEAK_WORDS + 8);
  const __m512i w2 = _mm512_loadu_si512(data + PEAK_WORDS + 16), w3 = _mm512_loadu_si512(data + PEAK_WORDS + 24);
  __m512i s[8];
  for (int i = 0; i < 8; ++i) s[i] = _mm512_setzero_si512();
  for (int64_t r = 0; r < reps; ++r)
    for (int k = 0; k < PEAK_WORDS; k += 16) {
      const __m512i x0 = _mm512_loadu_si512(data + k), x1 = _mm512_loadu_si512(data + k + 8);
      s[0] = _mm512_add_epi64(s[0], _mm512_popcnt_epi64(_mm512_xor_si512(x0, w0)));
      s[1] = _mm512_add_epi64(s[1], _mm512_popcnt_epi64(_mm512_xor_si512(x0, w1)));
      s[2] = _mm512_add_epi64(s[2], _mm512_popcnt_epi64(_mm512_xor_si512(x0, w2)));
      s[3] = _mm512_add_epi64(s[3], _mm512_popcnt_epi64(_mm512_xor_si512(x0, w3)));
      s[4] = _mm512_add_epi64(s[4], _mm512_popcnt_epi64(_mm512_xor_si512(x1, w0)));
      s[5] = _mm512_add_epi64(s[5], _mm512_popcnt_epi64(_mm512_xor_si512(x1, w1)));
      s[6] = _mm512_add_epi64(s[6], _mm512_popcnt_epi64(_mm512_xor_si512(x1, w2)));
      s[7] = _mm512_add_epi64(s[7], _mm512_popcnt_epi64(_mm512_xor_si512(x1, w3)));
    }
  __m512i t = s[0];
  for (int i = 1; i < 8; ++i) t = _mm512_add_epi64(t, s[i]);
  alignas(64) uint64_t lanes[8];
  _mm512_store_si512(lanes, t);
  uint64_t sum = 0;
  for (int i = 0; i < 8; ++i) sum += lanes[i];
  return sum;
}

#include "executor.inc"

}  // namespace avx512_isa

const KernelTable* table_avx512() {
  static const KernelTable table = {"avx512", avx512_isa::MR, avx512_isa::run, avx512_isa::xor_popcount_peak};
  return &table;
}

}  // namespace bnnzoo_rt
