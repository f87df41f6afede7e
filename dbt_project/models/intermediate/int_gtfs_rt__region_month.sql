-- Observed arrivals and on-time arrivals per operator city (region_prefix) and month, from the
-- archived GTFS-Realtime TripUpdates (TRN-01).
-- * An observed arrival is a StopTimeUpdate whose arrival.time is not after its snapshot's
--   header timestamp (a time in the future is a prediction), with an arrival.delay, of a trip
--   that is not CANCELED / DELETED and a stop that is not SKIPPED / NO_DATA.
-- * The same stop arrival (trip_id, start_date, stop_sequence - or stop_id when the sequence is
--   not sent) can be reported by several hourly snapshots: the LAST report (latest
--   feed_timestamp) is kept, its delay, its month and its batch.
-- * On time: arrival.delay within [-60, +300] s (-1 / +5 min). The delay is the feed's own
--   arrival.delay; updates that send a time without a delay are not matched against the
--   static schedule here (the operators' feeds send delays).
-- * Month: local (Asia/Almaty) month of the kept report's arrival time; only complete months
--   of the loaded landing days; the city of the trip (or of its route when the trip_id is
--   unknown to the static feeds) from int_gtfs_static__operator_region. Arrivals of trips no
--   static feed knows are left out.
-- Only region-months with at least one observed arrival (a share is undefined without).
with places as (
    select kind, id, region_prefix from {{ ref('int_gtfs_static__operator_region') }}
),

updates as (
    select
        coalesce(t.region_prefix, r.region_prefix)                     as region_prefix,
        u.trip_id,
        u.start_date,
        coalesce(cast(u.stop_sequence as varchar), 'stop_id:' || u.stop_id) as stop_key,
        u.feed_timestamp,
        u.arrival_delay,
        u.arrival_month,
        u._batch_id
    from {{ ref('stg_transport__gtfs_rt_trip_updates') }} as u
    left join places as t on t.kind = 'trip' and t.id = u.trip_id
    left join places as r on r.kind = 'route' and r.id = u.route_id
    where u.is_observed_arrival
      and u.arrival_delay is not null
      and u.trip_id is not null
      and coalesce(u.stop_sequence is not null or u.stop_id is not null, false)
      and coalesce(u.trip_schedule_relationship, 'SCHEDULED') not in ('CANCELED', 'DELETED')
      and coalesce(u.stop_schedule_relationship, 'SCHEDULED') not in ('SKIPPED', 'NO_DATA')
),

last_reports as (
    select
        region_prefix,
        trip_id,
        start_date,
        stop_key,
        arg_max(
            {'delay': arrival_delay, 'month': arrival_month, 'batch': _batch_id},
            feed_timestamp
        ) as report
    from updates
    where region_prefix is not null
    group by region_prefix, trip_id, start_date, stop_key
),

months as {{ complete_months(ref('stg_transport__gtfs_rt_trip_updates')) }}

select
    l.region_prefix,
    l.report.month                                                   as month,
    count(*)                                                         as arrivals,
    count(*) filter (where l.report.delay between -60 and 300)       as on_time_arrivals,
    {{ batch_list('l.report.batch') }}                               as batch_ids,
    {{ lake_snapshot_id() }}                                         as lake_snapshot_id
from last_reports as l
join months on months.month = l.report.month
group by l.region_prefix, l.report.month
order by l.region_prefix, month
