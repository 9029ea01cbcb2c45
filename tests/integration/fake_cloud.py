"""A fake OpenAI-compatible cloud endpoint for the hybrid-cloud tests: a real HTTP server on
127.0.0.1 (port 0) that records every request's raw bytes (request line, headers, body) and
answers POST /v1/chat/completions, streamed (server-sent events, chunked, a usage chunk, then
`data: [DONE]`) when the body asks for `"stream": true`, or as one JSON object.

Each request consumes one behaviour from a FIFO the test scripts (the default once it is empty:
"ok"):
    "ok"                               the answer (ANSWER_CHUNKS)
    ("status", 500)                    that status with an OpenAI-shaped error body
    ("status", 429, retry_after_s)     429 with Retry-After: retry_after_s
    ("slow_headers", seconds)          wait that long before the status line, then answer ok
    "close"                            drop the connection without answering
    "close_mid_stream"                 send the headers and the first chunks, then drop

    with FakeCloud() as cloud:
        cloud.script(("status", 500), "ok")
        ... serve --cloud-url cloud.url ...
        assert cloud.count() == 2
"""
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# The answer, in the pieces it is streamed in (non-ASCII included, and one character split
# across no piece: the fake streams whole characters, as OpenAI does).
ANSWER_CHUNKS = ["The cloud", " says:", " 云端", "回答", " one, two,", " three."]
ANSWER = "".join(ANSWER_CHUNKS)
MID_STREAM_CHUNKS = 2  # chunks sent before "close_mid_stream" drops the connection


class _Tee:
    """Wraps the handler's rfile and keeps every byte read through it."""

    def __init__(self, raw):
        self.raw = raw
        self.buffer = bytearray()

    def readline(self, *args):
        line = self.raw.readline(*args)
        self.buffer += line
        return line

    def read(self, *args):
        data = self.raw.read(*args)
        self.buffer += data
        return data

    def take(self):
        data = bytes(self.buffer)
        self.buffer.clear()
        return data

    def close(self):
        self.raw.close()


class Recorded:
    """One request as it arrived."""

    def __init__(self, method, path, headers, raw, body, behaviour):
        self.method, self.path, self.headers = method, path, headers  # headers: {lower name: value}
        self.raw = raw            # bytes: request line, header lines, blank line, body as sent
        self.body = body          # bytes: the body (de-chunked)
        self.behaviour = behaviour
        self.time = time.monotonic()
        try:
            self.json = json.loads(body) if body else None
        except ValueError:
            self.json = None

    def __repr__(self):
        return f"Recorded({self.method} {self.path}, {len(self.raw)} bytes, {self.behaviour!r})"


def _normalize(behaviour):
    if behaviour in ("ok", "close", "close_mid_stream"):
        return (behaviour,)
    if isinstance(behaviour, tuple) and behaviour:
        kind = behaviour[0]
        if kind == "status" and len(behaviour) in (2, 3) and isinstance(behaviour[1], int):
            return behaviour
        if kind == "slow_headers" and len(behaviour) == 2:
            return behaviour
    raise ValueError(f"unknown fake cloud behaviour {behaviour!r}")


