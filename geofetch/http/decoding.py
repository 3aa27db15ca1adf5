"""Content codings (RFC 9110 §8.4): gzip, deflate and br are decoded; anything else
is an error, never a body passed on as if it were the content.

A body arrives in the order its ``Content-Encoding`` lists its codings and is
decoded in reverse. ``decode(data, limit)`` returns at most about ``limit`` bytes
when a limit is given (exactly, for gzip and deflate; brotli finishes the buffer it
is filling, at most 64 KiB more), so a caller with a cap stops as soon as the
decoded size is over it: a small compressed body cannot expand in memory. Decoding follows what
urllib3 and browsers accept: every member of a multi-member gzip body; ``deflate``
with or without its zlib wrapper (servers send both); a stream cut short after
whole blocks is what arrived, not an error. Bytes that are not the coding they
claim raise :class:`~geofetch.exceptions.ContentDecodingError`.
"""

from __future__ import annotations

import zlib
from typing import Any

from ..exceptions import ContentDecodingError

try:  # a dependency, but an interpreter without it still decodes gzip and deflate
    import brotli  # type: ignore[import-untyped]
except ImportError:  # pragma: no cover - brotli is installed with geofetch
    brotli = None

__all__ = ["ACCEPT_ENCODING", "SUPPORTED", "Decoder", "decoder_for"]

#: The codings this module decodes, in the order they are offered.
SUPPORTED: tuple[str, ...] = ("gzip", "deflate", "br") if brotli is not None else (
    "gzip", "deflate")
#: The ``Accept-Encoding`` header value: exactly what can be decoded.
ACCEPT_ENCODING = ", ".join(SUPPORTED)


class _Gzip:
    """gzip (and ``x-gzip``): every member of a multi-member body."""

    def __init__(self) -> None:
        self._member = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self._whole_members = 0
        self._ignoring = False  # bytes after the last member, ignored as urllib3 does

    def decode(self, data: bytes, limit: int) -> bytes:
        if self._ignoring:
            return b""
        out: list[bytes] = []
        produced = 0
        while True:
            room = limit - produced if limit else 0
            try:
                chunk = self._member.decompress(data, room)
            except zlib.error:
                if not self._whole_members:
                    raise
                self._ignoring = True
                break
            out.append(chunk)
            produced += len(chunk)
            if not (self._member.eof and self._member.unused_data) or (limit and produced >= limit):
                break
            data = self._member.unused_data
            self._whole_members += 1
            self._member = zlib.decompressobj(16 + zlib.MAX_WBITS)
        return b"".join(out)

    def flush(self) -> bytes:
        return b"" if self._ignoring else self._member.flush()


class _Deflate:
    """deflate: a zlib stream (RFC 9110) or, as some servers send it, raw deflate."""

    def __init__(self) -> None:
        self._stream = zlib.decompressobj()
        self._start: bytes | None = b""  # bytes seen before the zlib header is checked

    def decode(self, data: bytes, limit: int) -> bytes:
        if self._start is None:
            return self._stream.decompress(data, limit)
        start = self._start + data
        if len(start) < 2:  # the zlib header is two bytes
            self._start = start
            return b""
        self._start = None
        try:
            return self._stream.decompress(start, limit)
        except zlib.error:  # no zlib header: raw deflate
            self._stream = zlib.decompressobj(-zlib.MAX_WBITS)
            return self._stream.decompress(start, limit)

    def flush(self) -> bytes:
        if self._start:  # one byte: nothing deflate can make of it
            raise zlib.error("a deflate body of one byte")
        return self._stream.flush()


class _Brotli:
    """br (RFC 7932)."""

    def __init__(self) -> None:
        self._stream: Any = brotli.Decompressor()

    def decode(self, data: bytes, limit: int) -> bytes:
        if limit:
            out: bytes = self._stream.process(data, output_buffer_limit=limit)
            return out
        return self._stream.process(data)  # type: ignore[no-any-return]

    def flush(self) -> bytes:
        return b""


_CODINGS: dict[str, Any] = {"gzip": _Gzip, "x-gzip": _Gzip, "deflate": _Deflate}
if brotli is not None:
    _CODINGS["br"] = _Brotli
_ERRORS: tuple[type[Exception], ...] = (zlib.error,) + (
    (brotli.error,) if brotli is not None else ())


class Decoder:
    """Decodes one body's content codings, in order, chunk by chunk."""

    def __init__(self, codings: list[str]) -> None:
        self.codings = codings
        self.name = ", ".join(codings)
        # the last coding listed was applied last: it is undone first
        self._stages = [_CODINGS[coding]() for coding in reversed(codings)]

    def decode(self, data: bytes, limit: int = 0) -> bytes:
        """The decoded bytes of the next chunk ``data``, at most ``limit`` if not 0."""
        try:
            for i, stage in enumerate(self._stages):
                last = i == len(self._stages) - 1
                data = stage.decode(data, limit if last else 0)
        except _ERRORS as exc:
            raise self._error(exc) from None
        return data

    def flush(self) -> bytes:
        """What the decoders still hold at the end of the body."""
        data = b""
        try:
            for stage in self._stages:
                data = stage.decode(data, 0) + stage.flush() if data else stage.flush()
        except _ERRORS as exc:
            raise self._error(exc) from None
        return data

    def _error(self, exc: BaseException) -> ContentDecodingError:
        return ContentDecodingError(
            f"the body is not valid {self.name} (Content-Encoding: {self.name}): {exc}")


def decoder_for(content_encoding: str | None) -> Decoder | None:
    """A :class:`Decoder` for a ``Content-Encoding`` header value; None for none.

    Raises :class:`ContentDecodingError` naming a coding that cannot be decoded
    (``zstd``, ``compress``, an unknown name; ``br`` without the brotli package).
    """
    if not content_encoding:
        return None
    codings = [c.strip().lower() for c in content_encoding.split(",")]
    codings = [c for c in codings if c and c != "identity"]
    if not codings:
        return None
    unknown = [c for c in codings if c not in _CODINGS]
    if unknown:
        raise ContentDecodingError(
            f"the body came in Content-Encoding {', '.join(unknown)}, which geofetch "
            f"cannot decode (it decodes {', '.join(SUPPORTED)})")
    return Decoder(codings)
