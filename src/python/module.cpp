// mmserve._native: the pybind11 binding of LocalEngine for the Python SDK's local mode
// (python/mmserve/local.py is its only intended caller; it is not a public API).
//
// Every call that loads, computes or waits releases the GIL, so other Python threads run
// meanwhile. C++ mmserve::Error surfaces as _native.EngineError with `code` (the server's error
// type name, e.g. "invalid_request_error") and `param` (the field), which the SDK maps to its
// typed exceptions exactly as it maps the server's JSON errors.
#include <dlfcn.h>
#include <ggml-backend.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <filesystem>
#include <tuple>

#include "core/error.h"
#include "engine/backend.h"
#include "engine/versions.h"
#include "python/local_engine.h"

namespace py = pybind11;
using mmserve::python::Completion;
using mmserve::python::LocalEngine;
using mmserve::python::Transcription;

namespace {

PyObject* g_engine_error = nullptr;  // the EngineError type; owned by the module

// Model text is well-formed UTF-8 (TextStream guarantees it); "replace" keeps a surprise from
// becoming an exception in the middle of a stream.
py::str to_str(const std::string& s) {
  PyObject* obj = PyUnicode_DecodeUTF8(s.data(), static_cast<Py_ssize_t>(s.size()), "replace");
  if (obj == nullptr) throw py::error_already_set();
  return py::reinterpret_steal<py::str>(obj);
}

void raise_engine_error(const mmserve::Error& e) {
  py::object type = py::reinterpret_borrow<py::object>(g_engine_error);
  py::object exc = type(to_str(e.what()));
  exc.attr("code") = mmserve::error_code_name(e.code());
  exc.attr("param") = e.field().empty() ? py::object(py::none()) : py::object(py::str(e.field()));
  PyErr_SetObject(g_engine_error, exc.ptr());
}

// Portable builds ship ggml's CPU/GPU backends as modules that ggml looks for beside the
// executable, which for Python is the interpreter. Look beside libggml instead (the package
// directory once installed, the engine prefix in a build tree).
void load_backends_beside_libggml() {
  if (ggml_backend_reg_count() > 0) return;  // linked in (native builds)
  Dl_info info{};
  if (dladdr(reinterpret_cast<void*>(&ggml_backend_load_all_from_path), &info) != 0 &&
      info.dli_fname != nullptr) {
    const auto dir = std::filesystem::path(info.dli_fname).parent_path().string();
    ggml_backend_load_all_from_path(dir.c_str());
  }
}

const char* device_type_name(enum ggml_backend_dev_type type) {
  switch (type) {
    case GGML_BACKEND_DEVICE_TYPE_CPU: return "cpu";
    case GGML_BACKEND_DEVICE_TYPE_GPU: return "gpu";
    case GGML_BACKEND_DEVICE_TYPE_IGPU: return "igpu";
    case GGML_BACKEND_DEVICE_TYPE_ACCEL: return "accel";
    default: return "other";
  }
}

// The devices ggml's backend registry offers in this process (one per CUDA GPU in CUDA builds).
py::list devices() {
  mmserve::engine::ensure_backend_initialized();
  py::list out;
  for (size_t i = 0; i < ggml_backend_dev_count(); ++i) {
    ggml_backend_dev_t dev = ggml_backend_dev_get(i);
    size_t free = 0, total = 0;
    ggml_backend_dev_memory(dev, &free, &total);
    py::dict d;
    d["name"] = ggml_backend_dev_name(dev);
    d["description"] = to_str(ggml_backend_dev_description(dev));
    d["type"] = device_type_name(ggml_backend_dev_type(dev));
    d["backend"] = ggml_backend_reg_name(ggml_backend_dev_backend_reg(dev));
    d["memory_total"] = total;
    d["memory_free"] = free;
    out.append(d);
  }
  return out;
}

py::dict result_dict(const mmserve::python::CompletionResult& r) {
  py::dict d;
  d["text"] = to_str(r.text);
  d["finish_reason"] = r.finish_reason;
  d["usage"] = py::dict(py::arg("prompt_tokens") = r.prompt_tokens,
                        py::arg("completion_tokens") = r.completion_tokens);
  d["timings"] = py::dict(py::arg("queue_ms") = r.queue_ms, py::arg("prompt_ms") = r.prompt_ms,
                          py::arg("generate_ms") = r.generate_ms);
  return d;
}

mmserve::python::TextOptions text_options(std::optional<int64_t> max_tokens,
                                          std::optional<double> temperature,
                                          std::optional<int64_t> top_k, std::optional<double> top_p,
                                          std::optional<double> min_p,
                                          std::optional<double> repeat_penalty,
                                          std::optional<int64_t> seed,
                                          std::vector<std::string> stop, bool ignore_eos) {
  return {.temperature = temperature,
          .top_p = top_p,
          .min_p = min_p,
          .repeat_penalty = repeat_penalty,
          .top_k = top_k,
          .seed = seed,
          .stop = std::move(stop),
          .ignore_eos = ignore_eos,
          .max_tokens = max_tokens};
}

// A transcript as the server's speech-transcribe answer has it: text, language, duration and
// (with timestamps) segments, each with its words when they were asked for.
py::dict transcript_dict(const mmserve::engine::Transcript& t, bool segments, bool words) {
  py::dict d;
  d["text"] = to_str(t.text());
  d["language"] = t.language;
  d["duration"] = t.duration;
  if (segments) {
    py::list list;
    for (const auto& s : t.segments) {
      py::dict seg;
      seg["start"] = s.start;
      seg["end"] = s.end;
      seg["text"] = to_str(s.text);
      if (words) {
        py::list ws;
        for (const auto& w : s.words) {
          ws.append(py::dict(py::arg("word") = to_str(w.text), py::arg("start") = w.start,
                             py::arg("end") = w.end, py::arg("probability") = w.probability));
        }
        seg["words"] = ws;
      }
      list.append(seg);
    }
    d["segments"] = list;
  }
  return d;
}

// A chat message from Python: (role, [(is_image, value, field, type_field)]).
using MessagePart = std::tuple<bool, std::string, std::string, std::string>;
using MessageIn = std::pair<std::string, std::vector<MessagePart>>;

#define MMSERVE_TEXT_OPTION_ARGS                                                               \
  py::arg("max_tokens") = py::none(), py::arg("temperature") = py::none(),                     \
  py::arg("top_k") = py::none(), py::arg("top_p") = py::none(), py::arg("min_p") = py::none(), \
  py::arg("repeat_penalty") = py::none(), py::arg("seed") = py::none(),                        \
  py::arg("stop") = std::vector<std::string>{}, py::arg("ignore_eos") = false

}  // namespace

