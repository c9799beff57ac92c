"""Hostile LMS downloads and zip bombs, built cheaply.

A zip bomb's member is one long run of a byte: it is deflated once per 16 MiB block with a full
flush (which makes every block's compressed bytes the same), so 1 GiB costs one block's
compression and a CRC pass, not a gigabyte of deflating. The zip is written by hand (it is a
small format); Python's zipfile reads it back in the tests of this package.
"""

from __future__ import annotations

import os
import stat
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path

GIB = 1 << 30
_BLOCK = 16 << 20


@dataclass
class Entry:
    name: str
    data: bytes = b""
    #: (raw deflate stream, CRC-32, uncompressed size): a member built by :func:`deflated_run`
    raw: tuple[bytes, int, int] | None = None
    date_time: tuple[int, int, int, int, int, int] = (2026, 3, 15, 10, 20, 30)
    mode: int = stat.S_IFREG | 0o644


def deflated_run(fill: bytes, size: int, tail: bytes = b"") -> tuple[bytes, int, int]:
    """A raw deflate stream of ``size`` bytes of ``fill`` followed by ``tail``: (stream, crc, size)."""
    assert len(fill) == 1 and size % _BLOCK == 0
    block = fill * _BLOCK
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    first = compressor.compress(block) + compressor.flush(zlib.Z_FULL_FLUSH)
    later = compressor.compress(block) + compressor.flush(zlib.Z_FULL_FLUSH)
    blocks = size // _BLOCK
    stream = first + later * (blocks - 1) + compressor.compress(tail) + compressor.flush(zlib.Z_FINISH)
    crc = 0
    for _ in range(blocks):
        crc = zlib.crc32(block, crc)
    return stream, zlib.crc32(tail, crc), size + len(tail)


def _dos(date_time: tuple[int, ...]) -> tuple[int, int]:
    y, mo, d, h, mi, s = date_time
    return (h << 11) | (mi << 5) | (s // 2), ((y - 1980) << 9) | (mo << 5) | d


def zip_bytes(entries: list[Entry]) -> bytes:
    """A zip of ``entries`` (deflated, or stored for links; names as given, even hostile ones)."""
    out, central = bytearray(), bytearray()
    for entry in entries:
        name = entry.name.encode("utf-8", "surrogateescape")
        if entry.raw is not None:
            payload, crc, size = entry.raw
            method = 8
        elif stat.S_ISLNK(entry.mode):
            payload, crc, size, method = entry.data, zlib.crc32(entry.data), len(entry.data), 0
        else:
            compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
            payload = compressor.compress(entry.data) + compressor.flush()
            crc, size, method = zlib.crc32(entry.data), len(entry.data), 8
        dos_time, dos_date = _dos(entry.date_time)
        offset = len(out)
        out += struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0x800, method, dos_time, dos_date, crc,
                           len(payload), size, len(name), 0) + name + payload
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, (3 << 8) | 20, 20, 0x800, method, dos_time,
                               dos_date, crc, len(payload), size, len(name), 0, 0, 0, 0,
                               (entry.mode & 0xFFFF) << 16, offset) + name
    start = len(out)
    out += central + struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(entries), len(entries), len(central), start, 0)
    return bytes(out)


def keras_bomb() -> bytes:
    """A ``.keras`` file (a zip) whose config.json is 1 GiB of spaces and ``{}``: ~1 MB on disk."""
    metadata = b'{"keras_version": "3.15.1", "date_saved": "2026-03-01@00:00:00"}'
    return zip_bytes([Entry("metadata.json", metadata), Entry("config.json", raw=deflated_run(b" ", GIB, b"{}"))])


# ----------------------------------------------------------------------------- LMS downloads


@dataclass
class Download:
    """One hostile download for `course grade --from`, and what importing it may produce."""

    name: str
    honest: dict[str, str]  # student id -> what must be imported for it ("lstm.ipynb")
    hostile: list[str]  # labels of the hostile entries: listed in the output when the rest is imported
    forged_timestamp: str = ""  # a timestamp only a forged file carries
    #: ids that may be imported too, provided nothing hostile comes with them
    optional: tuple[str, ...] = ()
    is_folder: bool = False
    entries: list[Entry] = field(default_factory=list)  # zip members
    links: dict[str, str] = field(default_factory=dict)  # folder download: relative path -> link target
    files: dict[str, bytes] = field(default_factory=dict)  # folder download: relative path -> bytes

    def write(self, dest: Path) -> Path:
        if not self.is_folder:
            dest = dest.with_suffix(".zip")
            dest.write_bytes(zip_bytes(self.entries))
            return dest
        dest.mkdir(parents=True)
        for rel, data in self.files.items():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            (dest / rel).write_bytes(data)
        for rel, target in self.links.items():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            os.symlink(target, dest / rel)
        return dest


