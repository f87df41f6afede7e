"""GTFS-Realtime feeds (https://gtfs.org/realtime/reference/): one FeedMessage protobuf per
landed file, decoded with the published bindings (`google.transit.gtfs_realtime_pb2`).

The contract's one table takes the TripUpdates, one record per StopTimeUpdate:

- `_source_line` is the 1-based index of the FeedEntity in FeedMessage.entity (a protobuf file
  has no lines: "line N" in a quarantine reason or a duplicate-key message means entity N), and
  every StopTimeUpdate of that entity shares it; `_source_member` is NULL;
- `update_index` is the StopTimeUpdate's 1-based position in its TripUpdate; a TripUpdate without
  any StopTimeUpdate (e.g. a CANCELED trip) is one record with update_index 0 and no stop fields;
- the header's timestamp is on every record (`feed_timestamp`); POSIX times are given to the row
  checks as UTC timestamps ("YYYY-MM-DD HH:MM:SS+00"), start_date (YYYYMMDD) as YYYY-MM-DD,
  enums by their name in the proto (SCHEDULED, SKIPPED, ...); a field not set is NULL (proto2
  presence, so delay 0 and "no delay" stay different).

Entities of other kinds (VehiclePosition, Alert, and the experimental Shape, Stop,
TripModifications) and deleted entities (is_deleted, DIFFERENTIAL feeds) are counted in
`skipped` by kind; an entity holding a TripUpdate and also a VehiclePosition gives its TripUpdate
and is mentioned in the notes.

Refused as a whole (BadInput): an empty file, a file larger than `max_bytes`, bytes that do not
decode as a FeedMessage (garbage, a truncated transfer: protobuf DecodeError), a FeedMessage
without its required header or header.gtfs_realtime_version.

Decoding is protobuf's (C, upb); turning messages into columns walks the entities and their
StopTimeUpdates in Python, because protobuf field access is per message. It is one simple pass
appending to column lists (~1 µs per field); the rest is Arrow and DuckDB.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import duckdb
import pyarrow as pa
from google.protobuf.message import DecodeError
from google.transit import gtfs_realtime_pb2 as rt

from transforms.contract import Contract
from transforms.errors import BadInput
from transforms.readers import ReadResult, TableRead
from transforms.readers.archive import check_size

_TRIP_RELATIONSHIP = rt.TripDescriptor.ScheduleRelationship.Name
_STOP_RELATIONSHIP = rt.TripUpdate.StopTimeUpdate.ScheduleRelationship.Name
_OTHER_KINDS = (("vehicle", "vehicle_position"), ("alert", "alert"), ("shape", "shape"), ("stop", "stop"),
                ("trip_modifications", "trip_modifications"))  # fmt: skip
# The columns the reader produces, with their Arrow type before they are handed on as text.
_FIELDS = {
    "entity_id": pa.string(), "update_index": pa.int64(), "trip_id": pa.string(), "route_id": pa.string(),
    "direction_id": pa.int64(), "start_date": pa.string(), "start_time": pa.string(),
    "trip_schedule_relationship": pa.string(), "vehicle_id": pa.string(), "trip_update_timestamp": pa.uint64(),
    "trip_delay": pa.int64(), "stop_sequence": pa.int64(), "stop_id": pa.string(),
    "stop_schedule_relationship": pa.string(), "arrival_delay": pa.int64(), "arrival_time": pa.int64(),
    "departure_delay": pa.int64(), "departure_time": pa.int64(), "_source_line": pa.int64(),
    "feed_timestamp": pa.uint64(), "_source_member": pa.string(),
}  # fmt: skip
_POSIX = ("trip_update_timestamp", "arrival_time", "departure_time", "feed_timestamp")
_LATEST_POSIX = 253402300799  # 9999-12-31 23:59:59 UTC


def read(con: duckdb.DuckDBPyConnection, path: Path, contract: Contract, label: str) -> ReadResult:
    check_size(path, label, contract.format)
    message = _decode(path.read_bytes(), label)
    header = message.header
    notes = []
    if header.gtfs_realtime_version not in ("1.0", "2.0"):
        notes.append(f"gtfs_realtime_version {header.gtfs_realtime_version!r} (this reader knows 1.0 and 2.0)")
    if header.incrementality != rt.FeedHeader.FULL_DATASET:
        notes.append("incrementality DIFFERENTIAL: each file holds only the entities that changed")
    feed_timestamp = header.timestamp if header.HasField("timestamp") else None

    table = contract.single
    produced = [n for n in _FIELDS if n not in ("_source_line", "_source_member")]
    unknown = [n for n in table.column_names if n not in produced]
    if unknown:
        raise ValueError(f"contract {contract.feed}: column(s) {', '.join(unknown)} "
                         "are not produced by the GTFS-Realtime reader")
    columns, skipped, with_vehicle = _columns(message)
    if with_vehicle:
        notes.append(f"{with_vehicle} entities held a VehiclePosition besides their TripUpdate (not loaded)")
    records = len(columns["_source_line"])
    columns["feed_timestamp"] = [feed_timestamp] * records
    columns["_source_member"] = [None] * records
    arrow = pa.table({name: pa.array(values, type=_FIELDS[name]) for name, values in columns.items()})
    wanted = [n for n in produced if n in table.column_names]
    # Entity order, then StopTimeUpdate order, as built. The loader runs the select once over the
    # Arrow records of all the batch's files (72 a day).
    select = ", ".join(f"{_text(name)} as \"{name}\"" for name in wanted)
    # Every contract column is produced (NULL where the feed does not set the field); fields the
    # reader knows but the contract does not take stay out.
    read_table = TableRead(table=table.name, relation=None, rejected=None, header=wanted,
                           extra_columns=[n for n in produced if n not in table.column_names],
                           arrow=arrow, select=select)
    return ReadResult(encoding=None, tables={table.name: read_table}, skipped=dict(skipped), notes=notes)


def _decode(data: bytes, label: str) -> rt.FeedMessage:
    try:
        message = rt.FeedMessage.FromString(data)
    except DecodeError as error:
        raise BadInput(label, "format", f"not a GTFS-Realtime FeedMessage: protobuf DecodeError ({error}); "
                                        "garbage or a truncated transfer") from None
    if not message.HasField("header"):
        raise BadInput(label, "format", "not a GTFS-Realtime FeedMessage: no FeedHeader (header is required)")
    if not message.header.HasField("gtfs_realtime_version"):
        raise BadInput(label, "format", "FeedHeader.gtfs_realtime_version is missing (required)")
    return message


def _columns(message: rt.FeedMessage) -> tuple[dict[str, list], Counter, int]:
    """One pass over the entities: the column lists, the skipped entities by kind, and how
    many TripUpdate entities also carried a VehiclePosition."""
    out: dict[str, list] = {name: [] for name in _FIELDS if name not in ("feed_timestamp", "_source_member")}
    (entity_id, update_index, trip_id, route_id, direction_id, start_date, start_time, trip_rel, vehicle_id,
     tu_timestamp, trip_delay, stop_sequence, stop_id, stop_rel, arrival_delay, arrival_time, departure_delay,
     departure_time, source_line) = out.values()  # fmt: skip
    skipped: Counter = Counter()
    with_vehicle = 0
    for index, entity in enumerate(message.entity, start=1):
        if entity.is_deleted:
            skipped["deleted"] += 1
            continue
        if not entity.HasField("trip_update"):
            skipped[next((kind for field, kind in _OTHER_KINDS if entity.HasField(field)), "empty")] += 1
            continue
        with_vehicle += entity.HasField("vehicle")
        update = entity.trip_update
        trip = update.trip
        has = trip.HasField
        trip_values = (
            trip.trip_id if has("trip_id") else None,
            trip.route_id if has("route_id") else None,
            trip.direction_id if has("direction_id") else None,
            trip.start_date if has("start_date") else None,
            trip.start_time if has("start_time") else None,
            _TRIP_RELATIONSHIP(trip.schedule_relationship) if has("schedule_relationship") else None,
            update.vehicle.id if update.HasField("vehicle") and update.vehicle.HasField("id") else None,
            update.timestamp if update.HasField("timestamp") else None,
            update.delay if update.HasField("delay") else None,
        )
        stops = update.stop_time_update
        n = max(len(stops), 1)
        entity_id.extend([entity.id] * n)
        source_line.extend([index] * n)
        for values, value in zip((trip_id, route_id, direction_id, start_date, start_time, trip_rel, vehicle_id,
                                  tu_timestamp, trip_delay), trip_values, strict=True):
            values.extend([value] * n)
        if not stops:
            update_index.append(0)
            for values in (stop_sequence, stop_id, stop_rel, arrival_delay, arrival_time, departure_delay,
                           departure_time):
                values.append(None)
            continue
        update_index.extend(range(1, n + 1))
        for stu in stops:
            has = stu.HasField
            stop_sequence.append(stu.stop_sequence if has("stop_sequence") else None)
            stop_id.append(stu.stop_id if has("stop_id") else None)
            stop_rel.append(_STOP_RELATIONSHIP(stu.schedule_relationship) if has("schedule_relationship") else None)
            if has("arrival"):
                event = stu.arrival
                arrival_delay.append(event.delay if event.HasField("delay") else None)
                arrival_time.append(event.time if event.HasField("time") else None)
            else:
                arrival_delay.append(None)
                arrival_time.append(None)
            if has("departure"):
                event = stu.departure
                departure_delay.append(event.delay if event.HasField("delay") else None)
                departure_time.append(event.time if event.HasField("time") else None)
            else:
                departure_delay.append(None)
                departure_time.append(None)
    return out, skipped, with_vehicle


def _text(name: str) -> str:
    """A reader column as the text the row checks type."""
    column = f'"{name}"'
    if name in _POSIX:
        return _timestamp(column)
    if name == "start_date":
        return (f"case when regexp_matches({column}, '^[0-9]{{8}}$') then substr({column}, 1, 4) || '-' "
                f"|| substr({column}, 5, 2) || '-' || substr({column}, 7, 2) else {column} end")
    return f"cast({column} as varchar)"


def _timestamp(column: str) -> str:
    """POSIX seconds as UTC timestamp text; a value outside years 1970-9999 as its number (the
    type check then quarantines the record, naming it)."""
    return (f"case when {column} between 0 and {_LATEST_POSIX} "
            f"then strftime(make_timestamp(cast({column} as bigint) * 1000000), '%Y-%m-%d %H:%M:%S') || '+00' "
            f"else cast({column} as varchar) end")