class FakeCloud:
    def __init__(self, model_in_answer=None):
        self._lock = threading.Lock()
        self._script = []
        self._default = ("ok",)
        self._records = []
        self._closing = threading.Event()
        self.model_in_answer = model_in_answer  # None: echo the requested model
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self):
                super().setup()
                self.rfile = _Tee(self.rfile)

            def log_message(self, *args):
                pass

            def _read_body(self):
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    body = bytearray()
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass
                            return bytes(body)
                        body += self.rfile.read(size)
                        self.rfile.readline()
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length) if length > 0 else b""

            def _handle(self):
                body = self._read_body()
                raw = self.rfile.take()
                behaviour = fake._next_behaviour()
                headers = {k.lower(): v for k, v in self.headers.items()}
                record = Recorded(self.command, self.path, headers, raw, body, behaviour)
                with fake._lock:
                    fake._records.append(record)
                try:
                    fake._answer(self, record, behaviour)
                except (BrokenPipeError, ConnectionResetError, socket.timeout, OSError):
                    self.close_connection = True

            do_POST = _handle
            do_GET = _handle
            do_PUT = _handle
            do_DELETE = _handle

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self.base = f"http://127.0.0.1:{self.port}"
        self.url = self.base + "/v1"  # what --cloud-url takes
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()

    # ---- scripting ----------------------------------------------------------------------------

    def script(self, *behaviours):
        """Appends behaviours to the FIFO, one consumed per request."""
        normalized = [_normalize(b) for b in behaviours]
        with self._lock:
            self._script.extend(normalized)

    def set_default(self, behaviour):
        """What requests get once the FIFO is empty ("ok" unless changed)."""
        with self._lock:
            self._default = _normalize(behaviour)

    def pending(self):
        with self._lock:
            return len(self._script)

    def _next_behaviour(self):
        with self._lock:
            return self._script.pop(0) if self._script else self._default

    # ---- the recording ------------------------------------------------------------------------

    def requests(self):
        """Every Recorded request so far, in arrival order."""
        with self._lock:
            return list(self._records)

    def bodies(self):
        """The parsed JSON body of every request (None where it was not JSON)."""
        return [r.json for r in self.requests()]

    def count(self):
        with self._lock:
            return len(self._records)

    def raw_bytes(self):
        """Everything every request sent, concatenated."""
        return b"".join(r.raw for r in self.requests())

    def reset(self):
        """Forgets the recording and the script; the default goes back to "ok"."""
        with self._lock:
            self._records.clear()
            self._script.clear()
            self._default = ("ok",)

    def wait_for(self, count, timeout=10):
        deadline = time.monotonic() + timeout
        while self.count() < count:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    # ---- answering ----------------------------------------------------------------------------

    def _answer(self, h, record, behaviour):
        kind = behaviour[0]
        if kind == "close":
            h.close_connection = True
            h.connection.shutdown(socket.SHUT_RDWR)
            return
        if kind == "slow_headers":
            if self._closing.wait(behaviour[1]):
                return
        if kind == "status":
            status = behaviour[1]
            extra = {"Retry-After": str(behaviour[2])} if len(behaviour) == 3 else {}
            kinds = {429: "rate_limit_exceeded", 401: "invalid_api_key"}
            error = {"error": {"message": f"fake cloud answers {status}", "type": kinds.get(status, "server_error"),
                               "param": None, "code": kinds.get(status)}}
            self._send_json(h, status, error, extra)
            return
        if record.method != "POST" or record.path.split("?")[0] != "/v1/chat/completions":
            self._send_json(h, 404, {"error": {"message": f"no route {record.method} {record.path}",
                                               "type": "invalid_request_error", "param": None, "code": None}})
            return
        request = record.json if isinstance(record.json, dict) else {}
        model = self.model_in_answer or request.get("model", "fake-model")
        created = int(time.time())
        rid = f"chatcmpl-fake-{id(record):x}"
        usage = {"prompt_tokens": 7, "completion_tokens": len(ANSWER_CHUNKS),
                 "total_tokens": 7 + len(ANSWER_CHUNKS)}
        if not request.get("stream"):
            self._send_json(h, 200, {
                "id": rid, "object": "chat.completion", "created": created, "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": ANSWER},
                             "finish_reason": "stop"}],
                "usage": usage})
            return
        h.send_response(200)
        h.send_header("Content-Type", "text/event-stream")
        h.send_header("Cache-Control", "no-cache")
        h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()

        def chunk(choices, **more):
            event = {"id": rid, "object": "chat.completion.chunk", "created": created, "model": model,
                     "choices": choices, **more}
            return "data: " + json.dumps(event, ensure_ascii=False) + "\n\n"

        def send(text):
            data = text.encode("utf-8")
            h.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            h.wfile.flush()

        events = [chunk([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])]
        events += [chunk([{"index": 0, "delta": {"content": piece}, "finish_reason": None}]) for piece in ANSWER_CHUNKS]
        if kind == "close_mid_stream":
            for event in events[:1 + MID_STREAM_CHUNKS]:
                send(event)
                time.sleep(0.002)
            h.close_connection = True
            h.connection.shutdown(socket.SHUT_RDWR)
            return
        events.append(chunk([{"index": 0, "delta": {}, "finish_reason": "stop"}]))
        if (request.get("stream_options") or {}).get("include_usage"):
            events.append(chunk([], usage=usage))
        events.append("data: [DONE]\n\n")
        for event in events:
            send(event)
            time.sleep(0.002)  # several TCP segments, as a real stream arrives
        h.wfile.write(b"0\r\n\r\n")
        h.wfile.flush()

    @staticmethod
    def _send_json(h, status, payload, extra_headers=None):
        data = json.dumps(payload).encode()
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data)))
        for name, value in (extra_headers or {}).items():
            h.send_header(name, value)
        h.end_headers()
        h.wfile.write(data)
        h.wfile.flush()

    # ---- lifetime -----------------------------------------------------------------------------

    def close(self):
        self._closing.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
