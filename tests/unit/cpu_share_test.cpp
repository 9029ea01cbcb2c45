// The CPU share between models: alone a tenant runs with every thread, beside a busy one with
// its share.
#include "scheduler/cpu_share.h"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

namespace mmserve::scheduler {
namespace {

TEST(CpuShare, ATenantAloneTakesEveryThreadAndItsShareBesideABusyOne) {
  auto cpu = std::make_shared<CpuShare>(4);
  auto text = cpu->tenant(3);
  auto speech = cpu->tenant(1);
  EXPECT_EQ(text->threads(), 4);  // nobody busy
  text->set_busy(true);
  EXPECT_EQ(text->threads(), 4);    // itself busy, alone
  EXPECT_EQ(speech->threads(), 1);  // the other is busy: its share
  speech->set_busy(true);
  EXPECT_EQ(text->threads(), 3);
  EXPECT_EQ(speech->threads(), 1);
  text->set_busy(false);
  EXPECT_EQ(speech->threads(), 4);
  text->set_busy(true);
  text->set_busy(true);  // idempotent: counted once
  text->set_busy(false);
  EXPECT_EQ(speech->threads(), 4);
}

TEST(CpuShare, SharesAreClampedAndADestroyedTenantIsNoLongerBusy) {
  auto cpu = std::make_shared<CpuShare>(2);
  auto greedy = cpu->tenant(8);
  auto none = cpu->tenant(0);
  EXPECT_EQ(greedy->share(), 2);
  EXPECT_EQ(none->share(), 1);
  auto other = cpu->tenant(1);
  other->set_busy(true);
  EXPECT_EQ(none->threads(), 1);
  other.reset();
  EXPECT_EQ(none->threads(), 2);
  EXPECT_EQ(std::make_shared<CpuShare>(0)->total(), 1);
}

// Tenants flip between busy and idle from many threads (run under ThreadSanitizer): the count
// ends where it began.
TEST(CpuShare, ConcurrentFlipsKeepTheCount) {
  auto cpu = std::make_shared<CpuShare>(2);
  std::vector<std::unique_ptr<CpuShare::Tenant>> tenants;
  tenants.reserve(4);
  for (int i = 0; i < 4; ++i) {
    tenants.push_back(cpu->tenant(1));
  }
  std::vector<std::thread> threads;
  threads.reserve(tenants.size());
  for (auto& t : tenants) {
    threads.emplace_back([&t] {
      for (int i = 0; i < 2000; ++i) {
        t->set_busy(i % 2 == 0);
        (void)t->threads();
      }
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  auto probe = cpu->tenant(1);
  EXPECT_EQ(probe->threads(), 2);  // every tenant ended idle
}

}  // namespace
}  // namespace mmserve::scheduler
