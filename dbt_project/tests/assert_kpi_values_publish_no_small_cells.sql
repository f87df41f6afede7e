-- Privacy guard: no published (unsuppressed) KPI row carries a count from 1 to
-- min_cell_count - 1, whatever the model's logic does.
select kpi_id, region_code, period_start
from {{ ref('kpi_values') }}
where not suppressed
  and numerator between 1 and {{ var('min_cell_count', 10) | int - 1 }}
