"""ROS 1 bags and ROS 2 bag folders (sqlite3 or MCAP storage, split or not), read with rosbags; no ROS needed.

Which definition decodes which type is :mod:`robodata.readers.typesys`'s business. A ROS 2 bag's MCAP
storage files are read by a reader of single storage files registered in
:attr:`RosbagsRecordingReader.STORAGE_FILE_READERS` (``robodata.readers`` registers its MCAP reader), so
this module never imports the MCAP reader.
"""

from __future__ import annotations

import heapq
import itertools
import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import suppress
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np
from rosbags.interfaces import MessageDefinitionFormat
from rosbags.rosbag1 import Reader as Ros1Reader
from rosbags.rosbag2.reader import DirectoryReader as Ros2Reader
from rosbags.rosbag2.storage_mcap import McapReader as RosbagsMcapStorage
from rosbags.rosbag2.storage_sqlite3 import Sqlite3Reader

from robodata.pathkind import find_rosbag2_folder
from robodata.readers.base import (
    InterArrival,
    Message,
    RecordingError,
    RecordingReader,
    TopicInfo,
    decode_video_streams,
    normalize_msgtype,
)
from robodata.readers.typesys import Decoder, TypeResolver

__all__ = ["RosbagsRecordingReader", "StorageFileReader"]


class StorageFileReader(Protocol):
    """What the bag reader needs from a reader of one storage file of a ROS 2 bag (an ``.mcap`` file)."""

    @property
    def start_ns(self) -> int | None: ...

    @property
    def end_ns(self) -> int | None: ...

    def topics(self) -> dict[str, TopicInfo]: ...

    def raw_messages(self, topics: Iterable[str] | None = None) -> Iterator[tuple[str, str, int, Any]]: ...

    def topic_log_times(self, topics: Iterable[str] | None = None) -> dict[str, np.ndarray] | None: ...

    def close(self) -> None: ...


