-- The programme plan: one row per event per daily snapshot (landing day).
select
    event_id,
    area,
    initiative,
    name_kk,
    name_ru,
    responsible_ministry,
    planned_start,
    planned_end,
    actual_start,
    actual_end,
    status,
    _landing_date as snapshot_date,
    coalesce(actual_end <= planned_end, false) as completed_on_schedule,
    _batch_id,
    _landing_date,
    _source_file,
    _source_member,
    _source_line
from {{ source('silver', 'programme__events') }}
