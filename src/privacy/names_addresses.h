// The optional tier of the privacy detectors: person names and postal addresses, Chinese and
// English, over the normalized text (text_normalizer.h). Off unless the policy names them in
// `optional_detectors` (policy.h): unlike the checksum types they are heuristics, with the
// recall and precision measured in tests/unit/privacy_names_test.cpp (docs/privacy.md).
//
// Chinese person names: a surname from a list (about 370 of the commonest single-character
// surnames and 30 compound ones, 欧阳 司马 诸葛 ...) and one or two given-name characters,
// accepted only with a context cue, because surname characters are also everyday words: a
// label before it (姓名 联系人 收件人 客户 患者 ..., optionally with ':' or a space), a naming
// frame (我叫 我是 名叫), or an honorific after it (先生 女士 小姐 老师 经理 总 同学 医生 律师).
// The given name stops before punctuation, a cue or field word (电话 地址 ...) and characters
// that do not occur in given names (的 说 市 路 ...). Words that begin with a surname (周末 王国
// 高中 金牌 方面 张家界 ...) are listed and never names; surnames that mostly begin words (于 向
// 全 商 安 ...: 于是, 全班同学, 商务经理) need a label with ':' or a space, or 我叫/名叫.
// English person names: Mr Mrs Ms Miss Dr Prof (with or without '.') and one to three
// capitalised words, or Name: / Contact: / Customer: and two or three; a company word (Inc,
// Corp, Ltd, ...) refuses the run, a common sentence word (The, Please, ...) ends it. The span
// is the name alone, without the honorific or label.
//
// Chinese addresses: an optional province (the 34 province-level names, with or without
// 省/市/自治区), divisions ending in 市/区/县/旗, an optional 街道/镇/乡, a street (…路 街
// 大道 大街 巷 弄 胡同) with a house number (…号, …弄…号, in digits or Chinese numerals) and
// optional building parts (栋 幢 座 单元 楼 层 室, an estate before them). A city or district (a
// municipality counts) and the street with its number are both required, so 北京大学 or
// 杭州市西湖区 alone is no address. Where nothing anchors its start (a province, or a listed
// city, which may then go without 市: 杭州西湖区), the first division is read as two characters
// and its suffix, or three right after 寄往 住址 位于 ... or a non-Han character (石景山区).
// English: a house number, one to four capitalised words and a street suffix (Street St Road
// Rd Avenue Ave Boulevard Blvd Lane Ln Drive Dr Way Court Ct), optionally ", City" and
// ", MA 02118".
//
// Every matcher reads a bounded window (a few dozen code points): linear in the text. Spans
// are code point indices into the normalized text, non-overlapping within a type, in order.
// Pure functions: thread-safe.
#pragma once

#include <cstddef>
#include <string_view>
#include <vector>

#include "privacy/detectors.h"
#include "privacy/finding.h"

namespace mmserve::privacy {

struct TierSpan {
  FindingType type;  // kPersonName or kAddress
  size_t first;      // code point index of the first character
  size_t last;       // one past the last
};

// Append the person names / addresses in `text` (normalized code points) to `out`. With a
// deadline, throw Error(kTimeout) when it passes (checked every few thousand characters).
void find_person_names(std::u32string_view text, const ScanDeadline& deadline,
                       std::vector<TierSpan>& out);
void find_addresses(std::u32string_view text, const ScanDeadline& deadline,
                    std::vector<TierSpan>& out);

}  // namespace mmserve::privacy
