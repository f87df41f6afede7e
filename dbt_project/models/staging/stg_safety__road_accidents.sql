-- One row per road-traffic accident from the silver table, with the region and month the
-- KPIs group by. occurred_at is local wall time (Asia/Almaty, no offset): its date is the
-- local day. Lineage columns are kept.
select
    accident_id,
    occurred_at,
    cast(occurred_at as date)                          as occurred_date,
    cast(date_trunc('month', occurred_at) as date)     as month,
    kato_code,
    left(kato_code, 2)                                 as region_prefix,
    severity,
    injured,
    killed,
    vehicles,
    street,
    lat,
    lon,
    _batch_id,
    _landing_date,
    _source_file,
    _source_member,
    _source_line
from {{ source('silver', 'safety__road_accidents') }}
