-- OneRoster orgs as delivered, one row per record and landing day (bulk sets repeat every record;
-- delta sets carry changed records with status and date_last_modified) from
-- qala.silver.education__oneroster__orgs. No KPI reads it; it documents and tests the roster.
select
    sourced_id,
    status,
    date_last_modified,
    delivery_mode,
    name,
    type,
    identifier,
    parent_sourced_id,
    _batch_id,
    _landing_date,
    _source_file,
    _source_member,
    _source_line
from {{ source('silver', 'education__oneroster__orgs') }}
