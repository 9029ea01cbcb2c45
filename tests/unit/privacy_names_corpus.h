// The optional tier's corpus (privacy_names_test.cpp measures recall and precision on it):
// Chinese person names from the 100 commonest surnames, some compound ones and common given-name
// characters; English names; Chinese addresses from lists of provinces, cities, districts and
// roads in several forms (with and without province and 市, a sub-district, 弄, building parts,
// an estate, full-width digits, Chinese numerals, and rural ones, which the detector does not
// cover); English street addresses; each in sentence templates; and look-alike records. A seed
// always gives the same records.
//
// Written by the detectors' author, so it measures the rules against the cases they were written
// for, not against real text; the no-cue names and the rural addresses show what they give up.
#pragma once

#include <algorithm>
#include <cctype>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "privacy/finding.h"

namespace mmserve::privacy_names_corpus {

using privacy::FindingType;

inline std::vector<std::string> split(std::string_view list, char separator = '|') {
  std::vector<std::string> out;
  for (size_t b = 0; b <= list.size();) {
    const size_t e = std::min(list.find(separator, b), list.size());
    out.emplace_back(list.substr(b, e - b));
    b = e + 1;
  }
  return out;
}

struct Planted {
  FindingType type;
  size_t begin, end;
  bool cue;  // a name with a context cue (the others are counted apart: found by design never)
};
struct Record {
  std::string text;
  std::vector<Planted> planted;
};

// Every Han character here is 3 bytes of UTF-8: a pick from these strings is 3 bytes.
constexpr std::string_view kTopSurnames =  // the 100 commonest, by population
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏"
    "魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵"
    "万钱严覃武戴莫孔向汤";
constexpr std::string_view kGivenChars =
    "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰萍红鹏辉建国文春林海波宇浩欣怡佳子涵轩"
    "思雨梓晨博宁婷雪琳晶鑫斌峰亮飞云龙燕梅丹凤志新成俊嘉瑞一诗悦泽";
const auto kCompound = split("欧阳|司马|诸葛|上官|东方|慕容|令狐");
const auto kFirst = split("James|Mary|John|Patricia|Robert|Linda|David|Susan|Michael|Sarah|Karen");
const auto kLast = split("Smith|Johnson|Williams|Brown|Garcia|Miller|Lee|O'Brien|McDonald|Walker");
const auto kChineseNameTemplates = split(
    "联系人：{}，电话请见附件。|收件人:{} 已签收|姓名：{}\n性别：男|患者{}，男，45岁，主诉头痛。|"
    "客户{}反馈说产品质量不错。|感谢{}先生的大力支持。|请{}女士于周一前回复邮件。|"
    "{}老师您好，作业已经提交。|今天见到了{}医生，复查正常。|本案委托{}律师代理。|"
    "{}经理已经批准了预算。|您好，我叫{}，想咨询一下贷款。|我是{}，工号1234。|经办人{}签字确认。|"
    "负责人：{}|这是{}女士的订单。|向{}老师请教问题。|跟{}经理确认过了。|经办人{}审核通过。");
// Names without any cue: counted apart, they measure what the cue rule gives up.
const auto kNoCueTemplates =
    split("{}说明天请假。|昨天{}来过公司。|我和{}是同事。|{} called today.");
const auto kEnglishNameTemplates = split(
    "Dear Mr. {L}, thank you for your letter.|Please contact Dr {F} {L} for details.|"
    "Ms. {F} {L} will attend the meeting.|Name: {F} {L}|Contact: {F} {L}, phone on file.|"
    "Customer: {F} K. {L}|请联系Mr. {L}确认订单。|Prof. {L} gave the lecture.");
// Province/city/districts (3-character names with their suffix), one per '|'.
const auto kPlaces = split(
    "浙江/杭州/西湖区上城区拱墅区滨江区余杭区|广东/深圳/南山区福田区罗湖区宝安区|"
    "广东/广州/天河区越秀区海珠区番禺区|江苏/南京/鼓楼区玄武区秦淮区|四川/成都/锦江区青羊区武侯区|"
    "湖北/武汉/江汉区武昌区洪山区|河北/石家庄/长安区桥西区裕华区|陕西/西安/雁塔区碑林区莲湖区|"
    "浙江/湖州/吴兴区长兴县德清县|山东/济南/历下区市中区槐荫区");
const std::vector<std::pair<std::string, std::vector<std::string>>> kMunicipalities = {
    {"北京", split("朝阳区|海淀区|东城区|丰台区|石景山区")},
    {"上海", split("浦东新区|徐汇区|静安区|黄浦区|闵行区")},
    {"天津", split("和平区|南开区|滨海新区")},
    {"重庆", split("渝中区|江北区|沙坪坝区")}};
const auto kRoads = split(
    "文三路|中山路|人民路|解放大道|建国路|南京东路|淮海中路|长安街|天目山路|世纪大道|学院路|"
    "深南大道|五一路|和平街|东风巷|文一西路|长江路|胜利街");
const auto kBuildings = split("|||3栋2单元501室|5号楼1203室|B座12层|2幢|1单元302");
const auto kChineseAddressTemplates = split(
    "我的地址是{}，请寄到这里。|收货地址：{}|公司位于{}，欢迎来访。|请送到{}|住址{}。|"
    "寄往{}，谢谢！|家住{}附近");
const auto kStreetWords = split("Baker|Main|Oak|Maple|Elm|Park|Lake|Washington|Sunset|King|5th");
const auto kSuffixes = split("Street|St|Road|Rd|Avenue|Ave|Boulevard|Lane|Drive|Way|Court");
const auto kCities = split("London|Boston|New York|San Francisco");
const auto kEnglishAddressTemplates =
    split("Ship to {} please.|Our office is at {} now.|寄到{}谢谢|Send it to {}, thanks");
// Records with no name and no address: surname characters in words, cue words without names,
// places without numbers, numbers without places, a product named like a person.
const auto kLookAlikes = split(
    "李白的诗很有名。|张家界的风景很美。|高中同学聚会定在周六。|公司总经理出差了。|"
    "项目经理明天到。|"
    "请联系商务经理。|金牌律师为您服务。|全班同学都到了。|黄金价格上涨。|客户满意度提高了。|"
    "联系人信息已更新。|我是中国人。|我是苏州人。|周末去马路对面吃饭。|武术老师很严格。|"
    "数学老师布置了作业。|感谢各位老师的支持。|客户付款已到账。|华为Mate60发布了。|王老吉凉茶。|"
    "北京大学在海淀。|杭州市西湖区天气晴。|中山路100米处右转。|高速公路100公里。|"
    "朝阳区人民法院第5号通知。|日期2023年12月1日。|价格¥1,234.56元。|订单号202312011234567890。|"
    "西湖区文三路口见。|班主任老师开会。|我是农民。|我是司机。|客户服务中心。|患者家属请等候。|"
    "负责人员已到位。|申请人数很多。|法人代表签字。|收件人地址不详。|员工食堂开饭了。|"
    "客户关系管理。|招商经理来电。|房产经理带看。|英语老师请假了。|Customer: Acme Corp|"
    "Name: the report|Top 10 Ways to save|Room 12 Building B|The Street Journal|Call 911 Now|"
    "Chapter 3 The Road Ahead|Dr Pepper is a soda.");

class NamesCorpus {
 public:
  explicit NamesCorpus(unsigned seed) : rng_(seed) {}

