// POST /v1/embeddings and the "embed" task of POST /v1/inference (see embedding_routes.h).
#include "http/embedding_routes.h"

#include <bit>
#include <cstring>

#include "core/error.h"
#include "engine/embedding_model.h"
#include "http/embedding_request.h"
#include "http/json_output.h"
#include "http/request_log.h"

namespace mmserve::http {
namespace {

// OpenAI's base64 encoding of a vector: its float32 values, little-endian, in standard base64.
std::string base64_floats(const std::vector<float>& v) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string bytes(v.size() * 4, '\0');
  for (size_t i = 0; i < v.size(); ++i) {
    uint32_t u = 0;
    std::memcpy(&u, &v[i], 4);
    if constexpr (std::endian::native == std::endian::big) u = __builtin_bswap32(u);
    for (int b = 0; b < 4; ++b) bytes[4 * i + b] = static_cast<char>((u >> (8 * b)) & 0xff);
  }
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  for (size_t i = 0; i < bytes.size(); i += 3) {
    const size_t n = std::min<size_t>(3, bytes.size() - i);
    uint32_t chunk = 0;
    for (size_t k = 0; k < n; ++k)
      chunk |= static_cast<uint32_t>(static_cast<uint8_t>(bytes[i + k])) << (16 - 8 * k);
    for (size_t k = 0; k < 4; ++k) {
      out.push_back(k <= n ? kAlphabet[(chunk >> (18 - 6 * k)) & 0x3f] : '=');
    }
  }
  return out;
}

// Runs the call and waits for its vectors (a client that leaves cancels what has not run).
scheduler::EmbeddingOutcome embed(const Services& services, Exchange& ex, int32_t& dimensions) {
  const pipeline::Submission s = submit_call(services, ex);
  note_submission(ex, s, "", false);
  dimensions = s.dimensions;
  pipeline::wait_unless_cancelled(*s.embedding, *ex.call.cancellation);
  scheduler::EmbeddingOutcome outcome = s.embedding->wait();
  if (outcome.error) throw *outcome.error;
  if (dimensions > 0) {
    for (auto& v : outcome.vectors) v = engine::shorten_embedding(v, dimensions, "dimensions");
  }
  return outcome;
}

Json vector_json(const std::vector<float>& v, bool base64) {
  if (base64) return base64_floats(v);
  Json arr = Json::array();
  for (const float x : v) arr.push_back(static_cast<double>(x));
  return arr;
}

// The typed call of an embedding request.
void fill_call(pipeline::Call& call, EmbeddingRequest& r) {
  call.task = runtime::Task::kEmbed;
  call.model = r.model;
  call.stream = false;
  call.data_class = pipeline::stricter_data_class(call.data_class, r.data_class);
  call.embed = std::move(r.input);
}

void openai_embeddings(const Services& services, const ApiRequest& req, ApiResponse& res,
                       Exchange& ex) {
  note_task(ex, "embed");
  EmbeddingRequest r = parse_embeddings_request(parse_json_object(std::string(req.body)));
  const bool base64 = r.base64;
  fill_call(ex.call, r);
  int32_t dimensions = 0;
  const auto o = embed(services, ex, dimensions);
  Json data = Json::array();
  for (size_t i = 0; i < o.vectors.size(); ++i) {
    data.push_back(
        {{"object", "embedding"}, {"index", i}, {"embedding", vector_json(o.vectors[i], base64)}});
  }
  write_json(res,
             {{"object", "list"},
              {"data", std::move(data)},
              {"model", ex.record.model},
              {"usage", {{"prompt_tokens", o.prompt_tokens}, {"total_tokens", o.prompt_tokens}}}});
}

}  // namespace

void answer_embed_inference(const Services& services, Exchange& ex, ApiResponse& res,
                            const Json& body) {
  EmbeddingRequest r = parse_embed_inference_request(body);
  const bool base64 = r.base64;
  fill_call(ex.call, r);
  int32_t dimensions = 0;
  const auto o = embed(services, ex, dimensions);
  Json output = Json::array();
  for (const auto& v : o.vectors) output.push_back(vector_json(v, base64));
  const size_t length = o.vectors.empty() ? 0 : o.vectors.front().size();
  write_json(res, {{"id", new_request_id("inf-")},
                   {"task", "embed"},
                   {"model", ex.record.model},
                   {"route", ex.call.executor},
                   {"output", std::move(output)},
                   {"dimensions", length},
                   {"usage", {{"prompt_tokens", o.prompt_tokens}}},
                   {"timings", {{"queue_ms", o.queue_ms}, {"embed_ms", o.embed_ms}}}});
}

std::vector<Route> embedding_routes(const Services& services) {
  return {{"POST", "/v1/embeddings",
           [&services](const ApiRequest& req, ApiResponse& res, Exchange& ex) {
             openai_embeddings(services, req, res, ex);
           }}};
}

}  // namespace mmserve::http
