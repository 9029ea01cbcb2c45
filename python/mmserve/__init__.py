"""mmserve's Python SDK: text, chat, images and speech through one ``MultiModalModel``, against a
running mmserve server (``mode="remote"``, the standard library only) or in this process
(``mode="local"``, the compiled extension over the same engine). See docs/python-sdk.md.

    from mmserve import MultiModalModel
    model = MultiModalModel(mode="remote", base_url="http://localhost:8080")
    print(model.generate("Once upon a time", max_tokens=32, temperature=0))
"""
from __future__ import annotations

import os as _os
from typing import Any, Dict, List

from ._stream import TextStream
from .errors import (AuthenticationFailed, ConnectionFailed, DeviceUnavailable, InvalidInput,
                     PermissionDenied, RateLimited,
                     LocalModeUnavailable, MMServeError, ModelNotLoaded, RequestTimeout,
                     ServerBusy, ServerUnavailable)
from .model import MultiModalModel
from .rest import infer

__version__ = "0.1.0"

# Development: use the extension a CMake build left in <build>/python instead of an installed one.
if _os.environ.get("MMSERVE_EXTENSION_DIR"):
    __path__.append(_os.environ["MMSERVE_EXTENSION_DIR"])  # type: ignore[name-defined]


def devices() -> List[Dict[str, Any]]:
    """The devices local mode can use here (ggml's registry): name, description, type
    ("cpu", "gpu", ...), backend ("CPU", "CUDA", ...) and memory in bytes."""
    from .local import load_native
    return [dict(d) for d in load_native().devices()]


def local_mode_available() -> bool:
    """True when the compiled extension is installed and loads (local mode can be used)."""
    from .local import load_native
    try:
        load_native()
    except LocalModeUnavailable:
        return False
    return True


__all__ = [
    "MultiModalModel", "TextStream", "infer", "devices", "local_mode_available",
    "MMServeError", "InvalidInput", "ModelNotLoaded", "ServerBusy", "ServerUnavailable",
    "ConnectionFailed", "AuthenticationFailed", "PermissionDenied", "RateLimited",
    "RequestTimeout", "DeviceUnavailable", "LocalModeUnavailable", "__version__",
]