PYBIND11_MODULE(_native, m) {
  m.doc() =
      "mmserve's engine in-process (the Python SDK's local mode); use mmserve.MultiModalModel";

  g_engine_error = PyErr_NewExceptionWithDoc(
      "mmserve._native.EngineError",
      "An error from the engine; `code` is the error type name, `param` the field or None.",
      PyExc_RuntimeError, nullptr);
  if (g_engine_error == nullptr) throw py::error_already_set();
  m.add_object("EngineError", py::handle(g_engine_error));  // the module keeps the reference
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const mmserve::Error& e) {
      raise_engine_error(e);
    }
  });

  load_backends_beside_libggml();

  m.def(
      "version", [] { return std::string(mmserve::version()); },
      "mmserve's version (as `mmserve --version`).");
  m.def(
      "engine_versions",
      [] {
        py::dict d;
        d["llama.cpp"] = mmserve::llama_cpp_version();
        d["whisper.cpp"] = mmserve::whisper_cpp_version();
        d["ggml"] = mmserve::ggml_version_string();
        d["backends"] = mmserve::backend_names();
        return d;
      },
      "Versions of the engines linked in this process, and ggml's backends.");
  m.def("devices", &devices, "ggml's devices: name, description, type, backend, memory.");
  m.def("live_engines", &LocalEngine::live_count,
        "Engines in this process that still hold a loaded model.");
  // What this module can run in process given the models (an Engine's info() says what the
  // models it loaded can run).
  m.def("capabilities", [] {
    py::dict d;
    d["text"] = true;
    d["vision"] = true;
    d["speech"] = true;
    return d;
  });

  py::class_<Completion>(m, "Completion")
      .def(
          "next",
          [](Completion& c, int timeout_ms) {
            bool finished = false;
            std::string text;
            {
              py::gil_scoped_release release;
              text = c.next(std::chrono::milliseconds(timeout_ms), finished);
            }
            return py::make_tuple(to_str(text), finished);
          },
          py::arg("timeout_ms") = 100,
          "Waits up to timeout_ms for text: returns (text since the last call, finished).")
      .def(
          "wait",
          [](Completion& c, int timeout_ms) {
            py::gil_scoped_release release;
            const auto until =
                std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
            bool finished = false;
            do {
              const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                  until - std::chrono::steady_clock::now());
              c.next(std::max(left, std::chrono::milliseconds(0)), finished);
            } while (!finished && std::chrono::steady_clock::now() < until);
            return finished;
          },
          py::arg("timeout_ms") = 100,
          "Waits up to timeout_ms for the end; True once finished. The text is in result(), not "
          "next(): use one or the other.")
      .def(
          "result", [](const Completion& c) { return result_dict(c.result()); },
          "The outcome once finished: {text, finish_reason, usage, timings}; raises EngineError "
          "when the request failed.")
      .def("cancel", &Completion::cancel, "Stops the request; it finishes soon after.");

  py::class_<Transcription>(m, "Transcription")
      .def(
          "wait",
          [](Transcription& t, int timeout_ms) {
            py::gil_scoped_release release;
            return t.wait(std::chrono::milliseconds(timeout_ms));
          },
          py::arg("timeout_ms") = 100,
          "Waits up to timeout_ms; True once the transcript (or the failure) is in.")
      .def(
          "result",
          [](const Transcription& t, bool segments, bool words) {
            mmserve::engine::Transcript transcript;
            {
              py::gil_scoped_release release;
              transcript = t.result();
            }
            return transcript_dict(transcript, segments, words);
          },
          py::arg("segments") = false, py::arg("words") = false,
          "The transcript once finished: {text, language, duration[, segments]}; raises "
          "EngineError when it failed.")
      .def("cancel", &Transcription::cancel, "Stops the transcription soon.");

  py::class_<LocalEngine>(m, "Engine")
      .def(py::init([](const std::string& model, std::optional<std::string> mmproj,
                       std::optional<std::string> whisper_model, const std::string& vad_model,
                       int gpu_layers, int threads, int parallel, int ctx_size, int batch_size,
                       int speech_threads, int speech_parallel) {
             mmserve::python::EngineOptions o;
             o.model_path = model;
             o.mmproj_path = std::move(mmproj);
             o.whisper_path = std::move(whisper_model);
             o.vad_path = vad_model;
             o.gpu_layers = gpu_layers;
             o.threads = threads;
             o.parallel = parallel;
             o.ctx_size = ctx_size;
             o.batch_size = batch_size;
             o.speech_threads = speech_threads;
             o.speech_parallel = speech_parallel;
             return std::make_unique<LocalEngine>(o);
           }),
           py::arg("model") = "", py::arg("mmproj") = py::none(),
           py::arg("whisper_model") = py::none(), py::arg("vad_model") = "",
           py::arg("gpu_layers") = 0, py::arg("threads") = 0, py::arg("parallel") = 1,
           py::arg("ctx_size") = 0, py::arg("batch_size") = 512, py::arg("speech_threads") = 0,
           py::arg("speech_parallel") = 2, py::call_guard<py::gil_scoped_release>(),
           "Loads a GGUF text model (empty: $MMSERVE_MODEL, then the model directory), its "
           "projector and a whisper.cpp model (None: from the model directory when the text "
           "model comes from there; empty: none).")
      .def("info",
           [](const LocalEngine& e) {
             const auto i = e.info();
             py::dict d;
             d["model"] = i.model_id;
             d["path"] = i.model_path;
             d["architecture"] = i.architecture;
             d["n_ctx"] = i.n_ctx;
             d["sequence_capacity"] = i.sequence_capacity;
             d["parallel"] = i.parallel;
             d["chat_template"] = i.has_chat_template;
             d["mmproj"] = i.mmproj_path.empty() ? py::object(py::none()) : py::str(i.mmproj_path);
             d["whisper_model"] =
                 i.whisper_path.empty() ? py::object(py::none()) : py::str(i.whisper_path);
             d["capabilities"] = py::dict(py::arg("text") = i.text, py::arg("vision") = i.vision,
                                          py::arg("speech") = i.speech);
             return d;
           })
      .def(
          "generate",
          [](LocalEngine& e, const std::string& input, bool raw, std::optional<std::string> system,
             std::optional<int64_t> max_tokens, std::optional<double> temperature,
             std::optional<int64_t> top_k, std::optional<double> top_p, std::optional<double> min_p,
             std::optional<double> repeat_penalty, std::optional<int64_t> seed,
             std::vector<std::string> stop, bool ignore_eos) {
            const auto o = text_options(max_tokens, temperature, top_k, top_p, min_p,
                                        repeat_penalty, seed, std::move(stop), ignore_eos);
            py::gil_scoped_release release;
            return e.submit_text(input, raw, system, o);
          },
          py::arg("input"), py::arg("raw") = false, py::arg("system") = py::none(),
          MMSERVE_TEXT_OPTION_ARGS,
          "Submits a text-gen request (as POST /v1/inference) and returns its Completion.")
      .def(
          "chat",
          [](LocalEngine& e, const std::vector<MessageIn>& messages,
             std::optional<int64_t> max_tokens, std::optional<double> temperature,
             std::optional<int64_t> top_k, std::optional<double> top_p, std::optional<double> min_p,
             std::optional<double> repeat_penalty, std::optional<int64_t> seed,
             std::vector<std::string> stop, bool ignore_eos) {
            std::vector<mmserve::pipeline::Message> chat;
            for (const auto& [role, parts] : messages) {
              mmserve::pipeline::Message m{.role = role, .parts = {}};
              for (const auto& [is_image, value, field, type_field] : parts) {
                m.parts.push_back({.is_image = is_image,
                                   .value = value,
                                   .field = field,
                                   .type_field = type_field});
              }
              chat.push_back(std::move(m));
            }
            const auto o = text_options(max_tokens, temperature, top_k, top_p, min_p,
                                        repeat_penalty, seed, std::move(stop), ignore_eos);
            py::gil_scoped_release release;
            return e.submit_chat(chat, o);
          },
          py::arg("messages"), MMSERVE_TEXT_OPTION_ARGS,
          "Submits [(role, [(is_image, text or image URL, field, type field)])] through the "
          "chat template (as POST /v1/chat/completions).")
      .def(
          "describe",
          [](LocalEngine& e, const py::bytes& image, std::optional<std::string> prompt, bool raw,
             std::optional<std::string> system, std::optional<int64_t> max_tokens,
             std::optional<double> temperature, std::optional<int64_t> top_k,
             std::optional<double> top_p, std::optional<double> min_p,
             std::optional<double> repeat_penalty, std::optional<int64_t> seed,
             std::vector<std::string> stop, bool ignore_eos) {
            std::string data = image;
            const auto o = text_options(max_tokens, temperature, top_k, top_p, min_p,
                                        repeat_penalty, seed, std::move(stop), ignore_eos);
            py::gil_scoped_release release;
            return e.submit_caption(std::move(data), prompt, raw, system, o);
          },
          py::arg("image"), py::arg("prompt") = py::none(), py::arg("raw") = false,
          py::arg("system") = py::none(), MMSERVE_TEXT_OPTION_ARGS,
          "Submits an image-caption request (the image file's bytes; as POST /v1/inference) and "
          "returns its Completion.")
      .def(
          "transcribe",
          [](LocalEngine& e, const py::bytes& audio, const std::string& language, bool translate,
             const std::string& prompt, bool words, bool timestamps) {
            std::string data = audio;
            mmserve::python::SpeechOptions o;
            o.language = language;
            o.translate = translate;
            o.prompt = prompt;
            o.words = words;
            o.timestamps = timestamps;
            py::gil_scoped_release release;
            return e.submit_transcription(std::move(data), o);
          },
          py::arg("audio"), py::arg("language") = "", py::arg("translate") = false,
          py::arg("prompt") = "", py::arg("words") = false, py::arg("timestamps") = false,
          "Submits a speech-transcribe request (the audio file's bytes; as POST /v1/inference) "
          "and returns its Transcription.")
      .def("close", &LocalEngine::close, py::call_guard<py::gil_scoped_release>(),
           "Cancels running requests and frees the model. Idempotent.")
      .def_property_readonly("loaded", &LocalEngine::loaded);
}