  Record next() {
    Record r;
    const int kind = static_cast<int>(rng_() % 100);
    if (kind < 30) {
      r.text = pick(kLookAlikes);
    } else if (kind < 65) {
      const bool cue = rng_() % 10 != 0;
      template_ = pick(cue ? kChineseNameTemplates : kNoCueTemplates);
      std::string name = chinese_name();
      if (!cue && template_.find("called") != std::string::npos)
        name = pick(kFirst) + " " + pick(kLast);
      if (cue && rng_() % 4 == 0) name = english_name();
      plant(r, FindingType::kPersonName, name, cue);
    } else {
      plant(r, FindingType::kAddress, rng_() % 4 == 0 ? english_address() : chinese_address(),
            true);
    }
    if (rng_() % 3 == 0) {
      // What follows a line that ends with ASCII or with the value is another line.
      const char last = r.text.back();
      if (std::isalnum(static_cast<unsigned char>(last)) ||
          (!r.planted.empty() && r.planted[0].end == r.text.size())) {
        r.text += "\n";
      }
      r.text += pick(kLookAlikes);
    }
    return r;
  }

 private:
  template <typename T>
  const T& pick(const std::vector<T>& list) {
    return list[rng_() % list.size()];
  }
  std::string han(std::string_view chars) {
    return std::string(chars.substr(3 * (rng_() % (chars.size() / 3)), 3));
  }

