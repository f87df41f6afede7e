-- One row per kindergarten queue event from qala.silver.education__kindergarten_queue, with the
-- registration it belongs to (the event_id's stem), the region and the local day and month.
select
    event_id,
    regexp_replace(event_id, '-[A-Z]$', '')             as registration_id,
    child_iin,
    child_birth_date,
    kato_code,
    left(kato_code, 2)                                  as region_prefix,
    event_type,
    priority_category,
    event_at,
    cast(event_at as date)                              as event_date,
    cast(date_trunc('month', event_at) as date)         as event_month,
    kindergarten_id,
    queue_number,
    _batch_id,
    _landing_date,
    _source_file,
    _source_member,
    _source_line
from {{ source('silver', 'education__kindergarten_queue') }}
