"""The one wire format between the trusted side and a repeat server: length-framed messages.

A frame is a JSON header on one line, then the payloads whose byte counts the header lists
(``"sizes": [n1, n2, ...]``). The reader checks every size against its own limits *before*
reading, so a peer that lies or floods gets an error, never unbounded memory; headers and
payloads are data to the reader, never code.
"""

from __future__ import annotations

import json
import os
from typing import BinaryIO

#: A header line longer than this is not one of ours.
MAX_HEADER = 64 * 1024


class FrameError(ValueError):
    """What came in is not a well-formed frame within the reader's limits."""


def write_frame(fd: int, header: dict, *payloads: bytes) -> None:
    """Write ``header`` (sizes filled in) and ``payloads`` to the file descriptor ``fd``."""
    data = json.dumps({**header, "sizes": [len(p) for p in payloads]}).encode() + b"\n"
    view = memoryview(b"".join([data, *payloads]))
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _read_exactly(stream: BinaryIO, size: int) -> bytes:
    chunks, left = [], size
    while left:
        chunk = stream.read(min(left, 1 << 20))
        if not chunk:
            raise FrameError(f"the frame ended {left} bytes early")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def read_frame(stream: BinaryIO, max_payload: int) -> tuple[dict, list[bytes]] | None:
    """The next frame of ``stream`` (a buffered binary reader), or None at its end.

    Raises :class:`FrameError` when the header is not a JSON object with a list of sizes or a
    payload would pass ``max_payload`` bytes in all.
    """
    line = stream.readline(MAX_HEADER + 1)
    if not line:
        return None
    if len(line) > MAX_HEADER or not line.endswith(b"\n"):
        raise FrameError("frame header too long or cut off")
    try:
        header = json.loads(line)
    except ValueError:
        raise FrameError("frame header is not JSON") from None
    sizes = header.get("sizes") if isinstance(header, dict) else None
    if not isinstance(sizes, list) or not all(isinstance(s, int) and s >= 0 for s in sizes):
        raise FrameError("frame header has no list of sizes")
    if sum(sizes) > max_payload:
        raise FrameError(f"frame of {sum(sizes)} bytes is over the limit of {max_payload}")
    return header, [_read_exactly(stream, size) for size in sizes]
