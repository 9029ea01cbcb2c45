// The word lists and character tables of the optional tier (names_addresses.h), and the small
// helpers its matchers share. Internal: included by names_addresses.cpp only.
#pragma once

#include <algorithm>
#include <bitset>
#include <chrono>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "privacy/detectors.h"

namespace mmserve::privacy::tier {

using Text = std::u32string_view;

// The commonest single-character surnames, in about the order of their population (the 2020
// census lists), covering well over 95% of people. Rare surnames that are above all everyday
// words (和 那 但 由 公 信 区 ...) are left out: with them every context cue would misfire.
constexpr Text kSurnames =
    U"王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶"
    U"程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾"
    U"毛郝龚邵万钱严覃武戴莫孔向汤常温康施文牛樊葛邢安齐易乔伍庞颜倪庄聂章鲁岳翟殷詹申欧耿关"
    U"兰焦俞左柳甘祝包宁尚符舒阮柯纪梅童凌毕单季裴霍涂成苗谷盛曲翁冉骆蓝路游辛靳管柴蒙鲍华喻"
    U"祁蒲房滕屈饶解牟艾尤阳时穆农司卓古吉缪简车项连芦麦褚娄窦戚岑景党宫费卜冷晏席卫米柏宗瞿"
    U"桂全佟应臧闵苟邬边卞姬师仇栾隋商刁沙荣巫寇桑郎甄丛仲虞敖巩明佘池查麻苑迟邝官封谈匡鞠惠"
    U"荆乐冀郁胥南班储原栗燕楚鄢劳谌奚皮粟冼蔺楼满闻厉伊仝郜海阚花权强帅屠豆朴盖练廉禹井祖漆"
    U"巴丰支卿国狄平计索宣晋初云容敬扈晁芮阙浦戈伏鹿薄邸雍辜羊裘亓修邰赫杭况宿鲜印逯隆茹诸慕"
    U"玉亢嵇哈湛戎勾茅揭尉冶元束檀展昝奉衡富尧萧阎傅";
// Surnames that mostly begin words (全班 商务 项目 安全 于是 向 ...): accepted only after a
// label with ':' or a space, or in a naming frame (我叫安明). The commonest surnames that begin
// words (高 金 方 石 ...) are not here: their words are in kNotNames instead.
constexpr Text kWeakSurnames =
    U"常于温康施易齐左甘尚符舒童毕单季谷盛曲蒙屈解艾司卓卫柏边苑迟惠班农"
    U"楚劳皮楼闻厉丰卿文安成明华路车全应商南原海花权强平国云宁包古吉连景党宫费冷席米宗师沙荣"
    U"官封谈乐满练井祖巴支计索宣初容敬戈伏薄羊修印隆玉束展时向关项房游管章元富衡诸鲜宿况";
// Characters that end a given name: function words, verbs that follow a name, units of place
// and time, field names' first characters. None is common in given names.
constexpr Text kStopChars =
    U"的了是在和与及等说讲问已于从向给把被将也都就还又很要会能请让叫对到去来住年岁男女今昨日"
    U"号市省区县路街镇村电手邮地身性籍职您你我他她们这那哪吗呢吧啊哦呀反表认提打希投称想需购办"
    U"签报告通发收寄买卖交借贷欠诉询咨此该其各每个些位名姓人以为着过没不并或而则即且因所上下前"
    U"后审批核确参出入离回复接处";
// Word lists, one space between words (WordList splits them).
constexpr Text kCompoundSurnames =
    U"欧阳 司马 诸葛 上官 东方 皇甫 尉迟 公孙 慕容 长孙 宇文 司徒 夏侯 令狐 端木 西门 南宫 独孤 "
    U"轩辕 澹台 呼延 百里 钟离 闻人 万俟 申屠 太史 赫连 拓跋 司空";
constexpr Text kHonorifics = U"先生 女士 小姐 老师 经理 同学 医生 律师 教授 主任";
// Field names that follow a name in forms ("张三部门：").
constexpr Text kFieldWords =
    U"部门 公司 联系 负责 同志 一家 一行 工号 编号 账号 出生 民族 学历 单位";
constexpr Text kLabels =
    U"姓名 联系人 收件人 收货人 寄件人 发件人 经办人 申请人 负责人 持卡人 户名 签收人 投保人 "
    U"被保险人 客户 患者 员工 法人 病人";
constexpr Text kNamingFrames = U"我叫 名叫 他叫 她叫 本人";
// Words that begin with a surname character but name no one (周末, 王国, 张家界 ...).
constexpr Text kNotNames =
    U"黄金 黄色 黄河 黄山 周末 周一 周二 周三 周四 周五 周六 周日 周年 周边 周围 周期 马上 马路 "
    U"王国 王者 王府井 王老吉 程序 陈述 陈列 许可 许多 韩国 曾经 董事 余额 杜绝 任务 任何 钟表 "
    U"陆续 范围 夏天 付款 熊猫 段落 雷达 顾问 顾客 严重 严格 武汉 孙子 林业 罗马 唐朝 胡同 张家界 "
    U"张家口 张家港 何时 何况 钱包 江苏 江西 杭州 苏州 温州 常州 徐州 郑州 梅州 柳州 高中 高级 "
    U"高速 高兴 高度 高档 高端 高校 高考 高层 高温 高效 高新 高铁 高管 高价 高手 高一 高二 高三 "
    U"金牌 金融 金额 金属 金色 金卡 江湖 江南 江边 武术 武警 武器 武装 任课 任职 任意 付费 付出 "
    U"余下 余款 余地 石油 石头 石材 石化 白色 白天 白领 白酒 白银 白云 白班 白菜 方面 方案 方法 "
    U"方式 方向 方便 方针 方位 程度 万元 万一 万能 万达 万科 万事";
// Words that end in a surname character: 谢谢陈静 is 陈静, not 谢陈静.
constexpr Text kWordsEndingInSurname = U"谢谢 感谢 多谢 致谢 答谢 鸣谢";

// The province-level divisions: municipalities (市), provinces (省), autonomous regions
// (自治区 and their full forms), special administrative regions (特别行政区).
constexpr Text kMunicipalities = U"北京 天津 上海 重庆";
constexpr Text kProvinces =
    U"河北 山西 辽宁 吉林 黑龙江 江苏 浙江 安徽 福建 江西 山东 河南 湖北 湖南 广东 海南 四川 贵州 "
    U"云南 陕西 甘肃 青海 台湾";
constexpr Text kRegions = U"内蒙古 广西 西藏 宁夏 新疆";
constexpr Text kRegionSuffixes = U"壮族自治区 回族自治区 维吾尔自治区 自治区";
constexpr Text kSars = U"香港 澳门";
// Cities written without 市 before their district (杭州西湖区), and those of three or four
// characters (the first division is otherwise read as two characters and its suffix).
constexpr Text kCities =
    U"杭州 宁波 温州 湖州 嘉兴 绍兴 金华 台州 广州 深圳 东莞 佛山 珠海 惠州 中山 南京 苏州 无锡 "
    U"常州 徐州 南通 扬州 成都 武汉 宜昌 襄阳 西安 济南 青岛 烟台 潍坊 郑州 洛阳 长沙 株洲 沈阳 "
    U"大连 长春 太原 合肥 福州 厦门 泉州 南昌 南宁 桂林 昆明 贵阳 兰州 西宁 银川 海口 三亚 拉萨 "
    U"保定 唐山 石家庄 哈尔滨 乌鲁木齐 呼和浩特 齐齐哈尔 张家口 秦皇岛 连云港 马鞍山 驻马店 "
    U"平顶山 景德镇 攀枝花 六盘水 张家界 鄂尔多斯 嘉峪关 佳木斯 牡丹江 葫芦岛 石嘴山 克拉玛依 "
    U"吐鲁番 日喀则 双鸭山";
constexpr Text kDivisionSuffixes = U"市区县旗";
// Characters no place name is made of here: function words, suffixes, street-level units (市
// is allowed inside: 济南市市中区).
constexpr Text kNotPlaceChars = U"的了是在我你他她您请址区县旗省路街巷弄号";
// What comes before an address ("寄往", "住址", "位于"): a first division of three characters
// is taken after one of these (or after no Han character) only.
constexpr Text kAddressLeads = U"在到往住址于至寄送是为";
constexpr Text kStreetSuffixes = U"大道 大街 胡同 路 街 巷 弄";
constexpr Text kBuildingUnits = U"号楼 号院 单元 栋 幢 座 楼 层 室 号";
// An estate between the house number and the building: 金都花园3栋501室.
constexpr Text kEstateSuffixes = U"小区 花园 大厦 公寓 广场 中心 家园 新村 苑 城";

constexpr std::string_view kEnglishHonorifics = "Mrs Mr Ms Miss Dr Prof";
constexpr std::string_view kEnglishLabels = "name contact customer";
// Capitalised words that begin sentences or follow names, never part of one.
constexpr std::string_view kSentenceWords =
    "The This That These Those We You He She They It Our Your My His Her Their Please Thanks "
    "Thank Dear Hi Hello And Or But On In At From To For With Is Was Are Will Can Has Have Re "
    "Subject Regards Best Sincerely Today Tomorrow Monday Tuesday Wednesday Thursday Friday "
    "Saturday Sunday";
constexpr std::string_view kCompanyWords =
    "Inc Corp Corporation Ltd Limited LLC Co Company Group Bank Technologies Technology Systems "
    "Solutions Holdings International Industries Partners University College Hospital School "
    "Institute Foundation Agency Department Hotel Store";
constexpr std::string_view kEnglishStreetSuffixes =
    "Street St Road Rd Avenue Ave Boulevard Blvd Lane Ln Drive Dr Way Court Ct";

constexpr auto is_han = [](char32_t c) {
  return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF);
};
constexpr auto is_digit = [](char32_t c) { return c >= U'0' && c <= U'9'; };
constexpr auto is_upper = [](char32_t c) { return c >= U'A' && c <= U'Z'; };
constexpr auto is_lower = [](char32_t c) { return c >= U'a' && c <= U'z'; };
constexpr auto is_alpha = [](char32_t c) { return is_upper(c) || is_lower(c); };
constexpr auto is_alnum = [](char32_t c) { return is_alpha(c) || is_digit(c); };