class RosbagsRecordingReader(RecordingReader):
    """A ROS 1 ``.bag`` or a ROS 2 bag folder (``metadata.yaml`` + ``.db3``/``.mcap`` files), via rosbags.

    Compared with rosbags' ``AnyReader`` this reader (a) decodes each type with the best definition it has
    (``TypeResolver``), where AnyReader refuses the whole bag when one stored definition does not parse
    (service events) or ignores the standard store as soon as the bag stores any definition; (b) reads a
    ROS 2 bag's storage files with their own topic records, so a ``metadata.yaml`` whose QoS text differs
    from the storage's (rosbag2's own test bags) does not silently yield no messages; (c) merges split
    files by time (``heapq.merge``) instead of concatenating them; (d) reads MCAP storage files with the
    reader registered in :attr:`STORAGE_FILE_READERS` (robodata's MCAP reader: index-only topic spans,
    threaded zero-copy chunk reads), keeping rosbags for the bag's metadata, its type store and sqlite3
    storage.
    """

    #: Readers of single storage files by storage id (``"mcap"``); a storage without one is read by rosbags.
    STORAGE_FILE_READERS: ClassVar[dict[str, Callable[[Path], StorageFileReader]]] = {}

    def __init__(self, path: str | os.PathLike[str]):
        path = Path(path)
        super().__init__(path)
        if not path.exists():
            raise RecordingError(f"{path}: no such file or folder")
        folder = find_rosbag2_folder(path)
        self.ros1 = folder is None and path.suffix == ".bag"
        if folder is None and path.suffix not in (".bag", ".db3"):
            raise RecordingError(f"{path}: not a ROS 1 .bag file nor a ROS 2 bag folder (no metadata.yaml)")
        if folder is not None:
            self.path = folder
        self._reader: Any = None
        self._mcaps: list[StorageFileReader] | None = None
        self._topics: dict[str, TopicInfo] | None = None
        try:
            if self.ros1:
                self._reader = Ros1Reader(self.path)
            elif folder is not None:
                self._reader = Ros2Reader(self.path)
            else:  # a lone .db3 (sqlite3 storage since Iron holds its own metadata and definitions)
                self._reader = Sqlite3Reader(self.path)
            self._reader.open()
        except Exception as err:
            raise RecordingError(f"{self.path}: {self._open_problem(err)}") from err
        if self.ros1:
            self.storage = "rosbag1"
            self._storages: list[Any] = []
            self._conns = list(self._reader.connections)
            self._per_message_zstd = False
        else:
            self._storages = list(self._reader.storages) if folder is not None else [self._reader]
            self.storage = f"rosbag2/{self._storage_id()}" if folder is not None else "rosbag2/sqlite3"
            self._conns = [c for st in self._storages for c in st.connections]
            self._per_message_zstd = folder is not None and self._reader.metadata.compression_mode == "message"
        definitions: dict[str, tuple[str, str]] = {}
        for c in self._conns:
            if c.msgdef.format != MessageDefinitionFormat.NONE and c.msgdef.data:
                fmt = "idl" if c.msgdef.format == MessageDefinitionFormat.IDL else "msg"
                definitions.setdefault(normalize_msgtype(c.msgtype), (fmt, c.msgdef.data))
        # sqlite3 storage keeps a service's definition under the service name (pkg/srv/Name), while its
        # event topic has type pkg/srv/Name_Event: pair them up.
        stored = {
            str(d.get("name")): d
            for st in self._storages
            for d in (getattr(st, "msgtypes", None) or [])
            if d.get("msgdef")
        }
        for c in self._conns:
            name = normalize_msgtype(c.msgtype)
            if name not in definitions and name.endswith("_Event") and "/srv/" in name:
                d = stored.get(name.removesuffix("_Event"))
                if d is not None:
                    definitions[name] = ("idl" if d.get("encoding") == "ros2idl" else "msg", str(d["msgdef"]))
        self.types = TypeResolver(self.path, self.ros1, definitions, msgtypes=[c.msgtype for c in self._conns])

    def _storage_id(self) -> str:
        try:
            import yaml

            meta = yaml.safe_load((self.path / "metadata.yaml").read_text())
            return str(meta["rosbag2_bagfile_information"]["storage_identifier"])
        except Exception:  # noqa: BLE001 - only a label
            return "unknown"

    def _open_problem(self, err: BaseException) -> str:
        if self.path.is_file() and self.path.suffix == ".bag":
            found = ros1_layout_problem(self.path)
            if found:  # what is wrong, in the file's own terms, instead of the library's unpack error
                return found
        text = " ".join(str(a) for a in err.args) if err.args else type(err).__name__
        text = " ".join(text.split())  # one line, whatever the library wrote
        if "index looks damaged" in text:
            return (
                "truncated or damaged ROS 1 bag (its index, written at the end, cannot be read: "
                f"{text.split(':', 1)[-1].strip()}); if the recorder crashed, `rosbag reindex` rebuilds it"
            )
        if "not indexed" in text:
            return "the ROS 1 bag is not indexed (the recorder did not finish); run `rosbag reindex` on it first"
        if "magic is invalid" in text or "seems to be empty" in text:
            return "not a ROS 1 bag (it does not start with '#ROSBAG V2.0')"
        if "Cannot open database" in text or "file is not a database" in text:
            return f"the sqlite3 storage of this ROS 2 bag cannot be read ({text})"
        return f"cannot open the recording: {text}"

    def close(self) -> None:
        for mr in self._mcaps or []:
            mr.close()
        self._mcaps = None
        if self._reader is not None:
            with suppress(Exception):
                self._reader.close()
            self._reader = None

    def topics(self) -> dict[str, TopicInfo]:
        if self._topics is None:
            self._topics = self._compute_topics()
        return self._topics

    def _compute_topics(self) -> dict[str, TopicInfo]:
        out: dict[str, TopicInfo] = {}
        spans = self._spans()
        for c in self._conns:
            msgtype = normalize_msgtype(c.msgtype)
            enc = "ros1" if self.ros1 else getattr(c.ext, "serialization_format", "cdr")
            first, last, count = spans.get(id(c), (None, None, 0))
            t = out.get(c.topic)
            if t is None:
                out[c.topic] = TopicInfo(c.topic, msgtype, count, first, last, enc)
            else:  # several connections on one topic (ROS 1 publishers, ROS 2 split files)
                t.count += count
                t.first_ns = first if t.first_ns is None else (t.first_ns if first is None else min(t.first_ns, first))
                t.last_ns = last if t.last_ns is None else (t.last_ns if last is None else max(t.last_ns, last))
        return out

    def _spans(self) -> dict[int, tuple[int | None, int | None, int]]:
        """(first, last, count) per connection, from the bag's index (ROS 1) or storage (ROS 2)."""
        spans: dict[int, tuple[int | None, int | None, int]] = {}
        try:
            if self.ros1:
                for c in self._conns:
                    idx = self._reader.indexes.get(c.id, [])
                    spans[id(c)] = (idx[0].time, idx[-1].time, len(idx)) if idx else (None, None, 0)
                return spans
            for storage in self._storages:
                spans.update(self._storage_spans(storage))
        except RecordingError:
            raise
        except Exception as err:
            raise RecordingError(f"{self.path}: cannot read the bag's index ({err})") from err
        return spans

    def _mcap_files(self) -> list[StorageFileReader] | None:
        """One reader per storage file when the bag's storage is MCAP and a reader for it is registered, else ``None``.

        rosbag2's MCAP files are complete MCAP recordings: reading them with robodata's MCAP reader gives
        topic spans from the message indexes (no decompression) and its threaded, zero-copy chunk reads;
        rosbags still provides the bag's metadata, the type store and the ``.mcap.zstd`` (file mode) handling.
        """
        open_file = self.STORAGE_FILE_READERS.get("mcap")
        if open_file is None or self.ros1 or not self._storages:
            return None
        if not all(isinstance(s, RosbagsMcapStorage) for s in self._storages):
            return None
        if self._mcaps is None:
            self._mcaps = [open_file(Path(s.path)) for s in self._storages]
        return self._mcaps

    def _storage_spans(self, storage: Any) -> dict[int, tuple[int | None, int | None, int]]:
        by_id = {c.id: c for c in storage.connections}
        mcaps = self._mcap_files()
        if mcaps is not None:
            topics = mcaps[self._storages.index(storage)].topics()
            out: dict[int, tuple[int | None, int | None, int]] = {}
            seen: set[str] = set()
            for c in storage.connections:
                t = topics.get(c.topic)
                if t is None or c.topic in seen:
                    out[id(c)] = (None, None, 0)
                else:
                    out[id(c)] = (t.first_ns, t.last_ns, t.count)
                    seen.add(c.topic)
            return out
        db = getattr(storage, "dbconn", None)
        out = {id(c): (None, None, 0) for c in storage.connections}
        if db is not None:  # sqlite3: one aggregate query on the indexed table
            rows = db.cursor().execute(
                "SELECT topic_id, MIN(timestamp), MAX(timestamp), COUNT(*) FROM messages GROUP BY topic_id"
            )
            for tid, first, last, count in rows:
                if tid in by_id:
                    out[id(by_id[tid])] = (first, last, count)
            return out
        acc: dict[int, list[int]] = {}
        for conn, t, _raw in storage.messages(storage.connections):
            a = acc.get(conn.id)
            if a is None:
                acc[conn.id] = [t, t, 1]
            else:
                a[0] = min(a[0], t)
                a[1] = max(a[1], t)
                a[2] += 1
        for cid, (first, last, count) in acc.items():
            out[id(by_id[cid])] = (first, last, count)
        return out

    def _raw(self, wanted: set[str] | None) -> Iterator[tuple[str, str, int, Any]]:
        """(topic, msgtype, log_time_ns, payload) in time order; split files merged by time."""
        if self.ros1:
            conns = [c for c in self._conns if wanted is None or c.topic in wanted]
            if conns:
                for c, t, raw in self._reader.messages(connections=conns):
                    yield c.topic, c.msgtype, t, raw
            return
        streams: list[Iterator[tuple[str, str, int, Any]]] = []
        mcaps = self._mcap_files()
        if mcaps is not None:
            spans: list[tuple[int, int, StorageFileReader, set[str]]] = []
            for mr in mcaps:
                have = {t for t, info in mr.topics().items() if info.count}
                mine = have if wanted is None else have & wanted
                start, end = mr.start_ns, mr.end_ns
                if mine and start is not None and end is not None:  # a file with messages has a time span
                    spans.append((start, end, mr, mine))
            spans.sort(key=lambda x: x[0])
            streams = [mr.raw_messages(mine) for _, _, mr, mine in spans]
            sequential = all(a[1] <= b[0] for a, b in itertools.pairwise(spans))
        else:
            for storage in self._storages:
                conns = [c for c in storage.connections if wanted is None or c.topic in wanted]
                if conns:
                    streams.append((c.topic, c.msgtype, t, raw) for c, t, raw in storage.messages(conns))
            sequential = False
        if not streams:
            return
        if len(streams) == 1:
            merged: Iterator[tuple[str, str, int, Any]] = streams[0]
        elif sequential:
            # The usual split bag, one file after the other: read them in turn rather than merging, which
            # would start reading (and prefetching) all of them at once.
            merged = itertools.chain.from_iterable(streams)
        else:
            merged = heapq.merge(*streams, key=lambda x: x[2])
        if self._per_message_zstd:
            import zstandard

            dctx = zstandard.ZstdDecompressor()
            for topic, msgtype, t, raw in merged:
                yield topic, msgtype, t, dctx.decompress(raw)
        else:
            yield from merged

    def messages(self, topics: Iterable[str] | None = None, decode: bool = True) -> Iterator[Message]:
        """Yield messages in log-time order; decoded video topics (``foxglove_msgs/msg/CompressedVideo``) are
        decoded as streams, one decoder per topic for this call (:func:`robodata.readers.base.decode_video_streams`)."""
        if decode:
            yield from decode_video_streams(self.path, self._messages(topics, True))
        else:
            yield from self._messages(topics, False)

    def _messages(self, topics: Iterable[str] | None, decode: bool) -> Iterator[Message]:
        wanted = self._select_topics(topics)
        decoders: dict[tuple[str, str], tuple[str, Decoder | None]] = {}
        it = self._raw(wanted)
        topic, t = None, 0
        while True:
            try:
                topic, rawtype, t, raw = next(it)
                key = (topic, rawtype)
                d = decoders.get(key)
                if d is None:
                    msgtype = normalize_msgtype(rawtype)
                    d = decoders[key] = (msgtype, self.types.decoder(topic, msgtype) if decode else None)
                data = d[1](raw) if decode else bytes(raw)  # type: ignore[misc]
            except StopIteration:
                return
            except RecordingError:
                raise
            except Exception as err:
                where = f" (topic {topic}, log time {t} ns)" if topic is not None else ""
                raise RecordingError(f"{self.path}: cannot read a message{where}: {err}") from err
            yield Message(topic, t, d[0], data)

    def interarrival(self, topics: Iterable[str] | None = None) -> dict[str, InterArrival]:
        """Timing jitter per topic from the index where there is one (ROS 1 index, MCAP message indexes)."""
        wanted = None if topics is None else set(topics)
        out: dict[str, InterArrival] = {}
        if self.ros1:  # the index holds every message's time: no data read at all
            per_topic: dict[str, list[list[Any]]] = {}
            for c in self._conns:
                if wanted is None or c.topic in wanted:
                    per_topic.setdefault(c.topic, []).append(self._reader.indexes.get(c.id, []))
            for topic, lists in per_topic.items():
                ia = out[topic] = InterArrival()
                for entry in heapq.merge(*lists):
                    ia.add(entry.time)
            return out
        mcaps = self._mcap_files()
        if mcaps is not None:
            parts = [mr.topic_log_times(topics) for mr in mcaps]
            if all(p is not None for p in parts):
                merged: dict[str, list[np.ndarray]] = {}
                for p in parts:
                    for topic, t in p.items():  # type: ignore[union-attr]
                        merged.setdefault(topic, []).append(t)
                for topic, arrs in merged.items():
                    out[topic] = InterArrival()
                    out[topic].add_many(np.sort(np.concatenate(arrs), kind="stable"))
                return out
        return super().interarrival(topics)


