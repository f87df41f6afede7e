-- The GTFS Schedule stops.txt records of every loaded feed version (silver), as published.
-- Ids recur in every build of a feed: feed_version is part of the key.
select
    feed_version,
    stop_id,
    stop_code,
    stop_name,
    tts_stop_name,
    stop_desc,
    stop_lat,
    stop_lon,
    zone_id,
    stop_url,
    location_type,
    parent_station,
    stop_timezone,
    wheelchair_boarding,
    level_id,
    platform_code,
    _batch_id,
    _landing_date,
    _source_file,
    _source_member,
    _source_line
from {{ source('silver', 'transport__gtfs_static__stops') }}