inline char32_t at(Text t, size_t k) {
  return k < t.size() ? t[k] : 0;
}
inline bool starts(Text t, size_t k, Text w) {
  return k <= t.size() && t.substr(k, w.size()) == w;
}

// A set of CJK unified ideographs (U+4E00-U+9FFF) as a bitmap: one test per character.
class HanSet {
 public:
  HanSet() = default;
  explicit HanSet(Text chars) {
    for (char32_t c : chars) {
      add(c);
    }
  }
  void add(char32_t c) {
    if (c >= kBase && c < kBase + kSize) {
      bits_.set(c - kBase);
    }
  }
  bool contains(char32_t c) const {
    return c >= kBase && c < kBase + kSize && bits_.test(c - kBase);
  }

 private:
  static constexpr char32_t kBase = 0x4E00;
  static constexpr size_t kSize = 0x5200;
  std::bitset<kSize> bits_;
};

// Words compared at a position; a bitmap of their first (or last) characters rejects most
// positions with one test.
class WordList {
 public:
  explicit WordList(Text spaced) {
    for (size_t b = 0; b < spaced.size();) {
      const size_t e = std::min(spaced.find(U' ', b), spaced.size());
      words_.push_back(spaced.substr(b, e - b));
      first_.add(words_.back().front());
      last_.add(words_.back().back());
      b = e + 1;
    }
  }
  // The length of the first listed word that starts at k; 0 when none does.
  size_t starts_at(Text t, size_t k) const {
    if (!first_.contains(at(t, k))) {
      return 0;
    }
    for (Text w : words_) {
      if (starts(t, k, w)) {
        return w.size();
      }
    }
    return 0;
  }
  // Does a listed word end just before `end`?
  bool ends_at(Text t, size_t end) const {
    if (end == 0 || !last_.contains(at(t, end - 1))) {
      return false;
    }
    for (Text w : words_) {
      if (end >= w.size() && t.substr(end - w.size(), w.size()) == w) {
        return true;
      }
    }
    return false;
  }

