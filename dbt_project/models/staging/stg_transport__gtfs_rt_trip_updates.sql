-- One row per StopTimeUpdate (or per TripUpdate without one) of the archived GTFS-Realtime
-- FeedMessages, with the local day and month of the arrival and whether the arrival had already
-- happened when the snapshot was taken (arrival.time <= header.timestamp): an observed arrival,
-- not a prediction. TimeZone is Asia/Almaty, so casting the UTC instant to date gives the local day.
select
    feed_timestamp,
    entity_id,
    update_index,
    trip_id,
    route_id,
    direction_id,
    start_date,
    start_time,
    trip_schedule_relationship,
    vehicle_id,
    trip_update_timestamp,
    trip_delay,
    stop_sequence,
    stop_id,
    stop_schedule_relationship,
    arrival_delay,
    arrival_time,
    departure_delay,
    departure_time,
    cast(arrival_time as date) as arrival_date,
    cast(date_trunc('month', arrival_time) as date) as arrival_month,
    coalesce(arrival_time <= feed_timestamp, false) as is_observed_arrival,
    _batch_id,
    _landing_date,
    _source_file,
    _source_member,
    _source_line
from {{ source('silver', 'transport__gtfs_rt_trip_updates') }}
