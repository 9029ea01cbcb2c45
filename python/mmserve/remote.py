"""Remote mode: mmserve's REST API over HTTP, with the standard library only (urllib).

RemoteClient sends JSON requests and maps error answers to the SDK's exceptions; EventStream
reads server-sent events; RemoteBackend is MultiModalModel's remote mode on top of them
(/v1/inference for text-gen, image-caption and speech-transcribe; /v1/chat/completions).

Thread-safety: they hold no connection state between requests (one HTTP connection each), so
one RemoteClient or RemoteBackend may be used from several threads at once; an EventStream
belongs to the thread reading it.
"""
from __future__ import annotations

import base64
import http.client
import ipaddress
import json
import os
import socket
import ssl
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Dict, Iterator, List, Optional

from ._stream import TextStream
from .errors import (ConnectionFailed, InvalidInput, MMServeError, RequestTimeout,
                     ServerUnavailable, error_from_response)

DEFAULT_BASE_URL = "http://localhost:8080"
DEFAULT_TIMEOUT = 600.0  # the server's own default per-request deadline (--timeout)

_USER_AGENT = "mmserve-python"


def _is_loopback(host: str) -> bool:
    if host.lower() in ("localhost", "localhost.localdomain") or host.lower().endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _is_timeout(exc: BaseException) -> bool:
    return isinstance(exc, (socket.timeout, TimeoutError))


class RemoteClient:
    """Sends JSON requests to one mmserve server and maps its errors to the SDK's exceptions."""

    def __init__(self, base_url: str = DEFAULT_BASE_URL, api_key: Optional[str] = None,
                 timeout: Optional[float] = DEFAULT_TIMEOUT,
                 ca_file: Optional[str] = None) -> None:
        parsed = urllib.parse.urlsplit(base_url or "")
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise InvalidInput(f"base_url must be an http(s) URL such as {DEFAULT_BASE_URL}, "
                               f"got {base_url!r}", param="base_url")
        if timeout is not None and not timeout > 0:
            raise InvalidInput(f"timeout must be a positive number of seconds, got {timeout!r}",
                               param="timeout")
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.timeout = timeout
        # A proxy from the environment (http_proxy) cannot reach this machine's loopback, so a
        # local server is always asked directly; other hosts follow the environment as usual.
        direct = _is_loopback(parsed.hostname or "")
        handlers: List[urllib.request.BaseHandler] = [urllib.request.ProxyHandler({})] if direct else []
        if ca_file is not None:
            # A server with its own certificate authority (serve --tls-cert): trust it, and
            # still check the host name against the certificate.
            try:
                context = ssl.create_default_context(cafile=os.fspath(ca_file))
            except (OSError, ssl.SSLError) as e:
                raise InvalidInput(f"ca_file {ca_file!r} is not a readable PEM certificate: {e}",
                                   param="ca_file") from None
            handlers.append(urllib.request.HTTPSHandler(context=context))
        self._opener = urllib.request.build_opener(*handlers)

    def __repr__(self) -> str:
        return f"RemoteClient({self.base_url!r})"

    def _open(self, method: str, path: str, body: Optional[Dict[str, Any]],
              accept: str = "application/json") -> http.client.HTTPResponse:
        data = None if body is None else json.dumps(body).encode("utf-8")
        headers = {"Accept": accept, "User-Agent": _USER_AGENT}
        if data is not None:
            headers["Content-Type"] = "application/json"
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        request = urllib.request.Request(self.base_url + path, data=data, headers=headers,
                                         method=method)
        try:
            return self._opener.open(request, timeout=self.timeout)
        except urllib.error.HTTPError as e:
            raw = b""
            try:
                raw = e.read()
            except (OSError, http.client.HTTPException):
                pass
            finally:
                e.close()
            text = raw.decode("utf-8", "replace")
            try:
                parsed: Any = json.loads(text)
            except ValueError:
                parsed = None
            raise error_from_response(e.code, parsed, retry_after=e.headers.get("Retry-After"),
                                      fallback_message=text.strip()[:500]) from None
        except urllib.error.URLError as e:
            if _is_timeout(e.reason):
                raise RequestTimeout(f"no answer from {self.base_url} within {self.timeout} s") from None
            raise ConnectionFailed(f"cannot reach the mmserve server at {self.base_url}: "
                                   f"{e.reason}") from None
        except (socket.timeout, TimeoutError):
            raise RequestTimeout(f"no answer from {self.base_url} within {self.timeout} s") from None
        except (ConnectionError, http.client.HTTPException, OSError) as e:
            raise ConnectionFailed(f"the connection to {self.base_url} failed: {e}") from None

    def request(self, method: str, path: str, body: Optional[Dict[str, Any]] = None) -> Any:
        """Sends one request and returns its parsed JSON answer (raises on an error status)."""
        response = self._open(method, path, body)
        try:
            raw = response.read()
        except (socket.timeout, TimeoutError):
            raise RequestTimeout(f"the answer from {self.base_url} took longer than "
                                 f"{self.timeout} s") from None
        except (ConnectionError, http.client.HTTPException, OSError) as e:
            raise ConnectionFailed(f"the connection to {self.base_url} broke: {e}") from None
        finally:
            response.close()
        try:
            return json.loads(raw.decode("utf-8"))
        except ValueError:
            raise MMServeError(f"{self.base_url}{path} did not answer JSON: "
                               f"{raw[:200].decode('utf-8', 'replace')!r}") from None

    def stream(self, path: str, body: Dict[str, Any]) -> "EventStream":
        """Sends a streaming request; the answer's status is checked now, its events read later."""
        return EventStream(self._open("POST", path, body, accept="text/event-stream"),
                           self.base_url, self.timeout)


