-- One row per first-grade application and status (submitted, then its decision) from
-- qala.silver.education__school_applications, with the region and the local day and month the
-- application was submitted (submitted_at is the original submission time on every status row).
select
    application_id,
    child_iin,
    child_birth_date,
    kato_code,
    left(kato_code, 2)                                  as region_prefix,
    school_id,
    submitted_at,
    cast(submitted_at as date)                          as submitted_date,
    cast(date_trunc('month', submitted_at) as date)     as submitted_month,
    channel,
    status,
    _batch_id,
    _landing_date,
    _source_file,
    _source_member,
    _source_line
from {{ source('silver', 'education__school_applications') }}
