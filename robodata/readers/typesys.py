"""The message type system the readers share: which definitions decode which type, built on rosbags' typesys.

A recording says which types its topics carry and often stores their definitions (ROS 1 bags always,
MCAP schemas always, ROS 2 bags sometimes, in ``msg`` or ``idl`` text). :class:`TypeResolver` turns those
definitions, with a standard rosbags type store filling the gaps, into one type store, and hands out a
:data:`Decoder` per type: rosbags' generated CDR / ROS 1 deserializers, which map primitive arrays to
numpy views. Both readers (:mod:`~robodata.readers.mcap_reader`, :mod:`~robodata.readers.rosbag_reader`)
import it; neither imports the other, as rosbags keeps its own ``typesys`` package apart from its readers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import lru_cache
from pathlib import Path
from typing import Any

from rosbags.typesys import Stores, get_types_from_idl, get_types_from_msg, get_typestore
from rosbags.typesys.store import Typestore

from robodata.readers.base import RecordingError, normalize_msgtype

__all__ = ["ROS1_STORE", "ROS2_STORE", "Decoder", "TypeResolver", "parse_definition"]

ROS1_STORE = Stores.ROS1_NOETIC
ROS2_STORE = Stores.ROS2_HUMBLE
_STORE_NAMES = {ROS1_STORE: "ROS 1 Noetic", ROS2_STORE: "ROS 2 Humble"}

#: A function ``payload -> message`` for one message type.
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
        except Exception as err:
            raise RecordingError(
                f"{self.path}: the message definitions stored in it do not fit together ({err})"
            ) from err
        return store

    @property
    def store(self) -> Typestore:
        """The merged type store (built on first use)."""
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
