// AVX2 kernels (compiled with -mavx2 -mfma -mpopcnt): popcount by nibble lookup with VPSHUFB, byte
// counts summed with VPSADBW (Mula, Kurz, Lemire), 4 pixels x 8 channels per microkernel pass.
#include <immintrin.h>

#include <cmath>
#include <cstdint>

#include "engine.h"

namespace bnnzoo_rt {
namespace avx2_isa {

constexpr int MR = 4;
constexpr int FLUSH = 31;  // byte counters hold at most 8 per step: 31 * 8 < 256

static inline __m256i nibble_popcount(__m256i x, __m256i lut, __m256i low) {
  const __m256i lo = _mm256_and_si256(x, low);
  const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(x, 4), low);
  return _mm256_add_epi8(_mm256_shuffle_epi8(lut, lo), _mm256_shuffle_epi8(lut, hi));
}

static inline __m256i popcount_lut() {
  return _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4, 0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
}

// Columns [col, col + 8) of a panel for M pixels.
template <int M>
static inline void bgemm_half(int64_t ntaps, int64_t wg, const uint64_t* a, int64_t ps, const int64_t* taps,
                              const uint64_t* panel, int col, const Epilogue& e, float* c, int64_t ldc) {
  const __m256i lut = popcount_lut(), low = _mm256_set1_epi8(0x0f), zero = _mm256_setzero_si256();
  __m256i bytes0[M], bytes1[M], total0[M], total1[M];
#pragma GCC unroll 4
  for (int i = 0; i < M; ++i) bytes0[i] = bytes1[i] = total0[i] = total1[i] = zero;
  int steps = 0;
  const uint64_t* w = panel + col;
  for (int64_t t = 0; t < ntaps; ++t) {
    const uint64_t* x = a + taps[t];
    for (int64_t k = 0; k < wg; ++k, w += PANEL) {
      const __m256i w0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w));
      const __m256i w1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + 4));
#pragma GCC unroll 4
      for (int i = 0; i < M; ++i) {
        const __m256i v = _mm256_set1_epi64x(static_cast<long long>(x[i * ps + k]));
        bytes0[i] = _mm256_add_epi8(bytes0[i], nibble_popcount(_mm256_xor_si256(v, w0), lut, low));
        bytes1[i] = _mm256_add_epi8(bytes1[i], nibble_popcount(_mm256_xor_si256(v, w1), lut, low));
      }
      if (++steps == FLUSH) {
#pragma GCC unroll 4
        for (int i = 0; i < M; ++i) {
          total0[i] = _mm256_add_epi64(total0[i], _mm256_sad_epu8(bytes0[i], zero));
          total1[i] = _mm256_add_epi64(total1[i], _mm256_sad_epu8(bytes1[i], zero));
          bytes0[i] = bytes1[i] = zero;
        }
        steps = 0;
      }
    }
  }
  // (n - 2 * mismatches) * scale, then fma with the BatchNorm: as the generic epilogue computes it
  const __m256i n = _mm256_set1_epi32(e.nvalid);
  const __m256 scale = _mm256_loadu_ps(e.scale + col);
  const __m256 bn_a = e.bn_a ? _mm256_loadu_ps(e.bn_a + col) : scale;
  const __m256 bn_b = e.bn_a ? _mm256_loadu_ps(e.bn_b + col) : scale;
  const __m256i pick = _mm256_setr_epi32(0, 2, 4, 6, 0, 2, 4, 6);  // the low 32 bits of each 64-bit count
#pragma GCC unroll 4
  for (int i = 0; i < M; ++i) {
    total0[i] = _mm256_add_epi64(total0[i], _mm256_sad_epu8(bytes0[i], zero));
    total1[i] = _mm256_add_epi64(total1[i], _mm256_sad_epu8(bytes1[i], zero));
    const __m128i lo = _mm256_castsi256_si128(_mm256_permutevar8x32_epi32(total0[i], pick));
    const __m128i hi = _mm256_castsi256_si128(_mm256_permutevar8x32_epi32(total1[i], pick));
    const __m256i mismatches = _mm256_set_m128i(hi, lo);
    __m256 v = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(n, _mm256_slli_epi32(mismatches, 1))), scale);
    if (e.bn_a) v = _mm256_fmadd_ps(v, bn_a, bn_b);
    _mm256_storeu_ps(c + i * ldc + col, v);
  }
}

