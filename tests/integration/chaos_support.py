"""Hostile traffic against a running mmserve, and strict checks of every answer.

Shared by test_chaos.py and bench/soak.py, so it uses the standard library only (no pytest, no
requests). Every check raises `Violation` with the request and what came back; a connection the
server dropped raises `Dropped` (the caller tells a dead server from a live one).

What is checked, always:
- a 2xx answer is strict JSON (no NaN/Infinity, no lone surrogates) of the endpoint's shape;
- a stream is HTTP 200 text/event-stream, every line strict UTF-8, every event `data: <strict
  JSON>`, pieces then one final event with finish_reason "stop" or "length", then `data: [DONE]`,
  then the end of the body;
- an error is 4xx (never 5xx) with a JSON body {"error": {"message", "type", "param", "code"}},
  code equal to the HTTP status.
"""
import base64
import http.client
import json
import random
import socket
import struct
import threading
import time
from collections import deque

FINISH_REASONS = ("stop", "length")
# Stop strings with unusual characters: multi-byte, astral, zero-width, control, JSON escapes.
ODD_STOPS = ["🙂", "é", "日本", "\u200b", "\u0000", "\n", "\t", ".", " the", "\\", '"', "ab",
             "<|im_end|>", "\U0001F600x", "e\u0301", "\u202e", "ÿ", "\x7f", "Lily", "}"]
# Prompts the random clients send (short: prompt + max_tokens stays within any test model's
# context).
ODD_PROMPTS = ["Once", "The cat sat", "日本語のテキスト", "🙂🙃🙂", "a\u0000b", "\u202eevil",
               "e\u0301e\u0301", "Tom and Sue", "{\"json\": [1, 2]}", "\\n\\t", "ÿþ", " ", "x" * 40,
               "One day, a little bird"]


class Violation(AssertionError):
    """The server answered something it must never answer."""


class Dropped(Violation):
    """The server closed or reset the connection without a complete answer."""


class ServerError(Violation):
    """The server answered 5xx."""


# ------------------------------------------------------------------ strict parsing


def _no_constant(name):
    raise ValueError(f"non-standard JSON constant {name}")


def _check_strings(obj, where="$"):
    if isinstance(obj, str):
        try:
            obj.encode("utf-8")
        except UnicodeEncodeError as e:
            raise ValueError(f"string at {where} holds a lone surrogate: {obj!r}") from e
    elif isinstance(obj, dict):
        for k, v in obj.items():
            _check_strings(k, where)
            _check_strings(v, f"{where}.{k}")
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            _check_strings(v, f"{where}[{i}]")


def strict_json(raw, what):
    """Parses bytes (or str) as strict UTF-8 strict JSON; raises Violation saying `what`."""
    try:
        text = raw.decode("utf-8") if isinstance(raw, (bytes, bytearray)) else raw
        obj = json.loads(text, parse_constant=_no_constant)
        _check_strings(obj)
        return obj
    except (UnicodeDecodeError, ValueError) as e:
        raise Violation(f"{what}: not strict UTF-8 JSON ({e}): {raw[:300]!r}") from None


def describe(body, limit=300):
    if isinstance(body, (bytes, bytearray)):
        text = bytes(body[:limit])
        return repr(text) + (f"... ({len(body)} bytes)" if len(body) > limit else "")
    text = json.dumps(body, ensure_ascii=True)
    return text[:limit] + (f"... ({len(text)} chars)" if len(text) > limit else "")


def check_error(status, headers, raw, what, want_status=None, want_param=None):
    """A 4xx JSON error of OpenAI's shape; returns its "error" object."""
    if status >= 500:
        raise ServerError(f"{what}: HTTP {status}: {describe(raw)}")
    if not 400 <= status < 500:
        raise Violation(f"{what}: wanted a 4xx error, got HTTP {status}: {describe(raw)}")
    if want_status is not None and status != want_status:
        raise Violation(f"{what}: wanted HTTP {want_status}, got {status}: {describe(raw)}")
    ctype = headers.get("content-type", "")
    if not ctype.startswith("application/json"):
        raise Violation(f"{what}: HTTP {status} error with Content-Type {ctype!r}: {describe(raw)}")
    obj = strict_json(raw, f"{what}: HTTP {status} error body")
    err = obj.get("error") if isinstance(obj, dict) else None
    if not isinstance(err, dict) or set(obj) != {"error"}:
        raise Violation(f"{what}: error body is not {{\"error\": {{...}}}}: {describe(raw)}")
    missing = {"message", "type", "param", "code"} - set(err)
    if missing:
        raise Violation(f"{what}: error lacks {sorted(missing)}: {describe(raw)}")
    if not isinstance(err["message"], str) or not err["message"]:
        raise Violation(f"{what}: error message empty or not a string: {describe(raw)}")
    if not isinstance(err["type"], str) or not err["type"]:
        raise Violation(f"{what}: error type empty or not a string: {describe(raw)}")
    if err["param"] is not None and not isinstance(err["param"], str):
        raise Violation(f"{what}: error param neither a string nor null: {describe(raw)}")
    if err["code"] != status:
        raise Violation(f"{what}: error code {err['code']!r} is not the HTTP status {status}")
    if want_param is not None and err["param"] != want_param:
        raise Violation(f"{what}: wanted param {want_param!r}, got {err['param']!r}: {describe(raw)}")
    return err


