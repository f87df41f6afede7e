-- The GTFS Schedule agency.txt records of every loaded feed version (silver), as published.
-- Ids recur in every build of a feed: feed_version is part of the key.
select
    feed_version,
    agency_id,
    agency_name,
    agency_url,
    agency_timezone,
    agency_lang,
    agency_fare_url,
    _batch_id,
    _landing_date,
    _source_file,
    _source_member,
    _source_line
from {{ source('silver', 'transport__gtfs_static__agency') }}
