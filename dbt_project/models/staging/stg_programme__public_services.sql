-- The egov register of public services: one row per service per daily snapshot (landing day).
select
    service_code,
    name_kk,
    name_ru,
    name_en,
    category,
    ministry,
    channel,
    automated,
    automated_on,
    term_days,
    paid,
    _landing_date as snapshot_date,
    _batch_id,
    _landing_date,
    _source_file,
    _source_member,
    _source_line
from {{ source('silver', 'programme__public_services') }}