class EventStream:
    """The server-sent events of one streamed answer: each `data:` payload, parsed as JSON,
    until `data: [DONE]`. Closing it closes the connection, which cancels the request on the
    server."""

    def __init__(self, response: http.client.HTTPResponse, base_url: str,
                 timeout: Optional[float]) -> None:
        self._response = response
        self._base_url = base_url
        self._timeout = timeout
        ctype = response.headers.get("Content-Type", "")
        if not ctype.startswith("text/event-stream"):
            response.close()
            raise MMServeError(f"{base_url} answered {ctype or 'no content type'} to a "
                               f"streaming request")

    def __iter__(self) -> Iterator[Dict[str, Any]]:
        data: list = []
        try:
            while True:
                try:
                    line = self._response.readline()
                except (socket.timeout, TimeoutError):
                    raise RequestTimeout(f"no event from {self._base_url} within "
                                         f"{self._timeout} s") from None
                except (ConnectionError, http.client.HTTPException, OSError) as e:
                    raise ConnectionFailed(f"the stream from {self._base_url} broke: {e}") from None
                if not line:
                    raise ConnectionFailed(f"the stream from {self._base_url} ended before "
                                           f"[DONE]")
                text = line.decode("utf-8").rstrip("\r\n")
                if text.startswith("data:"):
                    value = text[5:]
                    data.append(value[1:] if value.startswith(" ") else value)
                    continue
                if text or not data:
                    continue  # comments, other fields, blank keep-alives
                payload = "\n".join(data)
                data = []
                if payload == "[DONE]":
                    return
                try:
                    yield json.loads(payload)
                except ValueError:
                    raise MMServeError(f"malformed event from {self._base_url}: "
                                       f"{payload[:200]!r}") from None
        finally:
            self.close()

    def close(self) -> None:
        self._response.close()


def _stream_failure(event: Dict[str, Any]) -> Optional[MMServeError]:
    """The error a stream's event carries, if any: every endpoint ends a failed stream with one
    ``{"error": {"message", "type", "param", "code"}}`` event, typed like an HTTP error body."""
    if isinstance(event.get("error"), dict):
        code = event["error"].get("code")
        return error_from_response(code if isinstance(code, int) else None, event)
    return None


