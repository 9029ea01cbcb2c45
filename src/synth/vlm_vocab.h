// A small SentencePiece-style vocabulary for the synthetic VLM, generated here (no tokenizer file
// is needed): Gemma's special tokens, the 256 byte-fallback tokens, printable ASCII characters,
// and common English words with their "▁" (space) prefixes. Any UTF-8 text tokenizes with it.
// Stateless and thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace mmserve::synth {

struct Vocab {
  std::vector<std::string> tokens;
  std::vector<float> scores;
  std::vector<int32_t> types;  // llama.cpp's token types: 1 normal, 3 control, 6 byte
  int32_t pad_id = 0, eos_id = 1, bos_id = 2, unk_id = 3;
};

Vocab make_gemma_like_vocab();

// A Gemma-style chat template (llama.cpp recognises it by "<start_of_turn>").
const char* gemma_chat_template();

}  // namespace mmserve::synth
