-- Interval energy per Almaty street-lighting cabinet, with the local day and month of the
-- interval (interval_start is an instant with its offset; the session TimeZone Asia/Almaty
-- makes its date the local day) and lamp_burning_hours = lamps x burning_hours, the work the
-- energy was spent on (HCS-01 compares energy per lamp burning hour before and after a
-- cabinet's LED retrofit). Late readings (an offline modem) land days later: interval_date,
-- not _landing_date, is the day they belong to.
select
    cabinet_id,
    kato_code,
    left(kato_code, 2)                                           as region_prefix,
    interval_start,
    cast(interval_start as date)                                 as interval_date,
    cast(date_trunc('month', cast(interval_start as date)) as date) as month,
    interval_minutes,
    energy_kwh,
    lamps,
    burning_hours,
    lamps * burning_hours                                        as lamp_burning_hours,
    _batch_id,
    _landing_date,
    _source_file,
    _source_member,
    _source_line
from {{ source('silver', 'housing__street_lighting') }}
