// Portable C++ kernels: no intrinsics, no -m flags (the baseline of the target, e.g. x86-64 SSE2).
#include <cmath>
#include <cstdint>

#include "engine.h"

namespace bnnzoo_rt {
namespace scalar_isa {

constexpr int MR = 4;

static inline uint64_t popcount64(uint64_t x) {  // SWAR: no popcnt instruction assumed
  x = x - ((x >> 1) & 0x5555555555555555ull);
  x = (x & 0x3333333333333333ull) + ((x >> 2) & 0x3333333333333333ull);
  x = (x + (x >> 4)) & 0x0F0F0F0F0F0F0F0Full;
  return (x * 0x0101010101010101ull) >> 56;
}

static void bgemm_ukernel(int mr, int64_t ntaps, int64_t wg, const uint64_t* a, int64_t ps, const int64_t* taps,
                          const uint64_t* panel, const Epilogue& e, float* c, int64_t ldc) {
  for (int i = 0; i < mr; ++i) {
    uint64_t acc[PANEL] = {0};
    const uint64_t* w = panel;
    for (int64_t t = 0; t < ntaps; ++t) {
      const uint64_t* x = a + i * ps + taps[t];
      for (int64_t k = 0; k < wg; ++k, w += PANEL)
        for (int j = 0; j < PANEL; ++j) acc[j] += popcount64(x[k] ^ w[j]);
    }
    for (int j = 0; j < PANEL; ++j) {  // (n - 2 * mismatches) * scale, then fma with the BatchNorm
      const float v = float(e.nvalid - 2 * int32_t(acc[j])) * e.scale[j];
      c[i * ldc + j] = e.bn_a ? BNNZOO_FMA(v, e.bn_a[j], e.bn_b[j]) : v;
    }
  }
}

static inline bool positive(const float* x, const float* mul, const float* thr, int64_t k) {
  if (mul) return BNNZOO_FMA(x[k], mul[k], thr[k]) >= 0.0f;
  return thr ? x[k] - thr[k] >= 0.0f : x[k] >= 0.0f;
}

static void pack_bits(const float* x, const float* mul, const float* thr, int64_t c, uint64_t* out) {
  for (int64_t w = 0; w * 64 < c; ++w) {
    const int64_t n = c - w * 64 < 64 ? c - w * 64 : 64;
    uint64_t bits = 0;
    for (int64_t k = 0; k < n; ++k) bits |= uint64_t(positive(x, mul, thr, w * 64 + k)) << k;
    out[w] = bits;
  }
}

constexpr int PEAK_WORDS = 512;
constexpr double PEAK_MACS_PER_REP = PEAK_WORDS * 2.0 * 64.0;  // two XORs per loaded word

static uint64_t peak_kernel(const uint64_t* data, int64_t reps) {
  const uint64_t w0 = data[PEAK_WORDS], w1 = data[PEAK_WORDS + 1];
  uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  for (int64_t r = 0; r < reps; ++r)
    for (int k = 0; k < PEAK_WORDS; k += 2) {
      s0 += popcount64(data[k] ^ w0);
      s1 += popcount64(data[k] ^ w1);
      s2 += popcount64(data[k + 1] ^ w0);
      s3 += popcount64(data[k + 1] ^ w1);
    }
  return s0 + s1 + s2 + s3;
}

#include "executor.inc"

}  // namespace scalar_isa

const KernelTable* table_scalar() {
  static const KernelTable table = {"scalar", scalar_isa::MR, scalar_isa::run, scalar_isa::xor_popcount_peak};
  return &table;
}

}  // namespace bnnzoo_rt
