-- The Sergek camera register: a full snapshot every day, so one row per camera per landing
-- day (snapshot_day = _landing_date). is_active: the camera is up that day (status active:
-- installed, not decommissioned, not in maintenance) - the camera-days SAF-03 divides by.
select
    camera_id,
    kato_code,
    left(kato_code, 2)                                 as region_prefix,
    city,
    address,
    lat,
    lon,
    camera_type,
    speed_limit_kmh,
    installed_on,
    decommissioned_on,
    status,
    _landing_date                                      as snapshot_day,
    cast(date_trunc('month', _landing_date) as date)   as month,
    status = 'active'                                  as is_active,
    _batch_id,
    _landing_date,
    _source_file,
    _source_member,
    _source_line
from {{ source('silver', 'safety__camera_registry') }}
