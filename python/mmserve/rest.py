"""``infer``: one call to ``POST /v1/inference``, in the style of ``requests.post(...).json()``.

    import mmserve
    mmserve.infer("分析市场趋势", task="text-gen", parameters={"max_tokens": 200})["output"]

is what ``requests.post("http://localhost:8080/v1/inference", json={"input": ..., "task": ...,
"parameters": ...}).json()["output"]`` does, with the standard library only and the SDK's typed
exceptions for error answers.
"""
from __future__ import annotations

import base64
import os
from typing import Any, Dict, Iterator, Optional, Union

from .errors import InvalidInput
from .remote import DEFAULT_BASE_URL, DEFAULT_TIMEOUT, RemoteClient

TASKS = ("text-gen", "image-caption", "speech-transcribe")


def infer(input: Union[str, bytes], task: str = "text-gen",
          parameters: Optional[Dict[str, Any]] = None, *, base_url: str = DEFAULT_BASE_URL,
          api_key: Optional[str] = None, timeout: Optional[float] = DEFAULT_TIMEOUT,
          stream: bool = False) -> Union[Dict[str, Any], Iterator[Dict[str, Any]]]:
    """Sends ``{"input", "task", "parameters"}`` to ``base_url``/v1/inference.

    ``input`` is the text for ``text-gen``; bytes (an image or audio file's content) are sent
    base64-encoded, as ``image-caption`` and ``speech-transcribe`` want. Returns the answer's
    JSON (``{"id", "task", "model", "output", "finish_reason", "usage", "timings"}``); with
    ``stream=True``, an iterator over the events' JSON (pieces with ``"output"``, then the final
    one with ``"finish_reason"``). ``api_key`` defaults to ``$MMSERVE_API_KEY``.
    """
    if isinstance(input, (bytes, bytearray, memoryview)):
        input = base64.b64encode(bytes(input)).decode("ascii")
    if not isinstance(input, str):
        raise InvalidInput(f"input must be a str or bytes, got {type(input).__name__}",
                           param="input")
    if not isinstance(task, str):
        raise InvalidInput(f"task must be one of {', '.join(TASKS)}", param="task")
    if parameters is not None and not isinstance(parameters, dict):
        raise InvalidInput("parameters must be a dict", param="parameters")
    if api_key is None:
        api_key = os.environ.get("MMSERVE_API_KEY") or None
    client = RemoteClient(base_url, api_key, timeout)
    body = {"input": input, "task": task, "parameters": parameters or {}}
    if not stream:
        return client.request("POST", "/v1/inference", body)
    return iter(client.stream("/v1/inference", {**body, "stream": True}))
