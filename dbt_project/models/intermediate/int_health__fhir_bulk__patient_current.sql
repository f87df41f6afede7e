-- The current version of every patient seen in the FHIR exports: the latest row of each
-- patient_id (last_updated, then landing day), with its region. One row per patient_id.
select
    patient_id,
    kato_code,
    region_prefix,
    last_updated,
    _batch_id
from {{ ref('stg_health__fhir_bulk__patient') }}
qualify row_number() over (
    partition by patient_id order by last_updated desc nulls last, _landing_date desc, _source_line desc
) = 1
