// The one place an ISA is chosen: CPUID (and the OS's saved register state) at run time, or the
// BNNZOO_RUNTIME_ISA environment variable (auto | avx512 | avx2 | scalar) to force one.
#include <chrono>
#include <cstdlib>
#include <cstring>

#include "engine.h"

#if defined(__x86_64__) || defined(_M_X64) || defined(__i386__) || defined(_M_IX86)
#define BNNZOO_X86 1
#if defined(_MSC_VER)
#include <intrin.h>
#else
#include <cpuid.h>
#endif
#endif

namespace bnnzoo_rt {

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

namespace {

struct Features {
  bool avx2 = false;
  bool avx512 = false;  // F, BW, VL, DQ and VPOPCNTDQ
};

#ifdef BNNZOO_X86
void cpuid(unsigned leaf, unsigned sub, unsigned regs[4]) {
#if defined(_MSC_VER)
  int r[4];
  __cpuidex(r, int(leaf), int(sub));
  for (int i = 0; i < 4; ++i) regs[i] = unsigned(r[i]);
#else
  __cpuid_count(leaf, sub, regs[0], regs[1], regs[2], regs[3]);
#endif
}

unsigned long long xcr0() {
#if defined(_MSC_VER)
  return _xgetbv(0);
#else
  unsigned eax, edx;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (static_cast<unsigned long long>(edx) << 32) | eax;
#endif
}
#endif

Features detect() {
  Features f;
#ifdef BNNZOO_X86
  unsigned r[4];
  cpuid(0, 0, r);
  if (r[0] < 7) return f;
  cpuid(1, 0, r);
  const bool fma = (r[2] >> 12) & 1, popcnt = (r[2] >> 23) & 1, osxsave = (r[2] >> 27) & 1, avx = (r[2] >> 28) & 1;
  if (!osxsave || !avx) return f;
  const unsigned long long xcr = xcr0();
  const bool ymm_state = (xcr & 0x6) == 0x6;     // SSE and AVX state saved by the OS
  const bool zmm_state = (xcr & 0xE6) == 0xE6;   // plus opmask and the upper ZMM registers
  cpuid(7, 0, r);
  const unsigned ebx = r[1], ecx = r[2];
  f.avx2 = ymm_state && popcnt && fma && ((ebx >> 5) & 1);
  const bool avx512 = ((ebx >> 16) & 1) && ((ebx >> 17) & 1) && ((ebx >> 30) & 1) && ((ebx >> 31) & 1);
  f.avx512 = f.avx2 && zmm_state && avx512 && ((ecx >> 14) & 1);
#endif
  return f;
}

const Features& features() {
  static const Features f = detect();
  return f;
}

const KernelTable* table_for(const char* name) {
  if (!std::strcmp(name, "scalar")) return table_scalar();
#ifndef BNNZOO_NO_AVX2
  if (!std::strcmp(name, "avx2")) return table_avx2();
#endif
#ifndef BNNZOO_NO_AVX512
  if (!std::strcmp(name, "avx512")) return table_avx512();
#endif
  return nullptr;
}

}  // namespace

bool isa_built(const char* name) { return table_for(name) != nullptr; }

bool isa_supported_by_cpu(const char* name) {
  if (!std::strcmp(name, "scalar")) return true;
  if (!std::strcmp(name, "avx2")) return features().avx2;
  if (!std::strcmp(name, "avx512")) return features().avx512;
  return false;
}

const char* best_isa() {
  static const char* const preferred[] = {"avx512", "avx2"};
  for (const char* name : preferred)
    if (isa_built(name) && isa_supported_by_cpu(name)) return name;
  return "scalar";
}

const KernelTable* select_isa(const char* request, const char** error) {
  if (!request || !*request) request = std::getenv("BNNZOO_RUNTIME_ISA");
  if (!request || !*request || !std::strcmp(request, "auto")) return table_for(best_isa());
  if (std::strcmp(request, "avx512") && std::strcmp(request, "avx2") && std::strcmp(request, "scalar")) {
    *error = "unknown ISA (expected auto, avx512, avx2 or scalar)";
    return nullptr;
  }
  if (!isa_built(request)) {
    *error = "not compiled into this build (the compiler lacked its flags at install time)";
    return nullptr;
  }
  if (!isa_supported_by_cpu(request)) {
    *error = !std::strcmp(request, "avx512") ? "this CPU (or OS) lacks AVX-512 F/BW/VL/DQ with VPOPCNTDQ"
                                              : "this CPU (or OS) lacks AVX2 with FMA and POPCNT";
    return nullptr;
  }
  return table_for(request);
}

}  // namespace bnnzoo_rt
