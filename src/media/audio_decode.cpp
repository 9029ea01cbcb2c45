#include "media/audio_decode.h"

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/channel_layout.h>
#include <libavutil/error.h>
#include <libavutil/log.h>
#include <libavutil/mem.h>
#include <libavutil/opt.h>
#include <libswresample/swresample.h>
}

#include <cstring>
#include <fstream>
#include <memory>
#include <mutex>

#include "core/error.h"

namespace mmserve::media {
namespace {

// The demuxers we accept (FFmpeg names; "mov" covers MP4/M4A, "matroska" covers WebM).
constexpr const char* kFormatWhitelist = "wav,w64,aiff,caf,mp3,flac,ogg,mov,matroska,aac";
constexpr const char* kSupported = "WAV, MP3, FLAC, OGG/Opus, M4A/AAC, WebM";
constexpr int kIoBufferSize = 64 * 1024;

std::string av_error(int code) {
  char buf[AV_ERROR_MAX_STRING_SIZE] = {};
  av_strerror(code, buf, sizeof(buf));
  return buf;
}

// Once per process: FFmpeg logs to stderr by default (the caller gets one Error instead), and
// trusts sizes written in headers. A 100-byte WAV whose INFO chunk claims 2 GB made
// avformat_open_input zero 2 GB (found by fuzz_audio); no allocation of an audio decode this
// server accepts (25 MiB of input by default) comes near 256 MiB, so that is FFmpeg's limit.
constexpr size_t kFfmpegMaxAlloc = 256u << 20;

void quiet_ffmpeg_once() {
  static std::once_flag once;
  std::call_once(once, [] {
    av_log_set_level(AV_LOG_QUIET);
    av_max_alloc(kFfmpegMaxAlloc);
  });
}

struct MemoryReader {
  const uint8_t* data;
  int64_t size;
  int64_t pos = 0;
};

int read_packet(void* opaque, uint8_t* buf, int buf_size) {
  auto* r = static_cast<MemoryReader*>(opaque);
  const int64_t left = r->size - r->pos;
  if (left <= 0) return AVERROR_EOF;
  const int n = static_cast<int>(std::min<int64_t>(left, buf_size));
  std::memcpy(buf, r->data + r->pos, static_cast<size_t>(n));
  r->pos += n;
  return n;
}

int64_t seek(void* opaque, int64_t offset, int whence) {
  auto* r = static_cast<MemoryReader*>(opaque);
  if (whence & AVSEEK_SIZE) return r->size;
  int64_t target = 0;
  switch (whence & ~AVSEEK_FORCE) {
    case SEEK_SET: target = offset; break;
    case SEEK_CUR: target = r->pos + offset; break;
    case SEEK_END: target = r->size + offset; break;
    default: return AVERROR(EINVAL);
  }
  if (target < 0 || target > r->size) return AVERROR(EINVAL);
  r->pos = target;
  return target;
}

struct IoDeleter {
  void operator()(AVIOContext* io) const {
    av_freep(&io->buffer);  // FFmpeg may have replaced the buffer we gave it
    avio_context_free(&io);
  }
};
struct FormatDeleter {
  void operator()(AVFormatContext* f) const { avformat_close_input(&f); }
};
struct CodecDeleter {
  void operator()(AVCodecContext* c) const { avcodec_free_context(&c); }
};
struct PacketDeleter {
  void operator()(AVPacket* p) const { av_packet_free(&p); }
};
struct FrameDeleter {
  void operator()(AVFrame* f) const { av_frame_free(&f); }
};
struct SwrDeleter {
  void operator()(SwrContext* s) const { swr_free(&s); }
};

// Converts decoded frames to 16 kHz mono float, re-creating the resampler when the stream's
// format changes mid-way (chained Ogg, some MP3s).
// Sample rates a source may have: telephone-band 1 kHz up to studio 384 kHz.
constexpr int kMinSourceRate = 1000;
constexpr int kMaxSourceRate = 384000;

class Resampler {
 public:
  // `field`: the request field the audio came from, named by every error.
  Resampler(std::vector<float>& out, std::string field) : out_(out), field_(std::move(field)) {}
  ~Resampler() { av_channel_layout_uninit(&layout_); }

  void push(const AVFrame* frame) {
    if (!swr_ || frame->format != format_ || frame->sample_rate != rate_ ||
        av_channel_layout_compare(&frame->ch_layout, &layout_) != 0) {
      flush();
      configure(frame);
    }
    convert(const_cast<const uint8_t**>(frame->extended_data), frame->nb_samples);
  }
  void flush() {
    if (swr_) convert(nullptr, 0);
  }

