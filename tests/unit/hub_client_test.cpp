// hub/hub_client.h against two real httplib servers on loopback, as huggingface.co is: a Hub
// (listing, resolve URLs answering 302) and a CDN on another origin serving byte ranges. What
// the `plan` reader of remote GGUF headers relies on: resolve() and read_range(), and that
// the token reaches the Hub only.
#include "hub/hub_client.h"

#include <gtest/gtest.h>
#include <httplib.h>

#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "core/error.h"
#include "hub/http_fetch.h"
#include "hub/progress.h"

namespace {

using mmserve::Error;
using mmserve::ErrorCode;
namespace hub = mmserve::hub;

std::string bytes_of(size_t n) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 131 + 7) % 251);
  return s;
}

class HubClient : public ::testing::Test {
 protected:
  void SetUp() override {
    model_ = bytes_of(100'000);
    cdn_.Get("/lfs/(.*)", [this](const httplib::Request& req, httplib::Response& res) {
      {
        std::lock_guard lock(mutex_);
        cdn_auth_.push_back(req.get_header_value("Authorization"));
        cdn_ranges_.push_back(req.get_header_value("Range"));
      }
      res.set_content(model_, "application/octet-stream");  // httplib applies the Range
    });
    hub_.Get("/api/models/o/r/tree/main",
             [this](const httplib::Request& req, httplib::Response& res) {
               record(req);
               nlohmann::json j = nlohmann::json::array();
               j.push_back({{"type", "file"}, {"path", "README.md"}, {"size", 5}});
               j.push_back({{"type", "directory"}, {"path", "sub"}});
               j.push_back({{"type", "file"},
                            {"path", "M-Q4_K_M.gguf"},
                            {"size", 134},
                            {"lfs", {{"oid", std::string(64, 'a')}, {"size", model_.size()}}}});
               j.push_back({{"type", "file"},
                            {"path", "mmproj-M-F16.gguf"},
                            {"size", 134},
                            {"lfs", {{"oid", std::string(64, 'b')}, {"size", 7}}}});
               res.set_content(j.dump(), "application/json");
             });
    hub_.Get("/api/models/o/private/tree/main",
             [this](const httplib::Request& req, httplib::Response& res) {
               record(req);
               res.status = req.get_header_value("Authorization") == "Bearer tok" ? 200 : 401;
               res.set_content("[]", "application/json");
             });
    hub_.Get("/o/r/resolve/main/(.*)", [this](const httplib::Request& req, httplib::Response& res) {
      record(req);
      res.status = 302;
      res.set_header("Location", cdn_url_ + "/lfs/" + req.matches[1].str());
    });
    // Both bound and both URLs set before any server thread starts (no race on cdn_url_).
    const int hub_port = hub_.bind_to_any_port("127.0.0.1");
    const int cdn_port = cdn_.bind_to_any_port("127.0.0.1");
    settings_.endpoint = "http://127.0.0.1:" + std::to_string(hub_port);
    cdn_url_ = "http://localhost:" + std::to_string(cdn_port);  // another origin
    threads_.emplace_back([this] { hub_.listen_after_bind(); });
    threads_.emplace_back([this] { cdn_.listen_after_bind(); });
    hub_.wait_until_ready();
    cdn_.wait_until_ready();
  }
  void TearDown() override {
    hub_.stop();
    cdn_.stop();
    for (auto& t : threads_) t.join();
  }
  void record(const httplib::Request& req) {
    std::lock_guard lock(mutex_);
    hub_auth_.push_back(req.get_header_value("Authorization"));
  }

  httplib::Server hub_, cdn_;
  std::vector<std::thread> threads_;
  std::mutex mutex_;
  std::vector<std::string> hub_auth_, cdn_auth_, cdn_ranges_;
  std::string model_, cdn_url_;
  hub::HubSettings settings_;
};

TEST_F(HubClient, ResolveGivesTheModelThenItsProjectorWithLfsFacts) {
  const auto files = hub::resolve("hf:o/r", settings_);
  ASSERT_EQ(files.size(), 2u);
  EXPECT_EQ(files[0].name, "M-Q4_K_M.gguf");
  EXPECT_EQ(files[0].url, settings_.endpoint + "/o/r/resolve/main/M-Q4_K_M.gguf");
  EXPECT_EQ(files[0].size, model_.size());
  EXPECT_EQ(files[0].sha256, std::string(64, 'a'));
  EXPECT_EQ(files[1].name, "mmproj-M-F16.gguf");
  EXPECT_EQ(files[1].size, 7u);
}

TEST_F(HubClient, ReadRangeFollowsTheRedirectAndKeepsTheTokenOnTheHub) {
  settings_.token = "tok";
  const auto file = hub::resolve("o/r:Q4_K_M", settings_).front();
  EXPECT_EQ(hub::read_range(file, 0, 4, settings_), model_.substr(0, 4));
  EXPECT_EQ(hub::read_range(file, 12'345, 1000, settings_), model_.substr(12'345, 1000));
  EXPECT_EQ(hub::read_range(file, model_.size() - 10, 100, settings_),
            model_.substr(model_.size() - 10));
  EXPECT_EQ(hub::read_range(file, 5, 0, settings_), "");
  std::lock_guard lock(mutex_);
  ASSERT_EQ(cdn_ranges_.size(), 3u);
  EXPECT_EQ(cdn_ranges_[1], "bytes=12345-13344");
  ASSERT_FALSE(hub_auth_.empty());
  for (const auto& a : hub_auth_) EXPECT_EQ(a, "Bearer tok");
  for (const auto& a : cdn_auth_) EXPECT_EQ(a, "") << "the token went to the CDN";
}

TEST_F(HubClient, ErrorsSayWhatToDo) {
  try {
    hub::resolve("o/private", settings_);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kUnauthorized);
    EXPECT_NE(std::string(e.what()).find("HF_TOKEN"), std::string::npos);
  }
  settings_.token = "tok";
  EXPECT_THROW(hub::resolve("o/private", settings_), Error);  // no GGUF in it: kNotFound
  try {
    hub::resolve("o/absent", settings_);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kNotFound);
    EXPECT_NE(std::string(e.what()).find("not found on the Hub"), std::string::npos);
  }
  hub::RemoteFile missing{"x.gguf", settings_.endpoint + "/o/r/nothing/x.gguf", 0, ""};
  EXPECT_THROW(hub::read_range(missing, 0, 10, settings_), Error);
  hub::RemoteFile refused{"x.gguf", "http://127.0.0.1:1/x.gguf", 0, ""};
  try {
    hub::read_range(refused, 0, 10, settings_);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kUnavailable);
  }
}