class RemoteBackend:
    """MultiModalModel's remote mode: one mmserve server; see MultiModalModel for the API."""

    def __init__(self, base_url: str, api_key: Optional[str], timeout: Optional[float],
                 ca_file: Optional[str] = None) -> None:
        self.client = RemoteClient(base_url, api_key, timeout, ca_file)

    def info(self) -> Dict[str, Any]:
        models = self.client.request("GET", "/v1/models")
        health = self.client.request("GET", "/health")
        return {"mode": "remote", "base_url": self.client.base_url,
                "models": [m.get("id") for m in models.get("data", [])], "health": health}

    def _inference(self, task: str, input: str, params: Dict[str, Any]) -> Dict[str, Any]:
        return self.client.request("POST", "/v1/inference",
                                   {"input": input, "task": task, "parameters": params})

    def generate(self, prompt: str, params: Dict[str, Any], stream: bool,
                 system: Optional[str], raw: Optional[bool]) -> Any:
        params = dict(params)
        if system is not None:
            params["system"] = system
        if raw is not None:
            params["raw"] = raw
        if not stream:
            return self._inference("text-gen", prompt, params)["output"]
        events = self.client.stream("/v1/inference", {"input": prompt, "task": "text-gen",
                                                      "parameters": params, "stream": True})

        def pieces(s: TextStream) -> Iterator[str]:
            for event in events:
                failure = _stream_failure(event)
                if failure is not None:
                    raise failure
                if "finish_reason" in event:
                    s._finish(event.get("finish_reason"), event.get("usage"))
                if event.get("output"):
                    yield event["output"]

        return TextStream(pieces, events.close)

    def chat(self, messages: List[Dict[str, Any]], params: Dict[str, Any], stream: bool) -> Any:
        body: Dict[str, Any] = {"messages": messages, **params}
        if not stream:
            answer = self.client.request("POST", "/v1/chat/completions", body)
            return answer["choices"][0]["message"]["content"]
        body.update(stream=True, stream_options={"include_usage": True})
        events = self.client.stream("/v1/chat/completions", body)

        def pieces(s: TextStream) -> Iterator[str]:
            finish_reason = None
            for event in events:
                failure = _stream_failure(event)
                if failure is not None:
                    raise failure
                for choice in event.get("choices") or []:
                    content = (choice.get("delta") or {}).get("content")
                    if content:
                        yield content
                    finish_reason = choice.get("finish_reason") or finish_reason
                if event.get("usage"):
                    s._finish(finish_reason, event["usage"])
            if s.finish_reason is None:
                s._finish(finish_reason, None)

        return TextStream(pieces, events.close)

    def describe(self, image: bytes, prompt: Optional[str], params: Dict[str, Any],
                 system: Optional[str] = None, raw: Optional[bool] = None) -> str:
        params = dict(params)
        if prompt is not None:
            params["prompt"] = prompt
        if system is not None:
            params["system"] = system
        if raw is not None:
            params["raw"] = raw
        encoded = base64.b64encode(image).decode("ascii")
        return self._inference("image-caption", encoded, params)["output"]

    def transcribe(self, audio: bytes, language: Optional[str], segments: bool,
                   translate: bool = False, prompt: Optional[str] = None,
                   words: bool = False) -> Any:
        params: Dict[str, Any] = {}
        if language is not None:
            params["language"] = language
        if segments:
            params["timestamps"] = True
        if translate:
            params["translate"] = True
        if prompt is not None:
            params["prompt"] = prompt
        if words:
            params["words"] = True
        answer = self._inference("speech-transcribe", base64.b64encode(audio).decode("ascii"),
                                 params)
        if not segments:
            return answer["output"]
        if not isinstance(answer.get("segments"), list):
            raise MMServeError(f"{self.client.base_url} returned no segments for "
                               f"format='segments'")
        return answer["segments"]

    def close(self) -> None:
        pass  # no connection is kept between requests