 private:
  std::vector<Text> words_;
  HanSet first_, last_;
};

struct Tables {
  HanSet surnames{kSurnames}, weak{kWeakSurnames}, stops{kStopChars}, not_place{kNotPlaceChars},
      address_leads{kAddressLeads};
  WordList compound{kCompoundSurnames}, honorifics{kHonorifics}, field_words{kFieldWords},
      labels{kLabels}, naming_frames{kNamingFrames}, not_names{kNotNames},
      ending_in_surname{kWordsEndingInSurname}, municipalities{kMunicipalities},
      provinces{kProvinces}, regions{kRegions}, region_suffixes{kRegionSuffixes}, sars{kSars},
      cities{kCities}, street_suffixes{kStreetSuffixes}, building_units{kBuildingUnits},
      estate_suffixes{kEstateSuffixes};
};

inline const Tables& tables() {
  static const Tables t;
  return t;
}

// Is `w` one of the space-separated words of `list`?
inline bool listed(std::string_view list, std::string_view w) {
  for (size_t b = 0; b < list.size();) {
    const size_t e = std::min(list.find(' ', b), list.size());
    if (list.substr(b, e - b) == w) {
      return true;
    }
    b = e + 1;
  }
  return false;
}
inline std::string ascii(Text t, size_t begin, size_t end) {
  std::string s;
  for (size_t k = begin; k < end; ++k) {
    s.push_back(static_cast<char>(t[k]));
  }
  return s;
}
// Does the ASCII word `w` start at k (letters case-insensitively when fold), not glued to a
// further letter?
inline bool ascii_word_at(Text t, size_t k, std::string_view w, bool fold) {
  for (size_t j = 0; j < w.size(); ++j) {
    char32_t c = at(t, k + j);
    if (fold && is_upper(c)) {
      c += 32;
    }
    if (c != static_cast<char32_t>(w[j])) {
      return false;
    }
  }
  return !is_alpha(at(t, k + w.size()));
}
inline size_t digit_run(Text t, size_t k, size_t max) {
  size_t j = k;
  while (is_digit(at(t, j))) {
    ++j;
  }
  return j - k <= max ? j : k;
}

class Clock {
 public:
  explicit Clock(const ScanDeadline& deadline) : deadline_(deadline) {}
  // Characters between two looks at the clock, as in the main scan.
  void check(size_t i) {
    if (!deadline_ || i < next_) {
      return;
    }
    next_ = i + 4096;
    if (std::chrono::steady_clock::now() >= *deadline_) {
      throw Error(ErrorCode::kTimeout, "the privacy scan ran out of time (scan_timeout_ms)");
    }
  }

 private:
  const ScanDeadline& deadline_;
  size_t next_ = 0;
};

}  // namespace mmserve::privacy::tier