  std::string chinese_name() {
    std::string name = rng_() % 8 == 0 ? pick(kCompound) : han(kTopSurnames);
    name += han(kGivenChars);
    if (rng_() % 2 == 0) name += han(kGivenChars);
    return name;
  }
  // Sets the template; the name as it is planted in it.
  std::string english_name() {
    template_ = pick(kEnglishNameTemplates);
    const std::string first = pick(kFirst), last = pick(kLast);
    for (const std::string part : {"{F} K. {L}", "{F} {L}", "{L}"}) {
      if (const size_t at = template_.find(part); at != std::string::npos) {
        template_.replace(at, part.size(), "{}");
        return part[1] == 'L' ? last : part.size() > 7 ? first + " K. " + last : first + " " + last;
      }
    }
    return last;
  }
  // Form 9, a rural address (a village and its group, no street or house number), is beyond
  // the detector: missed.
  std::string chinese_address() {
    std::string a;
    const int form = static_cast<int>(rng_() % 10);
    template_ = pick(kChineseAddressTemplates);
    if (form == 9)
      return split(pick(kPlaces), '/')[0] + "省" + split(pick(kPlaces), '/')[1] +
             "市和平镇新华村3组";
    const std::string space = rng_() % 10 == 0 ? " " : "";
    if (form <= 1 || form == 5 || form == 7) {
      const auto place = split(pick(kPlaces), '/');
      const std::string &province = place[0], &city = place[1];
      const std::string district = place[2].substr(9 * (rng_() % (place[2].size() / 9)), 9);
      if (form == 0) a = province + "省" + city + "市" + space + district;
      if (form == 1) a = province + city + "市" + space + district;
      if (form == 5) a = city + "市" + district + (rng_() % 2 ? "五常街道" : "北山街道");
      if (form == 7) a = city + district;
    } else {
      const auto& [muni, districts] = pick(kMunicipalities);
      const std::string& district = pick(districts);
      if (form == 2) a = muni + "市" + space + district;
      if (form == 3) a = muni + district;
      if (form == 4) a = district;
      if (form == 6 || form == 8) a = muni + "市" + district;
    }
    std::string number = std::to_string(1 + rng_() % 999);
    const int style = static_cast<int>(rng_() % 20);
    if (style < 2) {  // full-width digits (the detectors fold them)
      std::string wide;
      for (char d : number) wide += std::string("\xEF\xBC") + static_cast<char>(0x90 + d - '0');
      number = wide;
    } else if (style == 2) {  // Chinese numerals
      number = pick(split("八|十二|二十六|九十九"));
    }
    a += pick(kRoads) + number;
    a += rng_() % 10 == 0 ? "弄" + std::to_string(1 + rng_() % 20) + "号" : "号";
    a += form == 8 ? "金都花园3栋501室" : pick(kBuildings);
    return a;
  }
  std::string english_address() {
    std::string a = std::to_string(1 + rng_() % 9999) + " " + pick(kStreetWords);
    if (rng_() % 3 == 0) a += " " + pick(kStreetWords);
    a += " " + pick(kSuffixes);
    if (rng_() % 3 == 0) a += ", " + pick(kCities);
    if (rng_() % 10 == 0) a += ", MA 02118";
    template_ = pick(kEnglishAddressTemplates);
    return a;
  }
  void plant(Record& r, FindingType type, const std::string& value, bool cue) {
    const size_t at = template_.find("{}");
    r.text = template_.substr(0, at) + value + template_.substr(at + 2);
    r.planted.push_back({type, at, at + value.size(), cue});
  }

  std::mt19937 rng_;
  std::string template_;
};

}  // namespace mmserve::privacy_names_corpus