def downloads(notebook: bytes, marker: str, paths: dict[str, str], bomb_member: tuple[bytes, int, int]
              ) -> dict[str, Download]:
    """The hostile downloads: forged timestamps and hostile ids and names; '..', '../' and
    absolute entries and a symlink entry; a zip bomb; a folder of links to the TA's files.
    ``notebook`` is what an honest entry holds (a cut-off notebook: imported, then failed fast)."""
    link = stat.S_IFLNK | 0o777
    names = Download(
        "names", {"1001": "lstm.ipynb", "1005": "lstm.ipynb"},
        hostile=["timestamp", "*", "-rf", "RTPWN", "a" * 40, "x y"],
        forged_timestamp="2000-01-01",
        entries=[
            Entry("doe_1001_5001_lstm.ipynb", notebook),
            Entry("doe_1001_5001_timestamp.txt", b"2000-01-01 00:00:00 UTC"),
            Entry('=HYPERLINK("http://example.invalid")_1005_5005_lstm.ipynb', notebook),
            Entry("*/lstm.ipynb", notebook),
            Entry("-rf/lstm.ipynb", notebook),
            Entry(f"{marker}\x1b[2J\x07/lstm.ipynb", notebook),
            Entry("a" * 300 + "/lstm.ipynb", notebook),
            Entry("x y/lstm.ipynb", notebook),
        ])
    dotdot = Download(
        "dotdot", {"1001": "lstm.ipynb"},
        hostile=["..", f"{marker}_escape", "lstm_model.keras"], optional=("1006",),
        entries=[
            Entry("doe_1001_5001_lstm.ipynb", notebook),
            Entry("..", b"dotdot"),
            Entry("evil/..", b"dotdot"),
            Entry(f"../{marker}_escape1.txt", b"escape"),
            Entry(f"../../{marker}_escape2.ipynb", notebook),
            Entry(f"1003/../../{marker}_escape3.txt", b"escape"),
            Entry(f"/tmp/{marker}_escape4.txt", b"escape"),
            Entry("doe_1003_5003_..", b"dotdot"),
            Entry(f"doe_1003_5003_{marker}_escape5/../../x.txt", b"escape"),
            Entry("doe_1006_5006_lstm_model.keras", paths["secret"].encode(), mode=link),
            Entry("doe_1006_5006_lstm.ipynb", paths["solution"].encode(), mode=link),
        ])
    bomb = Download(
        "bomb", {"1001": "lstm.ipynb"},
        hostile=["lstm_model.keras", "data.bin"], optional=("1004",),
        entries=[
            Entry("doe_1001_5001_lstm.ipynb", notebook),
            Entry("bomb_1004_5004_lstm.ipynb", notebook),
            Entry("bomb_1004_5004_lstm_model.keras", raw=bomb_member),
            Entry("bomb_1004_5004_data.bin", raw=bomb_member),
        ])
    folder = Download(
        "folder-links", {"1009": "lstm.ipynb"},
        hostile=["1007", "1008", "1010"], optional=("1007", "1008", "1010"),
        is_folder=True,
        files={"1009/lstm.ipynb": notebook},
        links={"1007/lstm.ipynb": paths["solution"], "1007/lstm_model.keras": paths["solution_model"],
               "1007/notes.txt": paths["secret"], "1008": paths["secret_dir"],
               "1010/lstm.ipynb": paths["classmate_source"]})
    everything = Download("everything", {**names.honest, **dotdot.honest}, names.hostile + dotdot.hostile,
                          forged_timestamp=names.forged_timestamp, optional=dotdot.optional,
                          entries=names.entries + dotdot.entries[1:])
    return {d.name: d for d in (names, dotdot, bomb, folder, everything)}
