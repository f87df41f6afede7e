-- The scorecard: for every KPI, the latest period of marts.kpi_values, one row per region
-- (pilot town, and the country), with the catalogue's names in Kazakh, Russian and English, unit,
-- direction and target, the value's, change's and gap's 95% intervals and the method that gave
-- them, the window the value covers, and the region's names in the three languages.
with latest as (
    select kpi_id, max(period_start) as period_start
    from {{ ref('kpi_values') }}
    group by kpi_id
)

select
    v.kpi_id,
    c.area,
    c.name_kk,
    c.name_ru,
    c.name_en,
    c.unit,
    c.direction,
    v.region_code,
    v.region_name_kk,
    v.region_name_ru,
    v.region_name_en,
    v.period_start,
    v.period_grain,
    v.window_months,
    v.window_start,
    v.numerator,
    v.denominator,
    v.population_scale,
    v.actual,
    v.actual_lower,
    v.actual_upper,
    v.baseline,
    v.baseline_lower,
    v.baseline_upper,
    v.change_vs_baseline,
    v.change_lower,
    v.change_upper,
    v.target,
    v.gap_to_target,
    v.gap_lower,
    v.gap_upper,
    c.target_kind,
    c.target_is_illustrative,
    c.source                                        as target_source,
    v.interval_method,
    c.interval_rule,
    v.confidence,
    v.status,
    v.suppressed,
    v.suppression_reason,
    c.owner_ministry,
    v.lake_snapshot_id,
    v.batch_ids
from {{ ref('kpi_values') }} as v
join latest using (kpi_id, period_start)
join {{ ref('kpi_catalogue') }} as c using (kpi_id)
order by v.kpi_id, v.region_code
