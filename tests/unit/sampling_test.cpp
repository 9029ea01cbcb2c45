#include "engine/sampling.h"

#include <gtest/gtest.h>

#include <cmath>

#include "core/error.h"

using mmserve::Error;
using mmserve::engine::SamplingParams;

namespace {
std::string rejected_field(const SamplingParams& p) {
  try {
    mmserve::engine::validate(p);
  } catch (const Error& e) {
    return e.field();
  }
  return "";
}
}  // namespace

TEST(Sampling, DefaultsAreValid) {
  EXPECT_EQ(rejected_field({}), "");
}

TEST(Sampling, OutOfRangeValuesNameTheirField) {
  SamplingParams p;
  p.temperature = -1;
  EXPECT_EQ(rejected_field(p), "temperature");
  p = {};
  p.temperature = NAN;
  EXPECT_EQ(rejected_field(p), "temperature");
  p = {};
  p.top_p = 0;
  EXPECT_EQ(rejected_field(p), "top_p");
  p = {};
  p.top_k = -3;
  EXPECT_EQ(rejected_field(p), "top_k");
  p = {};
  p.min_p = 1.5f;
  EXPECT_EQ(rejected_field(p), "min_p");
  p = {};
  p.repeat_penalty = 0;
  EXPECT_EQ(rejected_field(p), "repeat_penalty");
}
