-- The GTFS Schedule shapes.txt records of every loaded feed version (silver), as published.
-- Ids recur in every build of a feed: feed_version is part of the key.
select
    feed_version,
    shape_id,
    shape_pt_lat,
    shape_pt_lon,
    shape_pt_sequence,
    shape_dist_traveled,
    _batch_id,
    _landing_date,
    _source_file,
    _source_member,
    _source_line
from {{ source('silver', 'transport__gtfs_static__shapes') }}
