"""GTFS-Realtime TripUpdates of the city transit operators: hourly snapshots, protobuf.

The operators' AVL (vehicle location) systems publish GTFS-Realtime
(https://gtfs.org/documentation/realtime/reference/); Qala archives one FULL_DATASET snapshot
per operator per hour: `landing/transport/gtfs_rt_trip_updates/<day>/trip_updates_<operator>_<HH>00.pb`,
24 per operator per day (an hour without service still gets its snapshot, with no entity).

The snapshot of hour HH holds what was observed between HH:00 and HH+1:00 local time:
- header: gtfs_realtime_version "2.0", incrementality FULL_DATASET, timestamp = the end of the
  hour (POSIX seconds; the 23:00 snapshot ends at the next local midnight, so on 2024-02-29,
  25 hours long as Kazakhstan moved from UTC+6 to UTC+5, it holds two hours);
- one TripUpdate entity per trip that reached a stop in the hour (entity id
  "<start_date>-<trip_id>"): trip.trip_id / route_id / direction_id / start_date (the service
  day, YYYYMMDD) / start_time (its first departure, HH:MM:SS), vehicle.id, timestamp (its last
  arrival in the hour), and one stop_time_update per stop reached in the hour: stop_sequence,
  stop_id, arrival.time (POSIX) and arrival.delay (seconds; time - delay is the scheduled time).
Everything refers to the same network as that day's GTFS static zip (`_transit.py`): the
trip_ids, stop_ids and stop_sequences exist there and the schedule's times are those of the
zip. Trips of the previous service day that run past midnight (24:xx:xx) appear in the early
snapshots with their own start_date.

Volumes at scale 1 (a weekday; the network and timetable of `_transit.py`): ~28.6k Almaty
trips observed with ~0.78M arrivals, ~23k and ~0.66M in Astana, ~13k and ~0.36M in Shymkent,
~1.8M arrivals in all (weekends ~30% fewer); 3% of trips have no AVL data (not observed). The
records of the feed are the entities, ~1.4 per observed trip (a trip spanning two hours is in
two snapshots): ~0.12M a weekday.

Planted effect (TRN-01, on-time performance): an arrival is on time when its delay is within
[-60, +300] s (−1/+5 min), late above +300 s, early below −60 s. Each operator's expected
share of late arrivals is exact per service day (Params: 22% Almaty, 15% Astana, 25%
Shymkent; 4% early everywhere); on weekdays the rush hours (07-10, 17-20) are worse: their
late probability is `rush_late_ratio` (1.6) times that of other hours, normalised over the
day's arrivals so the day's share stays exact. Delays follow each trip: a reflected random walk
u along the trip's stops (uniform marginals, so the shares are exact) mapped through the
delay distribution; a trip's arrival times never go backwards (a later stop is not reached
before an earlier one), which moves a few arrivals at a late-to-on-time boundary (measured
over six scale-1 days: < 0.001).

Construction: the wire format is assembled with numpy (vectorised varints and length-prefixed
fields) and then parsed and re-serialised by the published bindings
(`google.transit.gtfs_realtime_pb2.FeedMessage`), so what is written is the bindings' own
serialisation of a valid FeedMessage (building each entity in Python was ~4x slower).

Defects at the run's defect rate (see base.DEFECT_KINDS), each logged with the file, `line`
None and `record` = the 0-based entity index in that file:
- duplicate_record: an entity sent twice, the copy right after the original (detail "same
  record as record N");
- future_date: an entity's trip_update.timestamp a year after the export day;
- truncated_file: a snapshot cut short inside its last entity (record = that entity; the file
  no longer parses, so it carries no other defect).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache

import numpy as np
import polars as pl
from google.transit import gtfs_realtime_pb2

from qala_devkit.simulate import _transit as tr
from qala_devkit.simulate.base import DayContext, write_atomic
from qala_devkit.simulate.world import rng_for

FEED = "transport/gtfs_rt_trip_updates"
DOMAIN, NAME = FEED.split("/")

ON_TIME_WINDOW_S = (-60, 300)
EARLY_SCALE_S = 60.0  # early beyond -61 s: exponential tail, mean 60 s
LATE_SCALE_S = 240.0  # late beyond +301 s: exponential tail, mean 4 min
MAX_EARLY_S, MAX_LATE_S = -900, 3600
ON_TIME_SHAPE = 1.5  # on-time delays -60 + 360 * w^1.5: most arrivals a little late
WALK_STEP = 0.02  # the trip's lateness walks (in probability space) by ~2% per stop
DUPLICATE_SHARE, FUTURE_SHARE = 0.5, 0.3  # x defect_rate, per entity
HOURS = 24


@dataclass(frozen=True)
class Params:
    """The planted on-time performance (TRN-01), overridable without editing the module."""

    late_share_almaty: float = 0.22
    late_share_astana: float = 0.15
    late_share_shymkent: float = 0.25
    early_share: float = 0.04
    rush_late_ratio: float = 1.6
    observed_trip_share: float = 0.97

    def late_share(self, key: str) -> float:
        return getattr(self, f"late_share_{key}")


def generate_day(ctx: DayContext) -> int:
    """Write the 24 hourly snapshots of each operator for ctx.day; return the entities written."""
    params = ctx.params or Params()
    entities = 0
    for key in tr.OPERATOR_KEYS:
        entities += _write_operator(ctx, key, params)
    return entities


def ground_truth(params: Params = Params()) -> dict:
    """The planted on-time performance per operator and the feed's layout."""
    operators = {}
    for key in tr.OPERATOR_KEYS:
        late = params.late_share(key)
        operators[key] = {
            "late_share": late,
            "early_share": params.early_share,
            "on_time_share": round(1.0 - late - params.early_share, 10),
        }
    return {
        "file_pattern": "trip_updates_<operator>_<HH>00.pb",
        "files_per_operator_per_day": HOURS,
        "arrivals_per_weekday_at_scale_1_approx": {"almaty": 782_000, "astana": 657_000, "shymkent": 357_000},
        "effects": {
            "on_time_performance": {
                "kpi": "TRN-01",
                "on_time_window_s": list(ON_TIME_WINDOW_S),
                "definition": "late: arrival.delay > 300 s; early: < -60 s; on time otherwise",
                "operators": operators,
                "rush_hours": list(tr.RUSH_HOURS),
                "rush_hours_apply": "weekday service only, by the scheduled hour",
                "rush_late_ratio": params.rush_late_ratio,
                "exactness": "the late share is the expected share of each service day's observed "
                             "arrivals; keeping arrival times in order moves it by < 0.001",
            },
        },
        "observed_trip_share": params.observed_trip_share,
        "delay_distribution_s": {"early": f"-61 - Exp(mean {EARLY_SCALE_S}), down to {MAX_EARLY_S}",
                                 "on_time": f"-60 + 360 * w^{ON_TIME_SHAPE}, w uniform",
                                 "late": f"301 + Exp(mean {LATE_SCALE_S}), up to {MAX_LATE_S}"},
        "records": "entities (one per observed trip per hour it reached a stop in)",
        "defect_kinds": ["duplicate_record", "future_date", "truncated_file"],
        "defect_location": "line null, record = 0-based entity index in the file",
    }  # fmt: skip


