// Redaction for the capture store: typed placeholders numbered per record and type, the same
// value the same placeholder, no planted identifier left in what comes out (the privacy
// corpus), and numbering continued after a stored record's placeholders.
#include <gtest/gtest.h>

#include <string>

#include "privacy/detectors.h"
#include "privacy_corpus.h"
#include "stages/capture/redaction.h"

using mmserve::stages::Redactor;

namespace {

TEST(CaptureRedaction, PlaceholdersAreTypedAndNumberedPerRecord) {
  const mmserve::privacy::ScanOptions scan;
  Redactor r(scan);
  const std::string out =
      r.redact("call 13812345678 or 13912345678, mail a.b@example.com, again 13812345678");
  EXPECT_EQ(out, "call <PHONE_1> or <PHONE_2>, mail <EMAIL_1>, again <PHONE_1>");
  // The same record's next text keeps the numbering and the mapping.
  EXPECT_EQ(r.redact("13912345678 and 13700001111"), "<PHONE_2> and <PHONE_3>");
  EXPECT_EQ(r.counts().at("cn_mobile"), 5);
  EXPECT_EQ(r.counts().at("email"), 1);
  // Another record starts again.
  Redactor other(scan);
  EXPECT_EQ(other.redact("13700001111"), "<PHONE_1>");
}

TEST(CaptureRedaction, ResidentIdsAndBankCards) {
  const mmserve::privacy::ScanOptions scan;
  Redactor r(scan);
  // 11010519491231002X: a valid GB 11643 number; 6222021234567890128: Luhn-valid UnionPay.
  const std::string out = r.redact("身份证11010519491231002X，卡号6222021234567890128。");
  EXPECT_EQ(out, "身份证<CN_ID_1>，卡号<BANK_CARD_1>。");
}

TEST(CaptureRedaction, NoPlantedIdentifierSurvives) {
  const mmserve::privacy::ScanOptions scan;
  mmserve::privacy_corpus::CorpusGenerator corpus(21);
  int checked = 0;
  for (int i = 0; i < 2000; ++i) {
    const auto record = corpus.next();
    Redactor r(scan);
    const std::string out = r.redact(record.text);
    const auto found = mmserve::privacy::scan(record.text, scan);
    for (const auto& f : found) {
      const std::string value = record.text.substr(f.begin, f.end - f.begin);
      EXPECT_EQ(out.find(value), std::string::npos) << record.text << " -> " << out;
      ++checked;
    }
    if (found.empty()) {
      EXPECT_EQ(out, record.text);
    }
  }
  EXPECT_GT(checked, 1000);
}

TEST(CaptureRedaction, ContinuesAfterAStoredRecordsPlaceholders) {
  const mmserve::privacy::ScanOptions scan;
  Redactor r(scan);
  r.continue_after(R"([{"role":"user","content":"<PHONE_2> and <CN_ID_1>, <not_one_3>"}])");
  EXPECT_EQ(r.redact("13700001111"), "<PHONE_3>");
  EXPECT_EQ(r.redact("a@example.org"), "<EMAIL_1>");
}

}  // namespace