# ------------------------------------------------------------------ well-formed requests

ENDPOINTS = {"inference": "/v1/inference", "chat": "/v1/chat/completions",
             "completions": "/v1/completions"}


def text_request(kind, prompt, params, stream):
    """(path, body) of a text request; `params` use the names /v1/inference takes."""
    if kind == "inference":
        body = {"input": prompt, "task": "text-gen", "parameters": dict(params)}
        if stream:
            body["stream"] = True
    elif kind == "chat":
        body = {"messages": [{"role": "user", "content": prompt}], **params}
        if stream:
            body["stream"] = True
    else:
        body = {"prompt": prompt, **params}
        if stream:
            body["stream"] = True
    return ENDPOINTS[kind], body


def param_path(kind, field):
    """How an error names a sampling field of a `kind` request."""
    return f"parameters.{field}" if kind == "inference" else field


def _connect(port, timeout):
    return http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)


def post_json(port, path, body, timeout=120, headers=None):
    """(status, lowercase headers, raw body). Raises Dropped when the connection fails."""
    conn = _connect(port, timeout)
    try:
        data = body if isinstance(body, (bytes, bytearray)) else json.dumps(body).encode()
        conn.request("POST", path, body=data,
                     headers={"Content-Type": "application/json", **(headers or {})})
        resp = conn.getresponse()
        raw = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, raw
    except (OSError, http.client.HTTPException) as e:
        raise Dropped(f"POST {path} {describe(body)}: connection failed: {e!r}") from None
    finally:
        conn.close()


def _answer_text(kind, obj, what):
    try:
        if kind == "inference":
            text, reason, usage = obj["output"], obj["finish_reason"], obj["usage"]
        elif kind == "chat":
            choice = obj["choices"][0]
            text, reason, usage = choice["message"]["content"], choice["finish_reason"], obj["usage"]
            if choice["message"]["role"] != "assistant":
                raise Violation(f"{what}: message role {choice['message']['role']!r}")
        else:
            choice = obj["choices"][0]
            text, reason, usage = choice["text"], choice["finish_reason"], obj["usage"]
    except (KeyError, IndexError, TypeError) as e:
        raise Violation(f"{what}: answer lacks {e!r}: {describe(obj)}") from None
    if not isinstance(text, str):
        raise Violation(f"{what}: output is not a string: {describe(obj)}")
    if reason not in FINISH_REASONS:
        raise Violation(f"{what}: finish_reason {reason!r}: {describe(obj)}")
    if not isinstance(usage, dict) or not isinstance(usage.get("completion_tokens"), int):
        raise Violation(f"{what}: usage lacks completion_tokens: {describe(obj)}")
    return text, reason, usage


def read_sse(resp, what):
    """The JSON payloads of a text/event-stream body up to `data: [DONE]` (excluded); checks
    strict UTF-8 per line, the event framing, [DONE] last and nothing after it."""
    events = []
    pending = []
    done = False
    while True:
        try:
            raw = resp.readline()
        except (OSError, http.client.HTTPException) as e:
            raise Dropped(f"{what}: stream broke after {len(events)} events: {e!r}") from None
        if not raw:
            break
        if done:
            if raw.strip():
                raise Violation(f"{what}: data after [DONE]: {raw[:200]!r}")
            continue
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise Violation(f"{what}: SSE line {len(events)} is not UTF-8 ({e}): {raw[:200]!r}") from None
        if not line.endswith("\n"):
            raise Dropped(f"{what}: stream ended inside a line after {len(events)} events: {raw[:200]!r}")
        line = line.rstrip("\r\n")
        if line:
            if not line.startswith("data: "):
                raise Violation(f"{what}: SSE line is not 'data: ...': {line[:200]!r}")
            pending.append(line[len("data: "):])
            continue
        if not pending:
            continue
        payload = "\n".join(pending)
        pending = []
        if payload == "[DONE]":
            done = True
            continue
        events.append(strict_json(payload, f"{what}: SSE event {len(events)}"))
    if pending or not done:
        raise Dropped(f"{what}: stream ended without data: [DONE] after {len(events)} events"
                      + (f", last {describe(events[-1])}" if events else ""))
    return events