# --- the observed arrivals -------------------------------------------------------------------


@lru_cache(maxsize=8)
def _arrivals(seed: int, key: str, scale: float, service_day: date, params: Params) -> pl.DataFrame:
    """Every observed arrival of the service day: stop_times row, POSIX arrival and delay.

    Drawn from the service day's own stream, so a trip running past midnight gets the same
    delays in the next day's early snapshots whichever day is generated first. Cached: each
    day's snapshots read the previous service day too.
    """
    net = tr.network(seed, key, scale)
    rng = rng_for(seed, f"{FEED}:{key}", service_day)
    trips = np.flatnonzero(net.trip_service == tr.service_of(service_day))
    trips = trips[rng.random(trips.size) < params.observed_trip_share]
    count = net.trip_count[trips]
    start = np.cumsum(count) - count
    owner = np.repeat(np.arange(trips.size), count)
    rows = net.trip_first[trips][owner] + np.arange(owner.size) - start[owner]
    scheduled = net.st_time[rows].astype(np.int64)
    # The reflected walk: uniform at every stop, correlated along the trip.
    step = rng.normal(0.0, WALK_STEP, rows.size)
    step[start] = 0.0
    walk = np.cumsum(step)
    walk -= walk[start][owner]
    u = _fold(rng.random(trips.size)[owner] + walk)
    late_p = _late_probability(scheduled, tr.service_of(service_day), params.late_share(key), params)
    delay = _delay(u, params.early_share, late_p)
    midnight = tr.midnight_posix(service_day)
    arrival = midnight + scheduled + delay
    # A later stop is never reached before an earlier one: running maximum within each trip.
    stride = np.int64(10**10)
    arrival = np.maximum.accumulate(arrival + owner * stride) - owner * stride
    return pl.DataFrame({
        "trip": net.st_trip[rows], "row": rows, "arrival": arrival,
        "delay": (arrival - midnight - scheduled).astype(np.int32),
    })  # fmt: skip


