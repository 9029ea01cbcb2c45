// Fuzzes the multipart/form-data parsing the server relies on (req.form, cpp-httplib 0.57.1, the
// pinned copy compiled into this harness): each input is the body of a POST with
// `Content-Type: multipart/form-data; boundary=<kBoundary>`. No socket: a subclass reaches
// httplib::Server::process_request (protected), the server's own per-request path (request line,
// headers, body reader, multipart parser, form assembly, routing), over an in-memory Stream, and
// a POST handler walks req.form's fields and files.
//
// Invariants: the parsed form (or the refusal status) is the same whether the body arrives in one
// read or in reads of 1-17 bytes (the parser is incremental: a boundary split across reads must
// not change anything); every part's content is bytes of the body; there are at most
// CPPHTTPLIB_MULTIPART_FORM_DATA_FILE_MAX_COUNT parts; fields have no file name and files have
// one; the accessors (has_/get_/get_*s/get_*_count) agree with walking the containers in order.
// Plus ASan and UBSan over httplib and the harness.
#include <httplib.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_support.h"

static_assert(std::string_view(CPPHTTPLIB_VERSION) == "0.57.1",
              "fuzz_multipart must build against the pinned cpp-httplib (deps.sh's llama.cpp "
              "vendor/cpp-httplib), not /usr/include/httplib.h");

namespace {

constexpr std::string_view kBoundary = "----mmserve-fuzz-boundary";

// Hands out the request in reads of at most `step` bytes (0: as much as asked); answers go
// nowhere but the status line is kept.
class MemoryStream : public httplib::Stream {
 public:
  MemoryStream(std::string_view data, uint32_t seed) : data_(data), state_(seed) {}

  bool is_readable() const override { return pos_ < data_.size(); }
  bool wait_readable() const override { return true; }
  bool wait_writable() const override { return true; }
  ssize_t read(char* ptr, size_t size) override {
    size_t n = std::min(size, data_.size() - pos_);
    if (state_ != 0) {
      state_ = state_ * 1103515245u + 12345u;  // reads of 1..17 bytes, fixed by the input
      n = std::min<size_t>(n, 1 + (state_ >> 16) % 17);
    }
    std::memcpy(ptr, data_.data() + pos_, n);
    pos_ += n;
    return static_cast<ssize_t>(n);
  }
  ssize_t write(const char* ptr, size_t size) override {
    if (response_.size() < 64) response_.append(ptr, std::min<size_t>(size, 64));
    return static_cast<ssize_t>(size);
  }
  void get_remote_ip_and_port(std::string& ip, int& port) const override {
    ip = "127.0.0.1";
    port = 40000;
  }
  void get_local_ip_and_port(std::string& ip, int& port) const override {
    ip = "127.0.0.1";
    port = 8080;
  }
  socket_t socket() const override { return INVALID_SOCKET; }
  time_t duration() const override { return 0; }

  std::string status_line() const { return response_.substr(0, response_.find('\r')); }

 private:
  std::string_view data_;
  size_t pos_ = 0;
  uint32_t state_;
  std::string response_;
};

class FuzzServer : public httplib::Server {
 public:
  using httplib::Server::process_request;
};

std::string_view g_body;
std::string g_form;  // what the handler saw, serialized

void append(std::string& out, std::string_view s) {
  out += std::to_string(s.size());
  out += ':';
  out += s;
}

template <typename Map, typename Get, typename GetAll, typename Has, typename Count>
void walk(const Map& map, std::string& out, Get get, GetAll get_all, Has has, Count count) {
  for (const auto& [key, part] : map) {
    FUZZ_CHECK(part.name == key);
    FUZZ_CHECK(g_body.find(part.content) != std::string_view::npos);
    FUZZ_CHECK(has(key));
    std::vector<std::string> contents;
    for (const auto& [other, p] : map) {
      if (other == key) contents.push_back(p.content);
    }
    FUZZ_CHECK(count(key) == contents.size());
    const auto all = get_all(key);
    FUZZ_CHECK(all.size() == contents.size());
    for (size_t i = 0; i < contents.size(); ++i) {
      FUZZ_CHECK(all[i] == contents[i]);
      FUZZ_CHECK(get(key, i) == contents[i]);
    }
    FUZZ_CHECK(get(key, contents.size()).empty());  // out of range: empty, not a crash
    append(out, key);
    append(out, part.content);
    for (const auto& [name, value] : part.headers) {
      append(out, name);
      append(out, value);
    }
  }
}

void handle(const httplib::Request& req, httplib::Response& res) {
  const auto& form = req.form;
  FUZZ_CHECK(form.fields.size() + form.files.size() <=
             CPPHTTPLIB_MULTIPART_FORM_DATA_FILE_MAX_COUNT);
  std::string out = "fields;";
  walk(
      form.fields, out, [&](const std::string& k, size_t i) { return form.get_field(k, i); },
      [&](const std::string& k) { return form.get_fields(k); },
      [&](const std::string& k) { return form.has_field(k); },
      [&](const std::string& k) { return form.get_field_count(k); });
  out += "files;";
  walk(
      form.files, out, [&](const std::string& k, size_t i) { return form.get_file(k, i).content; },
      [&](const std::string& k) {
        std::vector<std::string> contents;
        for (const auto& f : form.get_files(k)) contents.push_back(f.content);
        return contents;
      },
      [&](const std::string& k) { return form.has_file(k); },
      [&](const std::string& k) { return form.get_file_count(k); });
  for (const auto& [key, file] : form.files) {
    FUZZ_CHECK(!file.filename.empty());
    append(out, file.filename);
    append(out, file.content_type);
  }
  g_form = std::move(out);
  res.set_content("ok", "text/plain");
}

FuzzServer& server() {
  static FuzzServer* s = [] {
    auto* srv = new FuzzServer();
    srv->Post("/upload", handle);
    return srv;
  }();
  return *s;
}

// One request through the server; returns the status line and what the handler saw.
std::string serve(const std::string& request, uint32_t seed) {
  MemoryStream stream(request, seed);
  g_form = "(handler not called)";
  bool closed = false;
  server().process_request(stream, "127.0.0.1", 40000, "127.0.0.1", 8080, true, closed, nullptr);
  return stream.status_line() + "\n" + g_form;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  g_body = body;
  std::string request = "POST /upload HTTP/1.1\r\nHost: 127.0.0.1\r\n";
  request += "Content-Type: multipart/form-data; boundary=";
  request += kBoundary;
  request += "\r\nContent-Length: " + std::to_string(size) + "\r\n\r\n";
  request += body;

  uint32_t seed = 2166136261u;  // FNV-1a of the body: the read sizes of the second pass
  for (const char c : body) seed = (seed ^ static_cast<unsigned char>(c)) * 16777619u;
  const std::string whole = serve(request, 0);
  const std::string pieces = serve(request, seed | 1);
  if (whole != pieces) {
    std::fprintf(stderr, "one read:\n%s\nsmall reads:\n%s\n", whole.c_str(), pieces.c_str());
  }
  FUZZ_CHECK(whole == pieces);
  return 0;
}
