"""Checks and conversions of user input shared by both modes."""
from __future__ import annotations

import os
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

from .errors import InvalidInput, ModelNotLoaded

Media = Union[str, "os.PathLike[str]", bytes, bytearray, memoryview]

# Sampling and length options accepted by generate() and chat(); the server's parameter names.
SAMPLING_KEYS = ("max_tokens", "temperature", "top_p", "top_k", "min_p", "repeat_penalty", "seed",
                 "stop", "ignore_eos")


def require_text(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise InvalidInput(f"{name} must be a str, got {type(value).__name__}", param=name)
    return value


def read_media(source: Any, name: str) -> bytes:
    """The bytes of an image or audio given as a path, bytes, or a binary file object."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
    elif isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        try:
            with open(path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            raise InvalidInput(f"{name}: no such file: {path}", param=name) from None
        except IsADirectoryError:
            raise InvalidInput(f"{name}: {path} is a directory, not a file", param=name) from None
        except OSError as e:
            raise InvalidInput(f"{name}: cannot read {path}: {e.strerror or e}", param=name) from None
    elif hasattr(source, "read"):
        data = source.read()
        if not isinstance(data, (bytes, bytearray)):
            raise InvalidInput(f"{name}: the file object must be opened in binary mode ('rb')",
                               param=name)
        data = bytes(data)
    else:
        raise InvalidInput(f"{name} must be a file path, bytes or a binary file object, got "
                           f"{type(source).__name__}", param=name)
    if not data:
        raise InvalidInput(f"{name} is empty", param=name)
    return data


def sampling_params(max_tokens: Optional[int], temperature: Optional[float],
                    extra: Dict[str, Any]) -> Dict[str, Any]:
    """The non-None options, checked for names and types; values are checked by the engine."""
    unknown = sorted(set(extra) - set(SAMPLING_KEYS))
    if unknown:
        raise TypeError(f"unexpected keyword argument(s): {', '.join(unknown)}; "
                        f"accepted: {', '.join(SAMPLING_KEYS)}")
    params: Dict[str, Any] = {"max_tokens": max_tokens, "temperature": temperature, **extra}
    params = {k: v for k, v in params.items() if v is not None}
    for key in ("max_tokens", "top_k", "seed"):
        if key in params and (isinstance(params[key], bool) or not isinstance(params[key], int)):
            raise InvalidInput(f"{key} must be an int, got {params[key]!r}", param=key)
    for key in ("temperature", "top_p", "min_p", "repeat_penalty"):
        value = params.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise InvalidInput(f"{key} must be a number, got {value!r}", param=key)
    if "stop" in params:
        stop = params["stop"]
        if isinstance(stop, str):
            stop = [stop]
        if not isinstance(stop, (list, tuple)) or not all(isinstance(s, str) for s in stop):
            raise InvalidInput("stop must be a str or a list of str", param="stop")
        params["stop"] = list(stop)
    if "ignore_eos" in params and not isinstance(params["ignore_eos"], bool):
        raise InvalidInput("ignore_eos must be a bool", param="ignore_eos")
    return params


def chat_messages(messages: Any) -> List[Dict[str, Any]]:
    """Checks the shape of OpenAI-style messages: a non-empty list of {"role", "content"}."""
    if isinstance(messages, (str, bytes)) or not isinstance(messages, Sequence) or not messages:
        raise InvalidInput("messages must be a non-empty list of {'role': ..., 'content': ...}",
                           param="messages")
    out = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str):
            raise InvalidInput(f"messages[{i}] must be a dict with a 'role' str and 'content'",
                               param=f"messages[{i}]")
        out.append(dict(m))
    return out


Part = Tuple[bool, str, str, str]  # (is_image, text or image URL, field, type field)


def flatten_messages(messages: List[Dict[str, Any]]) -> List[Tuple[str, List[Part]]]:
    """(role, parts) for the local engine, with the server's rules for roles and parts; an
    image part keeps its URL (a data URL or base64), which the engine decodes under the server's
    image policy, and the fields its errors name."""
    out = []
    for i, m in enumerate(messages):
        role = "system" if m["role"] == "developer" else m["role"]
        if role not in ("system", "user", "assistant"):
            raise InvalidInput(f"role '{m['role']}' is not supported; use system, user or "
                               f"assistant", param=f"messages[{i}].role")
        content = m.get("content")
        parts: List[Part] = []
        if content is None:
            pass
        elif isinstance(content, str):
            parts.append((False, content, f"messages[{i}].content", ""))
        elif isinstance(content, list):
            for j, part in enumerate(content):
                where = f"messages[{i}].content[{j}]"
                kind = part.get("type") if isinstance(part, dict) else None
                if kind == "text" and isinstance(part.get("text", ""), str):
                    parts.append((False, part.get("text", ""), f"{where}.text", ""))
                elif kind == "image_url":
                    url = part.get("image_url")
                    field = f"{where}.image_url"
                    if isinstance(url, dict):
                        url, field = url.get("url"), f"{field}.url"
                    if not isinstance(url, str) or not url:
                        raise InvalidInput(f"field '{field}' (the image URL) is required",
                                           param=field)
                    parts.append((True, url, field, f"{where}.type"))
                elif kind == "input_audio":
                    raise ModelNotLoaded(f"content of type '{kind}' needs a multimodal model, "
                                         f"which local mode cannot run", param=f"{where}.type")
                else:
                    raise InvalidInput(f"unknown content part {part!r}", param=where)
        else:
            raise InvalidInput(f"messages[{i}].content must be a str or a list of parts",
                               param=f"messages[{i}].content")
        out.append((role, parts))
    return out