def _fold(x: np.ndarray) -> np.ndarray:
    """Reflect into [0, 1]: a reflected walk with a uniform start stays uniform."""
    return 1.0 - np.abs(1.0 - np.mod(x, 2.0))


def _late_probability(scheduled: np.ndarray, service: int, share: float, params: Params) -> np.ndarray:
    """Per-arrival late probability: rush hours x ratio on weekdays, the day's mean = share."""
    hour = scheduled // 3600 % 24
    weight = np.ones(scheduled.size)
    if service == tr.WEEKDAY:
        weight[np.isin(hour, tr.RUSH_HOURS)] = params.rush_late_ratio
    return share * weight / weight.mean() if weight.size else weight


def _delay(u: np.ndarray, early: float, late: np.ndarray) -> np.ndarray:
    """Delay (s) as an increasing function of u: early below `early`, late above 1 - late."""
    is_early = u < early
    is_late = u >= 1.0 - late
    with np.errstate(divide="ignore", invalid="ignore"):
        early_s = np.floor(-61.0 + EARLY_SCALE_S * np.log(np.maximum(u / early, 1e-12)))
        w = np.clip((u - early) / (1.0 - early - late), 0.0, 1.0 - 1e-12)
        on_time_s = np.round(-60.0 + 360.0 * w**ON_TIME_SHAPE)
        tail = np.clip((u - (1.0 - late)) / late, 0.0, 1.0 - 1e-12)
        late_s = np.ceil(301.0 - LATE_SCALE_S * np.log1p(-tail))
    delay = np.select([is_early, is_late], [np.maximum(early_s, MAX_EARLY_S), np.minimum(late_s, MAX_LATE_S)],
                      on_time_s)  # fmt: skip
    return delay.astype(np.int64)


# --- the snapshots ---------------------------------------------------------------------------


