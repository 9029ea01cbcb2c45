// hub/model_ref.h: the REF forms `mmserve pull` takes, the malformed ones, and the choice of a
// repository's files (quantization, defaults, split parts, the projector).
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "core/error.h"
#include "hub/download.h"
#include "hub/model_ref.h"

namespace {

using mmserve::Error;
using mmserve::ErrorCode;
using mmserve::hub::ModelRef;
using mmserve::hub::parse_model_ref;
using mmserve::hub::RepoFile;
using mmserve::hub::select_files;

constexpr const char* kEndpoint = "http://127.0.0.1:9999";

ModelRef parse(const std::string& ref) {
  return parse_model_ref(ref, kEndpoint);
}

std::string error_of(const std::string& ref) {
  try {
    parse(ref);
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidInput) << ref;
    EXPECT_EQ(e.field(), "REF");
    return e.what();
  }
  return "";
}

TEST(HubRef, HubForms) {
  auto r = parse("hf:bartowski/Llama-3.2-1B-Instruct-GGUF");
  EXPECT_EQ(r.kind, ModelRef::Kind::kHub);
  EXPECT_EQ(r.repo, "bartowski/Llama-3.2-1B-Instruct-GGUF");
  EXPECT_EQ(r.revision, "main");
  EXPECT_TRUE(r.quant.empty());
  EXPECT_TRUE(r.file.empty());

  r = parse("bartowski/Llama-3.2-1B-Instruct-GGUF:q4_k_m");
  EXPECT_EQ(r.quant, "q4_k_m");
  r = parse("hf:o/r:Model-Q8_0.gguf");
  EXPECT_EQ(r.file, "Model-Q8_0.gguf");
  EXPECT_TRUE(r.quant.empty());
  r = parse("hf:o/r/sub/Model-Q8_0.gguf");
  EXPECT_EQ(r.repo, "o/r");
  EXPECT_EQ(r.file, "sub/Model-Q8_0.gguf");
  r = parse_model_ref("o/r", kEndpoint, "v1.0");
  EXPECT_EQ(r.revision, "v1.0");
}

TEST(HubRef, ResolveUrlsOfTheEndpointAndOfHuggingFaceAreHubRefs) {
  auto r = parse("https://huggingface.co/o/r/resolve/abc123/dir/F.gguf?download=true");
  EXPECT_EQ(r.kind, ModelRef::Kind::kHub);
  EXPECT_EQ(r.repo, "o/r");
  EXPECT_EQ(r.revision, "abc123");
  EXPECT_EQ(r.file, "dir/F.gguf");
  r = parse(std::string(kEndpoint) + "/o/r/resolve/main/F.gguf");
  EXPECT_EQ(r.kind, ModelRef::Kind::kHub);
  r = parse("https://example.com/o/r/resolve/main/F.gguf");
  EXPECT_EQ(r.kind, ModelRef::Kind::kUrl);
  EXPECT_EQ(r.url, "https://example.com/o/r/resolve/main/F.gguf");
}

TEST(HubRef, WhisperNames) {
  auto r = parse("whisper:large-v3-turbo-q5_0");
  EXPECT_EQ(r.kind, ModelRef::Kind::kWhisper);
  EXPECT_EQ(r.repo, "ggerganov/whisper.cpp");
  EXPECT_EQ(r.file, "ggml-large-v3-turbo-q5_0.bin");
  EXPECT_EQ(parse("WHISPER:base.en").file, "ggml-base.en.bin");
}

TEST(HubRef, MalformedRefsNameThemselves) {
  for (const std::string bad :
       {"", "hf:", "name", "hf:o/r:", "o/../r", "../o/r", "o/r/../../etc/passwd", "o/r:Q4 K",
        "whisper:", "whisper:../x", "http://", "http://host", "https:///x", "hf:o/r/f.gguf:Q4",
        "o/r:a/b", "o /r"}) {
    const std::string message = error_of(bad);
    EXPECT_NE(message.find("bad model REF '" + bad + "'"), std::string::npos) << bad << message;
  }
  EXPECT_THROW(parse_model_ref("o/r", kEndpoint, "../x"), Error);
}

