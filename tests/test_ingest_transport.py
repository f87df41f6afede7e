"""Transport feeds through the one load path: GTFS Schedule zips (any spec-conformant zip, see
https://gtfs.org/schedule/reference/), GTFS-Realtime TripUpdates (gtfs-realtime.proto) and the
smart-card validations CSV. Real DuckDB, real GX (through load_files), the real simulator."""

from __future__ import annotations

import hashlib
import hmac
import io
import struct
import zipfile
from datetime import date
from pathlib import Path

import polars as pl
import pytest
from google.transit import gtfs_realtime_pb2 as rt

from tests.conftest import land, query
from transforms.load import LoadFailure, load_files
from transforms.privacy import scan_lake
from transforms.pseudonymise import hmac_key
from qala_devkit.simulate import simulate

STATIC, REALTIME, FARES = "transport/gtfs_static", "transport/gtfs_rt_trip_updates", "transport/fare_validations"
DAY = "2025-03-01"
SILVER = "silver.transport__gtfs_static__"

# A hand-written feed with only what the reference requires, and calendar_dates.txt instead of
# calendar.txt; one agency without agency_id (allowed for a single-agency feed), H:MM:SS and
# times after 24:00:00, a quoted name with a comma.
MINIMAL = {
    "agency.txt": "agency_name,agency_url,agency_timezone\nQala Transit,https://transit.qala.kz,Asia/Almaty\n",
    "stops.txt": ("stop_id,stop_name,stop_lat,stop_lon\n"
                  "S1,\"Абай, Достык\",43.238,76.945\nS2,Достык,43.240,76.957\nS3,Сатпаев,43.230,76.930\n"),
    "routes.txt": "route_id,route_short_name,route_long_name,route_type\nR1,1,Абай — Сатпаев,3\n",
    "trips.txt": "route_id,service_id,trip_id\nR1,DAILY,T1\nR1,DAILY,T2\n",
    "stop_times.txt": ("trip_id,arrival_time,departure_time,stop_id,stop_sequence\n"
                       "T1,8:00:00,8:00:00,S1,1\nT1,08:10:00,08:10:00,S2,2\nT1,08:20:00,08:20:00,S3,3\n"
                       "T2,23:50:00,23:50:00,S1,1\nT2,24:05:00,24:05:00,S2,2\nT2,25:10:30,25:10:30,S3,3\n"),
    "calendar_dates.txt": "service_id,date,exception_type\nDAILY,20250301,1\nDAILY,20250302,1\n",
}


def gtfs_zip(members: dict[str, str | bytes], folder: str = "") -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(folder + name, data)
    return buffer.getvalue()


def land_zip(root: Path, members: dict, name: str = "gtfs.zip", **kwargs) -> Path:
    return land(root, DAY, name, gtfs_zip(members, **kwargs), feed=STATIC)


def refused(feed: str, path: Path) -> str:
    """The reason of the one file's `failed` ledger row."""
    with pytest.raises(LoadFailure) as caught:
        load_files(feed, [path])
    (row,) = caught.value.rows
    assert row.status == "failed" and row.rows_in == 0
    return row.reason


def label(path: Path, root: Path) -> str:
    return str(path.relative_to(root))


# --- GTFS static --------------------------------------------------------------------------------


def test_a_minimal_spec_conformant_zip_with_only_calendar_dates_loads(warehouse):
    path = land_zip(warehouse, MINIMAL)
    (row,) = load_files(STATIC, [path])
    assert (row.status, row.rows_in, row.rows_published, row.rows_quarantined) == ("published", 15, 15, 0)
    assert row.tables["stop_times"] == {"in": 6, "published": 6, "quarantined": 0}
    assert "calendar" not in row.tables and "shapes" not in row.tables
    # No feed_info.txt: the version is the zip's own digest.
    version = "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    times = query(warehouse, f"select feed_version, trip_id, arrival_time, arrival_seconds, departure_seconds, "
                             f"_source_member, _source_line from {SILVER}stop_times where trip_id = 'T2' order by stop_sequence")
    assert times == [(version, "T2", "23:50:00", 85800, 85800, "stop_times.txt", 5),
                     (version, "T2", "24:05:00", 86700, 86700, "stop_times.txt", 6),
                     (version, "T2", "25:10:30", 90630, 90630, "stop_times.txt", 7)]
    assert query(warehouse, f"select arrival_seconds from {SILVER}stop_times where trip_id = 'T1' and stop_sequence = 1") == [(28800,)]
    assert query(warehouse, f"select date, exception_type from {SILVER}calendar_dates order by date") == [
        (date(2025, 3, 1), 1), (date(2025, 3, 2), 1)]
    assert query(warehouse, f"select agency_id, agency_name, feed_version from {SILVER}agency") == [(None, "Qala Transit", version)]
    assert query(warehouse, f"select stop_name from {SILVER}stops where stop_id = 'S1'") == [("Абай, Достык",)]


