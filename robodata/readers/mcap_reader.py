"""MCAP files (ROS 2 CDR, ROS 1, protobuf, JSON encodings): a streaming, chunk-at-a-time reader built for image-heavy logs.

How it reads. The summary section (chunk indexes, channels, schemas, statistics) says where every chunk
is and which time span it covers; chunks are decompressed one at a time in start-time order and their
messages merged by log time (a heap only where chunks overlap), so memory holds a few chunks.
Without a summary (a writer that crashed, or one that wrote none) the data section is walked record by
record instead (a streaming read that needs no index) and the same merge runs on what the walk found.

Why not ``mcap.reader`` + ``mcap_ros2``'s decoder in the loop: per message the ``mcap`` reader copies the
payload out of the chunk (``bytes`` slice), and ``mcap_ros2`` copies a ``uint8[]`` field again (``Image.data``
becomes a second 900 kB ``bytes``; not a list of ints, but a copy) and turns every numeric array
(``float64[] position``) into a Python list, element by element. Here payloads stay ``memoryview`` slices
of the decompressed chunk, and CDR is decoded by rosbags' generated deserializers, which map primitive
arrays to numpy views: ``Image.data`` is a zero-copy ``uint8`` array, ``JointState.position`` a ``float64``
array. ``mcap_ros2`` remains the fallback for schemas rosbags cannot parse. Where the time goes on an image
log is decompression; so chunks are read and decompressed by worker threads ahead of the consumer, into
recycled buffers (a fresh multi-MB ``bytes`` per chunk costs page faults and zeroing, about a third of the
CPU time); chunk CRCs are checked only on request (``validate_crcs=True``). Decoded arrays are views of a
chunk buffer: holding one keeps that buffer alive and out of the pool; copy it (``np.array(x)``) to keep it
independently.

Protobuf channels (Foxglove SDK recordings: ``foxglove.CompressedImage``, ``foxglove.PoseInFrame``...; or a
user's own types) are decoded by ``mcap_protobuf``, which builds message classes from the FileDescriptorSet
in each schema record. ``foxglove.CompressedVideo`` topics (a packet per message) are then decoded as streams
with PyAV, one decoder per topic per ``messages()`` call, into frames in order. Flatbuffer channels are refused: their schema records hold binary schemas that need
generated code to decode.
"""

from __future__ import annotations

import heapq
import json
import os
import struct
import threading
import warnings
import zlib
from array import array
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import numpy as np

from robodata.readers.base import (
    InterArrival,
    Message,
    RecordingError,
    RecordingReader,
    RecordingWarning,
    TopicInfo,
    decode_video_streams,
    normalize_msgtype,
)
from robodata.readers.typesys import Decoder, TypeResolver

MAGIC = b"\x89MCAP0\r\n"
OP_HEADER, OP_FOOTER, OP_SCHEMA, OP_CHANNEL, OP_MESSAGE, OP_CHUNK = 0x01, 0x02, 0x03, 0x04, 0x05, 0x06
OP_MESSAGE_INDEX, OP_CHUNK_INDEX, OP_STATISTICS, OP_DATA_END = 0x07, 0x08, 0x0B, 0x0F
_OPNAMES = {
    0x01: "Header", 0x02: "Footer", 0x03: "Schema", 0x04: "Channel", 0x05: "Message", 0x06: "Chunk",
    0x07: "MessageIndex", 0x08: "ChunkIndex", 0x09: "Attachment", 0x0A: "AttachmentIndex",
    0x0B: "Statistics", 0x0C: "Metadata", 0x0D: "MetadataIndex", 0x0E: "SummaryOffset", 0x0F: "DataEnd",
}  # fmt: skip

_REC = struct.Struct("<BQ")  # opcode, record length
_MSG = struct.Struct("<BQHIQQ")  # opcode, length, channel id, sequence, log time, publish time
_MSG_HEAD = 22  # channel id + sequence + log time + publish time
_U16, _U32, _U64 = struct.Struct("<H"), struct.Struct("<I"), struct.Struct("<Q")
_FOOTER_LEN = 9 + 20  # Footer record: prefix + summary_start, summary_offset_start, summary_crc
_MAX_RECORD = 4 << 30  # a record longer than this is damage, not data
_local = threading.local()


@dataclass(slots=True)
class _Chunk:
    offset: int  # file offset of the Chunk record's opcode
    length: int  # whole record, prefix included
    start: int  # message_start_time
    end: int  # message_end_time
    channels: set[int] | None = None  # channel ids with messages in it (from message indexes), None = unknown
    index_offset: int = 0  # file offset of its MessageIndex records (0 = none)
    index_length: int = 0


@dataclass(slots=True)
class _Schema:
    id: int
    name: str
    encoding: str
    data: bytes


@dataclass(slots=True)
class _Channel:
    id: int
    schema_id: int
    topic: str
    encoding: str


