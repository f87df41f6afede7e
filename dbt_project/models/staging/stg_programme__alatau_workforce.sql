-- Alatau City employers' monthly staff report: one row per employee per report. The export
-- landed on the 1st reports the month just ended (contract: the report's month is the landing
-- day's previous month); staff at the end of that month have no left_on.
select
    employer_bin,
    employer_name,
    employee_iin,
    passport_no,
    birth_date,
    citizenship,
    position_level,
    hired_on,
    left_on,
    cast(date_trunc('month', _landing_date) - interval 1 month as date) as report_month,
    left_on is null or left_on > last_day(date_trunc('month', _landing_date) - interval 1 month) as employed_at_month_end,
    position_level in ('highly_qualified', 'managerial') as is_top_position,
    citizenship = 'KZ' as is_citizen,
    _batch_id,
    _landing_date,
    _source_file,
    _source_member,
    _source_line
from {{ source('silver', 'programme__alatau_workforce') }}
