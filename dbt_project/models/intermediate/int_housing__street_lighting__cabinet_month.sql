-- Energy per street-lighting cabinet and local month, with the cabinet's LED retrofit day as
-- the data show it (HCS-01). The export does not say when a cabinet was retrofitted; a
-- retrofit shows as a lasting step down in energy per lamp burning hour (kWh / (lamps x
-- burning hours)): the lamps, their hours of darkness and the metering stay the same, only
-- the lamps' power falls (LED: -40% planted, any real retrofit well below -20%).
--   daily intensity  = kWh / lamp burning hours of the cabinet's local day;
--   high day         = intensity >= 0.8 x the cabinet's highest daily intensity;
--   retrofit_day     = the first day after the cabinet's last high day (null when its last
--                      day is a high day: no step seen; a cabinet retrofitted before its first
--                      reading shows no step either and is never taken as retrofitted).
-- A single low day (a short reading) before a high day does not count: the step must last to
-- the cabinet's last reading.
with readings as (
    select * from {{ ref('stg_housing__street_lighting') }}
),

daily as (
    select
        cabinet_id,
        interval_date                                          as day,
        sum(energy_kwh) / sum(lamp_burning_hours)              as intensity
    from readings
    group by cabinet_id, interval_date
    having sum(lamp_burning_hours) > 0
),

levels as (
    select cabinet_id, max(intensity) as max_intensity
    from daily
    group by cabinet_id
),

last_high as (
    select d.cabinet_id, max(d.day) as last_high_day
    from daily as d
    join levels as l using (cabinet_id)
    where d.intensity >= 0.8 * l.max_intensity
    group by d.cabinet_id
),

retrofits as (
    select d.cabinet_id, min(d.day) as retrofit_day
    from daily as d
    join last_high as h using (cabinet_id)
    where d.day > h.last_high_day
    group by d.cabinet_id
)

select
    r.cabinet_id,
    r.region_prefix,
    r.month,
    rf.retrofit_day,
    sum(r.energy_kwh)                          as energy_kwh,
    sum(r.lamp_burning_hours)                  as lamp_burning_hours,
    count(*)                                   as readings,
    {{ batch_list('r._batch_id') }}            as batch_ids
from readings as r
left join retrofits as rf using (cabinet_id)
group by r.cabinet_id, r.region_prefix, r.month, rf.retrofit_day
