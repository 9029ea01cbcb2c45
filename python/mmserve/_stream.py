"""TextStream: what ``generate(..., stream=True)`` and ``chat(..., stream=True)`` return."""
from __future__ import annotations

from typing import Any, Callable, Dict, Iterator, Optional


class TextStream:
    """Iterates over the pieces of text of one answer as the model produces them.

    ``"".join(stream)`` is the same text the non-streamed call returns. Once exhausted,
    ``finish_reason`` ("stop" or "length") and ``usage`` are set. ``close()`` (or leaving a
    ``with`` block, or dropping the stream) stops the generation: in remote mode by closing the
    connection, which cancels the request on the server; locally by cancelling the sequence.
    Errors raised while streaming are the SDK's typed exceptions.

    Not thread-safe: consume one stream from one thread.
    """

    def __init__(self, source: Callable[["TextStream"], Iterator[str]],
                 on_close: Callable[[], None]) -> None:
        self.finish_reason: Optional[str] = None
        self.usage: Optional[Dict[str, Any]] = None
        self._on_close = on_close
        self._closed = False
        self._pieces = source(self)

    def __iter__(self) -> "TextStream":
        return self

    def __next__(self) -> str:
        if self._closed:
            raise StopIteration
        try:
            return next(self._pieces)
        except BaseException:  # the end, an error, or KeyboardInterrupt: stop generating
            self.close()
            raise

    def read(self) -> str:
        """The rest of the text, concatenated."""
        return "".join(self)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            close = getattr(self._pieces, "close", None)
            if close is not None:
                close()
        finally:
            self._on_close()

    def _finish(self, finish_reason: Optional[str], usage: Optional[Dict[str, Any]]) -> None:
        self.finish_reason = finish_reason
        self.usage = usage

    def __enter__(self) -> "TextStream":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass
