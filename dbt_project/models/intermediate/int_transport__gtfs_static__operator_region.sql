-- The city (reference.regions) each GTFS Schedule feed serves, carried over to its agencies,
-- routes and trips, so that fare validations (operator = agency_id) and GTFS-Realtime updates
-- (trip_id, route_id) get the place of the operator's network.
-- GTFS has no administrative code: a feed's city is the region or city of reference.regions
-- whose centre (centre_lat / centre_lon) is nearest to the mean position of the feed's stops
-- and stations (equirectangular distance; the three operators' networks lie in their cities,
-- a few km from the centre, tens of km from any other region's centre).
-- One row per (kind, id): the ids are stable across the daily / weekly builds of a feed; the
-- key test fails if an id ever belonged to feeds of two different cities.
with feed_centres as (
    select
        feed_version,
        avg(stop_lat) as lat,
        avg(stop_lon) as lon
    from {{ ref('stg_transport__gtfs_static__stops') }}
    where stop_lat is not null
      and stop_lon is not null
      and coalesce(location_type, 0) in (0, 1)
    group by feed_version
),

feed_regions as (
    select
        f.feed_version,
        arg_min(
            r.kato_prefix,
            power(r.centre_lat - f.lat, 2) + power((r.centre_lon - f.lon) * cos(radians(f.lat)), 2)
        ) as region_prefix
    from feed_centres as f
    cross join {{ ref('regions') }} as r
    group by f.feed_version
),

ids as (
    select 'agency' as kind, a.agency_id as id, fr.region_prefix
    from {{ ref('stg_transport__gtfs_static__agency') }} as a
    join feed_regions as fr using (feed_version)
    where a.agency_id is not null
    union
    select 'route', ro.route_id, fr.region_prefix
    from {{ ref('stg_transport__gtfs_static__routes') }} as ro
    join feed_regions as fr using (feed_version)
    union
    select 'trip', t.trip_id, fr.region_prefix
    from {{ ref('stg_transport__gtfs_static__trips') }} as t
    join feed_regions as fr using (feed_version)
)

select kind, id, region_prefix
from ids
order by kind, id
