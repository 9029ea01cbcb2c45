"""MultiModalModel: one API over a remote mmserve server or the engine in this process."""
from __future__ import annotations

import os
from typing import Any, Dict, List, Optional, Union

from ._inputs import Media, chat_messages, read_media, require_text, sampling_params
from ._stream import TextStream
from .errors import InvalidInput, ModelNotLoaded
from .remote import DEFAULT_BASE_URL, DEFAULT_TIMEOUT, RemoteBackend

_REMOTE_OPTIONS = ("base_url", "api_key", "timeout", "ca_file")
_LOCAL_OPTIONS = ("model", "mmproj", "whisper_model", "device", "threads", "fallback", "parallel",
                  "ctx_size", "vad_model", "speech_threads")


class MultiModalModel:
    """Text generation, chat, image description and speech transcription with mmserve.

    ``mode="remote"`` (the default) talks to a running ``mmserve serve`` over its REST API with
    the standard library only::

        MultiModalModel(mode="remote", base_url="http://localhost:8080", api_key=None,
                        timeout=600, ca_file=None)

    ``api_key`` defaults to ``$MMSERVE_API_KEY``. With ``base_url="https://..."`` the server's
    certificate is checked against the system's authorities, or against ``ca_file`` (a PEM file)
    for a server with its own (``serve --tls-cert``). ``mode="local"`` loads the model into this
    process (the compiled extension; the same engine and batching as the server)::

        MultiModalModel(mode="local", model="model.gguf", mmproj=None, whisper_model=None,
                        device="cpu", threads=None, fallback=False, parallel=1, ctx_size=None,
                        vad_model=None, speech_threads=None)

    ``model`` defaults to ``$MMSERVE_MODEL``, then the first ``*.gguf`` in the model directory,
    as the CLI does. ``mmproj`` (the projector: ``describe`` and image parts in ``chat``) and
    ``whisper_model`` (a whisper.cpp model: ``transcribe``) are loaded beside it; when the text
    model comes from the model directory, unset ones are found there too (the first
    ``mmproj*.gguf`` and the first ``ggml-*.bin``, as ``mmserve pull`` names them); ``""`` loads
    none. ``vad_model`` and ``speech_threads`` are the server's ``--vad-model`` and
    ``--speech-threads``. ``device`` is ``"cpu"`` or ``"cuda:N"``; a CUDA device this machine or build
    lacks raises DeviceUnavailable unless ``fallback=True``, which uses the CPU with a warning.
    ``parallel`` sequences are decoded together when several threads call at once.

    Both modes answer the same request the same way (greedy output is identical). Errors are the
    typed exceptions of ``mmserve.errors``. Use it as a context manager, or call ``close()``,
    to free the model (local mode) at a known point.

    Thread-safety: methods may be called from several threads at once in both modes.
    """

    def __init__(self, mode: str = "remote", *, base_url: Optional[str] = None,
                 api_key: Optional[str] = None, timeout: Optional[float] = None,
                 ca_file: Optional[str] = None,
                 model: Union[str, "os.PathLike[str]", None] = None,
                 mmproj: Union[str, "os.PathLike[str]", None] = None,
                 whisper_model: Union[str, "os.PathLike[str]", None] = None,
                 device: Optional[str] = None, threads: Optional[int] = None,
                 fallback: Optional[bool] = None, parallel: Optional[int] = None,
                 ctx_size: Optional[int] = None,
                 vad_model: Union[str, "os.PathLike[str]", None] = None,
                 speech_threads: Optional[int] = None) -> None:
        given = {k: v for k, v in locals().items()
                 if k in _REMOTE_OPTIONS + _LOCAL_OPTIONS and v is not None}
        if mode not in ("remote", "local"):
            raise InvalidInput(f"mode must be 'remote' or 'local', got {mode!r}", param="mode")
        other = _LOCAL_OPTIONS if mode == "remote" else _REMOTE_OPTIONS
        misplaced = [k for k in other if k in given]
        if misplaced:
            raise TypeError(f"{', '.join(misplaced)} do(es) not apply to mode={mode!r}")
        self.mode = mode
        self._closed = False
        self._backend: Any
        if mode == "remote":
            self._backend = RemoteBackend(
                base_url or DEFAULT_BASE_URL,
                api_key if api_key is not None else os.environ.get("MMSERVE_API_KEY") or None,
                DEFAULT_TIMEOUT if timeout is None else timeout, ca_file)
        else:
            from .local import LocalBackend  # imports the extension only when asked for
            self._backend = LocalBackend(model, mmproj, whisper_model, device or "cpu", threads,
                                         bool(fallback), 1 if parallel is None else parallel,
                                         ctx_size, vad_model, speech_threads)

    def __repr__(self) -> str:
        where = (self._backend.client.base_url if self.mode == "remote"
                 else getattr(self._backend, "device", "?"))
        state = ", closed" if self._closed else ""
        return f"MultiModalModel(mode={self.mode!r}, {where}{state})"

    def _live(self) -> Any:
        if self._closed:
            raise ModelNotLoaded("this MultiModalModel was closed; create a new one")
        return self._backend

    def info(self) -> Dict[str, Any]:
        """What is loaded: local mode, the model and device; remote mode, /v1/models and /health."""
        return self._live().info()

    def generate(self, prompt: str, max_tokens: Optional[int] = None,
                 temperature: Optional[float] = None, stream: bool = False, *,
                 system: Optional[str] = None, raw: Optional[bool] = None,
                 **options: Any) -> Union[str, TextStream]:
        """Continues (or answers) ``prompt`` as the server's ``text-gen`` task does.

        Returns the text, or with ``stream=True`` a TextStream of pieces. Unset options take
        the server's defaults (``max_tokens``: what is left of the context; ``temperature``
        0.8; 0 is greedy). More options: ``top_p``, ``top_k``, ``min_p``, ``repeat_penalty``,
        ``seed``, ``stop`` (str or list), ``ignore_eos``. A model with a chat template gets the
        prompt as a user message (after ``system``) unless ``raw=True``.
        """
        require_text(prompt, "prompt")
        if system is not None:
            require_text(system, "system")
        params = sampling_params(max_tokens, temperature, options)
        return self._live().generate(prompt, params, bool(stream), system, raw)

    def chat(self, messages: List[Dict[str, Any]], max_tokens: Optional[int] = None,
             temperature: Optional[float] = None, stream: bool = False,
             **options: Any) -> Union[str, TextStream]:
        """Answers OpenAI-style ``messages`` (``[{"role": "user", "content": "..."}]``) through
        the model's chat template (ChatML when it has none); returns the assistant's text, or a
        TextStream with ``stream=True``. Options as ``generate``."""
        msgs = chat_messages(messages)
        params = sampling_params(max_tokens, temperature, options)
        return self._live().chat(msgs, params, bool(stream))

    def describe(self, image: Media, prompt: Optional[str] = None,
                 max_tokens: Optional[int] = None, temperature: Optional[float] = None, *,
                 system: Optional[str] = None, raw: Optional[bool] = None,
                 **options: Any) -> str:
        """Describes an image (a path, bytes or a binary file) with the vision model, as the
        server's ``image-caption`` task; ``prompt`` replaces the default request for a
        description ("Describe this image."), asked as a user turn after ``system`` unless
        ``raw=True``. Options as ``generate``. Raises ModelNotLoaded when no vision model is
        loaded."""
        backend = self._live()
        data = read_media(image, "image")
        if prompt is not None:
            require_text(prompt, "prompt")
        if system is not None:
            require_text(system, "system")
        params = sampling_params(max_tokens, temperature, options)
        return backend.describe(data, prompt, params, system, raw)

    def transcribe(self, audio: Media, language: Optional[str] = None,
                   format: str = "text", *, translate: bool = False,
                   prompt: Optional[str] = None,
                   words: bool = False) -> Union[str, List[Dict[str, Any]]]:
        """Transcribes audio (a path, bytes or a binary file) with the speech model, as the
        server's ``speech-transcribe`` task.

        ``language`` is a code such as ``"en"`` (None: detect it). ``format="text"`` returns
        the transcript; ``format="segments"`` the list of segments with their start and end
        (and, with ``words=True``, each segment's ``words`` with their times). ``translate=True``
        translates into English (multilingual models); ``prompt`` conditions the first window
        (names, spelling). Raises ModelNotLoaded when no speech model is loaded."""
        if format not in ("text", "segments"):
            raise InvalidInput(f"format must be 'text' or 'segments', got {format!r}",
                               param="format")
        if language is not None:
            require_text(language, "language")
        if prompt is not None:
            require_text(prompt, "prompt")
        for name, value in (("translate", translate), ("words", words)):
            if not isinstance(value, bool):
                raise InvalidInput(f"{name} must be a bool, got {value!r}", param=name)
        if words and format != "segments":
            raise InvalidInput("words=True needs format='segments' (the words are in the "
                               "segments)", param="words")
        backend = self._live()
        data = read_media(audio, "audio")
        return backend.transcribe(data, language, format == "segments", translate, prompt, words)

    def close(self) -> None:
        """Frees the model (local mode) and refuses further calls. Idempotent."""
        if not self._closed:
            self._closed = True
            self._backend.close()

    def __enter__(self) -> "MultiModalModel":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
