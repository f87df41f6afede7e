-- Appointment resource versions as exported: an appointment appears when booked (version 1)
-- and again when resolved (fulfilled 3, noshow or cancelled 2), so (appointment_id, version_id)
-- is the key; the highest version is the appointment's state. With the local months of the
-- booking and of the start (created_date / start_date: the local dates as written).
select
    appointment_id,
    version_id,
    cast(version_id as integer)                         as version_number,
    last_updated,
    status,
    channel,
    created_at,
    created_date,
    cast(date_trunc('month', created_date) as date)     as created_month,
    start_at,
    start_date,
    cast(date_trunc('month', start_date) as date)       as start_month,
    date_diff('day', created_date, start_date)          as lead_days,
    end_at,
    minutes_duration,
    patient_id,
    specialty_code,
    appointment_type_code,
    cancelation_reason_code,
    _batch_id,
    _landing_date,
    _source_file,
    _source_member,
    _source_line
from {{ source('silver', 'health__fhir_bulk__appointment') }}
