// Test-only entry points of the offload code (tun_offload.cc): splitForTest runs one frame through the splitter
// as a pure function, batchesForTest runs scripted frames through the device's batch reader. The unit tests and
// the tso-split fuzz target use them, so they exercise the very code of the read loop. They allocate freely.
#include <algorithm>
#include <cstring>
#include <utility>
#include <vector>

#include "tun_offload.h"

namespace trellis {
namespace {

// splitForTest(frame: Uint8Array) -> { packets: Buffer[], superPackets, segments, dropped }: one frame (virtio_net_hdr
// + packet) through a fresh splitter, the way the read loop handles a super-packet it has to copy aside.
Napi::Value SplitForTest(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const uint8_t* data = nullptr;
  size_t len = 0;
  if (info.Length() < 1 || !GetBytes(env, info[0], &data, &len)) {
    ArgError(env, "splitForTest(frame): frame must be a Uint8Array").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  // Exactly the frame's bytes, so a bounds slip shows under a sanitizer instead of reading the caller's memory.
  uint8_t hdr[kVnetHdrLen] = {};
  std::memcpy(hdr, data, std::min(len, kVnetHdrLen));
  std::vector<uint8_t> pkt(data + std::min(len, kVnetHdrLen), data + len);
  const size_t pkt_len = len > kVnetHdrLen ? len - kVnetHdrLen : 0;
  TsoSplitter s;
  Napi::Array out = Napi::Array::New(env);
  switch (s.Classify(hdr, pkt.data(), pkt_len)) {
    case TsoSplitter::Frame::kPacket:
      out.Set(0u, Napi::Buffer<uint8_t>::Copy(env, pkt.data(), pkt_len));
      break;
    case TsoSplitter::Frame::kSuper: {
      // Both ways the read loop cuts: where the frame lies (on a copy with room for the segments) and from a copy
      // into segment-sized room; they must agree byte for byte.
      std::vector<uint8_t> room(s.split_bytes());
      std::vector<uint32_t> lens(s.segment_count());
      std::memcpy(room.data(), pkt.data(), pkt_len);
      TsoSplitter in_place = s;  // a copy of the accepted layout, so the counters count one split
      const size_t n = in_place.SplitInPlace(room.data(), room.size(), lens.data(), lens.size());
      std::vector<uint8_t> seg(std::max(kTunMaxPacket, pkt_len));  // a test frame may be longer than a read
      s.Start(pkt.data());
      size_t off = 0;
      for (uint32_t i = 0; s.busy(); i++) {
        size_t len_i = s.Next(seg.data(), seg.size());
        bool same = len_i > 0 && i < n && len_i == lens[i] && std::memcmp(seg.data(), room.data() + off, len_i) == 0;
        if (!same || (!s.busy() && i + 1 != n)) {
          Napi::Error::New(env, "splitForTest: the in-place split differs from the copied one")
              .ThrowAsJavaScriptException();
          return env.Undefined();
        }
        out.Set(i, Napi::Buffer<uint8_t>::Copy(env, seg.data(), len_i));
        off += len_i;
      }
      break;
    }
    case TsoSplitter::Frame::kDrop:
      break;
  }
  Napi::Object result = Napi::Object::New(env);
  result.Set("packets", out);
  result.Set("superPackets", Napi::Number::New(env, static_cast<double>(s.stats.super_packets)));
  result.Set("segments", Napi::Number::New(env, static_cast<double>(s.stats.segments)));
  result.Set("dropped", Napi::Number::New(env, static_cast<double>(s.stats.dropped)));
  return result;
}

// A TUN that hands over given frames, for batchesForTest.
class ScriptedTun final : public TunBackend {
 public:
  explicit ScriptedTun(std::vector<std::vector<uint8_t>> frames) : frames_(std::move(frames)) { vnet_hdr_ = true; }
  int Read(uint8_t*, size_t) override { return UV_ENOSYS; }
  int ReadVnet(uint8_t* hdr, uint8_t* dst, size_t cap) override {
    if (next_ == frames_.size()) return 0;
    const std::vector<uint8_t>& f = frames_[next_++];
    size_t n = std::min(f.size(), kVnetHdrLen + cap);  // a read truncates what does not fit, as the kernel's does
    std::memcpy(hdr, f.data(), std::min(n, kVnetHdrLen));
    if (n > kVnetHdrLen) std::memcpy(dst, f.data() + kVnetHdrLen, n - kVnetHdrLen);
    return static_cast<int>(n);
  }
  int Write(const uint8_t*, size_t) override { return UV_ENOSYS; }
  int StartWatch(uv_loop_t*, ReadyFn, void*) override { return UV_ENOSYS; }
  void StopWatch() override {}
  void Close() override {}

 private:
  std::vector<std::vector<uint8_t>> frames_;
  size_t next_ = 0;
};

// batchesForTest(frames: Uint8Array[]) -> Buffer[][]: the frames read in turn by the device's batch reader, and the
// batches it handed over (each a list of packets), until the frames run out. For tests only.
Napi::Value BatchesForTest(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsArray()) {
    ArgError(env, "batchesForTest(frames): frames must be an array").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Napi::Array in = info[0].As<Napi::Array>();
  std::vector<std::vector<uint8_t>> frames;
  for (uint32_t i = 0; i < in.Length(); i++) {
    const uint8_t* data = nullptr;
    size_t len = 0;
    if (!GetBytes(env, in.Get(i), &data, &len)) {
      ArgError(env, "batchesForTest: frames must be Uint8Arrays").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    frames.emplace_back(data, data + len);
  }
  ScriptedTun tun(std::move(frames));
  TunBatchReader reader;
  std::vector<uint8_t> base(kTunBatchBytes);
  std::vector<uint32_t> lens(kTunMaxBatch);
  Napi::Array out = Napi::Array::New(env);
  for (uint32_t b = 0;;) {
    TunBatchReader::Result r = reader.Fill(tun, base.data(), lens.data());
    if (r.count > 0) {
      Napi::Array batch = Napi::Array::New(env, r.count);
      size_t off = 0;
      for (uint32_t i = 0; i < r.count; i++) {
        batch.Set(i, Napi::Buffer<uint8_t>::Copy(env, base.data() + off, lens[i]));
        off += lens[i];
      }
      out.Set(b++, batch);
    }
    if (r.empty || r.err != 0 || r.count == 0) break;
  }
  return out;
}

}  // namespace

void InitTunOffload(Napi::Env env, Napi::Object exports) {
  exports.Set("splitForTest", Napi::Function::New(env, SplitForTest, "splitForTest"));
  exports.Set("batchesForTest", Napi::Function::New(env, BatchesForTest, "batchesForTest"));
}

}  // namespace trellis
