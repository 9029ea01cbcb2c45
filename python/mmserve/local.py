"""Local mode: the engine in this process, through the compiled extension ``mmserve._native``.

The extension is built by the project's CMake (src/python) and bundled with the engine libraries
by ``pip install ./python``. Without it, everything else in the package works and local mode
raises LocalModeUnavailable saying why.

The extension runs the server's runtime in process: the text model (with its projector, for
images) and the whisper.cpp model, their schedulers, and the server's request rules (prompts,
caption defaults, image and audio decoding), so both modes answer alike.

Thread-safety: a LocalBackend may be used from several threads at once. Text and image
requests share one continuous batch (``parallel`` sequences decoded together, the rest wait
their turn), transcriptions the speech scheduler's whisper states; the extension releases the
GIL while it loads, computes or waits.
"""
from __future__ import annotations

import importlib
import os
import re
import warnings
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

from ._inputs import flatten_messages
from ._stream import TextStream
from .errors import (DeviceUnavailable, InvalidInput, LocalModeUnavailable, ModelNotLoaded,
                     error_from_response)

_POLL_MS = 100  # how long one wait inside the extension lasts before Python gets control back


def load_native() -> Any:
    """The extension module, or LocalModeUnavailable explaining why it cannot be used."""
    try:
        return importlib.import_module("mmserve._native")
    except ImportError as e:
        missing = isinstance(e, ModuleNotFoundError) and e.name == "mmserve._native"
        why = ("this installation of mmserve has no compiled extension (it was installed "
               "remote-only)" if missing else f"its compiled extension cannot load: {e}")
        raise LocalModeUnavailable(
            f"local mode is unavailable: {why}. Reinstall from the mmserve repository with "
            f"`pip install ./python` (it builds the extension with CMake), or set "
            f"MMSERVE_EXTENSION_DIR to a build's python/ folder; remote mode works without "
            f"it.") from e


def _translate(native: Any, e: BaseException) -> BaseException:
    if isinstance(e, native.EngineError):
        return error_from_response(None, {"error": {"message": str(e), "type": e.code,
                                                    "param": e.param}})
    return e


