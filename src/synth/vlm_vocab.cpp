#include "synth/vlm_vocab.h"

#include <cstdio>
#include <set>

namespace mmserve::synth {
namespace {

constexpr int32_t kNormal = 1, kControl = 3, kByte = 6;
constexpr const char* kSpace = "\xE2\x96\x81";  // U+2581, SentencePiece's space

// Words an image description uses, then common English; order is merge priority.
constexpr const char* kWords[] = {
    "the",     "a",       "of",      "and",        "in",          "is",       "with",
    "on",      "image",   "photo",   "picture",    "shows",       "this",     "there",
    "are",     "an",      "to",      "it",         "at",          "by",       "from",
    "for",     "as",      "that",    "which",      "its",         "has",      "person",
    "people",  "man",     "woman",   "child",      "dog",         "cat",      "bird",
    "car",     "tree",    "sky",     "water",      "street",      "building", "room",
    "table",   "window",  "road",    "grass",      "light",       "dark",     "bright",
    "red",     "green",   "blue",    "white",      "black",       "yellow",   "brown",
    "gray",    "small",   "large",   "big",        "little",      "old",      "new",
    "left",    "right",   "top",     "bottom",     "front",       "back",     "near",
    "next",    "behind",  "center",  "background", "foreground",  "sitting",  "standing",
    "walking", "holding", "looking", "wearing",    "one",         "two",      "three",
    "several", "many",    "some",    "text",       "sign",        "logo",     "product",
    "object",  "surface", "scene",   "view",       "close",       "up",       "day",
    "night",   "outside", "inside",  "describe",   "description", "detail",   "details",
    "color",   "colors",  "shape",   "bottle",     "box",         "label",    "document",
    "page",    "paper",   "was",     "be",         "he",          "she",      "they",
    "we",      "you",     "i",       "not",        "or",          "but",      "all",
    "can",     "have",    "had",     "were",       "his",         "her",      "their",
    "what",    "when",    "where",   "who",        "how",         "into",     "over",
    "under",
};

void add(Vocab& v, const std::string& piece, float score, int32_t type) {
  v.tokens.push_back(piece);
  v.scores.push_back(score);
  v.types.push_back(type);
}

}  // namespace

Vocab make_gemma_like_vocab() {
  Vocab v;
  for (const char* special : {"<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>",
                              "<end_of_turn>", "<start_of_image>", "<end_of_image>"}) {
    add(v, special, 0.0f, kControl);
  }
  v.types[3] = 2;  // <unk>: llama.cpp's UNKNOWN type
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof(name), "<0x%02X>", b);
    add(v, name, 0.0f, kByte);
  }
  // Pieces: the space mark, printable ASCII, then every prefix of each "▁word" so that the
  // SentencePiece merge (adjacent pairs whose concatenation is a piece) can build the word.
  std::set<std::string> seen;
  float score = -1.0f;
  auto piece = [&](const std::string& p) {
    if (seen.insert(p).second) add(v, p, score, kNormal);
    score -= 1.0f;
  };
  piece(kSpace);
  for (char c = 33; c < 127; ++c) piece(std::string(1, c));
  piece("\n");
  for (const char* word : kWords) {
    const std::string full = kSpace + std::string(word);
    for (size_t n = std::string(kSpace).size() + 1; n <= full.size(); ++n) piece(full.substr(0, n));
  }
  return v;
}

const char* gemma_chat_template() {
  return "{{ bos_token }}{% for message in messages %}"
         "{% set role = 'model' if message['role'] == 'assistant' else message['role'] %}"
         "<start_of_turn>{{ role }}\n{{ message['content'] | trim }}<end_of_turn>\n"
         "{% endfor %}{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}";
}

}  // namespace mmserve::synth