 private:
  void configure(const AVFrame* frame) {
    // The resampler's filter grows with the input rate over ours: a file claiming a rate of
    // gigahertz makes swr_init allocate gigabytes (found by fuzz_audio). Real audio is within.
    if (frame->sample_rate < kMinSourceRate || frame->sample_rate > kMaxSourceRate) {
      throw Error(ErrorCode::kInvalidInput,
                  "the audio's sample rate " + std::to_string(frame->sample_rate) +
                      " Hz is outside " + std::to_string(kMinSourceRate) + "-" +
                      std::to_string(kMaxSourceRate) + " Hz",
                  field_);
    }
    av_channel_layout_uninit(&layout_);
    if (av_channel_layout_copy(&layout_, &frame->ch_layout) < 0) {
      throw Error(ErrorCode::kInternal, "out of memory while decoding audio", field_);
    }
    AVChannelLayout in = {};
    // Files that do not say which speaker each channel is (plain WAV) get FFmpeg's default.
    if (frame->ch_layout.order == AV_CHANNEL_ORDER_UNSPEC) {
      av_channel_layout_default(&in, frame->ch_layout.nb_channels);
    } else {
      av_channel_layout_copy(&in, &frame->ch_layout);
    }
    AVChannelLayout mono = AV_CHANNEL_LAYOUT_MONO;
    SwrContext* raw = nullptr;
    const int rc = swr_alloc_set_opts2(&raw, &mono, AV_SAMPLE_FMT_FLT, kSpeechSampleRate, &in,
                                       static_cast<AVSampleFormat>(frame->format),
                                       frame->sample_rate, 0, nullptr);
    av_channel_layout_uninit(&in);
    swr_.reset(raw);
    if (rc < 0 || swr_init(swr_.get()) < 0) {
      swr_.reset();
      throw Error(ErrorCode::kInvalidInput,
                  "the audio has a sample layout that cannot be converted (" +
                      std::to_string(frame->ch_layout.nb_channels) + " channels at " +
                      std::to_string(frame->sample_rate) + " Hz)",
                  field_);
    }
    format_ = frame->format;
    rate_ = frame->sample_rate;
  }
  void convert(const uint8_t** in, int n_in) {
    const int room = swr_get_out_samples(swr_.get(), n_in);
    if (room <= 0) return;
    const size_t before = out_.size();
    out_.resize(before + static_cast<size_t>(room));
    auto* dst = reinterpret_cast<uint8_t*>(out_.data() + before);
    const int n = swr_convert(swr_.get(), &dst, room, in, n_in);
    out_.resize(before + static_cast<size_t>(std::max(0, n)));
  }