TEST(HubFetch, OriginsAndEscapes) {
  EXPECT_EQ(hub::origin_of("https://HuggingFace.co/x"), "https://huggingface.co:443");
  EXPECT_EQ(hub::origin_of("http://127.0.0.1:8080/a?b"), "http://127.0.0.1:8080");
  EXPECT_NE(hub::origin_of("http://localhost:8080/"), hub::origin_of("http://127.0.0.1:8080/"));
  EXPECT_EQ(hub::origin_of("not a url"), "");
  EXPECT_EQ(hub::escape_path("sub dir/a+b.gguf"), "sub%20dir/a%2Bb.gguf");
}

TEST(HubProgress, PlainLinesEveryTenPercent) {
  std::FILE* out = std::tmpfile();  // not a terminal
  ASSERT_NE(out, nullptr);
  {
    hub::Progress progress("m.gguf", 1000, 0, out);
    for (uint64_t done = 0; done <= 1000; done += 10) progress.update(done);
    progress.finish(1000);
  }
  std::rewind(out);
  std::string text(4096, '\0');
  text.resize(std::fread(text.data(), 1, text.size(), out));
  std::fclose(out);
  EXPECT_EQ(text.find('\r'), std::string::npos);
  int lines = 0;
  for (char c : text) lines += c == '\n';
  EXPECT_EQ(lines, 10) << text;  // 10% ... 90%, then the last line
  EXPECT_NE(text.find("m.gguf  10% 100 B / 1000 B"), std::string::npos) << text;
  EXPECT_NE(text.find("m.gguf 100% 1000 B / 1000 B"), std::string::npos) << text;
}

TEST(HubSettings, FromTheEnvironment) {
  ::setenv("HF_ENDPOINT", "https://hf-mirror.com/", 1);
  ::setenv("HF_TOKEN", "hf_x", 1);
  const auto s = hub::HubSettings::from_environment();
  EXPECT_EQ(s.endpoint, "https://hf-mirror.com");
  EXPECT_EQ(s.token, "hf_x");
  ::unsetenv("HF_ENDPOINT");
  ::unsetenv("HF_TOKEN");
  EXPECT_EQ(hub::HubSettings::from_environment().endpoint, "https://huggingface.co");
}

}  // namespace
