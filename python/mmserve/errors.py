"""Typed errors of the mmserve SDK, the same in both modes.

Remote mode raises them from the server's JSON errors (``{"error": {"message", "type", "param",
"code"}}``); local mode from the engine's errors, which carry the same type names. Each keeps the
server's (or engine's) message as ``message``, plus ``status`` (the HTTP status, None locally),
``type`` (the error type name, e.g. ``"invalid_request_error"``) and ``param`` (the offending
field, or None).
"""
from __future__ import annotations

from typing import Any, Dict, Optional

__all__ = [
    "MMServeError", "InvalidInput", "ModelNotLoaded", "ServerBusy", "ServerUnavailable",
    "ConnectionFailed", "AuthenticationFailed", "PermissionDenied", "RateLimited",
    "RequestTimeout", "DeviceUnavailable",
    "LocalModeUnavailable", "error_from_response",
]


class MMServeError(Exception):
    """Base class of every error the SDK raises."""

    def __init__(self, message: str, *, status: Optional[int] = None, type: Optional[str] = None,
                 param: Optional[str] = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.type = type
        self.param = param

    def __str__(self) -> str:
        where = f" (param: {self.param})" if self.param else ""
        return f"{self.message}{where}"


class InvalidInput(MMServeError, ValueError):
    """The request is malformed or out of range (HTTP 400, 413): fix it, do not retry."""


class ModelNotLoaded(MMServeError):
    """The task needs a model that is not loaded: no vision/speech model, a model file that is
    missing or cannot load, or a model that was closed."""


class ServerBusy(MMServeError):
    """The server's wait queue is full (HTTP 429): retry after ``retry_after`` seconds."""

    def __init__(self, message: str, *, retry_after: Optional[float] = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.retry_after = retry_after


class RateLimited(ServerBusy):
    """The API key is over one of its quotas (HTTP 429, type ``rate_limit_exceeded``): requests
    or tokens per minute, audio seconds per day, or concurrent requests. Retry after
    ``retry_after`` seconds."""


class ServerUnavailable(ServerBusy):
    """The server cannot take work now (HTTP 503): still loading its model, or shutting down."""


class ConnectionFailed(MMServeError, ConnectionError):
    """No answer from the server: nothing listening, wrong address, or the connection broke."""


class AuthenticationFailed(MMServeError):
    """Missing or wrong API key (HTTP 401)."""


class PermissionDenied(MMServeError):
    """A valid API key that may not do this (HTTP 403): an endpoint, task or model outside its
    scopes, an admin endpoint without an admin key, or a privacy rule that refuses the input."""


class RequestTimeout(MMServeError, TimeoutError):
    """The request ran past the server's deadline (HTTP 504) or the client's ``timeout``."""


class DeviceUnavailable(MMServeError):
    """Local mode was asked for a device (e.g. ``cuda:0``) this machine or build does not have."""


class LocalModeUnavailable(MMServeError, ImportError):
    """The compiled extension that local mode needs is not installed or cannot load."""


# The server's error type names (src/core/error.cpp) and HTTP statuses, to SDK exceptions.
_BY_TYPE = {
    "invalid_request_error": InvalidInput,
    "payload_too_large": InvalidInput,
    "model_not_loaded": ModelNotLoaded,
    "model_load_error": ModelNotLoaded,
    "server_busy": ServerBusy,
    "rate_limit_exceeded": RateLimited,
    "unavailable": ServerUnavailable,
    "authentication_error": AuthenticationFailed,
    "permission_error": PermissionDenied,
    "timeout": RequestTimeout,
}
_BY_STATUS = {400: InvalidInput, 401: AuthenticationFailed, 403: PermissionDenied,
              413: InvalidInput, 429: ServerBusy,
              503: ServerUnavailable, 504: RequestTimeout}


def error_from_response(status: Optional[int], body: Any, *, retry_after: Optional[str] = None,
                        fallback_message: str = "") -> MMServeError:
    """The exception for an error answer: ``body`` is the parsed JSON body (or None/str)."""
    err: Dict[str, Any] = {}
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        err = body["error"]
    elif isinstance(body, dict) and isinstance(body.get("error"), str):
        err = {"message": body["error"]}
    message = str(err.get("message") or fallback_message or f"HTTP {status}")
    etype = err.get("type") if isinstance(err.get("type"), str) else None
    param = err.get("param") if isinstance(err.get("param"), str) else None
    cls = _BY_TYPE.get(etype or "")
    if cls is None and etype == "not_found_error" and param == "model":
        cls = ModelNotLoaded
    if cls is None:
        cls = _BY_STATUS.get(status or 0, MMServeError)
    kw: Dict[str, Any] = {"status": status, "type": etype, "param": param}
    if issubclass(cls, ServerBusy):
        try:
            kw["retry_after"] = float(retry_after) if retry_after is not None else None
        except ValueError:
            kw["retry_after"] = None
    return cls(message, **kw)
