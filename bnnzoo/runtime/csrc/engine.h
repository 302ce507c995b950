// bnnzoo runtime: declarations shared by the dispatcher, the Python module and the per-ISA kernels.
//
// A plan is a table of fixed-width int64 op records written (and bounds-checked) by
// bnnzoo/runtime/program.py; the field layout below must match program.py's (ABI_VERSION).
// C++ trusts the table: every size and offset has been validated in Python before it gets here.
#pragma once

#include <cstddef>
#include <cstdint>

// Fused multiply-add, as torch's vectorised BatchNorm computes x * a + b: one rounding (a builtin, not
// std::fma, so that no inline function is shared between translation units of different ISAs).
#if defined(__GNUC__) || defined(__clang__)
#define BNNZOO_FMA(a, b, c) __builtin_fmaf(a, b, c)
#else
#include <math.h>
#define BNNZOO_FMA(a, b, c) fmaf(a, b, c)
#endif

namespace bnnzoo_rt {

constexpr int ABI_VERSION = 1;
constexpr int OP_WIDTH = 64;    // int64 fields per op record
constexpr int PANEL = 16;       // output channels per binary weight panel (all ISAs)
constexpr int MAX_MR = 8;       // the largest pixel block of any ISA's microkernel
constexpr int MAX_TAPS = 128;   // kh * kw

enum OpKind : int64_t {
  OP_PACK = 1,      // binarise float NHWC -> sign bits (+1 padding)
  OP_BCONV = 2,     // XNOR-popcount convolution with fused epilogue
  OP_FCONV = 3,     // real-valued convolution (im2col-free direct loops)
  OP_POOL = 4,      // avg / max pooling
  OP_ADD = 5,       // dst += src
  OP_COPY = 6,      // dst = src
  OP_ZERO = 7,      // dst = 0
  OP_MEANFILL = 8,  // dst = [src, mean_c(src) repeated]
  OP_AFFINE = 9,    // dst = fma(src, a, b) per channel (a BatchNorm not next to a binary convolution)
};

// A float tensor reference occupies 7 fields: space, byte offset, H, W, ld (floats per pixel),
// c0 (first channel), C. A bits reference occupies 5: space, byte offset, Hp, Wp, ldw (words per pixel).
// Spaces (per image): 0 = arena, 1 = input, 2 = output.
constexpr int FREF = 7;
constexpr int BREF = 5;

// Field indices (f[0] is the kind).
// Binarisation of channel c: sign(x - thr[c]) (RSign), or sign(fma(x, mul[c], thr[c])) when mul is
// given (a BatchNorm before the sign, as torch computes it), or sign(x) with neither.
namespace pack {  // OP_PACK
constexpr int SRC = 1, SUB = 8, MUL = 9, THR = 10, G = 11, CG = 12, WG = 13, DST = 14, PAD = 19, HD = 20, WD = 21,
              BORDER_ONLY = 22;  // the interior was written by the producing convolution's epilogue
}
// Epilogue of output channel o: c = acc * scale[o] (the float convolution's value), then BatchNorm as
// torch computes it, fma(c, bn_a[o], bn_b[o]) (when bn_a is given): both in the microkernel, with
// scale, bn_a and bn_b laid out like the accumulators (each group from a multiple of PANEL); then the
// residual and the activation.
namespace bconv {  // OP_BCONV
constexpr int SRC = 1, G = 6, WG = 7, KH = 8, KW = 9, STRIDE = 10, DIL = 11, HO = 12, WO = 13, O = 14, OG = 15,
              NVALID = 16, WEIGHTS = 17, SCALE = 18, BN_B = 19, RP_GAMMA = 20, RP_SLOPE = 21, RP_ZETA = 22, RES = 23,
              RES_MODE = 30, OUT_MODE = 31, OUT = 32, OUT_BITS = 39, OUT_THR = 44, OUT_G = 45, OUT_WG = 46,
              ACT = 47, RES_AFTER_ACT = 48, OUT_MUL = 49, BN_A = 50,
              // a second output beside the floats: the next convolution's sign bits, +1-padded by NEXT_PAD
              NEXT_BITS = 51, NEXT_PAD = 56, NEXT_G = 57, NEXT_WG = 58, NEXT_THR = 59, NEXT_MUL = 60;
constexpr int RES_NONE = 0, RES_MOD = 1, RES_ZEROFILL = 2;
constexpr int OUT_FLOAT = 0, OUT_PACKED = 1;
constexpr int ACT_NONE = 0, ACT_RPRELU = 1, ACT_RELU = 2;
}
namespace fconv {  // OP_FCONV
constexpr int SRC = 1, KH = 8, KW = 9, STRIDE = 10, PAD = 11, HO = 12, WO = 13, O = 14, WEIGHTS = 15, OPAD = 16,
              BIAS = 17, ACCUMULATE = 18, OUT = 19;
}
namespace pool {  // OP_POOL
constexpr int SRC = 1, MODE = 8, K = 9, STRIDE = 10, PAD = 11, HO = 12, WO = 13, ACCUMULATE = 14, OUT = 15;
constexpr int AVG = 0, MAX = 1;
}
namespace binary {  // OP_ADD, OP_COPY, OP_MEANFILL, OP_AFFINE: dst then src; OP_ZERO: dst
constexpr int DST = 1, SRC = 8, MUL = 15, ADD = 16;
}

// What a binary microkernel applies to its PANEL columns before storing them as floats: the
// weight scale and the BatchNorm after the convolution (bn_a null: none), from the panel's first column.
struct Epilogue {
  const float* scale;
  const float* bn_a;
  const float* bn_b;
  int32_t nvalid;
};

// What a plan needs from one ISA: the whole executor is compiled once per ISA (its generic loops
// vectorised for that ISA), around that ISA's hand-written microkernels.
struct Workspace {
  uint8_t* base;
  int64_t arena_bytes;    // per arena
  int64_t scratch_bytes;  // per thread
};

struct KernelTable {
  const char* name;
  int mr;  // pixels per binary microkernel call
  // Runs the plan on n images. times (nullable, n_ops doubles) receives per-op seconds, summed.
  void (*run)(const int64_t* ops, int64_t n_ops, const uint64_t* weights, const float* params, const uint8_t* input,
              int64_t in_bytes, uint8_t* output, int64_t out_bytes, int64_t n, const Workspace& ws, int threads,
              double* times);
  // L1-resident XOR + popcount loop on `threads` threads: binary MACs per second.
  double (*xor_popcount_peak)(double seconds, int threads);
};

const KernelTable* table_scalar();
#ifndef BNNZOO_NO_AVX2
const KernelTable* table_avx2();
#endif
#ifndef BNNZOO_NO_AVX512
const KernelTable* table_avx512();
#endif

// Monotonic seconds (dispatch.cpp), for the per-op profile and the ceiling micro-benchmark.
double now_seconds();

// dispatch.cpp: the one place an ISA is chosen.
// request: "auto", "avx512", "avx2", "scalar", or nullptr / "" to read BNNZOO_RUNTIME_ISA (default auto).
// Returns nullptr and sets *error when the request cannot be met.
const KernelTable* select_isa(const char* request, const char** error);
bool isa_built(const char* name);
bool isa_supported_by_cpu(const char* name);
const char* best_isa();

}  // namespace bnnzoo_rt
