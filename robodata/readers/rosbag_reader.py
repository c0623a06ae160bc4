"""ROS 1 bags and ROS 2 bag folders (sqlite3 or MCAP storage, split or not), read with rosbags; no ROS needed.

Also home of the rosbags type-system glue the MCAP reader shares: which definitions decode which type.
"""

from __future__ import annotations

import heapq
import itertools
import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import suppress
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from rosbags.interfaces import MessageDefinitionFormat
from rosbags.rosbag1 import Reader as Ros1Reader
from rosbags.rosbag2.reader import DirectoryReader as Ros2Reader
from rosbags.rosbag2.storage_mcap import McapReader as RosbagsMcapStorage
from rosbags.rosbag2.storage_sqlite3 import Sqlite3Reader
from rosbags.typesys import Stores, get_types_from_idl, get_types_from_msg, get_typestore
from rosbags.typesys.store import Typestore

from robodata.readers.base import InterArrival, Message, RecordingError, RecordingReader, TopicInfo, normalize_msgtype

ROS1_STORE = Stores.ROS1_NOETIC
ROS2_STORE = Stores.ROS2_HUMBLE
_STORE_NAMES = {ROS1_STORE: "ROS 1 Noetic", ROS2_STORE: "ROS 2 Humble"}

Decoder = Callable[[Any], Any]


@lru_cache(maxsize=4)
def _standard_fielddefs(store: Stores) -> dict[str, Any]:
    return dict(get_typestore(store).fielddefs)


def _service_types(msgtype: str, text: str) -> dict[str, Any]:
    """Types for a ROS 2 service event (``pkg/srv/Name_Event``) whose stored definition is the ``.srv`` text.

    rosbag2 records service events (``/x/_service_event``) with the service's definition; the event type
    is ``info``, ``request[<=1]``, ``response[<=1]`` (see ``service_msgs/msg/ServiceEventInfo``).
    """
    pkg, _, name = msgtype.split("/")
    base = name.removesuffix("_Event")
    first = text.split("\n" + "=" * 80 + "\n", 1)[0]
    req, _, resp = ("\n" + first).partition("\n---\n")
    event = f"service_msgs/ServiceEventInfo info\n{base}_Request[<=1] request\n{base}_Response[<=1] response\n"
    # rosbags' msg parser knows only pkg/msg/Name: parse under msg names, then move the three to srv.
    typs: dict[str, Any] = {}
    typs.update(get_types_from_msg(req, f"{pkg}/msg/{base}_Request"))
    typs.update(get_types_from_msg(resp, f"{pkg}/msg/{base}_Response"))
    typs.update(get_types_from_msg(event, f"{pkg}/msg/{base}_Event"))
    jazzy = _standard_fielddefs(Stores.ROS2_JAZZY)  # service_msgs exists since Iron
    for dep in ("service_msgs/msg/ServiceEventInfo", "builtin_interfaces/msg/Time"):
        typs[dep] = jazzy[dep]
    moved = {f"{pkg}/msg/{base}_{kind}": f"{pkg}/srv/{base}_{kind}" for kind in ("Request", "Response", "Event")}
    return {moved.get(k, k): _retarget(v, moved) for k, v in typs.items()}


def _retarget(desc: Any, names: dict[str, str]) -> Any:
    if isinstance(desc, str):
        return names.get(desc, desc)
    if isinstance(desc, tuple):
        return tuple(_retarget(x, names) for x in desc)
    if isinstance(desc, list):
        return [_retarget(x, names) for x in desc]
    return desc


def parse_definition(msgtype: str, fmt: str, text: str) -> dict[str, Any]:
    """Parse one stored definition (``msg`` or ``idl``) into rosbags types; raises on a bad definition."""
    msgtype = normalize_msgtype(msgtype)
    if fmt == "idl":
        sep = "=" * 80 + "\n"
        typs: dict[str, Any] = {}
        if text.startswith(f"{sep}IDL: "):
            for part in text.split(sep)[1:]:
                _, idl = part.split("\n", 1)
                typs.update(get_types_from_idl(idl))
        else:
            typs.update(get_types_from_idl(text))
        return typs
    if "/srv/" in msgtype and msgtype.endswith("_Event") and "\n---" in "\n" + text:
        return _service_types(msgtype, text)
    return get_types_from_msg(text, msgtype)