static void bgemm_ukernel(int mr, int64_t ntaps, int64_t wg, const uint64_t* a, int64_t ps, const int64_t* taps,
                          const uint64_t* panel, const Epilogue& e, float* c, int64_t ldc) {
  for (int col = 0; col < PANEL; col += 8) {
    switch (mr) {
      case 4: bgemm_half<4>(ntaps, wg, a, ps, taps, panel, col, e, c, ldc); break;
      case 3: bgemm_half<3>(ntaps, wg, a, ps, taps, panel, col, e, c, ldc); break;
      case 2: bgemm_half<2>(ntaps, wg, a, ps, taps, panel, col, e, c, ldc); break;
      default: bgemm_half<1>(ntaps, wg, a, ps, taps, panel, col, e, c, ldc); break;
    }
  }
}

static void pack_bits(const float* x, const float* mul, const float* thr, int64_t c, uint64_t* out) {
  const __m256 zero = _mm256_setzero_ps();
  int64_t w = 0;
  for (; (w + 1) * 64 <= c; ++w) {
    uint64_t bits = 0;
    for (int q = 0; q < 8; ++q) {
      const int64_t k = w * 64 + q * 8;
      __m256 v = _mm256_loadu_ps(x + k);
      if (mul)
        v = _mm256_fmadd_ps(v, _mm256_loadu_ps(mul + k), _mm256_loadu_ps(thr + k));
      else if (thr)
        v = _mm256_sub_ps(v, _mm256_loadu_ps(thr + k));
      bits |= uint64_t(uint32_t(_mm256_movemask_ps(_mm256_cmp_ps(v, zero, _CMP_GE_OQ)))) << (q * 8);
    }
    out[w] = bits;
  }
  if (w * 64 < c) {
    uint64_t bits = 0;
    for (int64_t k = w * 64; k < c; ++k) {
      const bool positive = mul ? BNNZOO_FMA(x[k], mul[k], thr[k]) >= 0.0f : thr ? x[k] - thr[k] >= 0.0f : x[k] >= 0.0f;
      bits |= uint64_t(positive) << (k - w * 64);
    }
    out[w] = bits;
  }
}

constexpr int PEAK_WORDS = 512;
constexpr double PEAK_MACS_PER_REP = PEAK_WORDS * 2.0 * 64.0;

static uint64_t peak_kernel(const uint64_t* data, int64_t reps) {
  const __m256i lut = popcount_lut(), low = _mm256_set1_epi8(0x0f), zero = _mm256_setzero_si256();
  const __m256i w0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(data + PEAK_WORDS));
  const __m256i w1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(data + PEAK_WORDS + 4));
  __m256i t0 = zero, t1 = zero, t2 = zero, t3 = zero;
  for (int64_t r = 0; r < reps; ++r) {
    __m256i b0 = zero, b1 = zero, b2 = zero, b3 = zero;
    for (int k = 0; k < PEAK_WORDS; k += 8) {  // flush the byte counters every 16 steps (16 * 8 < 256)
      const __m256i x0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(data + k));
      const __m256i x1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(data + k + 4));
      b0 = _mm256_add_epi8(b0, nibble_popcount(_mm256_xor_si256(x0, w0), lut, low));
      b1 = _mm256_add_epi8(b1, nibble_popcount(_mm256_xor_si256(x0, w1), lut, low));
      b2 = _mm256_add_epi8(b2, nibble_popcount(_mm256_xor_si256(x1, w0), lut, low));
      b3 = _mm256_add_epi8(b3, nibble_popcount(_mm256_xor_si256(x1, w1), lut, low));
      if ((k / 8) % 16 == 15) {
        t0 = _mm256_add_epi64(t0, _mm256_sad_epu8(b0, zero));
        t1 = _mm256_add_epi64(t1, _mm256_sad_epu8(b1, zero));
        t2 = _mm256_add_epi64(t2, _mm256_sad_epu8(b2, zero));
        t3 = _mm256_add_epi64(t3, _mm256_sad_epu8(b3, zero));
        b0 = b1 = b2 = b3 = zero;
      }
    }
  }
  const __m256i t = _mm256_add_epi64(_mm256_add_epi64(t0, t1), _mm256_add_epi64(t2, t3));
  alignas(32) uint64_t lanes[4];
  _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), t);
  return lanes[0] + lanes[1] + lanes[2] + lanes[3];
}

#include "executor.inc"

}  // namespace avx2_isa

const KernelTable* table_avx2() {
  static const KernelTable table = {"avx2", avx2_isa::MR, avx2_isa::run, avx2_isa::xor_popcount_peak};
  return &table;
}

}  // namespace bnnzoo_rt