def test_a_zip_without_a_required_file_is_refused_naming_it(warehouse):
    path = land_zip(warehouse, {k: v for k, v in MINIMAL.items() if k != "stops.txt"})
    reason = refused(STATIC, path)
    assert reason.startswith(f"{label(path, warehouse)}: [required file] the zip has no stops.txt")


def test_a_zip_with_neither_calendar_file_is_refused(warehouse):
    path = land_zip(warehouse, {k: v for k, v in MINIMAL.items() if k != "calendar_dates.txt"})
    reason = refused(STATIC, path)
    assert reason.startswith(f"{label(path, warehouse)}: [required file] the zip has neither calendar.txt "
                             f"nor calendar_dates.txt")


def test_an_empty_required_member_is_refused_naming_the_member(warehouse):
    path = land_zip(warehouse, {**MINIMAL, "routes.txt": ""})
    reason = refused(STATIC, path)
    assert reason.startswith(f"{label(path, warehouse)}!routes.txt: [format] empty file (0 bytes)")


def test_a_member_without_a_required_column_is_refused_naming_member_and_line(warehouse):
    path = land_zip(warehouse, {**MINIMAL, "trips.txt": "route_id,trip_id\nR1,T1\nR1,T2\n"})
    reason = refused(STATIC, path)
    assert reason.startswith(f"{label(path, warehouse)}!trips.txt, line 1: [required columns] "
                             f"required column(s) missing from the header: service_id")


def test_a_zip_bomb_is_refused_before_extraction(warehouse):
    # 4 MiB of one repeated line deflates to a few KiB: far over max_ratio 200.
    bomb = "stop_id,stop_name,stop_lat,stop_lon\n" + "S1,A,43.2,76.9\n" * (4 << 16)
    path = land_zip(warehouse, {**MINIMAL, "stops.txt": bomb})
    reason = refused(STATIC, path)
    assert reason.startswith(f"{label(path, warehouse)}: [zip limits] member stops.txt expands ")
    assert "more than max_ratio 200 (zip bomb?)" in reason


def _lie_about_size(data: bytes, member: str, size: int) -> bytes:
    """Overwrite a member's uncompressed size in its local header and central directory entry."""
    out = bytearray(data)
    name = member.encode()
    local = out.index(b"PK\x03\x04")
    while out[local + 30: local + 30 + len(name)] != name:
        local = out.index(b"PK\x03\x04", local + 4)
    struct.pack_into("<I", out, local + 22, size)
    central = out.index(b"PK\x01\x02")
    while out[central + 46: central + 46 + len(name)] != name:
        central = out.index(b"PK\x01\x02", central + 4)
    struct.pack_into("<I", out, central + 24, size)
    return bytes(out)


def test_a_member_whose_header_lies_about_its_size_is_refused(warehouse):
    # 2 MiB of stops declared as 3,000 bytes: the declared ratio passes, the bytes do not match.
    stops = "stop_id,stop_name,stop_lat,stop_lon\n" + "".join(f"S{i},Stop {i},43.2,76.9\n" for i in range(80_000))
    data = _lie_about_size(gtfs_zip({**MINIMAL, "stops.txt": stops}), "stops.txt", 3000)
    path = land(warehouse, DAY, "liar.zip", data, feed=STATIC)
    reason = refused(STATIC, path)
    assert reason.startswith(f"{label(path, warehouse)}: [format] member stops.txt cannot be read: Bad CRC-32")


def test_an_unreadable_zip_is_refused(warehouse):
    path = land(warehouse, DAY, "gtfs.zip", b"this is not a zip archive\n" * 40, feed=STATIC)
    reason = refused(STATIC, path)
    assert reason == (f"{label(path, warehouse)}: [format] not a zip archive (no zip directory found): "
                      f"unreadable or truncated")


