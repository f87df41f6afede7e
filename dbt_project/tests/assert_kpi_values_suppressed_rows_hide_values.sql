-- A suppressed row shows no count, value, change or status, and says why; a published row
-- shows its value and status and has no suppression reason.
select kpi_id, region_code, period_start
from {{ ref('kpi_values') }}
where (suppressed and (numerator is not null or actual is not null
                       or change_vs_baseline is not null or status is not null
                       or suppression_reason is null))
   or (not suppressed and (actual is null or status is null
                           or suppression_reason is not null))