def _stream_text(kind, events, what):
    """(text, finish_reason, usage or None) of a stream's events, checking their shapes."""
    if not events:
        raise Violation(f"{what}: stream had no event before [DONE]")
    for e in events:
        if "error" in e:
            raise Violation(f"{what}: stream carried an error event: {describe(e)}")
    pieces = []
    try:
        if kind == "inference":
            *body, last = events
            for e in body:
                if "finish_reason" in e or not isinstance(e["output"], str):
                    raise Violation(f"{what}: bad piece event {describe(e)}")
                pieces.append(e["output"])
            reason, usage = last.get("finish_reason"), last.get("usage")
            if last.get("output") != "":
                raise Violation(f"{what}: final event has output {describe(last)}")
        else:
            usage = None
            if kind == "chat" and "usage" in events[-1] and events[-1].get("choices") == []:
                usage = events[-1]["usage"]
                events = events[:-1]
            if kind == "chat":
                first = events[0]["choices"][0]["delta"]
                if first.get("role") != "assistant":
                    raise Violation(f"{what}: first chunk is not the assistant role: {describe(events[0])}")
            *body, last = events
            for e in body:
                choice = e["choices"][0]
                if choice["finish_reason"] is not None:
                    raise Violation(f"{what}: finish_reason before the last chunk: {describe(e)}")
                piece = choice["delta"].get("content", "") if kind == "chat" else choice["text"]
                if not isinstance(piece, str):
                    raise Violation(f"{what}: piece is not a string: {describe(e)}")
                pieces.append(piece)
            reason = last["choices"][0]["finish_reason"]
            if kind == "completions":
                usage = last.get("usage")
    except (KeyError, IndexError, TypeError, AttributeError) as e:
        raise Violation(f"{what}: event lacks {e!r}: {describe(events[:3])}") from None
    if reason not in FINISH_REASONS:
        raise Violation(f"{what}: final finish_reason {reason!r}: {describe(events[-1])}")
    return "".join(pieces), reason, usage