def test_a_truncated_zip_is_refused(warehouse):
    data = gtfs_zip(MINIMAL)
    path = land(warehouse, DAY, "gtfs.zip", data[: len(data) * 2 // 3], feed=STATIC)
    reason = refused(STATIC, path)
    assert reason == (f"{label(path, warehouse)}: [format] not a zip archive (no zip directory found): "
                      f"unreadable or truncated")


def test_broken_references_and_bad_times_are_quarantined_the_rest_publishes(warehouse):
    members = {
        **MINIMAL,
        "trips.txt": MINIMAL["trips.txt"] + "R9,DAILY,T3\n",  # line 4: route R9 does not exist
        "stop_times.txt": MINIMAL["stop_times.txt"]
        + "T9,09:00:00,09:00:00,S1,1\n"     # line 8: trip T9 does not exist
        + "T1,08:30:00,08:30:00,S9,4\n"     # line 9: stop S9 does not exist
        + "T1,08:40:00,8:4:00,S3,5\n",      # line 10: not a GTFS time
    }
    path = land_zip(warehouse, members)
    (row,) = load_files(STATIC, [path])
    assert row.status == "published"
    assert row.tables["stop_times"] == {"in": 9, "published": 6, "quarantined": 3}
    assert row.tables["trips"] == {"in": 3, "published": 2, "quarantined": 1}
    assert row.rows_in == row.rows_published + row.rows_quarantined == 19
    quarantined = query(warehouse, "select _source_member, _source_line, _rule, _reason "
                                   "from quarantine.transport__gtfs_static__stop_times order by _source_line")
    assert [q[:3] for q in quarantined] == [("stop_times.txt", 8, "reference"), ("stop_times.txt", 9, "reference"),
                                            ("stop_times.txt", 10, "expect_column_values_to_match_regex(departure_time)")]
    assert "trip_id T9" in quarantined[0][3] and "trips" in quarantined[0][3]
    assert "stop_id S9" in quarantined[1][3] and "stops" in quarantined[1][3]
    (trip,) = query(warehouse, "select _source_member, _source_line, _rule, _reason from quarantine.transport__gtfs_static__trips")
    assert trip[:3] == ("trips.txt", 4, "reference") and "route_id R9" in trip[3]
    assert query(warehouse, f"select count(*) from {SILVER}stop_times") == [(6,)]


def test_unknown_columns_and_files_are_tolerated_and_kept_out_of_silver(warehouse):
    members = {
        **MINIMAL,
        "stops.txt": ("stop_id,stop_name,stop_lat,stop_lon,stop_name_kk,platform_code\n"
                      "S1,Абай,43.238,76.945,Абай,1\nS2,Достык,43.240,76.957,Достық,\nS3,Сатпаев,43.230,76.930,Сәтбаев,\n"),
        "agency.txt": ("agency_id,agency_name,agency_url,agency_timezone,agency_phone\n"
                       "QT,Qala Transit,https://transit.qala.kz,Asia/Almaty,+7 727 000 00 00\n"),
        "routes.txt": "route_id,agency_id,route_short_name,route_type,route_color\nR1,QT,1,3,1E90FF\n",
        "calendar.txt": ("service_id,monday,tuesday,wednesday,thursday,friday,saturday,sunday,start_date,end_date\n"
                         "DAILY,1,1,1,1,1,1,1,20250301,20250331\n"),
        "frequencies.txt": "trip_id,start_time,end_time,headway_secs\nT1,06:00:00,22:00:00,600\n",
        "qala_notes.txt": "anything\n",
        "feed_info.txt": ("feed_publisher_name,feed_publisher_url,feed_lang,feed_version\n"
                          "Qala,https://qala.kz,ru,2025.03-v42\n"),
    }
    # Members inside one folder, as some publishers zip them.
    path = land_zip(warehouse, members, folder="gtfs/")
    (row,) = load_files(STATIC, [path])
    assert row.status == "published" and row.rows_quarantined == 0
    assert row.tables["calendar"] == {"in": 1, "published": 1, "quarantined": 0}
    # stop_name_kk is not in the reference: a note; agency_phone is, and is dropped as contact data.
    assert "stop_name_kk" in row.reason and "agency_phone" not in row.reason
    assert "gtfs/frequencies.txt" in row.reason and "gtfs/qala_notes.txt" in row.reason
    columns = {c for (c,) in query(warehouse, "select column_name from information_schema.columns "
                                              "where table_name = 'transport__gtfs_static__stops' and table_schema = 'silver'")}
    assert "stop_name_kk" not in columns and {"stop_id", "platform_code", "feed_version"} <= columns
    agency = query(warehouse, f"select * from {SILVER}agency")
    assert len(agency) == 1 and "+7 727 000 00 00" not in str(agency)
    assert not any("phone" in c for (c,) in query(warehouse, "select column_name from information_schema.columns "
                                                           "where table_name = 'transport__gtfs_static__agency'"))
    assert query(warehouse, f"select distinct feed_version, _source_member from {SILVER}stops") == [("2025.03-v42", "gtfs/stops.txt")]
    assert query(warehouse, f"select start_date, end_date, sunday from {SILVER}calendar") == [
        (date(2025, 3, 1), date(2025, 3, 31), 1)]


# --- GTFS-Realtime ------------------------------------------------------------------------------


def feed_message(*entities: rt.FeedEntity, timestamp: int = 1740805200) -> bytes:
    message = rt.FeedMessage()
    message.header.gtfs_realtime_version = "2.0"
    message.header.incrementality = rt.FeedHeader.FULL_DATASET
    message.header.timestamp = timestamp
    message.entity.extend(entities)
    return message.SerializeToString()


def trip_update(entity_id: str, trip_id: str, stops: list[tuple[int, str, int, int]], **trip) -> rt.FeedEntity:
    entity = rt.FeedEntity(id=entity_id)
    update = entity.trip_update
    update.trip.trip_id = trip_id
    for key, value in trip.items():
        setattr(update.trip, key, value)
    update.vehicle.id = "ALA-B0001"
    for sequence, stop_id, delay, at in stops:
        stu = update.stop_time_update.add(stop_sequence=sequence, stop_id=stop_id)
        stu.arrival.delay = delay
        stu.arrival.time = at
    return entity


def land_pb(root: Path, data: bytes, name: str = "trip_updates_almaty_0800.pb") -> Path:
    return land(root, DAY, name, data, feed=REALTIME)


def test_trip_updates_load_one_record_per_stop_time_update_and_other_entities_are_skipped(warehouse):
    vehicle = rt.FeedEntity(id="v1")
    vehicle.vehicle.vehicle.id = "ALA-B0002"
    vehicle.vehicle.position.latitude, vehicle.vehicle.position.longitude = 43.2, 76.9
    alert = rt.FeedEntity(id="a1")
    alert.alert.header_text.translation.add(text="Closed", language="en")
    canceled = rt.FeedEntity(id="e2")
    canceled.trip_update.trip.trip_id = "T2"
    canceled.trip_update.trip.schedule_relationship = rt.TripDescriptor.CANCELED
    data = feed_message(
        vehicle,
        trip_update("e1", "T1", [(1, "S1", 30, 1740801630), (2, "S2", -75, 1740802125)], route_id="R1",
                    start_date="20250301", start_time="08:00:00", direction_id=1),
        alert, canceled)
    path = land_pb(warehouse, data)
    (row,) = load_files(REALTIME, [path])
    assert (row.status, row.rows_in, row.rows_published, row.rows_skipped) == ("published", 3, 3, 2)
    assert row.skipped == {"vehicle_position": 1, "alert": 1}
    rows = query(warehouse, "select _source_line, entity_id, update_index, trip_id, route_id, direction_id, start_date, "
                            "trip_schedule_relationship, vehicle_id, stop_sequence, stop_id, arrival_delay, "
                            "epoch(arrival_time)::bigint, epoch(feed_timestamp)::bigint, _source_member "
                            "from silver.transport__gtfs_rt_trip_updates order by _source_line, update_index")
    assert rows == [
        (2, "e1", 1, "T1", "R1", 1, date(2025, 3, 1), None, "ALA-B0001", 1, "S1", 30, 1740801630, 1740805200, None),
        (2, "e1", 2, "T1", "R1", 1, date(2025, 3, 1), None, "ALA-B0001", 2, "S2", -75, 1740802125, 1740805200, None),
        (4, "e2", 0, "T2", None, None, None, "CANCELED", None, None, None, None, None, 1740805200, None),
    ]


def test_a_snapshot_without_entities_publishes_nothing_and_is_fine(warehouse):
    (row,) = load_files(REALTIME, [land_pb(warehouse, feed_message())])
    assert (row.status, row.rows_in, row.rows_skipped) == ("published", 0, 0)


def test_garbage_bytes_are_refused_as_not_a_feed_message(warehouse):
    path = land_pb(warehouse, bytes(range(256)) * 8)
    reason = refused(REALTIME, path)
    assert reason.startswith(f"{label(path, warehouse)}: [format] not a GTFS-Realtime FeedMessage: protobuf DecodeError")


def test_an_empty_pb_file_is_refused(warehouse):
    path = land_pb(warehouse, b"")
    assert refused(REALTIME, path) == f"{label(path, warehouse)}: [format] empty file (0 bytes)"


def test_a_truncated_pb_file_is_refused(warehouse):
    data = feed_message(trip_update("e1", "T1", [(1, "S1", 30, 1740801630), (2, "S2", 40, 1740801730)]))
    path = land_pb(warehouse, data[:-7])
    reason = refused(REALTIME, path)
    assert reason.startswith(f"{label(path, warehouse)}: [format] not a GTFS-Realtime FeedMessage: protobuf DecodeError")


def test_a_message_without_its_header_is_refused(warehouse):
    message = rt.FeedMessage()
    message.entity.add(id="e1")
    path = land_pb(warehouse, message.SerializePartialToString())
    reason = refused(REALTIME, path)
    assert reason == f"{label(path, warehouse)}: [format] not a GTFS-Realtime FeedMessage: no FeedHeader (header is required)"


def test_a_duplicated_entity_and_an_absurd_delay_are_quarantined_by_entity_index(warehouse):
    first = trip_update("e1", "T1", [(1, "S1", 30, 1740801630)])
    data = feed_message(first, first, trip_update("e3", "T3", [(1, "S1", 200_000, 1740801630)]))
    (row,) = load_files(REALTIME, [land_pb(warehouse, data)])
    assert (row.status, row.rows_in, row.rows_published, row.rows_quarantined) == ("published", 3, 1, 2)
    quarantined = query(warehouse, "select _source_line, _rule, _reason from quarantine.transport__gtfs_rt_trip_updates "
                                   "order by _source_line")
    assert [q[:2] for q in quarantined] == [(2, "primary key"), (3, "expect_column_values_to_be_between(arrival_delay)")]
    assert "duplicate of line 1" in quarantined[0][2]


# --- fare validations ---------------------------------------------------------------------------

FARE_HEADER = "validation_id,card_id,validated_at,operator,route_id,vehicle_id,stop_id,fare_type,amount_kzt,payment_method\n"


def test_fare_validations_hash_the_card_and_quarantine_bad_taps(warehouse):
    body = (FARE_HEADER
            + "ALA-20250301-00000001,9600101514614131,2025-03-01 07:00:00,ALA-TH,ALA-B-52,ALA-B0016,ALA11507,adult,200,qr\n"
            + "ALA-20250301-00000002,9600107575216658,2025-03-01 07:01:00,ALA-TH,ALA-B-52,ALA-B0016,ALA11507,adult,-200,qr\n"
            + "ALA-20250301-00000003,,2025-03-01 07:02:00,ALA-TH,ALA-B-52,ALA-B0016,ALA11507,student,100,transport_card\n"
            + "ALA-20250301-00000001,9600101514614131,2025-03-01 07:00:00,ALA-TH,ALA-B-52,ALA-B0016,ALA11507,adult,200,qr\n"
            + "ALA-20250301-00000004,4100004264391478,2025-03-01 07:03:00,ALA-TH,ALA-B-52,ALA-B0016,ALA11507,vip,200,bank_card\n")
    path = land(warehouse, DAY, "validations_almaty_2025-03-01.csv", body, feed=FARES)
    (row,) = load_files(FARES, [path])
    assert (row.status, row.rows_in, row.rows_published, row.rows_quarantined) == ("published", 5, 1, 4)
    rules = query(warehouse, "select _source_line, _rule from quarantine.transport__fare_validations order by 1")
    assert rules == [(3, "expect_column_values_to_be_between(amount_kzt)"), (4, "required"), (5, "primary key"),
                     (6, "expect_column_values_to_be_in_set(fare_type)")]
    key = hmac_key(warehouse)
    expected = hmac.new(key, b"9600101514614131", hashlib.sha256).hexdigest()
    assert query(warehouse, "select card_id from silver.transport__fare_validations") == [(expected,)]
    everything = str(query(warehouse, "select * from quarantine.transport__fare_validations"))
    for card in ("9600101514614131", "9600107575216658", "4100004264391478"):
        assert card not in everything


def test_fare_validations_with_the_card_column_renamed_are_refused(warehouse):
    body = FARE_HEADER.replace("card_id", "card_number") + \
        "ALA-20250301-00000001,9600101514614131,2025-03-01 07:00:00,ALA-TH,ALA-B-52,ALA-B0016,ALA11507,adult,200,qr\n"
    path = land(warehouse, DAY, "validations_almaty_2025-03-01.csv", body, feed=FARES)
    reason = refused(FARES, path)
    assert reason.startswith(f"{label(path, warehouse)}, line 1: [required columns] "
                             f"required column(s) missing from the header: card_id")
    assert "9600101514614131" not in reason


# --- end to end ---------------------------------------------------------------------------------


def test_simulated_days_of_every_transport_feed_load_whole(warehouse):
    start, days = date(2025, 3, 9), 2  # a Sunday and a Monday: GTFS lands on both (first day, build day)
    written = simulate(warehouse, start, days, scale=0.01, seed=1, feeds=[STATIC, REALTIME, FARES],
                       domains=["transport"], defect_rate=0, workers=1)
    landed = {feed: sorted((warehouse / "landing" / feed).rglob("*.*")) for feed in written}
    ledger = {feed: load_files(feed, paths) for feed, paths in landed.items()}
    for feed, rows in ledger.items():
        assert len(rows) == len(landed[feed])
        for row in rows:
            assert row.status == "published", row.reason
            assert row.rows_in == row.rows_published + row.rows_quarantined
            assert row.rows_quarantined == 0, row.reason  # defect_rate 0: every record is good
    # GTFS: every record of every taken file (feed_info.txt, one row per zip, is not a table).
    static_silver = sum(query(warehouse, f"select count(*) from {SILVER}{t}")[0][0]
                        for t in ("agency", "stops", "routes", "trips", "stop_times", "calendar", "calendar_dates", "shapes"))
    assert static_silver == written[STATIC] - len(landed[STATIC])
    assert len(landed[STATIC]) == 3 * days
    # GTFS-Realtime: the simulator counts entities; silver has one record per StopTimeUpdate.
    (entities, records), = query(warehouse, "select count(distinct (_source_file, _source_line)), count(*) "
                                            "from silver.transport__gtfs_rt_trip_updates")
    assert entities == written[REALTIME] and records > entities
    assert sum(r.rows_published for r in ledger[REALTIME]) == records
    # Trips of the real-time feed are trips of the same day's schedule.
    orphans, = query(warehouse, f"""select count(*) from silver.transport__gtfs_rt_trip_updates u
        where not exists (select 1 from {SILVER}stop_times s where s.trip_id = u.trip_id and s.stop_sequence = u.stop_sequence
                          and s._landing_date = u._landing_date)""")[0]
    assert orphans == 0
    # Fares: every tap, and no raw card number anywhere in silver.
    (taps,), = query(warehouse, "select count(*) from silver.transport__fare_validations")
    assert taps == written[FARES]
    raw_cards = pl.concat([pl.read_csv(p, columns=["card_id"], schema_overrides={"card_id": pl.String})
                           for p in landed[FARES]])["card_id"].unique()
    silver_cards = {c for (c,) in query(warehouse, "select distinct card_id from silver.transport__fare_validations")}
    assert not silver_cards & set(raw_cards.to_list())
    assert all(len(c) == 64 for c in silver_cards)
    key = hmac_key(warehouse)
    assert hmac.new(key, raw_cards[0].encode(), hashlib.sha256).hexdigest() in silver_cards
    # The lake-wide audit: no raw IIN, phone (the agencies' phones are dropped) or plate anywhere.
    assert scan_lake(warehouse) == []