class TypeResolver:
    """Builds decoders for message types from the recording's stored definitions and a standard store.

    ROS 1 bags store the full definition of every type they hold: those win, the Noetic store fills gaps.
    ROS 2 bags often store none (sqlite3 before Iron), or only a stub: types the Humble store knows are
    decoded with it, the others with the definition stored in the bag. ``prefer_stored=True`` (MCAP
    schemas, which always hold complete definitions) makes the stored definitions win for ROS 2 too.
    """

    def __init__(
        self,
        path: Path,
        ros1: bool,
        definitions: dict[str, tuple[str, str]],
        *,
        prefer_stored: bool | None = None,
        msgtypes: Iterable[str] = (),
    ):
        self.path = path
        self.ros1 = ros1
        self.store_id = ROS1_STORE if ros1 else ROS2_STORE
        self.definitions = {normalize_msgtype(k): v for k, v in definitions.items()}
        self.prefer_stored = ros1 if prefer_stored is None else prefer_stored
        self.msgtypes = {normalize_msgtype(t) for t in msgtypes} | set(self.definitions)
        self._store: Typestore | None = None
        self.problems: dict[str, str] = {}

    def _build(self) -> Typestore:
        standard = _standard_fielddefs(self.store_id)
        merged: dict[str, Any] = {}
        for msgtype, (fmt, text) in self.definitions.items():
            if not text.strip() or (not self.prefer_stored and msgtype in standard):
                continue
            try:
                typs = parse_definition(msgtype, fmt, text)
            except Exception as err:  # noqa: BLE001 - any parser failure is one clear problem for that type
                self.problems[msgtype] = f"its definition stored in the recording does not parse ({err})"
                continue
            for name, typ in typs.items():
                if self.prefer_stored or name not in standard:
                    merged.setdefault(name, typ)
        if not self.msgtypes <= merged.keys():
            # Some type has no usable stored definition: the standard store fills the gaps (it never
            # replaces a stored definition, so a stored type and its stored dependencies stay together).
            for name, typ in standard.items():
                merged.setdefault(name, typ)
        store = get_typestore(Stores.EMPTY)
        try:
            store.register(merged)
        except Exception as err:  # noqa: BLE001
            raise RecordingError(
                f"{self.path}: the message definitions stored in it do not fit together ({err})"
            ) from err
        return store

    @property
    def store(self) -> Typestore:
        if self._store is None:
            self._store = self._build()
        return self._store

    def decoder(self, topic: str, msgtype: str) -> Decoder:
        """A function ``payload -> message`` for ``msgtype``; raises RecordingError naming the type if none."""
        msgtype = normalize_msgtype(msgtype)
        store = self.store
        if msgtype not in store.fielddefs:
            why = self.problems.get(msgtype) or (
                f"it is not in the {_STORE_NAMES[self.store_id]} type store and the recording stores no "
                "definition for it"
            )
            raise RecordingError(
                f"{self.path}: cannot decode topic {topic}: message type {msgtype}: {why} "
                "(read it with decode=False to get the raw bytes)"
            )
        fn = store.deserialize_ros1 if self.ros1 else store.deserialize_cdr
        name = msgtype

        def decode(raw: Any) -> Any:
            return fn(raw, name)

        return decode


def find_rosbag2_folder(path: Path) -> Path | None:
    """The ROS 2 bag folder of ``path``: itself when it holds metadata.yaml, or the folder of a storage file in one."""
    if path.is_dir() and (path / "metadata.yaml").is_file():
        return path
    if path.is_file() and path.suffix in (".db3", ".mcap") and (path.parent / "metadata.yaml").is_file():
        return path.parent
    return None


class RosbagsRecordingReader(RecordingReader):
    """A ROS 1 ``.bag`` or a ROS 2 bag folder (``metadata.yaml`` + ``.db3``/``.mcap`` files), via rosbags.

    Compared with rosbags' ``AnyReader`` this reader (a) decodes each type with the best definition it has
    (``TypeResolver``), where AnyReader refuses the whole bag when one stored definition does not parse
    (service events) or ignores the standard store as soon as the bag stores any definition; (b) reads a
    ROS 2 bag's storage files with their own topic records, so a ``metadata.yaml`` whose QoS text differs
    from the storage's (rosbag2's own test bags) does not silently yield no messages; (c) merges split
    files by time (``heapq.merge``) instead of concatenating them; (d) reads MCAP storage files with
    :class:`~robodata.readers.mcap_reader.McapRecordingReader` (index-only topic spans, threaded zero-copy
    chunk reads), keeping rosbags for the bag's metadata, its type store and sqlite3 storage.
    """

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
        self._mcaps: list[Any] | None = None
        self._topics: dict[str, TopicInfo] | None = None
        try:
            if self.ros1:
                self._reader = Ros1Reader(self.path)
            elif folder is not None:
                self._reader = Ros2Reader(self.path)
            else:  # a lone .db3 (sqlite3 storage since Iron holds its own metadata and definitions)
                self._reader = Sqlite3Reader(self.path)
            self._reader.open()
        except Exception as err:  # noqa: BLE001 - every failure to open is one RecordingError
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
        except Exception as err:  # noqa: BLE001
            raise RecordingError(f"{self.path}: cannot read the bag's index ({err})") from err
        return spans

    def _mcap_files(self) -> list[Any] | None:
        """One :class:`McapRecordingReader` per storage file when the bag's storage is MCAP, else ``None``.

        rosbag2's MCAP files are complete MCAP recordings: reading them with robodata's MCAP reader gives
        topic spans from the message indexes (no decompression) and its threaded, zero-copy chunk reads;
        rosbags still provides the bag's metadata, the type store and the ``.mcap.zstd`` (file mode) handling.
        """
        if self.ros1 or not self._storages or not all(isinstance(s, RosbagsMcapStorage) for s in self._storages):
            return None
        if self._mcaps is None:
            from robodata.readers.mcap_reader import McapRecordingReader

            self._mcaps = [McapRecordingReader(Path(s.path)) for s in self._storages]
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
            spans = []
            for mr in mcaps:
                have = {t for t, info in mr.topics().items() if info.count}
                mine = have if wanted is None else have & wanted
                if mine:
                    spans.append((mr.start_ns, mr.end_ns, mr, mine))
            spans.sort(key=lambda x: x[0])
            streams = [mr.raw_messages(mine) for _, _, mr, mine in spans]
            sequential = all(a[1] <= b[0] for a, b in zip(spans, spans[1:]))
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
            except Exception as err:  # noqa: BLE001 - damaged data becomes one clear error
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
