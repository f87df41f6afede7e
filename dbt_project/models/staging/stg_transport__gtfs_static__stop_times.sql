-- The GTFS Schedule stop_times.txt records of every loaded feed version (silver), as published.
-- Ids recur in every build of a feed: feed_version is part of the key.
select
    feed_version,
    trip_id,
    arrival_time,
    departure_time,
    arrival_seconds,
    departure_seconds,
    stop_id,
    location_group_id,
    location_id,
    stop_sequence,
    stop_headsign,
    start_pickup_drop_off_window,
    end_pickup_drop_off_window,
    pickup_type,
    drop_off_type,
    continuous_pickup,
    continuous_drop_off,
    shape_dist_traveled,
    timepoint,
    _batch_id,
    _landing_date,
    _source_file,
    _source_member,
    _source_line
from {{ source('silver', 'transport__gtfs_static__stop_times') }}
