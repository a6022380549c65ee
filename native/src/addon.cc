// Entry point of trellis_tun.node: TunDevice, UdpBatchSocket, descriptor passing (fd_pass.cc), the Internet checksum
// (checksum.cc), sendfile/splice for Taildrop (fd_sendfile.cc, fd_splice.cc) and the batch-layout constants.
#include "common.h"

using namespace trellis;

static Napi::Object InitAddon(Napi::Env env, Napi::Object exports) {
  InitTunDevice(env, exports);
  InitUdpBatchSocket(env, exports);
  InitFdPass(env, exports);
  InitSockMark(env, exports);
  InitChecksum(env, exports);
  InitFdSendfile(env, exports);
  InitFdSplice(env, exports);
  exports.Set("BYPASS_MARK", Napi::Number::New(env, static_cast<double>(kBypassMark)));
  exports.Set("TUN_BATCH_BYTES", Napi::Number::New(env, static_cast<double>(kTunBatchBytes)));
  exports.Set("TUN_MAX_BATCH", Napi::Number::New(env, static_cast<double>(kTunMaxBatch)));
  exports.Set("UDP_SLOT_BYTES", Napi::Number::New(env, static_cast<double>(kUdpSlotBytes)));
  exports.Set("UDP_MAX_BATCH", Napi::Number::New(env, static_cast<double>(kUdpMaxBatch)));
  exports.Set("UDP_TRUNCATED", Napi::Number::New(env, static_cast<double>(kUdpTruncated)));
  return exports;
}

NODE_API_MODULE(trellis_tun, InitAddon)
