#include "audio_test_support.h"

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/channel_layout.h>
#include <libavutil/opt.h>
#include <libswresample/swresample.h>
}

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <numbers>
#include <stdexcept>

#include "synth/whisper_synth.h"

namespace mmserve::testing {
namespace {

void check(int rc, const char* what) {
  if (rc < 0) {
    char buf[AV_ERROR_MAX_STRING_SIZE] = {};
    av_strerror(rc, buf, sizeof(buf));
    throw std::runtime_error(std::string(what) + ": " + buf);
  }
}

// The rate the encoder will take: the samples' own when it supports it, else its first.
int encoder_rate(const AVCodec* codec, int rate) {
  if (codec->supported_samplerates == nullptr) return rate;
  for (const int* r = codec->supported_samplerates; *r != 0; ++r) {
    if (*r == rate) return rate;
  }
  return codec->supported_samplerates[0];
}

}  // namespace

std::vector<float> tone(double frequency, double seconds, int rate, int channels) {
  const auto n = static_cast<size_t>(seconds * rate);
  std::vector<float> out(n * static_cast<size_t>(channels));
  for (size_t i = 0; i < n; ++i) {
    const auto v = static_cast<float>(
        0.5 * std::sin(2.0 * std::numbers::pi * frequency * static_cast<double>(i) / rate));
    for (int c = 0; c < channels; ++c) out[i * static_cast<size_t>(channels) + c] = v;
  }
  return out;
}

std::vector<uint8_t> encode_audio(const std::vector<float>& interleaved, int rate, int channels,
                                  const std::string& container, const std::string& codec_name) {
  const AVCodec* codec = avcodec_find_encoder_by_name(codec_name.c_str());
  if (codec == nullptr) throw std::runtime_error("no encoder " + codec_name);
  AVFormatContext* oc = nullptr;
  check(avformat_alloc_output_context2(&oc, nullptr, container.c_str(), nullptr), "muxer");
  check(avio_open_dyn_buf(&oc->pb), "dyn buf");
  AVStream* stream = avformat_new_stream(oc, nullptr);
  AVCodecContext* enc = avcodec_alloc_context3(codec);
  enc->sample_rate = encoder_rate(codec, rate);
  enc->sample_fmt = codec->sample_fmts != nullptr ? codec->sample_fmts[0] : AV_SAMPLE_FMT_FLT;
  av_channel_layout_default(&enc->ch_layout, channels);
  enc->bit_rate = 48000L * channels;  // modest: Vorbis refuses 128k for 22 kHz mono
  enc->time_base = {1, enc->sample_rate};
  if (oc->oformat->flags & AVFMT_GLOBALHEADER) enc->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
  check(avcodec_open2(enc, codec, nullptr), "open encoder");
  check(avcodec_parameters_from_context(stream->codecpar, enc), "parameters");
  stream->time_base = enc->time_base;
  check(avformat_write_header(oc, nullptr), "header");

  // Convert (and resample when the encoder wants another rate) into the encoder's format.
  SwrContext* swr = nullptr;
  AVChannelLayout layout = {};
  av_channel_layout_default(&layout, channels);
  check(swr_alloc_set_opts2(&swr, &enc->ch_layout, enc->sample_fmt, enc->sample_rate, &layout,
                            AV_SAMPLE_FMT_FLT, rate, 0, nullptr),
        "swr");
  check(swr_init(swr), "swr init");
  const int frame_size =
      (codec->capabilities & AV_CODEC_CAP_VARIABLE_FRAME_SIZE) || enc->frame_size == 0
          ? 1024
          : enc->frame_size;
  AVPacket* packet = av_packet_alloc();
  int64_t pts = 0;
  auto drain = [&] {
    for (;;) {
      const int rc = avcodec_receive_packet(enc, packet);
      if (rc == AVERROR(EAGAIN) || rc == AVERROR_EOF) return;
      check(rc, "encode");
      av_packet_rescale_ts(packet, enc->time_base, stream->time_base);
      packet->stream_index = stream->index;
      check(av_interleaved_write_frame(oc, packet), "write");
    }
  };
  auto send = [&](AVFrame* frame) {
    check(avcodec_send_frame(enc, frame), "send");
    drain();
  };
  // Everything converted up front, then cut into frames of the encoder's size.
  const int in_samples = static_cast<int>(interleaved.size() / static_cast<size_t>(channels));
  const int out_capacity = swr_get_out_samples(swr, in_samples) + 64;
  AVFrame* all = av_frame_alloc();
  all->format = enc->sample_fmt;
  all->nb_samples = out_capacity;
  av_channel_layout_copy(&all->ch_layout, &enc->ch_layout);
  check(av_frame_get_buffer(all, 0), "buffer");
  const auto* in = reinterpret_cast<const uint8_t*>(interleaved.data());
  int converted = swr_convert(swr, all->data, out_capacity, &in, in_samples);
  check(converted, "convert");
  const bool planar = av_sample_fmt_is_planar(enc->sample_fmt) != 0;
  const int bytes = av_get_bytes_per_sample(enc->sample_fmt);
  {  // what the resampler still holds
    uint8_t* tail[AV_NUM_DATA_POINTERS] = {};
    for (int plane = 0; plane < (planar ? channels : 1); ++plane) {
      tail[plane] =
          all->data[plane] + static_cast<size_t>(converted) * (planar ? bytes : bytes * channels);
    }
    const int more = swr_convert(swr, tail, out_capacity - converted, nullptr, 0);
    check(more, "flush");
    converted += more;
  }
  for (int offset = 0; offset < converted; offset += frame_size) {
    const int n = std::min(frame_size, converted - offset);
    AVFrame* frame = av_frame_alloc();
    frame->format = enc->sample_fmt;
    frame->nb_samples = n;
    av_channel_layout_copy(&frame->ch_layout, &enc->ch_layout);
    check(av_frame_get_buffer(frame, 0), "frame buffer");
    for (int plane = 0; plane < (planar ? channels : 1); ++plane) {
      const int width = planar ? bytes : bytes * channels;
      std::memcpy(frame->data[plane], all->data[plane] + static_cast<size_t>(offset) * width,
                  static_cast<size_t>(n) * width);
    }
    frame->pts = pts;
    pts += n;
    send(frame);
    av_frame_free(&frame);
  }
  send(nullptr);
  check(av_write_trailer(oc), "trailer");
  uint8_t* buf = nullptr;
  const int size = avio_close_dyn_buf(oc->pb, &buf);
  std::vector<uint8_t> out(buf, buf + size);
  av_free(buf);
  av_frame_free(&all);
  av_packet_free(&packet);
  swr_free(&swr);
  av_channel_layout_uninit(&layout);
  avcodec_free_context(&enc);
  oc->pb = nullptr;
  avformat_free_context(oc);
  return out;
}

std::vector<uint8_t> wav_file(std::span<const float> mono, int rate) {
  std::vector<uint8_t> out;
  auto put32 = [&](uint32_t v) {
    for (int i = 0; i < 4; ++i) out.push_back(static_cast<uint8_t>(v >> (8 * i)));
  };
  auto put16 = [&](uint16_t v) {
    out.push_back(static_cast<uint8_t>(v));
    out.push_back(static_cast<uint8_t>(v >> 8));
  };
  const auto data_bytes = static_cast<uint32_t>(mono.size() * 2);
  out.insert(out.end(), {'R', 'I', 'F', 'F'});
  put32(36 + data_bytes);
  out.insert(out.end(), {'W', 'A', 'V', 'E', 'f', 'm', 't', ' '});
  put32(16);
  put16(1);  // PCM
  put16(1);  // mono
  put32(static_cast<uint32_t>(rate));
  put32(static_cast<uint32_t>(rate * 2));
  put16(2);
  put16(16);
  out.insert(out.end(), {'d', 'a', 't', 'a'});
  put32(data_bytes);
  for (float s : mono) {
    const auto v = static_cast<int16_t>(std::lround(std::clamp(s, -1.0f, 1.0f) * 32767.0f));
    put16(static_cast<uint16_t>(v));
  }
  return out;
}

double dominant_frequency(std::span<const float> samples, int rate, double lo, double hi,
                          double step) {
  double best = 0;
  double best_f = lo;
  for (double f = lo; f <= hi; f += step) {
    const double w = 2.0 * std::numbers::pi * f / rate;
    const double coeff = 2.0 * std::cos(w);
    double s1 = 0, s2 = 0;
    for (float x : samples) {
      const double s0 = x + coeff * s1 - s2;
      s2 = s1;
      s1 = s0;
    }
    const double power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
    if (power > best) {
      best = power;
      best_f = f;
    }
  }
  return best_f;
}

const std::string& small_whisper_model(bool english) {
  static std::mutex mutex;
  static std::string paths[2];
  std::lock_guard lock(mutex);
  std::string& path = paths[english ? 1 : 0];
  if (path.empty()) {
    path =
        (std::filesystem::temp_directory_path() /
         ("mmserve-test-whisper-" + std::to_string(::getpid()) + (english ? "-en" : "") + ".bin"))
            .string();
    synth::WhisperSynthOptions o;
    o.shape.n_audio_state = o.shape.n_text_state = 64;
    o.shape.n_audio_head = o.shape.n_text_head = 2;
    o.shape.n_audio_layer = o.shape.n_text_layer = 1;
    if (english) o.shape.n_vocab = 51864;
    synth::write_synthetic_whisper(path, o);
    // Removed at exit: each test process makes its own.
    static struct Cleanup {
      ~Cleanup() {
        for (const auto& p : paths) {
          if (!p.empty()) std::filesystem::remove(p);
        }
      }
    } cleanup;
  }
  return path;
}

}  // namespace mmserve::testing
