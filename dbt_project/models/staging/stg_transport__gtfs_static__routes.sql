-- The GTFS Schedule routes.txt records of every loaded feed version (silver), as published.
-- Ids recur in every build of a feed: feed_version is part of the key.
select
    feed_version,
    route_id,
    agency_id,
    route_short_name,
    route_long_name,
    route_desc,
    route_type,
    route_url,
    route_color,
    route_text_color,
    route_sort_order,
    continuous_pickup,
    continuous_drop_off,
    network_id,
    _batch_id,
    _landing_date,
    _source_file,
    _source_member,
    _source_line
from {{ source('silver', 'transport__gtfs_static__routes') }}