def _write_operator(ctx: DayContext, key: str, params: Params) -> int:
    """Build the day's entities for one operator, plant defects, write the 24 snapshots."""
    day = ctx.day
    net = tr.network(ctx.seed, key, ctx.scale)
    midnight, next_midnight = tr.midnight_posix(day), tr.midnight_posix(day + timedelta(days=1))
    parts = []
    for back in (1, 0):
        service_day = day - timedelta(days=back)
        frame = _arrivals(ctx.seed, key, ctx.scale, service_day, params)
        parts.append(frame.with_columns(service=pl.lit(back, dtype=pl.Int8)))
    arrivals = (
        pl.concat(parts)
        .filter(pl.col("arrival").is_between(midnight, next_midnight, closed="left"))
        # The hour of the day since local midnight; on the 25-hour 2024-02-29 (clocks went back
        # to UTC+5 at midnight) the last snapshot holds the last two hours.
        .with_columns(hour=((pl.col("arrival") - midnight) // 3600).clip(0, HOURS - 1).cast(pl.Int32))
        # By hour; within an hour the previous service day first, then trip and stop order.
        .sort("hour", maintain_order=True)
    )
    hour = arrivals["hour"].to_numpy()
    trip = arrivals["trip"].to_numpy()
    back = arrivals["service"].to_numpy()
    new_entity = np.ones(hour.size, dtype=bool)
    new_entity[1:] = (hour[1:] != hour[:-1]) | (trip[1:] != trip[:-1]) | (back[1:] != back[:-1])
    first = np.flatnonzero(new_entity)
    stus = np.diff(np.append(first, hour.size))
    e_hour, e_trip, e_back = hour[first], trip[first], back[first]
    last_arrival = np.maximum.reduceat(arrivals["arrival"].to_numpy(), first) if first.size else first
    files = np.searchsorted(e_hour, np.arange(HOURS + 1))  # entity range of each hour
    paths = [ctx.folder() / f"trip_updates_{key}_{h:02d}00.pb" for h in range(HOURS)]

    # Defects on entities: truncation first; the other defects stay out of the truncated file,
    # which no longer parses at all.
    truncated_hour = -1
    if tr.maybe_file(ctx, "truncated_file", key):
        candidates = np.flatnonzero(np.diff(files) >= 2)
        if candidates.size:
            truncated_hour = int(ctx.rng(f"truncate:{key}").choice(candidates))
    rng = ctx.rng(f"entity-defects:{key}")
    free = e_hour != truncated_hour
    future = (rng.random(e_hour.size) < ctx.defect_rate * FUTURE_SHARE) & free
    duplicate = (rng.random(e_hour.size) < ctx.defect_rate * DUPLICATE_SHARE) & free & ~future
    timestamp = np.where(future, last_arrival + 366 * 86400, last_arrival)

    start_date = [(day - timedelta(days=1)).strftime("%Y%m%d"), day.strftime("%Y%m%d")]
    rows = arrivals["row"].to_numpy()
    encoded = _encode_entities(
        net, start_date, e_back, e_trip, timestamp, stus,
        stop_sequence=net.st_seq[rows], stop=net.st_stop[rows],
        arrival=arrivals["arrival"].to_numpy(), delay=arrivals["delay"].to_numpy(),
    )  # fmt: skip
    # Duplicates: the copy right after its original; positions shift within the file.
    order = np.repeat(np.arange(e_hour.size), 1 + duplicate.astype(int))
    if duplicate.any():
        encoded = encoded.take(order)
    out_hour = e_hour[order]
    out_files = np.searchsorted(out_hour, np.arange(HOURS + 1))
    out_index = np.arange(order.size) - out_files[out_hour]
    for position in np.flatnonzero(np.diff(order, prepend=-1) == 0):
        ctx.record(paths[out_hour[position]], "duplicate_record", None, record=int(out_index[position]),
                   detail=f"same record as record {int(out_index[position - 1])}")  # fmt: skip
    for position in np.flatnonzero(future[order]):
        ctx.record(paths[out_hour[position]], "future_date", None, record=int(out_index[position]),
                   column="trip_update.timestamp",
                   detail=f"trip_update.timestamp {int(timestamp[order[position]])} is after the export day")
    for h in range(HOURS):
        end = next_midnight if h == HOURS - 1 else midnight + (h + 1) * 3600
        data = _snapshot(encoded.slice(out_files[h], out_files[h + 1]), end)
        if h == truncated_hour:
            data, record = _truncate(data, ctx.rng(f"truncate-at:{key}"))
            ctx.record(paths[h], "truncated_file", None, record=record,
                       detail="the transfer stopped inside this entity; the file does not parse")  # fmt: skip
        write_atomic(paths[h], data)
    return int(order.size)


def _snapshot(entities: _Ragged, timestamp: int) -> bytes:
    """FeedMessage bytes: the header, then the entities; parsed and re-serialised by the bindings."""
    header = _field(1, [_strings(["2.0"])]) + _varint_field(2, np.array([0]))  # FULL_DATASET
    header += _varint_field(3, np.array([timestamp]))
    raw = _compact(_field(1, header)).data.tobytes() + entities.data.tobytes()
    return gtfs_realtime_pb2.FeedMessage.FromString(raw).SerializeToString()


def _truncate(data: bytes, rng: np.random.Generator) -> tuple[bytes, int]:
    """Cut the message inside its last entity; return the bytes kept and that entity's index."""
    message = gtfs_realtime_pb2.FeedMessage.FromString(data)
    last = message.entity[-1].SerializeToString()
    field_size = 1 + int(_varint(np.array([len(last)]))[1][0]) + len(last)
    keep = len(data) - field_size + int(rng.integers(2, field_size - 1))
    return data[:keep], len(message.entity) - 1


# --- vectorised protobuf wire format ---------------------------------------------------------
#
# A message of n rows is a list of pieces: (uint8 matrix n x width, length of each row's bytes).
# Nesting only adds pieces (a tag, a length varint); the bytes are gathered into one flat array
# once ("compact"), so every level costs O(n x width), not a copy of everything below it.


@dataclass(frozen=True)
class _Ragged:
    """n byte strings stored back to back: `data` (uint8) and each one's length."""

    data: np.ndarray
    lengths: np.ndarray

    def starts(self) -> np.ndarray:
        return np.cumsum(self.lengths) - self.lengths

    def take(self, index: np.ndarray) -> _Ragged:
        lengths = self.lengths[index]
        source = np.repeat(self.starts()[index] - (np.cumsum(lengths) - lengths), lengths)
        return _Ragged(self.data[source + np.arange(source.size)], lengths)

    def slice(self, begin: int, end: int) -> _Ragged:
        edges = np.append(self.starts(), self.data.size)
        return _Ragged(self.data[edges[begin]:edges[end]], self.lengths[begin:end])

    def group(self, counts: np.ndarray) -> _Ragged:
        """Join consecutive runs of `counts` strings (contiguous already: only lengths change)."""
        edges = np.cumsum(counts) - counts
        return _Ragged(self.data, np.add.reduceat(self.lengths, edges) if counts.size else counts)


_Piece = tuple[np.ndarray, np.ndarray]  # (uint8 matrix n x width, lengths)


def _size(message: list[_Piece]) -> np.ndarray:
    return sum(lengths for _, lengths in message)


def _compact(message: list[_Piece]) -> _Ragged:
    matrix = np.hstack([m for m, _ in message])
    mask = np.hstack([np.arange(m.shape[1])[None, :] < lengths[:, None] for m, lengths in message])
    return _Ragged(matrix[mask], _size(message))


def _varint(values: np.ndarray) -> _Piece:
    """Base-128 varints (negative int32/int64 as their 64-bit two's complement: 10 bytes)."""
    v = np.asarray(values).astype(np.int64).view(np.uint64)
    if v.size == 0 or v.max() < 128:
        return v.astype(np.uint8)[:, None], np.ones(v.size, dtype=np.int64)
    width = (int(v.max()).bit_length() + 6) // 7
    lengths = np.ones(v.size, dtype=np.int64)
    for k in range(1, width):
        lengths += v >= np.uint64(1 << (7 * k))
    matrix = np.empty((v.size, width), dtype=np.uint8)
    for k in range(width):
        low = ((v >> np.uint64(7 * k)) & np.uint64(0x7F)).astype(np.uint8)
        matrix[:, k] = np.where(lengths - 1 > k, low | 0x80, low)
    return matrix, lengths


def _strings(values) -> _Piece:
    """UTF-8 strings as a piece: a catalogue (stop ids, trip ids...) to `_take` rows from."""
    encoded = [v.encode("utf-8") for v in values]
    lengths = np.array([len(b) for b in encoded], dtype=np.int64)
    data = np.frombuffer(b"".join(encoded) or b"\0", dtype=np.uint8)
    width = max(int(lengths.max()) if lengths.size else 1, 1)
    starts = np.cumsum(lengths) - lengths
    return data[np.minimum(starts[:, None] + np.arange(width), data.size - 1)], lengths


def _const(data: bytes, n: int) -> _Piece:
    return np.tile(np.frombuffer(data, dtype=np.uint8), (n, 1)), np.full(n, len(data), dtype=np.int64)


def _take(piece: _Piece, index: np.ndarray) -> _Piece:
    return piece[0][index], piece[1][index]


def _tag(number: int, wire_type: int, n: int) -> _Piece:
    return _const(bytes([number << 3 | wire_type]), n)


def _field(number: int, payload: list[_Piece]) -> list[_Piece]:
    """A length-delimited field (string, bytes or embedded message)."""
    size = _size(payload)
    return [_tag(number, 2, size.size), _varint(size), *payload]


def _varint_field(number: int, values: np.ndarray) -> list[_Piece]:
    return [_tag(number, 0, len(values)), _varint(values)]


def _wrap(head: _Ragged, body: _Ragged, tail: _Ragged) -> _Ragged:
    """Row i = head[i] + body[i] + tail[i]: head and tail are small, so only their bytes are
    placed one by one; the (large) body fills the rest in order."""
    lengths = head.lengths + body.lengths + tail.lengths
    out = np.empty(int(lengths.sum()), dtype=np.uint8)
    row_start = np.cumsum(lengths) - lengths
    is_body = np.ones(out.size, dtype=bool)
    for part, start in ((head, row_start), (tail, row_start + head.lengths + body.lengths)):
        where = np.repeat(start - part.starts(), part.lengths) + np.arange(part.data.size)
        out[where] = part.data
        is_body[where] = False
    out[is_body] = body.data
    return _Ragged(out, lengths)


def _encode_entities(net: tr.Network, start_date: np.ndarray, back: np.ndarray, trip: np.ndarray,
                     timestamp: np.ndarray, stus: np.ndarray, *, stop_sequence: np.ndarray,
                     stop: np.ndarray, arrival: np.ndarray, delay: np.ndarray) -> _Ragged:  # fmt: skip
    """FeedMessage.entity fields (tag 2, length, FeedEntity), one per entity, in order.

    `start_date` holds the two service days' YYYYMMDD (previous, this one); `back` picks one.
    """
    # StopTimeUpdate: stop_sequence (1), arrival (2: delay 1, time 2), stop_id (4); each one as
    # TripUpdate.stop_time_update (2), then joined per entity.
    event = _varint_field(1, delay) + _varint_field(2, arrival)
    stop_id = [_take(_strings(net.stop_id), stop)]
    update = _varint_field(1, stop_sequence) + _field(2, event) + _field(4, stop_id)
    updates = _compact(_field(2, update)).group(stus)
    # TripDescriptor: trip_id (1), start_time (2), start_date (3), route_id (5), direction_id (6).
    n = trip.size
    trip_ids = _take(_strings(net.trip_id), trip)
    date_text = _take(_strings(start_date), 1 - back)
    descriptor = (_field(1, [trip_ids])
                  + _field(2, [_take(_strings(tr.hhmmss(net.st_time[net.trip_first]).to_numpy()), trip)])
                  + _field(3, [date_text])
                  + _field(5, [_take(_strings(net.route_id), net.trip_route[trip])])
                  + _varint_field(6, net.trip_dir[trip]))  # fmt: skip
    trip_field = _field(1, descriptor)
    tail = _field(3, _field(1, [_take(_strings(net.vehicle_id), net.trip_vehicle[trip])]))  # vehicle.id
    tail += _varint_field(4, timestamp)
    trip_update_size = _size(trip_field) + updates.lengths + _size(tail)
    id_field = _field(1, [date_text, _const(b"-", n), trip_ids])  # entity id "<start_date>-<trip_id>"
    entity_size = _size(id_field) + 1 + _varint(trip_update_size)[1] + trip_update_size
    head = [_tag(2, 2, n), _varint(entity_size), *id_field, _tag(3, 2, n), _varint(trip_update_size),
            *trip_field]  # FeedMessage.entity (2) > FeedEntity: id (1), trip_update (3) > trip (1)
    return _wrap(_compact(head), updates, _compact(tail))