def _call(native: Any, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    try:
        return fn(*args, **kwargs)
    except native.EngineError as e:
        raise _translate(native, e) from None


def resolve_device(native: Any, device: str, fallback: bool) -> Tuple[int, str]:
    """(GPU layers, device name) for "cpu", "cuda" or "cuda:N", checked against ggml's devices."""
    spec = device.strip().lower() if isinstance(device, str) else ""
    if spec == "cpu":
        return 0, "cpu"
    match = re.fullmatch(r"cuda(?::(\d+))?", spec)
    if not match:
        raise InvalidInput(f"device {device!r} is not supported: use 'cpu' or 'cuda:N'",
                           param="device")
    index = int(match.group(1) or 0)
    devices = native.devices()
    cuda = [d for d in devices if d["backend"].upper() == "CUDA"]
    if index == 0 and len(cuda) == 1:
        return -1, "cuda:0"
    found = ", ".join(f"{d['name']} ({d['description']})" for d in devices) or "none"
    if index < len(cuda):
        # llama.cpp splits layers over every visible GPU; the engine cannot pin one yet.
        problem = (f"this process sees {len(cuda)} CUDA devices and mmserve's engine cannot pin "
                   f"one of them yet: start Python with CUDA_VISIBLE_DEVICES={index} and use "
                   f"device='cuda:0'")
    elif cuda:
        problem = f"device {device!r} is not available: the CUDA devices here are {found}"
    else:
        backends = native.engine_versions()["backends"]
        if "CUDA" not in backends.upper().split(","):
            why = (f"this mmserve was built without CUDA (ggml backends: {backends}); install "
                   f"it with `MMSERVE_CMAKE_ARGS=-DMMSERVE_CUDA=ON pip install ./python` on a "
                   f"machine with the CUDA toolkit")
        else:
            why = "the CUDA backend found no GPU"
        problem = f"device {device!r} is not available: {why}. Devices here: {found}"
    if fallback:
        warnings.warn(f"{problem}; falling back to the CPU (fallback=True)", RuntimeWarning,
                      stacklevel=4)
        return 0, "cpu"
    raise DeviceUnavailable(f"{problem}. Use device='cpu', or pass fallback=True to fall back "
                            f"to the CPU", param="device")


class LocalBackend:
    """The models loaded in this process; see MultiModalModel for the public API."""

    def __init__(self, model: Optional[str], mmproj: Optional[str], whisper_model: Optional[str],
                 device: str, threads: Optional[int], fallback: bool, parallel: int,
                 ctx_size: Optional[int], vad_model: Optional[str] = None,
                 speech_threads: Optional[int] = None) -> None:
        native = load_native()
        self._native = native
        gpu_layers, self.device = resolve_device(native, device, fallback)
        for name, path in (("mmproj", mmproj), ("whisper_model", whisper_model),
                           ("vad_model", vad_model)):
            if path is not None and os.fspath(path) != "" and not os.path.isfile(os.fspath(path)):
                raise ModelNotLoaded(f"{name} file not found: {os.fspath(path)}", param=name)
        for name, value in (("threads", threads), ("parallel", parallel), ("ctx_size", ctx_size),
                            ("speech_threads", speech_threads)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise InvalidInput(f"{name} must be an int, got {value!r}", param=name)
        # None: the engine looks in the model directory when the text model comes from there.
        self._engine = _call(
            native, native.Engine, model=os.fspath(model) if model else "",
            mmproj=os.fspath(mmproj) if mmproj is not None else None,
            whisper_model=os.fspath(whisper_model) if whisper_model is not None else None,
            vad_model=os.fspath(vad_model) if vad_model is not None else "",
            gpu_layers=gpu_layers, threads=threads or 0, parallel=parallel,
            ctx_size=ctx_size or 0, speech_threads=speech_threads or 0)
        info = self._engine.info()
        self.mmproj, self.whisper_model = info["mmproj"], info["whisper_model"]

    def info(self) -> Dict[str, Any]:
        info = dict(_call(self._native, self._engine.info))
        info.update(mode="local", device=self.device)
        return info

    # -- text ---------------------------------------------------------------------------------

    def generate(self, prompt: str, params: Dict[str, Any], stream: bool,
                 system: Optional[str], raw: Optional[bool]) -> Any:
        completion = _call(self._native, self._engine.generate, prompt, raw=bool(raw),
                           system=system, **params)
        return self._deliver(completion, stream)

    def chat(self, messages: List[Dict[str, Any]], params: Dict[str, Any], stream: bool) -> Any:
        completion = _call(self._native, self._engine.chat, flatten_messages(messages), **params)
        return self._deliver(completion, stream)

    def _deliver(self, completion: Any, stream: bool) -> Any:
        if stream:
            return TextStream(lambda s: self._pieces(completion, s), completion.cancel)
        try:
            while not completion.wait(_POLL_MS):
                pass  # back in Python between waits, so Ctrl-C interrupts
        except BaseException:
            completion.cancel()
            raise
        return _call(self._native, completion.result)["text"]

    def _pieces(self, completion: Any, stream: TextStream) -> Iterator[str]:
        while True:
            text, finished = completion.next(_POLL_MS)
            if text:
                yield text
            if finished:
                break
        result = _call(self._native, completion.result)
        stream._finish(result["finish_reason"], result["usage"])

    # -- images and audio ---------------------------------------------------------------------

    def describe(self, image: bytes, prompt: Optional[str], params: Dict[str, Any],
                 system: Optional[str] = None, raw: Optional[bool] = None) -> str:
        completion = _call(self._native, self._engine.describe, image, prompt=prompt,
                           raw=bool(raw), system=system, **params)
        return self._deliver(completion, False)

    def transcribe(self, audio: bytes, language: Optional[str], segments: bool,
                   translate: bool = False, prompt: Optional[str] = None,
                   words: bool = False) -> Any:
        job = _call(self._native, self._engine.transcribe, audio, language=language or "",
                    translate=translate, prompt=prompt or "", words=words, timestamps=segments)
        try:
            while not job.wait(_POLL_MS):
                pass  # back in Python between waits, so Ctrl-C interrupts
        except BaseException:
            job.cancel()
            raise
        result = _call(self._native, job.result, segments=segments or words, words=words)
        return result["segments"] if segments else result["text"]

    def close(self) -> None:
        self._engine.close()
