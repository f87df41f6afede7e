-- One row per Sergek violation event (plate already HMAC-pseudonymised in silver), with the
-- local day and month of detection (detected_at is an instant: the session TimeZone
-- Asia/Almaty makes its date the local day) and the region (KATO prefix). Events of a camera
-- that was offline arrive 1-3 days late in a later day's file: detected_date, not
-- _landing_date, is the day they belong to.
select
    event_id,
    camera_id,
    detected_at,
    cast(detected_at as date)                              as detected_date,
    cast(date_trunc('month', cast(detected_at as date)) as date) as month,
    plate,
    violation_type,
    speed_kmh,
    speed_limit_kmh,
    lat,
    lon,
    kato_code,
    left(kato_code, 2)                                     as region_prefix,
    _batch_id,
    _landing_date,
    _source_file,
    _source_member,
    _source_line
from {{ source('silver', 'safety__sergek_violations') }}