TEST(HubRef, QuantAndSplitNames) {
  using mmserve::hub::quant_of;
  using mmserve::hub::split_part;
  EXPECT_EQ(quant_of("Llama-3.2-1B-Instruct-Q4_K_M.gguf"), "Q4_K_M");
  EXPECT_EQ(quant_of("sub/model.Q8_0.gguf"), "Q8_0");
  EXPECT_EQ(quant_of("Q4_K_M/Big-Q4_K_M-00002-of-00003.gguf"), "Q4_K_M");
  EXPECT_EQ(quant_of("gemma-3-4b-it-UD-IQ4_XS.gguf"), "IQ4_XS");
  int index = 0, count = 0;
  EXPECT_TRUE(split_part("Big-Q4_K_M-00002-of-00003.gguf", &index, &count));
  EXPECT_EQ(index, 2);
  EXPECT_EQ(count, 3);
  EXPECT_FALSE(split_part("Big-Q4_K_M-00004-of-00003.gguf", &index, &count));
  EXPECT_FALSE(split_part("Big-Q4_K_M-0002-of-00003.gguf", &index, &count));
  EXPECT_FALSE(split_part("Big-Q4_K_M.gguf", &index, &count));
  EXPECT_TRUE(mmserve::hub::is_projector("sub/MMPROJ-F16.gguf"));
  EXPECT_FALSE(mmserve::hub::is_projector("model-mmproj.gguf"));
}

std::vector<RepoFile> listing(std::initializer_list<const char*> paths) {
  std::vector<RepoFile> out;
  for (const char* p : paths) out.push_back({p, 10, ""});
  return out;
}

TEST(HubSelect, DefaultIsQ4KMThenQ8ThenFirst) {
  const auto files = listing({"README.md", "M-Q8_0.gguf", "M-Q4_K_M.gguf", "M-Q2_K.gguf",
                              "mmproj-M-Q8_0.gguf", "mmproj-M-f16.gguf"});
  auto s = select_files(parse("o/r"), files);
  ASSERT_EQ(s.model.size(), 1u);
  EXPECT_EQ(s.model[0].path, "M-Q4_K_M.gguf");
  EXPECT_EQ(s.quant, "Q4_K_M");
  ASSERT_EQ(s.mmproj.size(), 1u);
  EXPECT_EQ(s.mmproj[0].path, "mmproj-M-f16.gguf");  // F16 preferred, any case
  EXPECT_NE(s.why.find("Q2_K, Q4_K_M, Q8_0"), std::string::npos);

  s = select_files(parse("o/r"), listing({"M-Q8_0.gguf", "M-Q2_K.gguf"}));
  EXPECT_EQ(s.model[0].path, "M-Q8_0.gguf");
  EXPECT_TRUE(s.mmproj.empty());
  s = select_files(parse("o/r"), listing({"M-Q5_K_S.gguf", "M-Q2_K.gguf", "mmproj-x.gguf"}));
  EXPECT_EQ(s.model[0].path, "M-Q2_K.gguf");
  EXPECT_EQ(s.mmproj[0].path, "mmproj-x.gguf");  // the only one
}

TEST(HubSelect, ExplicitQuantIsCaseInsensitiveAndWhole) {
  const auto files = listing({"M-Q4_K.gguf", "M-Q4_K_M.gguf"});
  EXPECT_EQ(select_files(parse("o/r:q4_k_m"), files).model[0].path, "M-Q4_K_M.gguf");
  EXPECT_EQ(select_files(parse("o/r:Q4_K"), files).model[0].path, "M-Q4_K.gguf");
  try {
    select_files(parse("o/r:Q8_0"), files);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kNotFound);
    EXPECT_NE(std::string(e.what()).find("o/r has no Q8_0 GGUF; available: Q4_K, Q4_K_M"),
              std::string::npos)
        << e.what();
  }
  EXPECT_THROW(select_files(parse("o/r"), listing({"README.md", "mmproj-F16.gguf"})), Error);
}

