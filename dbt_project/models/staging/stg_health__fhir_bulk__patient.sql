-- Patient resources as exported, one row per patient and export (landing day): a _since export
-- re-sends a patient whenever the record is touched, so a patient_id has many rows; the latest
-- (last_updated, then landing day) is its current version. With the region (KATO prefix).
select
    patient_id,
    last_updated,
    iin,
    gender,
    birth_date,
    kato_code,
    left(kato_code, 2)                                  as region_prefix,
    region,
    _batch_id,
    _landing_date,
    _source_file,
    _source_member,
    _source_line
from {{ source('silver', 'health__fhir_bulk__patient') }}