class _Cursor:
    """Reads MCAP primitives from a buffer, raising ``ValueError`` past its end."""

    __slots__ = ("buf", "pos", "end")

    def __init__(self, buf: Any, pos: int = 0, end: int | None = None):
        self.buf = buf
        self.pos = pos
        self.end = len(buf) if end is None else end

    def _take(self, n: int) -> int:
        p = self.pos
        if p + n > self.end:
            raise ValueError(f"a field at offset {p} runs past the end of its record")
        self.pos = p + n
        return p

    def u16(self) -> int:
        return _U16.unpack_from(self.buf, self._take(2))[0]

    def u32(self) -> int:
        return _U32.unpack_from(self.buf, self._take(4))[0]

    def u64(self) -> int:
        return _U64.unpack_from(self.buf, self._take(8))[0]

    def raw(self, n: int) -> bytes:
        p = self._take(n)
        return bytes(self.buf[p : p + n])

    def string(self) -> str:
        return self.raw(self.u32()).decode("utf-8", "replace")


def _parse_schema(c: _Cursor) -> _Schema:
    sid = c.u16()
    name = c.string()
    enc = c.string()
    data = c.raw(c.u32())
    return _Schema(sid, name, enc, data)


def _parse_channel(c: _Cursor) -> _Channel:
    cid = c.u16()
    sid = c.u16()
    topic = c.string()
    enc = c.string()
    return _Channel(cid, sid, topic, enc)


class _BufferPool:
    """Recycled chunk buffers. A buffer is reused only when nothing refers into it any more: CPython refuses
    to resize a ``bytearray`` that has live exports (memoryviews, numpy arrays made from them), and that is
    the test (``append``/``del`` of one byte, within its allocation). Message payloads and decoded arrays
    are views into these buffers, so a caller that keeps them keeps their buffer out of the pool."""

    def __init__(self, keep: int):
        self._keep = keep
        self._bufs: list[bytearray] = []
        self._lock = threading.Lock()

    @staticmethod
    def _unused(b: bytearray) -> bool:
        try:
            b.append(0)
        except BufferError:
            return False
        del b[-1]
        return True

    def take(self, n: int) -> bytearray:
        with self._lock:
            for i, b in enumerate(self._bufs):
                if len(b) >= n and self._unused(b):
                    return self._bufs.pop(i)
        cap = n + n // 8  # room for the next, slightly larger chunk
        b = bytearray(cap + 1)  # one spare byte of allocation makes the append test free of reallocation
        del b[cap:]
        return b

    def give(self, b: bytearray) -> None:
        with self._lock:
            self._bufs.append(b)
            if len(self._bufs) > self._keep:
                del self._bufs[0]


