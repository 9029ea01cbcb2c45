// Audio decoding for speech: any supported container/codec in memory -> 16 kHz mono float, the
// input whisper.cpp wants. Uses FFmpeg's libavformat/libavcodec/libswresample (Debian's).
//
// Accepted containers: WAV (and Wave64), AIFF, CAF, MP3, FLAC, Ogg (Opus, Vorbis, FLAC),
// MP4/M4A/MOV (AAC, ALAC, ...), Matroska/WebM, raw ADTS AAC. Only these demuxers are allowed
// and no nested protocol may be opened, so a playlist or reference file cannot make FFmpeg read
// local files or the network.
//
// Errors are mmserve::Error naming `field`: kInvalidInput for empty, corrupt or non-audio data
// (the message says which), kPayloadTooLarge past a limit. Stateless and thread-safe: each call
// has its own FFmpeg contexts.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace mmserve::media {

inline constexpr int kSpeechSampleRate = 16000;

struct AudioLimits {
  size_t max_bytes = 0;    // largest encoded input; 0 = no limit
  double max_seconds = 0;  // longest decoded audio; 0 = no limit (checked while decoding)
};

struct DecodedAudio {
  std::vector<float> samples;  // mono, kSpeechSampleRate, nominally in [-1, 1]
  std::string container;       // FFmpeg's demuxer name, e.g. "wav", "mov,mp4,m4a,3gp,3g2,mj2"
  std::string codec;           // e.g. "pcm_s16le", "mp3", "aac", "opus"
  int source_rate = 0;
  int source_channels = 0;

  double seconds() const { return static_cast<double>(samples.size()) / kSpeechSampleRate; }
};

// Decodes an encoded audio file held in memory.
DecodedAudio decode_audio(std::span<const uint8_t> data, const AudioLimits& limits,
                          const std::string& field = "file");

// Reads `path` and decodes it; a missing or unreadable file is Error(kNotFound).
DecodedAudio decode_audio_file(const std::string& path, const AudioLimits& limits);

}  // namespace mmserve::media
