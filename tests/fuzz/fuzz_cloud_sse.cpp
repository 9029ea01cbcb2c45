// Fuzzes the cloud executor's reading of an upstream answer (src/executors/cloud/sse_decoder.h):
// the bytes an OpenAI-compatible endpoint (or whoever answers at its address) streams back are
// untrusted. The input is split (FuzzedDataProvider) into chunks of arbitrary sizes.
//
// Invariants: no crash, no exception; the events do not depend on how the bytes were cut (fed
// whole, fed in the fuzzed chunks, fed one byte at a time: the same events); an event's content
// is well-formed UTF-8 (it came out of a JSON parser) and the decoder never buffers more than
// kMaxEventBytes; the whole input as one non-streamed JSON answer decodes without throwing.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "core/utf8.h"
#include "executors/cloud/sse_decoder.h"

namespace {

using mmserve::executors::SseDecoder;
using mmserve::executors::UpstreamEvent;

bool same(const std::vector<UpstreamEvent>& a, const std::vector<UpstreamEvent>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    const auto& x = a[i];
    const auto& y = b[i];
    if (x.kind != y.kind || x.content != y.content || x.finish_reason != y.finish_reason ||
        x.error != y.error || x.usage.has_value() != y.usage.has_value()) {
      return false;
    }
  }
  return true;
}

std::vector<UpstreamEvent> decode(const std::vector<std::string>& chunks) {
  SseDecoder decoder;
  std::vector<UpstreamEvent> events;
  for (const auto& chunk : chunks) {
    decoder.feed(chunk, events);
    if (decoder.buffered() > mmserve::executors::kMaxEventBytes + 2) std::abort();
  }
  decoder.finish(events);
  return events;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider provider(data, size);
  std::vector<std::string> chunks;
  std::string whole;
  while (provider.remaining_bytes() > 0) {
    const size_t length = provider.ConsumeIntegralInRange<size_t>(0, 64);
    chunks.push_back(provider.ConsumeBytesAsString(length));
    whole += chunks.back();
  }
  const auto by_chunks = decode(chunks);
  if (!same(by_chunks, decode({whole}))) std::abort();
  std::vector<std::string> bytes;
  for (const char c : whole) bytes.emplace_back(1, c);
  if (!same(by_chunks, decode(bytes))) std::abort();
  for (const auto& event : by_chunks) {
    if (!mmserve::is_valid_utf8(event.content)) std::abort();
  }
  (void)mmserve::executors::decode_json_answer(whole);
  return 0;
}
