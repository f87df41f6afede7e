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
--   unknown to the static feeds) from int_transport__gtfs_static__operator_region. Arrivals of trips no
--   static feed knows are left out.
-- Only region-months with at least one observed arrival (a share is undefined without).
--
-- Incremental (the one model whose input grows by millions of rows a day): a day's build
-- recomputes only the months that day's loads can have changed, and `dbt build --full-refresh`
-- gives the same table (tests/test_dbt_incremental.py). The months to redo come from DuckLake's
-- change feed (ducklake_table_changes) of the silver table between the snapshot this table was
-- last built at (max lake_snapshot_id) and now, so a replay that deleted rows counts too:
--   * the arrival and landing months of every row inserted or deleted since;
--   * every month in which an arrival touched by those rows has a report (its kept report can
--     move from one month to another when a later report comes in or one is withdrawn);
--   * every month with a report of a trip or route whose city changed (the operator-region map
--     at this build against the map at the last one: time travel to that snapshot);
--   * the months between the old and the new first / last landing day (complete months).
-- A month is redone whole (every arrival with a report in it, from all its reports), reading the
-- lake AT the snapshot taken when the build started, so the rows and their lake_snapshot_id agree
-- even when a load commits meanwhile. Each redone month also gets a marker row
-- (region_prefix null) so delete+insert by month clears a month that lost all its arrivals; the
-- post-hook removes the markers.
{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key='month',
    on_schema_change='fail',
    post_hook="delete from {{ this }} where region_prefix is null",
) }}
{%- set lake = target.database -%}
{%- set stg = ref('stg_transport__gtfs_rt_trip_updates') -%}
{%- set places_model = ref('int_transport__gtfs_static__operator_region') -%}
{%- set key_of = "coalesce(cast(stop_sequence as varchar), 'stop_id:' || stop_id)" -%}
{%- set since = none -%}
{%- if execute and is_incremental() -%}
    {%- set since = run_query('select max(lake_snapshot_id) from ' ~ this).columns[0].values()[0] -%}
    {%- set upto = run_query('select id from ' ~ lake ~ '.current_snapshot()').columns[0].values()[0] -%}
{%- endif -%}
{%- set incremental = since is not none -%}
{%- if incremental -%}
    {%- set at = 'at (version => ' ~ upto ~ ')' -%}
    {%- set redo_sql -%}
        with changed_rows as (  -- inserted into or deleted from silver since (a replay does both)
            select trip_id, start_date, {{ key_of }} as stop_key,
                   {{ month_of('arrival_time') }} as arrival_month, {{ month_of('_landing_date') }} as landing_month
            from ducklake_table_changes('{{ lake }}', 'silver', 'transport__gtfs_rt_trip_updates', {{ since + 1 }}, {{ upto }})
        ),
        places_now as (select kind, id, region_prefix from {{ places_model }} {{ at }}),
        places_before as (select kind, id, region_prefix from {{ places_model }} at (version => {{ since }})),
        remapped as (  -- trips and routes whose city was added, dropped or moved since
            select kind, id from (select * from places_now except select * from places_before)
            union
            select kind, id from (select * from places_before except select * from places_now)
        ),
        touched as (  -- reports of the arrivals touched since, wherever they fall (the month
                      -- is taken after the filter: over every row it costs seconds)
            select {{ month_of('arrival_time') }} as arrival_month from (
                select r.arrival_time
                from {{ stg }} as r {{ at }}
                where r.trip_id in (select trip_id from changed_rows)
                  and (r.trip_id, r.start_date, {{ key_of }}) in (select (trip_id, start_date, stop_key) from changed_rows)
                union all
                select r.arrival_time
                from {{ stg }} as r {{ at }}
                where r.trip_id in (select id from remapped where kind = 'trip')
                   or r.route_id in (select id from remapped where kind = 'route')
            )
        ),
        bounds as (
            select (select min(_landing_date) from {{ stg }} at (version => {{ since }})) as old_first,
                   (select max(_landing_date) from {{ stg }} at (version => {{ since }})) as old_last,
                   min(_landing_date) as new_first, max(_landing_date) as new_last
            from {{ stg }} {{ at }}
        ),
        months as (
            select arrival_month as month from changed_rows
            union select landing_month from changed_rows
            union select arrival_month from touched
            -- months that became complete or incomplete as the first or last landing day moved
            union select unnest(range(date_trunc('month', least(old_last, new_last)),
                                      date_trunc('month', greatest(old_last, new_last)) + interval 1 month,
                                      interval 1 month)) from bounds where old_last <> new_last
            union select unnest(range(date_trunc('month', least(old_first, new_first)),
                                      date_trunc('month', greatest(old_first, new_first)) + interval 1 month,
                                      interval 1 month)) from bounds where old_first <> new_first
        )
        select distinct strftime(month, '%Y-%m-%d') from months where month is not null order by 1
    {%- endset -%}
    {%- set redo = (run_query(redo_sql).columns[0].values() | list) if upto > since else [] -%}
    {#- the service days of the arrivals with a report in a redone month: all their reports
        have one of these start dates (an arrival's key holds its trip's start_date), so the
        scan below reads those days' files only -#}
    {%- set days = run_query('select min(start_date)::varchar, max(start_date)::varchar from ' ~ stg ~ ' ' ~ at
                             ~ ' where ' ~ in_months('arrival_time', redo)).rows[0] if redo else [none, none] -%}
    {{ log('int_transport__gtfs_rt_trip_updates__region_month: changes since lake snapshot ' ~ since ~ ' (to ' ~ upto ~ ') touch '
           ~ (redo | length) ~ ' month(s): ' ~ (redo | join(', ') or 'none'), info=True) }}
{%- else -%}
    {%- set at = '' -%}
{%- endif %}
with places as (
    select kind, id, region_prefix from {{ places_model }} {{ at }}
),
{%- if incremental %}

-- a redone month is recomputed whole: every arrival with a report in it, from all its reports
redo_keys as (
    select distinct trip_id, start_date, {{ key_of }} as stop_key
    from {{ stg }} {{ at }}
    where {{ in_months('arrival_time', redo) }}
),
{%- endif %}

updates as (
    select
        coalesce(t.region_prefix, r.region_prefix)                     as region_prefix,
        u.trip_id,
        u.start_date,
        u.stop_key,
        u.feed_timestamp,
        u.arrival_delay,
        {{ month_of('u.arrival_time') }}                              as arrival_month,
        u._batch_id
    -- arrival_month as the staging view defines it, taken here after the filters
    from (
        select * exclude (arrival_month), {{ key_of }} as stop_key from {{ stg }} {{ at }}
        {%- if incremental %}
        where {% if days[0] %}start_date between date '{{ days[0] }}' and date '{{ days[1] }}' or {% endif %}start_date is null
        {%- endif %}
    ) as u
    {%- if incremental %}
    join redo_keys as k
      on k.trip_id = u.trip_id and k.start_date is not distinct from u.start_date and k.stop_key = u.stop_key
    {%- endif %}
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

months as {{ complete_months(stg ~ ' ' ~ at) }},

-- each trip run (trip_id, start_date) of the month: its observed and on-time arrivals. Arrivals
-- of one run share its delays, so TRN-01's 95% interval treats runs as the clusters (ratio
-- estimator over runs, int_kpi__transport): the per-run sums of squares below are what it needs.
runs as (
    select
        l.region_prefix,
        l.report.month                                               as month,
        count(*)                                                     as arrivals,
        count(*) filter (where l.report.delay between -60 and 300)   as on_time_arrivals,
        list(distinct l.report.batch) filter (where l.report.batch is not null) as batches
    from last_reports as l
    join months on months.month = l.report.month
    {%- if incremental %}
    where l.report.month in ({% for m in redo %}date '{{ m }}'{{ ', ' if not loop.last }}{% else %}null{% endfor %})
    {%- endif %}
    group by l.region_prefix, l.report.month, l.trip_id, l.start_date
)

select
    region_prefix,
    month,
    sum(arrivals)                                                    as arrivals,
    sum(on_time_arrivals)                                            as on_time_arrivals,
    count(*)                                                         as trip_runs,
    sum(arrivals * arrivals)                                         as sum_arrivals_sq,
    sum(arrivals * on_time_arrivals)                                 as sum_arrivals_on_time,
    sum(on_time_arrivals * on_time_arrivals)                         as sum_on_time_sq,
    coalesce(list_sort(list_distinct(flatten(list(batches)))), cast([] as varchar[])) as batch_ids,
    {% if incremental %}cast({{ upto }} as bigint){% else %}cast({{ lake_snapshot_id() }} as bigint){% endif %} as lake_snapshot_id
from runs
group by region_prefix, month
{%- if incremental %}
-- one marker per redone month (the post-hook deletes them), so delete+insert by month also
-- clears a month that has no arrival left
{%- for m in redo %}
union all
select null, date '{{ m }}', 0, 0, 0, 0, 0, 0, cast([] as varchar[]), cast({{ upto }} as bigint)
{%- endfor %}
{%- endif %}
order by region_prefix, month
