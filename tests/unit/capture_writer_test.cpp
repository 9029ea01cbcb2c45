// The capture writer: records redacted before they reach the store, the bounded queue drops
// and counts (the writer held in its scan), a failing store counts "error" and never throws to
// the caller, pending_owner() sees a record until it is written, and the stage's policy (off,
// opt-in by key, model or store, all, store: false).
#include "stages/capture/capture_writer.h"

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <filesystem>
#include <future>
#include <string>

#include "core/error.h"
#include "stages/capture/capture_stage.h"
#include "store/capture_store.h"
#include "test_support.h"

namespace fs = std::filesystem;
using mmserve::stages::CaptureMode;
using mmserve::stages::CaptureWriter;
using mmserve::stages::PendingCapture;
using mmserve::store::CaptureStore;

namespace {

class CaptureWriterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(scratch_.ok());
    dir_ = scratch_.path();
    path_ = (dir_ / "capture.db").string();
  }

  mmserve::testing::ScratchDir scratch_{"mmserve-capw"};
  fs::path dir_;
  std::string path_;
};

PendingCapture pending(std::string id, std::string text = "hello") {
  PendingCapture p;
  p.record.response_id = std::move(id);
  p.record.key_id = "k1";
  p.record.time_ms = 1;
  p.messages.push_back({.role = "user", .content = std::move(text)});
  p.answer_text = "my card is 6222021234567890128";
  return p;
}

TEST_F(CaptureWriterTest, WritesRedactedRecords) {
  CaptureStore store(path_);
  {
    CaptureWriter writer(store, {});
    ASSERT_TRUE(writer.enqueue(pending("a", "id 11010519491231002X, phone 13812345678")));
    writer.flush();
    EXPECT_EQ(writer.counters().written, 1);
  }
  const auto e = store.find("a");
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->record.messages_json,
            R"([{"role":"user","content":"id <CN_ID_1>, phone <PHONE_1>"}])");
  EXPECT_EQ(e->record.answer, "my card is <BANK_CARD_1>");
  EXPECT_EQ(e->record.redactions_json, R"({"bank_card":1,"cn_mobile":1,"cn_resident_id":1})");
}

TEST_F(CaptureWriterTest, AFullQueueDropsAndCounts) {
  CaptureStore store(path_);
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::promise<void> started;
  std::atomic<bool> first{true};
  CaptureWriter writer(
      store,
      [&] {
        if (first.exchange(false)) {
          started.set_value();
          released.wait();  // the writer is held on its first record
        }
        return mmserve::privacy::ScanOptions{};
      },
      2);
  ASSERT_TRUE(writer.enqueue(pending("1")));
  started.get_future().wait();
  EXPECT_TRUE(writer.enqueue(pending("2")));
  EXPECT_TRUE(writer.enqueue(pending("3")));
  EXPECT_FALSE(writer.enqueue(pending("4")));
  EXPECT_FALSE(writer.enqueue(pending("5")));
  EXPECT_EQ(writer.counters().dropped_queue_full, 2);
  EXPECT_EQ(writer.counters().queued, 2);
  EXPECT_EQ(writer.pending_owner("2"), std::optional<std::string>("k1"));
  EXPECT_FALSE(writer.pending_owner("4").has_value());
  release.set_value();
  writer.flush();
  EXPECT_EQ(writer.counters().written, 3);
  EXPECT_FALSE(writer.pending_owner("2").has_value());
  EXPECT_EQ(store.owner("2"), std::optional<std::string>("k1"));
  EXPECT_FALSE(store.owner("4").has_value());
}

TEST_F(CaptureWriterTest, AFailingStoreCountsErrorsAndNeverThrows) {
  CaptureStore store(path_);
  {
    // Another connection breaks the file under the writer (as a disk gone bad would).
    sqlite3* other = nullptr;
    ASSERT_EQ(sqlite3_open(path_.c_str(), &other), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(other, "DROP TABLE captures", nullptr, nullptr, nullptr), SQLITE_OK);
    sqlite3_close(other);
  }
  CaptureWriter writer(store, {});
  EXPECT_NO_THROW({
    EXPECT_TRUE(writer.enqueue(pending("a")));
    EXPECT_TRUE(writer.enqueue(pending("b")));
    writer.flush();
  });
  EXPECT_EQ(writer.counters().dropped_error, 2);
  EXPECT_EQ(writer.counters().written, 0);
}

TEST_F(CaptureWriterTest, AStoreOverItsCapCountsStoreFull) {
  CaptureStore store(path_, 128 * 1024);
  CaptureWriter writer(store, {});
  for (int i = 0; i < 30; ++i) {
    writer.enqueue(pending("r" + std::to_string(i), std::string(16 * 1024, 'z')));
  }
  writer.flush();
  const auto c = writer.counters();
  EXPECT_GT(c.written, 0);
  EXPECT_GT(c.dropped_store_full, 0);
  EXPECT_EQ(c.written + c.dropped_store_full, 30);
}

TEST(CapturePolicy, ModesKeysModelsAndStore) {
  using mmserve::stages::capture_wanted;
  mmserve::pipeline::Call call;
  EXPECT_FALSE(capture_wanted(CaptureMode::kOff, call, true));
  EXPECT_FALSE(capture_wanted(CaptureMode::kOptIn, call, false));
  EXPECT_TRUE(capture_wanted(CaptureMode::kOptIn, call, true));  // the model is marked
  EXPECT_TRUE(capture_wanted(CaptureMode::kAll, call, false));
  call.caller.scopes.capture = true;
  EXPECT_TRUE(capture_wanted(CaptureMode::kOptIn, call, false));
  call.store = false;
  EXPECT_FALSE(capture_wanted(CaptureMode::kOptIn, call, true));
  EXPECT_FALSE(capture_wanted(CaptureMode::kAll, call, true));
  call.caller.scopes.capture = false;
  call.store = true;
  EXPECT_TRUE(capture_wanted(CaptureMode::kOptIn, call, false));
  EXPECT_FALSE(capture_wanted(CaptureMode::kOff, call, false));
  EXPECT_THROW(mmserve::stages::parse_capture_mode("sometimes", "--capture"), mmserve::Error);
}

}  // namespace