  std::vector<float>& out_;
  std::string field_;
  std::unique_ptr<SwrContext, SwrDeleter> swr_;
  int format_ = -1;
  int rate_ = 0;
  AVChannelLayout layout_ = {};
};

}  // namespace

DecodedAudio decode_audio(std::span<const uint8_t> data, const AudioLimits& limits,
                          const std::string& field) {
  quiet_ffmpeg_once();
  if (data.empty()) throw Error(ErrorCode::kInvalidInput, "the audio file is empty", field);
  if (limits.max_bytes > 0 && data.size() > limits.max_bytes) {
    throw Error(ErrorCode::kPayloadTooLarge,
                "the audio file is " + std::to_string(data.size()) +
                    " bytes, more than --max-audio-bytes (" + std::to_string(limits.max_bytes) +
                    ")",
                field);
  }
  auto invalid = [&](const std::string& why) {
    return Error(ErrorCode::kInvalidInput, why, field);
  };

  MemoryReader reader{data.data(), static_cast<int64_t>(data.size())};
  auto* buffer = static_cast<uint8_t*>(av_malloc(kIoBufferSize));
  if (buffer == nullptr) throw Error(ErrorCode::kInternal, "out of memory while decoding audio");
  std::unique_ptr<AVIOContext, IoDeleter> io(
      avio_alloc_context(buffer, kIoBufferSize, 0, &reader, read_packet, nullptr, seek));
  if (!io) {
    av_free(buffer);
    throw Error(ErrorCode::kInternal, "out of memory while decoding audio");
  }

  AVFormatContext* fmt_raw = avformat_alloc_context();
  if (fmt_raw == nullptr) throw Error(ErrorCode::kInternal, "out of memory while decoding audio");
  fmt_raw->pb = io.get();
  fmt_raw->flags |= AVFMT_FLAG_CUSTOM_IO;
  AVDictionary* options = nullptr;
  av_dict_set(&options, "format_whitelist", kFormatWhitelist, 0);
  av_dict_set(&options, "protocol_whitelist", "", 0);  // nothing may be opened from inside
  const int open_rc = avformat_open_input(&fmt_raw, nullptr, nullptr, &options);
  av_dict_free(&options);
  if (open_rc < 0) {  // avformat_open_input frees the context on failure
    throw invalid(std::string("the data is not audio in a supported format (") + kSupported +
                  "): " + av_error(open_rc));
  }
  std::unique_ptr<AVFormatContext, FormatDeleter> fmt(fmt_raw);
  if (const int rc = avformat_find_stream_info(fmt.get(), nullptr); rc < 0) {
    throw invalid("the audio file is corrupt: " + av_error(rc));
  }
  const AVCodec* codec = nullptr;
  const int stream_index = av_find_best_stream(fmt.get(), AVMEDIA_TYPE_AUDIO, -1, -1, &codec, 0);
  if (stream_index < 0) {
    throw invalid(stream_index == AVERROR_DECODER_NOT_FOUND
                      ? "the audio codec of this file is not supported"
                      : "the file has no audio stream");
  }
  AVStream* stream = fmt->streams[stream_index];
  if (limits.max_seconds > 0 && stream->duration != AV_NOPTS_VALUE &&
      stream->duration * av_q2d(stream->time_base) > limits.max_seconds + 1.0) {
    throw Error(
        ErrorCode::kPayloadTooLarge,
        "the audio is " +
            std::to_string(static_cast<int64_t>(stream->duration * av_q2d(stream->time_base))) +
            " s long, more than --max-audio-seconds (" +
            std::to_string(static_cast<int64_t>(limits.max_seconds)) + " s)",
        field);
  }

  std::unique_ptr<AVCodecContext, CodecDeleter> dec(avcodec_alloc_context3(codec));
  if (!dec || avcodec_parameters_to_context(dec.get(), stream->codecpar) < 0) {
    throw Error(ErrorCode::kInternal, "cannot set up the audio decoder");
  }
  if (const int rc = avcodec_open2(dec.get(), codec, nullptr); rc < 0) {
    throw invalid("cannot decode the " + std::string(codec->name) + " audio: " + av_error(rc));
  }

  DecodedAudio out;
  out.container = fmt->iformat->name;
  out.codec = codec->name;
  out.source_rate = dec->sample_rate;
  out.source_channels = dec->ch_layout.nb_channels;
  const size_t max_samples =
      limits.max_seconds > 0 ? static_cast<size_t>(limits.max_seconds * kSpeechSampleRate) : 0;
  Resampler resampler(out.samples, field);
  std::unique_ptr<AVPacket, PacketDeleter> packet(av_packet_alloc());
  std::unique_ptr<AVFrame, FrameDeleter> frame(av_frame_alloc());
  if (!packet || !frame) throw Error(ErrorCode::kInternal, "out of memory while decoding audio");

  int bad_packets = 0;
  int last_error = 0;
  auto drain = [&] {
    for (;;) {
      const int rc = avcodec_receive_frame(dec.get(), frame.get());
      if (rc == AVERROR(EAGAIN) || rc == AVERROR_EOF) return;
      if (rc < 0) {
        ++bad_packets;
        last_error = rc;
        return;
      }
      // What is decoded, where the header said nothing usable: a FLAC STREAMINFO may claim
      // 0 Hz while its frames carry their own rate (found by fuzz_audio).
      if (out.source_rate <= 0 || out.source_channels <= 0) {
        out.source_rate = frame->sample_rate;
        out.source_channels = frame->ch_layout.nb_channels;
      }
      resampler.push(frame.get());
      av_frame_unref(frame.get());
      if (max_samples > 0 && out.samples.size() > max_samples) {
        throw Error(ErrorCode::kPayloadTooLarge,
                    "the audio is longer than --max-audio-seconds (" +
                        std::to_string(static_cast<int64_t>(limits.max_seconds)) + " s)",
                    field);
      }
    }
  };
  for (;;) {
    const int rc = av_read_frame(fmt.get(), packet.get());
    if (rc < 0) {
      // A truncated file ends early: keep what decoded, as ffmpeg does.
      if (rc != AVERROR_EOF) last_error = rc;
      break;
    }
    if (packet->stream_index == stream_index) {
      // A damaged packet is skipped; the rest of the stream may still be good.
      if (const int send = avcodec_send_packet(dec.get(), packet.get()); send < 0) {
        ++bad_packets;
        last_error = send;
      }
      drain();
    }
    av_packet_unref(packet.get());
  }
  avcodec_send_packet(dec.get(), nullptr);
  drain();
  resampler.flush();
  if (out.samples.empty()) {
    throw invalid(bad_packets > 0 || last_error != 0
                      ? "the audio stream is corrupt: nothing could be decoded (" +
                            av_error(last_error) + ")"
                      : "the audio file contains no samples");
  }
  if (max_samples > 0 && out.samples.size() > max_samples) {
    throw Error(ErrorCode::kPayloadTooLarge,
                "the audio is longer than --max-audio-seconds (" +
                    std::to_string(static_cast<int64_t>(limits.max_seconds)) + " s)",
                field);
  }
  return out;
}

DecodedAudio decode_audio_file(const std::string& path, const AudioLimits& limits) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) throw Error(ErrorCode::kNotFound, "cannot open the audio file '" + path + "'", "file");
  const auto size = static_cast<size_t>(in.tellg());
  if (limits.max_bytes > 0 && size > limits.max_bytes) {
    throw Error(ErrorCode::kPayloadTooLarge,
                "'" + path + "' is " + std::to_string(size) +
                    " bytes, more than the audio size limit (" + std::to_string(limits.max_bytes) +
                    ")",
                "file");
  }
  std::vector<uint8_t> bytes(size);
  in.seekg(0);
  in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(size));
  if (!in) throw Error(ErrorCode::kNotFound, "cannot read the audio file '" + path + "'", "file");
  try {
    return decode_audio(bytes, limits, "file");
  } catch (const Error& e) {
    throw Error(e.code(), "'" + path + "': " + e.what(), e.field());
  }
}

}  // namespace mmserve::media
