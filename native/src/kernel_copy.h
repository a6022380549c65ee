// What fd_sendfile.cc and fd_splice.cc share: a monotonic clock for their bounded waits and the check of their
// numeric arguments (descriptors, offsets, counts, milliseconds).
#pragma once

#include <time.h>

#include <cstdint>

#include "common.h"

namespace trellis {

inline int64_t MonotonicMs() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

// A non-negative integer argument no larger than max (what the syscall's type takes).
inline bool WholeNumberArg(const Napi::CallbackInfo& info, size_t i, double max, double* out) {
  if (info.Length() <= i || !info[i].IsNumber()) return false;
  double d = info[i].As<Napi::Number>().DoubleValue();
  if (!(d >= 0 && d <= max) || static_cast<double>(static_cast<int64_t>(d)) != d) return false;
  *out = d;
  return true;
}

}  // namespace trellis