TEST(HubSelect, SplitModelsComeWithAllTheirPartsInOrder) {
  const auto files = listing({"Q4_K_M/B-Q4_K_M-00002-of-00002.gguf",
                              "Q4_K_M/B-Q4_K_M-00001-of-00002.gguf", "B-Q8_0.gguf"});
  auto s = select_files(parse("o/r"), files);
  ASSERT_EQ(s.model.size(), 2u);
  EXPECT_EQ(s.model[0].path, "Q4_K_M/B-Q4_K_M-00001-of-00002.gguf");
  EXPECT_EQ(s.model[1].path, "Q4_K_M/B-Q4_K_M-00002-of-00002.gguf");
  // Naming any part takes them all; a missing part is an error, not half a model.
  EXPECT_EQ(select_files(parse("o/r:B-Q4_K_M-00002-of-00002.gguf"), files).model.size(), 2u);
  EXPECT_THROW(select_files(parse("o/r:Q4_K_M"), listing({"B-Q4_K_M-00001-of-00003.gguf",
                                                          "B-Q4_K_M-00002-of-00003.gguf"})),
               Error);
}

TEST(HubSelect, ExactFilesAndWhisperModels) {
  const auto files = listing({"sub/M-Q8_0.gguf", "mmproj-F16.gguf"});
  auto s = select_files(parse("o/r/sub/M-Q8_0.gguf"), files);
  EXPECT_EQ(s.model[0].path, "sub/M-Q8_0.gguf");
  EXPECT_EQ(s.mmproj.size(), 1u);
  s = select_files(parse("o/r:M-Q8_0.gguf"), files);  // by its name alone
  EXPECT_EQ(s.model[0].path, "sub/M-Q8_0.gguf");
  s = select_files(parse("o/r:mmproj-F16.gguf"), files);  // a projector alone
  EXPECT_TRUE(s.mmproj.empty());

  const auto whisper = listing({"ggml-tiny.bin", "ggml-base.en.bin", "README.md"});
  s = select_files(parse("whisper:tiny"), whisper);
  EXPECT_EQ(s.model[0].path, "ggml-tiny.bin");
  EXPECT_TRUE(s.mmproj.empty());
  try {
    select_files(parse("whisper:huge"), whisper);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no whisper.cpp model 'huge'"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("available: base.en, tiny"), std::string::npos);
  }
}

// Every REF form keeps its file names inside the models directory: no path steps, no absolute
// or empty segments (fuzz_model_ref checks the same on arbitrary REFs).
TEST(HubRef, FileNamesNeverLeaveTheModelsDirectory) {
  for (const char* ref :
       {"hf:o/../x", "hf:../r", "o/r/../x.gguf", "o/r/a/../../x.gguf", "o/r//x.gguf", "o/r/x.gguf/",
        "o/r:../x.gguf", "o/r:/etc/x.gguf", "o/r:a\\b.gguf", "whisper:..", "whisper:../x",
        "whisper:a/b", "http://127.0.0.1:9999/o/r/resolve/../x.gguf",
        "http://127.0.0.1:9999/o/r/resolve/main/../x.gguf"}) {
    EXPECT_FALSE(error_of(ref).empty()) << ref;
  }
}

// The last gate before a file is created: what a URL ("%00", "%0a") or a repository listing
// names is refused unless it is one plain file name. A NUL would make NAME, NAME.partial and
// NAME.lock one path, and the empty lock file would pass for the model, with no transfer.
TEST(HubDownload, RefusesNamesThatAreNotOnePlainFile) {
  const auto dir =
      std::filesystem::temp_directory_path() / ("mmserve-hub-names-" + std::to_string(::getpid()));
  mmserve::hub::HubSettings settings;
  settings.endpoint = "http://127.0.0.1:1";  // nothing is fetched: the name is checked first
  for (const std::string& name :
       {std::string(""), std::string("."), std::string(".."), std::string(".hidden"),
        std::string("../x.gguf"), std::string("/etc/x"), std::string("a\\b.gguf"),
        std::string("model.gguf\0x", 12), std::string("model\n.gguf"),
        std::string("model\x7f.gguf")}) {
    mmserve::hub::RemoteFile f;
    f.name = name;
    f.url = "http://127.0.0.1:1/x";
    try {
      mmserve::hub::download(f, dir, settings);
      ADD_FAILURE() << "accepted '" << name << "'";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kInvalidInput) << name;
      EXPECT_EQ(e.field(), "name");
    }
  }
  EXPECT_FALSE(std::filesystem::exists(dir));  // refused before anything was created
}

}  // namespace