_OPS = {2: "message", 3: "bag header", 4: "index", 5: "chunk", 6: "chunk info", 7: "connection"}


def _gb(n: int) -> str:
    return f"{n / 1e9:.1f} GB" if n >= 1e8 else f"{n:,} bytes"


def ros1_layout_problem(path: Path) -> str | None:
    """Why a ROS 1 bag's record layout cannot be read, said in the file's terms ("chunk at byte N declares
    2.0 GB of data; the file has M bytes"), or None when its records fit. Reads only record headers (a seek
    past each record's data), so it costs a few reads per chunk."""
    import struct

    size = path.stat().st_size
    with open(path, "rb") as f:
        if f.read(13) != b"#ROSBAG V2.0\n":
            return None
        pos = 13
        index_pos = None
        while pos < size:
            head = f.read(4)
            if len(head) < 4:
                return f"truncated ROS 1 bag: a record at byte {pos} is cut off (the file has {size:,} bytes)"
            (hlen,) = struct.unpack("<I", head)
            if pos + 4 + hlen + 4 > size:
                return (f"damaged ROS 1 bag: a record at byte {pos} declares a {_gb(hlen)} header; the file has "
                        f"{size:,} bytes ({size - pos - 4:,} after it)")
            header = f.read(hlen)
            fields, i = {}, 0
            while i + 4 <= len(header):
                (n,) = struct.unpack_from("<I", header, i)
                k, _, v = header[i + 4:i + 4 + n].partition(b"=")
                fields[k] = v
                i += 4 + n
            op = fields.get(b"op", b"\x00")[0]
            what = _OPS.get(op, f"record (op {op})")
            (dlen,) = struct.unpack("<I", f.read(4))
            end = pos + 4 + hlen + 4 + dlen
            if end > size:
                return (f"truncated or damaged ROS 1 bag: the {what} at byte {pos} declares {_gb(dlen)} of data; "
                        f"the file has {size:,} bytes ({size - (pos + 8 + hlen):,} after its header)")
            if op == 3 and b"index_pos" in fields and len(fields[b"index_pos"]) == 8:
                (index_pos,) = struct.unpack("<Q", fields[b"index_pos"])
                if index_pos > size:
                    return (f"truncated or damaged ROS 1 bag (the bag header says its index starts at byte "
                            f"{index_pos:,}, past the end of the file: {size:,} bytes); if the recorder crashed, "
                            "`rosbag reindex` rebuilds it")
            f.seek(end)
            pos = end
    return None
