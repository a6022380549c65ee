// The Internet checksum's word sum (RFC 1071) over a byte range, for the userspace TCP/IP stack: every segment
// sent or received is summed once, and in JavaScript that loop was a visible share of a bulk transfer's CPU.
// sum16(bytes: Uint8Array, from: number, to: number): number — the big-endian 16-bit words of bytes[from, to)
// (an odd last byte is the high half of a word), folded with end-around carry to 16 bits (0 only for a zero sum).
// Called through the raw N-API (no wrapper objects): it runs once per packet.
#include "common.h"

#include <cstring>

namespace trellis {
namespace {

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
constexpr bool kLittleEndian = false;
#else
constexpr bool kLittleEndian = true;
#endif

// Sum of the 16-bit words of p[0, n) in host order, folded to 16 bits. Modulo 0xffff a 32-bit word is the sum of
// its two halves, so 8-byte loads split into two 32-bit halves are added into 64-bit accumulators (no carry is
// lost below 2^32 steps); a little-endian host's sum is the network-order one byte-swapped (RFC 1071 §2(B)).
uint32_t HostOrderSum(const uint8_t* p, size_t n) {
  uint64_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
  size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    uint64_t w0, w1, w2, w3;
    std::memcpy(&w0, p + i, 8);
    std::memcpy(&w1, p + i + 8, 8);
    std::memcpy(&w2, p + i + 16, 8);
    std::memcpy(&w3, p + i + 24, 8);
    a0 += (w0 & 0xffffffffu) + (w0 >> 32);
    a1 += (w1 & 0xffffffffu) + (w1 >> 32);
    a2 += (w2 & 0xffffffffu) + (w2 >> 32);
    a3 += (w3 & 0xffffffffu) + (w3 >> 32);
  }
  for (; i + 4 <= n; i += 4) {
    uint32_t w;
    std::memcpy(&w, p + i, 4);
    a0 += w;
  }
  for (; i + 2 <= n; i += 2) {
    uint16_t w;
    std::memcpy(&w, p + i, 2);
    a1 += w;
  }
  // An odd last byte is the high half of a big-endian word: the low half of a host-order one on little-endian.
  if (i < n) a2 += kLittleEndian ? p[i] : static_cast<uint32_t>(p[i]) << 8;
  uint64_t s = (a0 & 0xffffffffu) + (a0 >> 32) + (a1 & 0xffffffffu) + (a1 >> 32);
  s += (a2 & 0xffffffffu) + (a2 >> 32) + (a3 & 0xffffffffu) + (a3 >> 32);
  while (s >> 16) s = (s & 0xffff) + (s >> 16);
  return static_cast<uint32_t>(s);
}

napi_value Sum16(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  if (napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr) != napi_ok) return nullptr;
  napi_typedarray_type type;
  size_t count = 0;
  void* data = nullptr;
  uint32_t from = 0;
  uint32_t to = 0;
  if (argc < 3 || napi_get_typedarray_info(env, argv[0], &type, &count, &data, nullptr, nullptr) != napi_ok ||
      type != napi_uint8_array || napi_get_value_uint32(env, argv[1], &from) != napi_ok ||
      napi_get_value_uint32(env, argv[2], &to) != napi_ok || from > to || to > count) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "sum16(bytes: Uint8Array, from, to) with from <= to <= length");
    return nullptr;
  }
  uint32_t s = to > from ? HostOrderSum(static_cast<const uint8_t*>(data) + from, to - from) : 0;
  if (kLittleEndian) s = ((s & 0xff) << 8) | (s >> 8);
  napi_value out;
  napi_create_uint32(env, s, &out);
  return out;
}

}  // namespace

void InitChecksum(Napi::Env env, Napi::Object exports) {
  napi_value fn;
  if (napi_create_function(env, "sum16", NAPI_AUTO_LENGTH, Sum16, nullptr, &fn) == napi_ok) {
    exports.Set("sum16", Napi::Value(env, fn));
  }
}

}  // namespace trellis
