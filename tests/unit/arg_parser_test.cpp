#include "cli/arg_parser.h"

#include <gtest/gtest.h>

#include "core/error.h"

using mmserve::Error;
using mmserve::cli::ArgParser;

TEST(ArgParser, ValuesFlagsAliasesAndPositionals) {
  ArgParser p({"-m|--model", "-n|--max-tokens", "--temp"}, {"--chat"});
  p.parse({"-m", "a.gguf", "--max-tokens=5", "--chat", "--temp", "-0.5", "hello", "world"});
  EXPECT_EQ(p.get("--model"), "a.gguf");
  EXPECT_EQ(p.get_int("--max-tokens", 0), 5);
  EXPECT_FLOAT_EQ(p.get_float("--temp", 1), -0.5f);
  EXPECT_TRUE(p.flag("--chat"));
  EXPECT_EQ(p.positionals(), (std::vector<std::string>{"hello", "world"}));
}

TEST(ArgParser, UnknownOptionIsAnErrorNamingIt) {
  ArgParser p({"-m|--model"}, {});
  try {
    p.parse({"--modle", "x"});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.field(), "--modle");
    EXPECT_EQ(e.code(), mmserve::ErrorCode::kInvalidInput);
  }
}

TEST(ArgParser, MissingValueAndBadNumbersAreErrors) {
  ArgParser p({"-n|--max-tokens"}, {});
  EXPECT_THROW(p.parse({"-n"}), Error);
  ArgParser q({"-n|--max-tokens"}, {});
  q.parse({"-n", "12abc"});
  EXPECT_THROW(q.get_int("--max-tokens", 0), Error);
}

// A repeated option is either a list the command reads whole, or a mistake it names: never
// the last value silently winning over the first.
TEST(ArgParser, RepeatedOptionsAreListsOrErrors) {
  ArgParser p({"-m|--model", "--stop", "-n|--max-tokens"}, {});
  p.parse({"--stop", "A", "-m", "x", "--stop=B", "--model", "y", "-n", "1", "-n", "2"});
  EXPECT_EQ(p.get_all("--stop"), (std::vector<std::string>{"A", "B"}));
  EXPECT_TRUE(p.get_all("--nothing").empty());
  try {
    (void)p.get("--model");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.field(), "--model");
    EXPECT_NE(std::string(e.what()).find("more than once"), std::string::npos);
  }
  EXPECT_THROW((void)p.get_int("--max-tokens", 0), Error);
}
