-- The GTFS Schedule calendar_dates.txt records of every loaded feed version (silver), as published.
-- Ids recur in every build of a feed: feed_version is part of the key.
select
    feed_version,
    service_id,
    date,
    exception_type,
    _batch_id,
    _landing_date,
    _source_file,
    _source_member,
    _source_line
from {{ source('silver', 'transport__gtfs_static__calendar_dates') }}