def text_call(port, kind, body, stream, timeout=120):
    """Sends a text request. Returns ("ok", text, finish_reason, usage) or
    ("error", status, error object) after checking the answer strictly."""
    path = ENDPOINTS[kind]
    what = f"POST {path} {describe(body)}"
    if not stream:
        status, headers, raw = post_json(port, path, body, timeout=timeout)
        if status != 200:
            return ("error", status, check_error(status, headers, raw, what))
        ctype = headers.get("content-type", "")
        if not ctype.startswith("application/json"):
            raise Violation(f"{what}: 200 with Content-Type {ctype!r}")
        return ("ok", *_answer_text(kind, strict_json(raw, what), what))
    conn = _connect(port, timeout)
    try:
        conn.request("POST", path, body=json.dumps(body).encode(),
                     headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        if resp.status != 200:
            raw = resp.read()
            return ("error", resp.status,
                    check_error(resp.status, {k.lower(): v for k, v in resp.getheaders()}, raw, what))
        ctype = resp.getheader("Content-Type", "")
        if not ctype.startswith("text/event-stream"):
            raise Violation(f"{what}: stream answered with Content-Type {ctype!r}")
        events = read_sse(resp, what)
        return ("ok", *_stream_text(kind, events, what))
    except (OSError, http.client.HTTPException) as e:
        raise Dropped(f"{what}: connection failed: {e!r}") from None
    finally:
        conn.close()


# ------------------------------------------------------------------ random sampling

INVALID_SAMPLING = {
    "temperature": [-0.01, 100.01, 1e308, -1e308],
    "top_p": [0, 1.0001, -1, 1e300],
    "min_p": [-0.5, 1.5, 1e300],
    "repeat_penalty": [0, -1, 10.5, 1e300],
    "top_k": [-1, -(2 ** 40), 2 ** 64 - 1],
    "max_tokens": [0, -3, 1000001, 2 ** 63],
}


def random_sampling(rng, max_tokens_cap=200, invalid_rate=0.2):
    """(params, invalid field or None): random sampling parameters, every one in its valid range
    unless one field was made invalid on purpose."""
    params = {
        "max_tokens": rng.randint(1, max_tokens_cap),
        "temperature": rng.choice([0, 100, rng.uniform(0, 2), rng.uniform(0, 100)]),
        "top_k": rng.choice([0, 0, rng.randint(1, 1000), 2 ** 31 - 1]),
        "top_p": rng.choice([1, rng.uniform(1e-6, 1), 1e-9]),
        "min_p": rng.choice([0, rng.uniform(0, 1), 1]),
        "seed": rng.randint(-(2 ** 63), 2 ** 64 - 1),
        "repeat_penalty": rng.choice([1, rng.uniform(0.01, 10), 10]),
    }
    if rng.random() < 0.6:
        params["stop"] = rng.sample(ODD_STOPS, rng.randint(1, 4))
    if rng.random() < 0.3:
        params["ignore_eos"] = True
    for key in list(params):
        if key not in ("max_tokens", "seed") and rng.random() < 0.2:
            del params[key]
    invalid = None
    if rng.random() < invalid_rate:
        invalid = rng.choice(sorted(INVALID_SAMPLING))
        params[invalid] = rng.choice(INVALID_SAMPLING[invalid])
    return params, invalid


def random_text_call(port, rng, kinds=("inference", "chat", "completions"), max_tokens_cap=200,
                     timeout=120):
    """One request with random sampling; checks it strictly. Returns (kind, stream, outcome)."""
    kind = rng.choice(kinds)
    stream = rng.random() < 0.5
    params, invalid = random_sampling(rng, max_tokens_cap)
    prompt = rng.choice(ODD_PROMPTS)
    _, body = text_request(kind, prompt, params, stream)
    if stream and kind != "inference" and rng.random() < 0.5:
        body["stream_options"] = {"include_usage": True}
    what = f"POST {ENDPOINTS[kind]} {describe(body)}"
    result = text_call(port, kind, body, stream, timeout=timeout)
    if invalid is not None:
        if result[0] != "error" or result[1] != 400:
            raise Violation(f"{what}: {invalid}={params[invalid]!r} is out of range, wanted 400, "
                            f"got {result[:2]}")
        if result[2]["param"] != param_path(kind, invalid):
            raise Violation(f"{what}: error names {result[2]['param']!r}, not {param_path(kind, invalid)!r}")
        return kind, stream, result
    if result[0] != "ok":
        raise Violation(f"{what}: valid parameters answered HTTP {result[1]}: {result[2]}")
    _, text, reason, usage = result
    max_tokens = params["max_tokens"]
    if usage is not None:
        n = usage["completion_tokens"]
        if not 0 <= n <= max_tokens or (reason == "length" and n != max_tokens):
            raise Violation(f"{what}: {n} completion tokens, finish_reason {reason}, max_tokens {max_tokens}")
    if params.get("ignore_eos") and not params.get("stop") and reason != "length":
        raise Violation(f"{what}: ignore_eos without stop strings ended with {reason!r}")
    for stop in params.get("stop", []):
        if stop and stop in text:
            raise Violation(f"{what}: output contains stop string {stop!r}: {text[:300]!r}")
    return kind, stream, result


# ------------------------------------------------------------------ raw HTTP


def raw_request(method, path, body=b"", headers=None, content_type="application/json"):
    """Bytes of an HTTP/1.1 request with Connection: close. `path` may be bytes."""
    path = path if isinstance(path, bytes) else path.encode()
    lines = [method.encode() + b" " + path + b" HTTP/1.1", b"Host: 127.0.0.1",
             b"Connection: close"]
    if content_type is not None:
        lines.append(b"Content-Type: " + content_type.encode())
    hdrs = dict(headers or {})
    if "Content-Length" not in hdrs and "Transfer-Encoding" not in hdrs and (body or method == "POST"):
        hdrs["Content-Length"] = str(len(body))
    for k, v in hdrs.items():
        lines.append(k.encode() + b": " + (v if isinstance(v, bytes) else str(v).encode()))
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def chunked(body, size=65536):
    out = b""
    for i in range(0, len(body), size):
        part = body[i:i + size]
        out += f"{len(part):x}\r\n".encode() + part + b"\r\n"
    return out + b"0\r\n\r\n"


def _parse_response(data, what):
    head, sep, rest = data.partition(b"\r\n\r\n")
    if not sep:
        return None
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
        raise Violation(f"{what}: bad status line {lines[0][:100]!r}")
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(b":")
        headers[k.strip().lower().decode("latin-1")] = v.strip().decode("latin-1")
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body, pos = b"", 0
        while True:
            end = rest.find(b"\r\n", pos)
            if end < 0:
                return None
            size = int(rest[pos:end].split(b";")[0], 16)
            if size == 0:
                return int(parts[1]), headers, body
            if len(rest) < end + 2 + size + 2:
                return None
            body += rest[end + 2:end + 2 + size]
            pos = end + 2 + size + 2
    if "content-length" in headers:
        n = int(headers["content-length"])
        return (int(parts[1]), headers, rest[:n]) if len(rest) >= n else None
    return int(parts[1]), headers, rest  # read to the end of the connection


def raw_exchange(port, request, timeout=30, what="request"):
    """Sends raw bytes (ignoring a server that stops reading early), reads the whole answer.
    Returns (status, lowercase headers, body); raises Dropped if no complete answer came."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    data = b""
    try:
        try:
            sock.sendall(request)
        except OSError:
            pass  # the server may answer (413) before reading everything
        deadline = time.time() + timeout
        while True:
            if time.time() > deadline:
                raise Dropped(f"{what}: no complete answer within {timeout} s, got {data[:200]!r}")
            try:
                chunk = sock.recv(65536)
            except socket.timeout:
                raise Dropped(f"{what}: no complete answer within {timeout} s, got {data[:200]!r}") from None
            except OSError as e:
                chunk = b""
                if not data:
                    raise Dropped(f"{what}: connection failed before any answer: {e!r}") from None
            if chunk:
                data += chunk
                parsed = _parse_response(data, what)
                framed = parsed is not None and ("content-length" in parsed[1] or
                                                 parsed[1].get("transfer-encoding", "").lower() == "chunked")
                if framed:
                    return parsed
                continue
            parsed = _parse_response(data, what)
            if parsed is None:
                raise Dropped(f"{what}: connection closed with no complete answer, got {data[:200]!r}")
            return parsed
    finally:
        sock.close()


# ------------------------------------------------------------------ malformed requests


class Case:
    """One malformed request: raw bytes and what the answer must be (any 4xx if status None;
    param checked only when given)."""

    def __init__(self, name, request, status=None, param=None):
        self.name, self.request, self.status, self.param = name, request, status, param

    def check(self, port, timeout=30):
        what = f"malformed request [{self.name}] {describe(self.request, 200)}"
        status, headers, body = raw_exchange(port, self.request, timeout=timeout, what=what)
        check_error(status, headers, body, what, self.status, self.param)
        return status


def _post(path, body, content_type="application/json", **kw):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return raw_request("POST", path, data, content_type=content_type, **kw)


GOOD_INFERENCE = {"input": "Once upon a time", "task": "text-gen",
                  "parameters": {"max_tokens": 8, "temperature": 0}}
GOOD_CHAT = {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 8, "temperature": 0}

# Values of the wrong JSON type for each kind of field ("NaN" and "Infinity" as strings too).
NOT_NUMBER = ["0.5", [], {}, True, "NaN", "Infinity", [0.5]]
NOT_INTEGER = ["5", 2.5, [], {}, True, "NaN", 1e30, 123456789012345678901234567890]
NOT_BOOL = ["true", 1, 0, [], {}, "yes"]
NOT_STRING = [42, 1.5, [], {}, True, ["a"]]
NOT_STOP = [1, {}, [1], [[]], True, [None], ["a"] * 17]
NOT_OBJECT = ["fast", [], 3, True, [{}]]


def _wrong_type_cases():
    """Every field of /v1/inference (text-gen), /v1/chat/completions and /v1/completions, with
    each wrong type; the error must name the field."""
    out = []
    for key, values in [("input", NOT_STRING), ("task", NOT_STRING), ("parameters", NOT_OBJECT),
                        ("stream", NOT_BOOL)]:
        for v in values:
            out.append((f"inference {key}={v!r}"[:80], "/v1/inference", {**GOOD_INFERENCE, key: v}, key))
    fields = [("temperature", NOT_NUMBER), ("top_p", NOT_NUMBER), ("min_p", NOT_NUMBER),
              ("repeat_penalty", NOT_NUMBER), ("max_tokens", NOT_INTEGER), ("top_k", NOT_INTEGER),
              ("seed", NOT_INTEGER), ("ignore_eos", NOT_BOOL), ("raw", NOT_BOOL), ("stop", NOT_STOP)]
    for key, values in fields:
        for v in values:
            body = {**GOOD_INFERENCE, "parameters": {**GOOD_INFERENCE["parameters"], key: v}}
            out.append((f"inference parameters.{key}={v!r}"[:80], "/v1/inference", body,
                        f"parameters.{key}"))
            if key != "raw":
                out.append((f"chat {key}={v!r}"[:80], "/v1/chat/completions", {**GOOD_CHAT, key: v}, key))
    for v in [v for v in NOT_STRING if v != ["a"]] + [""]:  # ["a"] is a valid prompt
        out.append((f"completions prompt={v!r}"[:80], "/v1/completions", {"prompt": v, "max_tokens": 4}, "prompt"))
    for v in [21, -1, "x", 2.5]:
        out.append((f"completions logprobs={v!r}", "/v1/completions", {"prompt": "a", "logprobs": v}, "logprobs"))
    out.append(("completions logprobs with stream", "/v1/completions",
                {"prompt": "a", "logprobs": 2, "stream": True}, "logprobs"))
    for v in ["hi", [], {}, None]:
        out.append((f"chat messages={v!r}", "/v1/chat/completions", {"messages": v}, "messages"))
    out.append(("chat messages=[1]", "/v1/chat/completions", {"messages": [1]}, "messages[0]"))
    for messages, param in [
            ([{"role": 1, "content": "x"}], "messages[0].role"),
            ([{"content": "x"}], "messages[0].role"),
            ([{"role": "robot", "content": "x"}], "messages[0].role"),
            ([{"role": "user", "content": 5}], "messages[0].content"),
            ([{"role": "user", "content": [5]}], "messages[0].content[0]"),
            ([{"role": "user", "content": [{"type": "video"}]}], "messages[0].content[0].type"),
            ([{"role": "user", "content": [{"type": "text", "text": 7}]}], "messages[0].content[0].text"),
            (["user"], "messages[0]")]:
        out.append((f"chat messages={messages!r}"[:80], "/v1/chat/completions",
                    {**GOOD_CHAT, "messages": messages}, param))
    out.append(("chat n=2", "/v1/chat/completions", {**GOOD_CHAT, "n": 2}, "n"))
    out.append(("chat stream_options", "/v1/chat/completions", {**GOOD_CHAT, "stream_options": "x"},
                "stream_options"))
    out.append(("chat max_completion_tokens", "/v1/chat/completions",
                {**GOOD_CHAT, "max_completion_tokens": "8"}, "max_completion_tokens"))
    for task in ["translate", "", "TEXT-GEN", "text-gen\u0000"]:
        out.append((f"inference task={task!r}", "/v1/inference", {**GOOD_INFERENCE, "task": task}, "task"))
    out.append(("inference input empty", "/v1/inference", {**GOOD_INFERENCE, "input": ""}, "input"))
    out.append(("inference input absent", "/v1/inference", {"task": "text-gen"}, "input"))
    out.append(("inference task absent", "/v1/inference", {"input": "hi"}, "task"))
    return out


WRONG_TYPES = _wrong_type_cases()

# Each of these is refused as the body (param "body").
INVALID_JSON = [b'{"input": "hi", "task": ', b"", b"{", b"}", b"[1, 2]", b"null", b"42", b'"str"',
                b"{]", b"nul", b"{'input': 'hi'}", b'{"input": "hi",}', b'{"input" "hi"}',
                b'{"input": NaN, "task": "text-gen"}',
                b'{"input": "x", "task": "text-gen", "parameters": {"temperature": NaN}}',
                b'{"input": "x", "task": "text-gen", "parameters": {"temperature": Infinity}}',
                b'{"input": "x", "task": "text-gen", "parameters": {"top_p": -Infinity}}',
                b'{"input": "x", "task": "text-gen", "parameters": {"temperature": 1e400}}',
                b'{"input": "x", "task": "text-gen", "parameters": {"max_tokens": 1e99999}}',
                b'{"input": "x", "task": "text-gen", "parameters": {"seed": -1e400}}',
                b'{"input": "x", "task": "text-gen"} trailing', b'{"input": "x"}{"task": "y"}',
                b"\xef\xbb\xbf", b"\x00\x00\x00", b'{"input": "\\x41", "task": "text-gen"}',
                b'{"input": "\\u12", "task": "text-gen"}', b'{"input": "tab\there", "task": "text-gen"}',
                b'{"input": "\\ud800", "task": "text-gen"}', b'{"input": "\\udc00\\ud800", "task": "text-gen"}']
INVALID_UTF8 = [b"\xff\xfe", b"\xc3", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\x80",
                b"\xe2\x82", b"abc\xf0\x9f\x99", b"\xfe\xff\xfe"]


def malformed_case(rng, max_body):
    """A random malformed request (see the module docstring for what its answer must be)."""
    roll = rng.randrange(12)
    if roll <= 2:
        name, path, body, param = rng.choice(WRONG_TYPES)
        return Case(name, _post(path, body), 400, param)
    if roll == 3:
        data = rng.choice(INVALID_JSON)
        path = rng.choice(list(ENDPOINTS.values()))
        return Case(f"invalid JSON {data[-50:]!r}", _post(path, data), 400, "body")
    if roll == 4:  # a valid request cut short
        full = json.dumps(rng.choice([GOOD_INFERENCE, GOOD_CHAT])).encode()
        cut = full[:rng.randrange(1, len(full) - 1)]
        path = "/v1/inference" if b'"task"' in full else "/v1/chat/completions"
        return Case(f"truncated JSON {cut[-20:]!r}", _post(path, cut), 400, "body")
    if roll == 5:  # invalid UTF-8 inside a string (or a key)
        bad = rng.choice(INVALID_UTF8)
        where = rng.randrange(3)
        if where == 0:
            data = b'{"input": "Once ' + bad + b'", "task": "text-gen"}'
        elif where == 1:
            data = b'{"input": "Once", "task": "text-gen", "parameters": {"stop": ["' + bad + b'"]}}'
        else:
            data = b'{"messages": [{"role": "user", "content": "' + bad + b'"}], "\xff' + bad + b'": 1}'
        path = "/v1/chat/completions" if data.startswith(b'{"messages"') else "/v1/inference"
        return Case(f"invalid UTF-8 {bad!r}", _post(path, data), 400, "body")
    if roll == 6:  # deep nesting
        depth = rng.choice([1000, 100000, 400000])
        kind = rng.randrange(4)
        if kind == 0:
            data, param = b"[" * depth + b"]" * depth, "body"
        elif kind == 1:
            data, param = b"[" * depth, "body"
        elif kind == 2:
            data = b'{"input": ' + b"[" * depth + b"]" * depth + b', "task": "text-gen"}'
            param = "input"
        else:
            data = (b'{"input": "x", "task": "text-gen", "parameters": {"stop": '
                    + b"[" * depth + b"]" * depth + b"}}")
            param = "parameters.stop"
        return Case(f"nesting depth {depth} kind {kind}", _post("/v1/inference", data), 400, param)
    if roll == 7:  # over --max-body-size
        size = max_body + rng.choice([1, 1000, max_body // 2])
        data = json.dumps({"input": "x" * size, "task": "text-gen"}).encode()
        if rng.random() < 0.5:
            return Case(f"body of {len(data)} bytes", _post("/v1/inference", data), 413, "body")
        req = raw_request("POST", "/v1/inference", chunked(data), headers={"Transfer-Encoding": "chunked"})
        return Case(f"chunked body of {len(data)} bytes", req, 413, "body")
    if roll == 8:  # a content type that does not describe the body
        ctype = rng.choice(["multipart/form-data", "multipart/form-data; boundary=xyz",
                            "multipart/form-data; boundary="])
        body = rng.choice([json.dumps(GOOD_INFERENCE).encode(), b"--xyz\r\ngarbage", b"--xyz--\r\n"])
        return Case(f"Content-Type {ctype} with {body[:20]!r}", _post("/v1/inference", body, ctype), 400)
    if roll == 9:  # unknown routes and methods
        method, path = rng.choice([("GET", "/v2/nothing"), ("POST", "/v1/inferenc"),
                                   ("GET", "/v1/inference"), ("DELETE", "/v1/inference"),
                                   ("PUT", "/v1/chat/completions"), ("POST", "/health"),
                                   ("GET", "/v1/../../etc/passwd"), ("GET", "/%ff%fe%00"),
                                   ("POST", "/v1/inference/extra"), ("GET", "/" + "a" * 20000),
                                   ("FOO", "/v1/inference")])
        return Case(f"{method} {path[:40]}", raw_request(method, path, b"{}" if method != "GET" else b""))
    if roll == 10:  # malformed HTTP framing
        choice = rng.randrange(5)
        if choice == 0:
            return Case("Content-Length abc", _post("/v1/inference", b"{}", headers={"Content-Length": "abc"}))
        if choice == 1:
            return Case("bad request line", b"GARBAGE\r\n\r\n")
        if choice == 2:
            return Case("two Content-Lengths", _post("/v1/inference", b"{}", headers={
                "Content-Length": b"2\r\nContent-Length: 5"}))
        if choice == 3:
            return Case("header without colon", b"POST /v1/inference HTTP/1.1\r\nHost: x\r\nnonsense\r\n"
                        b"Content-Length: 2\r\nConnection: close\r\n\r\n{}")
        return Case("raw bytes in path", raw_request("GET", b"/v1/\xff\xfe\x00x", b""))
    # roll == 11: random bytes as a body
    data = b"#" + bytes(rng.randrange(256) for _ in range(rng.randrange(0, 200)))  # never JSON
    return Case(f"random bytes {data[:16]!r}", _post(rng.choice(list(ENDPOINTS.values())), data), 400, "body")


def wrong_content_type(port, rng, timeout=60):
    """A well-formed body under a Content-Type that does not name JSON: the server may take it
    (then the answer must be a valid one) or refuse it with a 4xx error, never anything else."""
    ctype = rng.choice(["text/plain", "application/xml", None, "application/x-www-form-urlencoded",
                        "application/json; charset=latin-1", "APPLICATION/JSON", "image/png",
                        "application/octet-stream", "\x7f\x00bad"])
    kind = rng.choice(["inference", "chat"])
    body = GOOD_INFERENCE if kind == "inference" else GOOD_CHAT
    what = f"POST {ENDPOINTS[kind]} with Content-Type {ctype!r}"
    status, headers, raw = raw_exchange(port, _post(ENDPOINTS[kind], body, ctype), timeout=timeout,
                                        what=what)
    if status == 200:
        _answer_text(kind, strict_json(raw, what), what)
    else:
        check_error(status, headers, raw, what)
    return status


# ------------------------------------------------------------------ disconnects


def disconnect(port, rng, max_tokens_cap=300):
    """A client that goes away at a random moment; returns what it did. Raises nothing unless
    the server refused the connection."""
    kind = rng.choice(["inference", "chat"])
    _, body = text_request(kind, rng.choice(ODD_PROMPTS),
                           {"max_tokens": rng.randint(20, max_tokens_cap),
                            "temperature": rng.choice([0, 1, 100]), "seed": rng.randrange(2 ** 32)},
                           True)
    data = json.dumps(body).encode()
    how = rng.choice(["mid-stream", "mid-stream", "after-headers", "half-body",
                      "before-answer", "non-stream-wait"])
    if how == "non-stream-wait":
        body.pop("stream")
        data = json.dumps(body).encode()
    request = raw_request("POST", ENDPOINTS[kind], data)
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    try:
        if rng.random() < 0.5:  # close with RST instead of FIN
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        if how == "after-headers":
            sock.sendall(request[:request.index(b"\r\n\r\n") + 4])
            time.sleep(rng.uniform(0, 0.2))
        elif how == "half-body":
            sock.sendall(request[:len(request) - len(data) // 2 - 1])
            time.sleep(rng.uniform(0, 0.2))
        elif how == "before-answer":
            sock.sendall(request)
        elif how == "non-stream-wait":
            sock.sendall(request)
            time.sleep(rng.uniform(0, 0.3))
        else:
            sock.sendall(request)
            want, got = rng.randrange(0, 4000), 0
            while got < want:
                chunk = sock.recv(min(4096, want - got))
                if not chunk:
                    break
                got += len(chunk)
            how += f" after {got} bytes"
    except OSError:
        pass
    finally:
        sock.close()
    return how


# ------------------------------------------------------------------ server output


class OutputTail:
    """Drains a process's stdout and stderr (text pipes) in background threads, keeping the last
    lines, so a server that logs a line per request never blocks on a full pipe."""

    def __init__(self, proc, lines=300):
        self.lines = deque(maxlen=lines)
        self.threads = [threading.Thread(target=self._drain, args=(stream,), daemon=True)
                        for stream in (proc.stdout, proc.stderr) if stream is not None]
        for t in self.threads:
            t.start()

    def _drain(self, stream):
        for line in stream:
            line = line.rstrip("\n")
            self.lines.append(line if len(line) <= 600 else line[:600] + f"... ({len(line)} chars)")

    def tail(self, n=40):
        time.sleep(0.2)  # let the last lines of a dying process arrive
        return "\n".join(list(self.lines)[-n:])


def image_data_url(png_bytes):
    return "data:image/png;base64," + base64.b64encode(png_bytes).decode()


def make_rng(seed):
    return random.Random(seed)
