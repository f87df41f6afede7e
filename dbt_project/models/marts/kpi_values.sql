-- The long KPI table: one row per KPI x region (or the whole country, 'KZ') x month, with
-- numerator, denominator, actual, baseline, target, change, their 95% intervals, status from
-- the evidence by the catalogue's rule, small-cell suppression and lineage (lake snapshot,
-- batches). A KPI with window_months = 12 has, in its row of month M, the value of the 12
-- months M-11 .. M (period_grain rolling_12_months), compared with the 12 months before.
--
-- Each area's KPIs are computed in its intermediate model int_kpi__<area>, in one long format
-- (kpi_id, region_code, period_start, numerator, denominator, actual, disclosure_count,
-- own_baseline, batch_ids, lake_snapshot_id; see _kpi_areas.yml). Everything after the formula
-- is generic here and driven by reference.kpi_catalogue: the baseline (the same month a year
-- earlier, or the area model's own baseline when baseline_source = 'model'), the 95% intervals
-- (interval_method: poisson, wilson, median, ratio, cluster, exact; see the catalogue's interval_rule),
-- status (direction, target_kind, target, decided only where the interval supports it), and
-- suppression of counts of people from 1 to min_cell_count - 1.
{%- set min_cell_count = var('min_cell_count', 10) | int %}
{%- set complementary = var('complementary_suppression', true) %}
{%- set area_models = ['int_kpi__safety', 'int_kpi__housing', 'int_kpi__education', 'int_kpi__health', 'int_kpi__transport', 'int_kpi__programme'] %}

with measures as (
    {%- for model in area_models %}
    select kpi_id, region_code, period_start, numerator, denominator, actual, disclosure_count,
           own_baseline, batch_ids, lake_snapshot_id,
           actual_lower as model_actual_lower, actual_upper as model_actual_upper,
           change_lower as model_change_lower, change_upper as model_change_upper
    from {{ ref(model) }}
    {%- if not loop.last %}
    union all
    {%- endif %}
    {%- endfor %}
),

places as (
    select kato_code as region_code, name_kk as region_name_kk, name_ru as region_name_ru,
           name_en as region_name_en
    from {{ ref('regions') }}
    union all
    select kato_code, name_kk, name_ru, name_en from {{ ref('towns') }}
),

located as (
    select
        m.*,
        coalesce(p.region_name_kk, 'Қазақстан Республикасы') as region_name_kk,
        coalesce(p.region_name_ru, 'Республика Казахстан')   as region_name_ru,
        coalesce(p.region_name_en, 'Kazakhstan')             as region_name_en,
        m.region_code = 'KZ'                     as is_country
    from measures as m
    left join places as p using (region_code)
),

primary_suppression as (
    select
        *,
        coalesce(disclosure_count between 1 and {{ min_cell_count - 1 }}, false) as primary_suppressed
    from located
),

-- A single suppressed region in a period could be recovered as the country total minus the
-- published regions: then the smallest other non-zero published region is suppressed too.
complementary as (
    select
        *,
        count(*) filter (where primary_suppressed and not is_country)
            over (partition by kpi_id, period_start) as regions_suppressed,
        row_number() over (
            partition by kpi_id, period_start
            order by case when not primary_suppressed and not is_country and disclosure_count > 0
                          then 0 else 1 end,
                     disclosure_count, region_code
        ) as smallest_published_rank,
        not primary_suppressed and not is_country and disclosure_count > 0 as is_published_nonzero_region
    from primary_suppression
),

suppression as (
    select
        *,
        {% if complementary -%}
        (not primary_suppressed and is_published_nonzero_region
            and regions_suppressed = 1 and smallest_published_rank = 1)
        {%- else -%}
        false
        {%- endif %} as secondary_suppressed
    from complementary
),

published as (
    select
        kpi_id,
        region_code,
        region_name_kk,
        region_name_ru,
        region_name_en,
        is_country,
        period_start,
        denominator,
        own_baseline,
        batch_ids,
        lake_snapshot_id,
        model_actual_lower,
        model_actual_upper,
        model_change_lower,
        model_change_upper,
        primary_suppressed or secondary_suppressed as suppressed,
        case
            when primary_suppressed then
                'small cell: count between 1 and {{ min_cell_count - 1 }} (min_cell_count = {{ min_cell_count }})'
            when secondary_suppressed then
                'complementary: the only other suppressed region of the period could be derived from the country total'
        end as suppression_reason,
        case when primary_suppressed or secondary_suppressed then null else numerator end as numerator,
        case when primary_suppressed or secondary_suppressed then null else actual end as actual
    from suppression
),

-- the world the data comes from: a simulated warehouse's population is the seed's times its scale
world as (
    {%- set scales = world_scales() %}
    {%- if scales %}
    select * from (values
        {%- for feed, scale in scales.items() %}
        ('{{ feed }}', cast({{ scale }} as double)){{ ',' if not loop.last }}
        {%- endfor %}
    ) as t(feed, scale)
    {%- else %}
    select cast(null as varchar) as feed, cast(null as double) as scale where false
    {%- endif %}
),

-- the 95% interval of the value (null when suppressed: it would reveal the count)
valued as (
    select
        p.*,
        c.direction,
        c.target,
        c.target_kind,
        c.baseline_source,
        c.interval_method,
        c.window_months,
        c.grain                                                  as period_grain,
        case when nullif(c.population_feed, '') is not null then coalesce(w.scale, 1.0) end
                                                                 as population_scale,
        case
            when p.suppressed or p.actual is null then null
            when c.interval_method = 'poisson' then {{ poisson_count('p.numerator', -1) }} / p.denominator * c.rate_per
            when c.interval_method = 'wilson' then {{ wilson('p.numerator', 'p.denominator', -1) }}
            when c.interval_method = 'exact' then p.actual
            else p.model_actual_lower
        end                                                      as actual_lower,
        case
            when p.suppressed or p.actual is null then null
            when c.interval_method = 'poisson' then {{ poisson_count('p.numerator', 1) }} / p.denominator * c.rate_per
            when c.interval_method = 'wilson' then {{ wilson('p.numerator', 'p.denominator', 1) }}
            when c.interval_method = 'exact' then p.actual
            else p.model_actual_upper
        end                                                      as actual_upper
    from published as p
    join {{ ref('kpi_catalogue') }} as c using (kpi_id)
    left join world as w on w.feed = c.population_feed
),

with_baseline as (
    select
        cur.*,
        case when cur.baseline_source = 'model' then cur.own_baseline else prev.actual end as baseline,
        prev.actual_lower                                        as baseline_lower,
        prev.actual_upper                                        as baseline_upper,
        prev.numerator                                           as baseline_numerator,
        prev.denominator                                         as baseline_denominator
    from valued as cur
    left join valued as prev
        on  prev.kpi_id = cur.kpi_id
        and prev.region_code = cur.region_code
        and prev.period_start = cast(cur.period_start - interval 12 month as date)
),

with_change as (
    select
        *,
        case when actual is not null and baseline > 0
             then actual / baseline - 1 end as change_vs_baseline,
        -- poisson: the rate ratio conditional on the two periods' total count: Wilson interval of
        -- the current count's share (n1 of n1 + n0), ratio = p / (1 - p) x exposure0 / exposure1
        case when actual is null or not (baseline > 0) then null
             when interval_method = 'poisson' then
                 {{ wilson('numerator', 'numerator + baseline_numerator', -1) }}
                 / (1 - {{ wilson('numerator', 'numerator + baseline_numerator', -1) }})
                 * baseline_denominator / denominator - 1
             when interval_method in ('wilson', 'median', 'cluster') then
                 {{ mover_ratio_lower('actual', 'actual_lower', 'baseline', 'baseline_upper') }} - 1
             when interval_method = 'exact' then actual / baseline - 1
             else model_change_lower
        end as change_lower,
        case when actual is null or not (baseline > 0) then null
             when interval_method = 'poisson' then
                 case when {{ wilson('numerator', 'numerator + baseline_numerator', 1) }} >= 1
                      then cast('infinity' as double)
                      else {{ wilson('numerator', 'numerator + baseline_numerator', 1) }}
                           / (1 - {{ wilson('numerator', 'numerator + baseline_numerator', 1) }})
                           * baseline_denominator / denominator - 1 end
             when interval_method in ('wilson', 'median', 'cluster') then
                 {{ mover_ratio_upper('actual', 'actual_upper', 'baseline', 'baseline_lower') }} - 1
             when interval_method = 'exact' then actual / baseline - 1
             else model_change_upper
        end as change_upper
    from with_baseline
),

with_gap as (
    select
        *,
        case target_kind when 'level' then actual - target
                         when 'change_vs_baseline' then change_vs_baseline - target end as gap_to_target,
        case target_kind when 'level' then actual_lower - target
                         when 'change_vs_baseline' then change_lower - target end as gap_lower,
        case target_kind when 'level' then actual_upper - target
                         when 'change_vs_baseline' then change_upper - target end as gap_upper
    from with_change
),

-- the catalogue's status_rule, generic over direction and target_kind: a verdict only where the
-- 95% interval supports it, 'within-noise' otherwise; never from a baseline of 0 or a missing one
with_status as (
    select
        *,
        case
            when suppressed then null
            when direction = 'monitoring' then 'monitoring'
            when target_kind = 'level' then
                case
                    when (direction = 'higher_is_better' and actual_lower >= target)
                      or (direction = 'lower_is_better' and actual_upper <= target) then 'on-track'
                    when (direction = 'higher_is_better' and actual_upper < target)
                      or (direction = 'lower_is_better' and actual_lower > target) then
                        case when (direction = 'higher_is_better' and change_lower > 0)
                               or (direction = 'lower_is_better' and change_upper < 0) then 'at-risk'
                             else 'off-track' end
                    else 'within-noise'
                end
            when baseline is null or baseline <= 0 then 'no-baseline'
            when target_kind = 'change_vs_baseline' then
                case
                    when (direction = 'lower_is_better' and change_upper <= target)
                      or (direction = 'higher_is_better' and change_lower >= target) then 'on-track'
                    when (direction = 'lower_is_better' and change_lower > 0)
                      or (direction = 'higher_is_better' and change_upper < 0) then 'off-track'
                    when (direction = 'lower_is_better' and change_upper < 0 and change_lower > target)
                      or (direction = 'higher_is_better' and change_lower > 0 and change_upper < target) then 'at-risk'
                    else 'within-noise'
                end
            else
                case
                    when (direction = 'lower_is_better' and change_upper < 0)
                      or (direction = 'higher_is_better' and change_lower > 0) then 'on-track'
                    when (direction = 'lower_is_better' and change_lower > 0)
                      or (direction = 'higher_is_better' and change_upper < 0) then 'off-track'
                    else 'within-noise'
                end
        end as status
    from with_gap
),

-- lineage of a suppressed row: the month's batches for the whole country, so that the list
-- does not reveal on which days the few events happened
country_batches as (
    select kpi_id, period_start, batch_ids as country_batch_ids
    from published
    where is_country
)

select
    s.kpi_id,
    s.region_code,
    s.region_name_kk,
    s.region_name_ru,
    s.region_name_en,
    s.period_start,
    s.period_grain,
    s.window_months,
    cast(s.period_start - to_months(s.window_months - 1) as date) as window_start,
    s.numerator,
    s.denominator,
    s.population_scale,
    s.actual,
    s.actual_lower,
    s.actual_upper,
    s.baseline,
    s.baseline_lower,
    s.baseline_upper,
    s.target,
    s.change_vs_baseline,
    s.change_lower,
    s.change_upper,
    s.gap_to_target,
    s.gap_lower,
    s.gap_upper,
    s.interval_method,
    cast(0.95 as double)                           as confidence,
    s.status,
    s.suppressed,
    s.suppression_reason,
    cast(s.lake_snapshot_id as bigint)             as lake_snapshot_id,
    -- a place with no country row (a pilot town's KPI) keeps its own: they are the whole month's
    cast(case when s.suppressed then coalesce(cb.country_batch_ids, s.batch_ids) else s.batch_ids end as varchar[])
                                                   as batch_ids
from with_status as s
left join country_batches as cb using (kpi_id, period_start)
order by s.kpi_id, s.region_code, s.period_start