def default_workers() -> int:
    """Chunk-decompression threads: one per core this process may use, at most 4."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return max(1, min(4, cores))


def _json_decoder(raw: Any) -> Any:
    return json.loads(bytes(raw), object_hook=lambda d: SimpleNamespace(**d))


class McapRecordingReader(RecordingReader):
    """One MCAP file.

    Args:
        path: the ``.mcap`` file.
        allow_truncated: what to do with a file cut inside a record (no footer, and the last record is
            incomplete: the recorder crashed mid-write, or a copy was cut). ``False`` (default): refuse with
            ``RecordingError`` ("truncated MCAP (no footer; the file ends mid-record at byte N: ...)"), because
            a silently shortened episode is worse than a loud one. ``True``: read every complete chunk before
            the cut, skip the partial record, and emit one ``RecordingWarning`` saying so.
            Files that are incomplete but not cut inside a record are read, with a ``RecordingWarning``:
            a file without a footer that ends on a record boundary (the writer was killed between writes),
            or a damaged summary section. A file with a footer but no summary section (a writer configured
            without one) is read silently. All three are read by walking the data section record by record
            instead of through the summary's chunk index (a streaming read that needs no index).
        validate_crcs: also check each chunk's CRC32 after decompressing it. Off by default, as in the
            ``mcap`` library: on a compressible image log the CRC costs as much CPU as all the rest of
            reading (zlib's CRC32 runs at a few GB/s of decompressed data). Damage that breaks a chunk's
            structure is caught either way, as one ``RecordingError`` naming the chunk's byte offset: zstd/lz4
            data that does not decompress, a size that differs from the chunk header, a record that runs past
            its chunk. Turn it on to also catch flipped bytes that decompress without complaint (zstd's raw
            blocks of incompressible data, uncompressed chunks): ``open_recording(path, validate_crcs=True)``.
        workers: threads that read and decompress the next chunks while the current one is consumed
            (0: none; default: one per available core, at most 4). Decompression is most of the cost of
            reading an image log; the threads overlap it with the caller's work and with each other. At most
            ``workers + 1`` chunks are in flight.

    Raises:
        RecordingError: missing file, not an MCAP file, truncated file (see ``allow_truncated``).
    """

    storage = "mcap"

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        allow_truncated: bool = False,
        validate_crcs: bool = False,
        workers: int | None = None,
    ):
        super().__init__(path)
        if not self.path.exists():
            raise RecordingError(f"{self.path}: no such file")
        if not self.path.is_file():
            raise RecordingError(f"{self.path}: not a file (an MCAP recording is one .mcap file)")
        self.allow_truncated = allow_truncated
        self.validate_crcs = validate_crcs
        self.truncated: str | None = None  # why the file is incomplete, when it is
        self._cut_mid_record = False
        self.has_summary = False
        self.workers = default_workers() if workers is None else workers
        self._pool = _BufferPool(keep=2 * self.workers + 4)
        self._f: Any = open(self.path, "rb")  # noqa: SIM115 - closed in close()
        self._fd = self._f.fileno()
        self._size = os.fstat(self._f.fileno()).st_size
        self._schemas: dict[int, _Schema] = {}
        self._channels: dict[int, _Channel] = {}
        self._chunks: list[_Chunk] = []
        self._loose = (array("q"), array("q"), array("q"))  # messages outside chunks: log time, offset, length
        self._stats: tuple[int, int, int, dict[int, int]] | None = None  # count, start, end, per channel
        self._topics: dict[str, TopicInfo] | None = None
        self._decoders: dict[int, Decoder] = {}
        self._resolvers: dict[int, TypeResolver] = {}
        self._protobuf: Any = None  # mcap_protobuf's DecoderFactory, made on the first protobuf channel
        try:
            self._open()
        except RecordingError:
            self.close()
            raise
        except Exception as err:
            self.close()
            raise RecordingError(f"{self.path}: damaged MCAP file ({err})") from err

    # -- structure --------------------------------------------------------------------------------------------
    def _open(self) -> None:
        f = self._f
        head = f.read(8)
        if head != MAGIC:
            what = "it is empty" if not head else "it does not start with the MCAP magic bytes"
            raise RecordingError(f"{self.path}: not an MCAP file ({what})")
        why_no_summary = self._read_summary()
        if why_no_summary is None:
            self.has_summary = True
            if not self._chunks and self._stats and self._stats[0] > 0:
                self._scan(keep_schemas=True)  # an unchunked file: its messages are loose records
            return
        self._scan(keep_schemas=True)
        if self.truncated is None:
            return
        if self._cut_mid_record and not self.allow_truncated:
            raise RecordingError(
                f"{self.path}: {self.truncated}. Pass allow_truncated=True to read the "
                f"{len(self._chunks)} complete chunk(s) before the cut."
            )
        warnings.warn(
            f"{self.path}: {self.truncated}; reading the {len(self._chunks)} complete chunk(s) "
            f"and {len(self._loose[0])} loose message(s) before it",
            RecordingWarning,
            stacklevel=4,
        )

    def _read_summary(self) -> str | None:
        """Load the summary section; returns why there is none usable (``None`` when loaded)."""
        f, size = self._f, self._size
        if size < 8 + _FOOTER_LEN + 8:
            return "too short for a footer"
        f.seek(size - 8)
        if f.read(8) != MAGIC:
            return "no footer"
        f.seek(size - 8 - _FOOTER_LEN)
        foot = f.read(_FOOTER_LEN)
        op, ln = _REC.unpack_from(foot, 0)
        if op != OP_FOOTER or ln != 20:
            return "damaged footer"
        summary_start, _summary_offset_start, summary_crc = struct.unpack_from("<QQI", foot, 9)
        if summary_start == 0:
            return "no summary section"
        end = size - 8 - _FOOTER_LEN
        if not 8 <= summary_start <= end:
            return "footer points outside the file"
        f.seek(summary_start)
        buf = f.read(end - summary_start)
        if summary_crc and zlib.crc32(foot[:-4], zlib.crc32(buf)) != summary_crc:
            warnings.warn(
                f"{self.path}: summary section fails its CRC; scanning the data section", RecordingWarning, stacklevel=4
            )
            return "damaged summary"
        try:
            self._parse_summary(memoryview(buf))
        except ValueError as err:
            warnings.warn(
                f"{self.path}: unreadable summary ({err}); scanning the data section", RecordingWarning, stacklevel=4
            )
            self._schemas.clear()
            self._channels.clear()
            self._chunks.clear()
            self._stats = None
            return "damaged summary"
        return None

    def _parse_summary(self, buf: memoryview) -> None:
        pos, n = 0, len(buf)
        while pos < n:
            if pos + 9 > n:
                raise ValueError(f"summary record header cut at byte {pos}")
            op, ln = _REC.unpack_from(buf, pos)
            body, end = pos + 9, pos + 9 + ln
            if end > n:
                raise ValueError(f"summary record at byte {pos} runs past the summary")
            c = _Cursor(buf, body, end)
            if op == OP_SCHEMA:
                s = _parse_schema(c)
                self._schemas[s.id] = s
            elif op == OP_CHANNEL:
                ch = _parse_channel(c)
                self._channels[ch.id] = ch
            elif op == OP_CHUNK_INDEX:
                start, stop, offset, length = c.u64(), c.u64(), c.u64(), c.u64()
                map_len = c.u32()
                index_offsets = {}
                map_end = c.pos + map_len
                while c.pos < map_end:
                    cid = c.u16()
                    index_offsets[cid] = c.u64()
                index_length = c.u64()
                self._chunks.append(
                    _Chunk(
                        offset,
                        length,
                        start,
                        stop,
                        set(index_offsets) if index_offsets else None,
                        min(index_offsets.values()) if index_offsets else 0,
                        index_length,
                    )
                )
            elif op == OP_STATISTICS:
                count = c.u64()
                c.u16(), c.u32(), c.u32(), c.u32(), c.u32()
                start, stop = c.u64(), c.u64()
                per: dict[int, int] = {}
                map_end = c.pos + c.u32()
                while c.pos < map_end:
                    cid = c.u16()
                    per[cid] = c.u64()
                self._stats = (count, start, stop, per)
            elif op == OP_FOOTER:
                break
            pos = end

    def _scan(self, keep_schemas: bool) -> None:
        """Walk the data section record by record (headers only; chunks are skipped, not decompressed)."""
        f, size = self._f, self._size
        pos = 8
        last_chunk: _Chunk | None = None
        times, offsets, lengths = self._loose
        ended = False
        while pos < size:
            if pos + 9 > size:
                self.truncated = (
                    f"truncated MCAP (no footer; the file ends mid-record at byte {size}, "
                    f"inside the header of a record starting at byte {pos})"
                )
                break
            f.seek(pos)
            op, ln = _REC.unpack(f.read(9))
            end = pos + 9 + ln
            if ln > _MAX_RECORD or end > size:
                name = _OPNAMES.get(op)
                if name is None:
                    self.truncated = (
                        f"damaged or truncated MCAP (no footer; at byte {pos} there is no valid record "
                        f"(opcode 0x{op:02x}, length {ln}) and the file ends at byte {size})"
                    )
                else:
                    self.truncated = (
                        f"truncated MCAP (no footer; the file ends mid-record at byte {size}: the {name} "
                        f"record starting at byte {pos} needs {9 + ln} bytes)"
                    )
                break
            if op == OP_CHUNK:
                head = f.read(min(ln, 64))
                start, stop = struct.unpack_from("<QQ", head, 0)
                last_chunk = _Chunk(pos, 9 + ln, start, stop)
                self._chunks.append(last_chunk)
            elif op == OP_MESSAGE_INDEX and last_chunk is not None:
                body = f.read(ln)
                cid = _U16.unpack_from(body, 0)[0]
                if last_chunk.channels is None:
                    last_chunk.channels = set()
                    last_chunk.index_offset = pos
                last_chunk.channels.add(cid)
                last_chunk.index_length = end - last_chunk.index_offset
            elif op in (OP_SCHEMA, OP_CHANNEL) and keep_schemas:
                c = _Cursor(f.read(ln))
                if op == OP_SCHEMA:
                    s = _parse_schema(c)
                    self._schemas.setdefault(s.id, s)
                else:
                    ch = _parse_channel(c)
                    self._channels.setdefault(ch.id, ch)
            elif op == OP_MESSAGE:
                if ln < _MSG_HEAD:
                    raise RecordingError(f"{self.path}: damaged Message record at byte {pos} (length {ln})")
                _cid, _seq, log_time = struct.unpack("<HIQ", f.read(14))
                times.append(log_time)
                offsets.append(pos)
                lengths.append(9 + ln)
                last_chunk = None
            elif op in (OP_DATA_END, OP_FOOTER):
                ended = True
                break
            else:
                last_chunk = None if op != OP_MESSAGE_INDEX else last_chunk
            pos = end
        self._cut_mid_record = self.truncated is not None
        if self._cut_mid_record and self._chunks:
            # the cut may have taken some of the last chunk's MessageIndex records: do not trust them
            self._chunks[-1].channels, self._chunks[-1].index_offset = None, 0
        if not ended and self.truncated is None:
            self.truncated = (
                f"truncated MCAP (no footer; the file ends at byte {size} right after a complete record: "
                "the writer did not finish)"
            )

    # -- chunks -----------------------------------------------------------------------------------------------
    def _chunk_records(self, ch: _Chunk) -> memoryview:
        """The decompressed records of one chunk, checked (size, CRC)."""
        if self._fd < 0:
            raise RecordingError(f"{self.path}: the reader is closed")
        pool = self._pool
        inbuf = pool.take(ch.length)
        with memoryview(inbuf) as whole:
            buf = whole[: ch.length]
            try:
                got = os.preadv(self._fd, [buf], ch.offset)  # no shared file position: safe in prefetch threads
                return self._unpack_chunk(ch, buf, got, inbuf)
            finally:
                buf.release()

    def _unpack_chunk(self, ch: _Chunk, buf: memoryview, got: int, inbuf: bytearray) -> memoryview:
        where = f"chunk at byte {ch.offset}"
        if got != ch.length:
            raise RecordingError(
                f"{self.path}: truncated MCAP (the {where} needs {ch.length} bytes; the file ends first)"
            )
        if buf[0] != OP_CHUNK:
            raise RecordingError(
                f"{self.path}: damaged MCAP (the index points at byte {ch.offset}, but no chunk is there)"
            )
        try:
            usize, crc = struct.unpack_from("<QI", buf, 9 + 16)
            clen = _U32.unpack_from(buf, 37)[0]
            compression = bytes(buf[41 : 41 + clen]).decode()
            rpos = 41 + clen
            rlen = _U64.unpack_from(buf, rpos)[0]
            rpos += 8
        except (struct.error, UnicodeDecodeError) as err:
            raise RecordingError(f"{self.path}: damaged MCAP ({where} has an unreadable header: {err})") from err
        if rpos + rlen > len(buf):
            raise RecordingError(f"{self.path}: damaged MCAP ({where}: its data runs past the record)")
        if compression == "":
            out = memoryview(inbuf)[rpos : rpos + rlen]  # the records are the read buffer itself
            self._pool.give(inbuf)  # reusable once every view of it is gone
        else:
            with buf[rpos : rpos + rlen] as data:
                out = self._decompress(ch, compression, data, usize)
            self._pool.give(inbuf)
        if len(out) != usize:
            raise RecordingError(
                f"{self.path}: corrupt MCAP chunk at byte {ch.offset} (decompressed to {len(out)} bytes, "
                f"its header says {usize})"
            )
        if self.validate_crcs and crc and zlib.crc32(out) != crc:
            raise RecordingError(
                f"{self.path}: corrupt MCAP chunk at byte {ch.offset} (CRC32 mismatch: the data is damaged)"
            )
        return out

    def _decompress(self, ch: _Chunk, compression: str, data: memoryview, usize: int) -> memoryview:
        try:
            if compression == "zstd":
                dctx = getattr(_local, "zstd", None)
                if dctx is None:  # one decompression context per thread (they are not thread-safe)
                    import zstandard

                    dctx = _local.zstd = zstandard.ZstdDecompressor()
                # Into a recycled buffer: a fresh multi-MB ``bytes`` per chunk costs page faults and zeroing,
                # about a third of the CPU time of reading an image log.
                outbuf = self._pool.take(usize)
                out = memoryview(outbuf)[:usize]
                got, longer = 0, False
                with dctx.stream_reader(data, read_across_frames=True) as reader:
                    while got < usize:
                        n = reader.readinto(out[got:])
                        if not n:
                            break
                        got += n
                    if got == usize:
                        longer = bool(reader.read(1))
                self._pool.give(outbuf)
                if got != usize or longer:
                    raise RecordingError(
                        f"{self.path}: corrupt MCAP chunk at byte {ch.offset} (decompressed to "
                        f"{'more than ' + str(usize) if longer else got} bytes, its header says {usize})"
                    )
                return out
            if compression == "lz4":
                import lz4.frame

                return memoryview(lz4.frame.decompress(data))
        except RecordingError:
            raise
        except Exception as err:
            raise RecordingError(
                f"{self.path}: corrupt MCAP chunk at byte {ch.offset} ({compression} data does not decompress: {err})"
            ) from err
        raise RecordingError(
            f"{self.path}: chunk at byte {ch.offset} uses compression {compression!r}, which MCAP readers do not know"
        )

    def _chunk_messages(
        self, ch: _Chunk, buf: memoryview, wanted: set[int] | None
    ) -> list[tuple[int, int, memoryview]]:
        """(log_time, channel id, payload view) of a chunk's messages, in log-time order (stable)."""
        out: list[tuple[int, int, memoryview]] = []
        append = out.append
        unpack_msg = _MSG.unpack_from
        unpack_rec = _REC.unpack_from
        pos, n = 0, len(buf)
        ordered = True
        last = -1
        try:
            while pos < n:
                op, ln = unpack_rec(buf, pos)
                end = pos + 9 + ln
                if end > n:
                    raise ValueError(f"a record at offset {pos} runs past the chunk's end")
                if op == OP_MESSAGE:
                    _, _, cid, _, lt, _ = unpack_msg(buf, pos)
                    if wanted is None or cid in wanted:
                        append((lt, cid, buf[pos + 9 + _MSG_HEAD : end]))
                        if lt < last:
                            ordered = False
                        last = lt
                elif op == OP_CHANNEL:
                    c = _parse_channel(_Cursor(buf, pos + 9, end))
                    self._channels.setdefault(c.id, c)
                elif op == OP_SCHEMA:
                    s = _parse_schema(_Cursor(buf, pos + 9, end))
                    self._schemas.setdefault(s.id, s)
                pos = end
        except (struct.error, ValueError) as err:
            raise RecordingError(f"{self.path}: corrupt MCAP chunk at byte {ch.offset} ({err})") from err
        if not ordered:
            out.sort(key=lambda m: m[0])  # stable: equal times keep file order
        return out

    def _decompressed(self, chunks: list[_Chunk]) -> Iterator[memoryview]:
        """The records of ``chunks``, in order; with ``workers`` > 0 the next chunks are read, decompressed and
        CRC-checked in threads (zstd, zlib and pread release the GIL) while the caller works on this one.
        At most ``workers + 1`` chunks are in flight, so memory stays a few chunks."""
        if self.workers <= 0 or len(chunks) < 3:
            for ch in chunks:
                yield self._chunk_records(ch)
            return
        from concurrent.futures import ThreadPoolExecutor

        ex = ThreadPoolExecutor(self.workers, thread_name_prefix="mcap-chunk")
        pending: deque[Any] = deque()
        nxt = 0
        try:
            for _ in chunks:
                while nxt < len(chunks) and len(pending) <= self.workers:
                    pending.append(ex.submit(self._chunk_records, chunks[nxt]))
                    nxt += 1
                yield pending.popleft().result()
        finally:
            ex.shutdown(wait=True, cancel_futures=True)

    def _iter_chunked(self, wanted: set[int] | None) -> Iterator[tuple[int, int, memoryview]]:
        chunks = [c for c in self._chunks if wanted is None or c.channels is None or c.channels & wanted]
        chunks.sort(key=lambda c: (c.start, c.offset))
        heap: list[tuple[int, int, tuple[int, int, memoryview]]] = []
        seq = 0
        for i, buf in enumerate(self._decompressed(chunks)):
            ch = chunks[i]
            while heap and heap[0][0] < ch.start:
                yield heapq.heappop(heap)[2]
            msgs = self._chunk_messages(ch, buf, wanted)
            del buf
            nxt = chunks[i + 1].start if i + 1 < len(chunks) else None
            if not heap and (nxt is None or not msgs or msgs[-1][0] <= nxt):
                yield from msgs  # the common case: this chunk ends before the next one starts
                continue
            for m in msgs:
                heapq.heappush(heap, (m[0], seq, m))
                seq += 1
        while heap:
            yield heapq.heappop(heap)[2]

    def _iter_loose(self, wanted: set[int] | None) -> Iterator[tuple[int, int, memoryview]]:
        times, offsets, lengths = self._loose
        order = np.argsort(np.frombuffer(times, dtype=np.int64), kind="stable")
        f = self._f
        for i in order:
            off, ln = offsets[i], lengths[i]
            f.seek(off)
            rec = memoryview(f.read(ln))
            if len(rec) != ln:
                raise RecordingError(f"{self.path}: truncated MCAP (the Message record at byte {off} is cut)")
            _, _, cid, _, lt, _ = _MSG.unpack_from(rec, 0)
            if wanted is None or cid in wanted:
                yield lt, cid, rec[9 + _MSG_HEAD :]

    def _iter_raw(self, wanted: set[int] | None) -> Iterator[tuple[int, int, memoryview]]:
        if len(self._loose[0]) == 0:
            return self._iter_chunked(wanted)
        if not self._chunks:
            return self._iter_loose(wanted)
        return heapq.merge(self._iter_chunked(wanted), self._iter_loose(wanted), key=lambda m: m[0])

    def _wanted_channels(self, topics: Iterable[str] | None) -> set[int] | None:
        """The channel ids of the requested topics (None: every channel)."""
        wanted_topics = self._select_topics(topics)
        if wanted_topics is None:
            return None
        return {cid for cid, ch in self._channels.items() if ch.topic in wanted_topics}

    def raw_messages(self, topics: Iterable[str] | None = None) -> Iterator[tuple[str, str, int, memoryview]]:
        """``(topic, msgtype, log_time_ns, payload)`` in log-time order, the payload a zero-copy view of its
        decompressed chunk (valid as long as you hold it). The cheapest way through a file."""
        if self._f is None:
            raise RecordingError(f"{self.path}: the reader is closed")
        wanted = self._wanted_channels(topics)
        names: dict[int, tuple[str, str]] = {}
        for lt, cid, view in self._iter_raw(wanted):
            n = names.get(cid)
            if n is None:
                ch = self._channels.get(cid)
                if ch is None:
                    raise self._unknown_channel(lt, cid)
                n = names[cid] = (ch.topic, self._msgtype(ch))
            yield n[0], n[1], lt, view

    # -- topics -----------------------------------------------------------------------------------------------
    def _indexed_times(self) -> dict[int, list[np.ndarray]] | None:
        """Log times per channel from the MessageIndex records, without decompressing; None if missing."""
        if not self._chunks or any(c.index_offset == 0 or c.channels is None for c in self._chunks):
            return None
        f = self._f
        per: dict[int, list[np.ndarray]] = {}
        for ch in sorted(self._chunks, key=lambda c: (c.start, c.offset)):
            f.seek(ch.index_offset)
            buf = f.read(ch.index_length)
            pos, n = 0, len(buf)
            while pos + 9 <= n:
                op, ln = _REC.unpack_from(buf, pos)
                end = pos + 9 + ln
                if end > n:
                    return None
                if op == OP_MESSAGE_INDEX:
                    cid = _U16.unpack_from(buf, pos + 9)[0]
                    alen = _U32.unpack_from(buf, pos + 11)[0]
                    if pos + 15 + alen > end:
                        return None
                    pairs = np.frombuffer(buf, dtype="<u8", count=alen // 8, offset=pos + 15)
                    per.setdefault(cid, []).append(pairs[0::2].astype(np.int64))
                pos = end
        return per

    def topics(self) -> dict[str, TopicInfo]:
        """Topics with counts and time spans: from the message indexes when the file has them (no
        decompression), otherwise from one pass over the chunks (decompressed, not decoded)."""
        if self._topics is not None:
            return self._topics
        try:
            self._topics = self._compute_topics()
        except RecordingError:
            raise
        except Exception as err:
            raise RecordingError(f"{self.path}: damaged MCAP index ({err})") from err
        return self._topics

    def _compute_topics(self) -> dict[str, TopicInfo]:
        counts: dict[int, tuple[int, int | None, int | None]] = {}
        per = self._indexed_times() if len(self._loose[0]) == 0 else None
        if per is not None and per.keys() <= self._channels.keys():
            for cid, arrs in per.items():
                arrs = [a for a in arrs if len(a)]
                if arrs:
                    first, last = min(int(a.min()) for a in arrs), max(int(a.max()) for a in arrs)
                    counts[cid] = (sum(len(a) for a in arrs), first, last)
        else:
            acc: dict[int, list[int]] = {}
            for lt, cid, _ in self._iter_raw(None):  # decompress every chunk once; no message is decoded
                c = acc.get(cid)
                if c is None:
                    acc[cid] = [1, lt, lt]
                else:
                    c[0] += 1
                    c[2] = lt  # time order: the last one seen is the latest
            counts = {cid: (c[0], c[1], c[2]) for cid, c in acc.items()}
        out: dict[str, TopicInfo] = {}
        for cid, ch in sorted(self._channels.items()):
            n, lo, hi = counts.get(cid) or (0, None, None)
            t = out.get(ch.topic)
            if t is None:
                out[ch.topic] = TopicInfo(ch.topic, self._msgtype(ch), n, lo, hi, ch.encoding)
            elif n and lo is not None and hi is not None:
                t.count += n
                t.first_ns = lo if t.first_ns is None else min(t.first_ns, lo)
                t.last_ns = hi if t.last_ns is None else max(t.last_ns, hi)
        return out

    def _unknown_channel(self, lt: int, cid: int) -> RecordingError:
        return RecordingError(
            f"{self.path}: a message at log time {lt} is on channel {cid}, which no Channel record defines"
        )

    def _msgtype(self, ch: _Channel) -> str:
        s = self._schemas.get(ch.schema_id)
        return normalize_msgtype(s.name) if s is not None else ""

    @property
    def message_count(self) -> int:
        if self._stats is not None and self.truncated is None:
            return self._stats[0]
        return super().message_count

    def topic_log_times(self, topics: Iterable[str] | None = None) -> dict[str, np.ndarray] | None:
        """Sorted log times per topic from the message indexes (nothing decompressed); ``None`` if the file
        has no complete message index."""
        try:
            per = self._indexed_times() if not len(self._loose[0]) else None
        except Exception as err:
            raise RecordingError(f"{self.path}: damaged MCAP message index ({err})") from err
        if per is None:
            return None
        wanted = None if topics is None else set(topics)
        by_topic: dict[str, list[np.ndarray]] = {}
        for cid, arrs in per.items():
            ch = self._channels.get(cid)
            if ch is not None and (wanted is None or ch.topic in wanted):
                by_topic.setdefault(ch.topic, []).extend(arrs)
        return {t: np.sort(np.concatenate(a), kind="stable") for t, a in by_topic.items()}

    def interarrival(self, topics: Iterable[str] | None = None) -> dict[str, InterArrival]:
        times = self.topic_log_times(topics)
        if times is None:
            return super().interarrival(topics)
        out: dict[str, InterArrival] = {}
        for topic, t in times.items():
            out[topic] = InterArrival()
            out[topic].add_many(t)
        return out

    # -- messages ---------------------------------------------------------------------------------------------
    def _decoder(self, ch: _Channel) -> Decoder:
        dec = self._decoders.get(ch.id)
        if dec is not None:
            return dec
        schema = self._schemas.get(ch.schema_id)
        enc = ch.encoding
        if enc == "json":
            dec = _json_decoder
        elif enc in ("cdr", "ros1"):
            if schema is None:
                raise RecordingError(f"{self.path}: cannot decode topic {ch.topic}: its channel has no schema")
            ros1 = enc == "ros1"
            expected = ("ros1msg",) if ros1 else ("ros2msg", "ros2idl")
            if schema.encoding not in expected:
                raise RecordingError(
                    f"{self.path}: cannot decode topic {ch.topic}: {enc} messages with a {schema.encoding!r} schema"
                )
            fmt = "idl" if schema.encoding == "ros2idl" else "msg"
            text = schema.data.decode("utf-8", "replace")
            resolver = self._resolvers.get(schema.id)
            if resolver is None:
                resolver = self._resolvers[schema.id] = TypeResolver(
                    self.path, ros1, {schema.name: (fmt, text)}, prefer_stored=True, msgtypes=[schema.name]
                )
            try:
                dec = resolver.decoder(ch.topic, schema.name)
            except RecordingError:
                if ros1 or fmt != "msg":
                    raise
                dec = self._mcap_ros2_decoder(ch, schema)
        elif enc == "protobuf":
            dec = self._protobuf_decoder(ch, schema)
        elif enc == "flatbuffer":
            # A flatbuffers schema record holds a binary schema (.bfbs); decoding needs code generated from it,
            # which Python cannot build at run time. Refusing beats handing out undecoded bytes as messages.
            raise RecordingError(
                f"{self.path}: flatbuffer-encoded channel {ch.topic} (schema {self._schema_name(schema)}): not "
                "supported; re-record with protobuf or ROS 2 CDR (or read it with decode=False to get the raw bytes)"
            )
        else:
            raise RecordingError(
                f"{self.path}: cannot decode channel {ch.topic} (schema {self._schema_name(schema)}): message "
                f"encoding {enc!r} is not supported (cdr, ros1, protobuf and json are); read it with decode=False "
                "to get the raw bytes"
            )
        self._decoders[ch.id] = dec
        return dec

    @staticmethod
    def _schema_name(schema: _Schema | None) -> str:
        return (schema.name or "unnamed") if schema is not None else "none"

    def _protobuf_decoder(self, ch: _Channel, schema: _Schema | None) -> Decoder:
        """``mcap_protobuf``'s decoder: message classes built from the FileDescriptorSet in the schema record
        (foxglove schemas and a user's own types alike), so no generated code is needed. Decoded messages are
        protobuf objects; :mod:`robodata.msgconv` reads their fields like those of a ROS message."""
        if schema is None or schema.encoding != "protobuf":
            what = "no schema" if schema is None else f"a {schema.encoding!r} schema ({schema.name})"
            raise RecordingError(
                f"{self.path}: cannot decode channel {ch.topic}: protobuf messages with {what}; a protobuf "
                "channel needs a schema record holding the FileDescriptorSet of its message type"
            )
        from mcap.records import Schema as McapSchema
        from mcap_protobuf.decoder import DecoderFactory

        if self._protobuf is None:
            self._protobuf = DecoderFactory()  # one per file: it caches the message class per schema id
        record = McapSchema(id=schema.id, name=schema.name, encoding=schema.encoding, data=schema.data)
        try:
            fn = self._protobuf.decoder_for("protobuf", record)
        except Exception as err:  # a schema that does not build: one clear error for that channel
            raise RecordingError(
                f"{self.path}: cannot decode channel {ch.topic} (schema {schema.name}): its FileDescriptorSet does "
                f"not build a protobuf message class ({err}); read it with decode=False to get the raw bytes"
            ) from err
        if fn is None:
            raise RecordingError(f"{self.path}: cannot decode channel {ch.topic}: no protobuf decoder for {schema.name}")
        return fn

    def _mcap_ros2_decoder(self, ch: _Channel, schema: _Schema) -> Decoder:
        """mcap_ros2's dynamic decoder: slower (copies, Python lists) but parses some schemas rosbags does not."""
        from mcap.records import Schema as McapSchema
        from mcap_ros2.decoder import DecoderFactory

        try:
            fn = DecoderFactory().decoder_for("cdr", McapSchema(id=schema.id, data=schema.data, encoding=schema.encoding, name=schema.name))
        except Exception as err:
            raise RecordingError(
                f"{self.path}: cannot decode topic {ch.topic}: the schema of {schema.name} stored in the file does not "
                f"parse ({err}); read it with decode=False to get the raw bytes"
            ) from err
        if fn is None:
            raise RecordingError(f"{self.path}: cannot decode topic {ch.topic}: no decoder for {schema.name}")
        return lambda raw: fn(bytes(raw))

    def messages(self, topics: Iterable[str] | None = None, decode: bool = True) -> Iterator[Message]:
        """Yield messages in log-time order (see the class docstring for truncated files).

        With ``decode=False`` the payload is ``bytes``; decoded arrays are read-only views of the chunk. Decoded
        video topics (``foxglove.CompressedVideo``) are decoded as streams, one decoder per topic for this call:
        each message is a :class:`robodata.msgconv.VideoFrame` (see :func:`robodata.readers.base.decode_video_streams`).
        """
        if decode:
            yield from decode_video_streams(self.path, self._messages(topics, True))
        else:
            yield from self._messages(topics, False)

    def _messages(self, topics: Iterable[str] | None, decode: bool) -> Iterator[Message]:
        if self._f is None:
            raise RecordingError(f"{self.path}: the reader is closed")
        wanted = self._wanted_channels(topics)
        meta: dict[int, tuple[str, str, Decoder | None]] = {}
        it = self._iter_raw(wanted)
        cid, lt = -1, 0
        while True:
            try:
                lt, cid, view = next(it)
                m = meta.get(cid)
                if m is None:
                    ch = self._channels.get(cid)
                    if ch is None:
                        raise self._unknown_channel(lt, cid)
                    m = meta[cid] = (ch.topic, self._msgtype(ch), self._decoder(ch) if decode else None)
                data = m[2](view) if decode else bytes(view)  # type: ignore[misc]
            except StopIteration:
                return
            except RecordingError:
                raise
            except Exception as err:
                ch = self._channels.get(cid)
                where = f"topic {ch.topic}, " if ch is not None else ""
                raise RecordingError(f"{self.path}: cannot decode a message ({where}log time {lt} ns): {err}") from err
            yield Message(m[0], lt, m[1], data)

    def close(self) -> None:
        f, self._f = getattr(self, "_f", None), None
        self._fd = -1
        if f is not None:
            f.close()

    @property
    def size_bytes(self) -> int:
        return self._size
