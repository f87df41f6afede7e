-- The long KPI table: one row per KPI x region (or the whole country, 'KZ') x month, with
-- numerator, denominator, actual, baseline, target, change, status by the catalogue's rule,
-- small-cell suppression and lineage (lake snapshot, batches).
--
-- Each area's KPIs are computed in its intermediate model int_kpi__<area>, in one long format
-- (kpi_id, region_code, period_start, numerator, denominator, actual, disclosure_count,
-- own_baseline, batch_ids, lake_snapshot_id; see _kpi_areas.yml). Everything after the formula
-- is generic here and driven by reference.kpi_catalogue: the baseline (the same month a year
-- earlier, or the area model's own baseline when baseline_source = 'model'), status (direction,
-- target_kind, target), and suppression of counts of people from 1 to min_cell_count - 1.
{%- set min_cell_count = var('min_cell_count', 10) | int %}
{%- set complementary = var('complementary_suppression', true) %}
{%- set area_models = ['int_kpi__safety', 'int_kpi__housing', 'int_kpi__education', 'int_kpi__health', 'int_kpi__transport', 'int_kpi__programme'] %}

with measures as (
    {%- for model in area_models %}
    select kpi_id, region_code, period_start, numerator, denominator, actual, disclosure_count,
           own_baseline, batch_ids, lake_snapshot_id
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

with_baseline as (
    select
        cur.*,
        c.direction,
        c.target,
        c.target_kind,
        case when c.baseline_source = 'model' then cur.own_baseline else prev.actual end as baseline
    from published as cur
    join {{ ref('kpi_catalogue') }} as c using (kpi_id)
    left join published as prev
        on  prev.kpi_id = cur.kpi_id
        and prev.region_code = cur.region_code
        and prev.period_start = cast(cur.period_start - interval 12 month as date)
),

with_change as (
    select
        *,
        case when actual is not null and baseline > 0
             then actual / baseline - 1 end as change_vs_baseline
    from with_baseline
),

-- the catalogue's status_rule, generic over direction and target_kind; comparisons are
-- rounded to 9 decimals so that an exact 16% fall is not missed by floating-point error
with_status as (
    select
        *,
        case
            when suppressed then null
            when direction = 'monitoring' then 'monitoring'
            when target_kind = 'change_vs_baseline' then
                case
                    when baseline is null or baseline = 0 then 'no-baseline'
                    when direction = 'lower_is_better' then
                        case when round(change_vs_baseline, 9) <= target then 'on-track'
                             when round(change_vs_baseline, 9) < 0 then 'at-risk'
                             else 'off-track' end
                    else
                        case when round(change_vs_baseline, 9) >= target then 'on-track'
                             when round(change_vs_baseline, 9) > 0 then 'at-risk'
                             else 'off-track' end
                end
            when target_kind = 'level' then
                case
                    when direction = 'lower_is_better' and round(actual, 9) <= target then 'on-track'
                    when direction = 'higher_is_better' and round(actual, 9) >= target then 'on-track'
                    when baseline is null then 'no-baseline'
                    when direction = 'lower_is_better' and round(actual, 9) < round(baseline, 9) then 'at-risk'
                    when direction = 'higher_is_better' and round(actual, 9) > round(baseline, 9) then 'at-risk'
                    else 'off-track'
                end
            else
                case
                    when baseline is null then 'no-baseline'
                    when direction = 'lower_is_better' then
                        case when round(actual, 9) < round(baseline, 9) or (actual = 0 and baseline = 0) then 'on-track'
                             when round(actual, 9) = round(baseline, 9) then 'at-risk'
                             else 'off-track' end
                    else
                        case when round(actual, 9) > round(baseline, 9) then 'on-track'
                             when round(actual, 9) = round(baseline, 9) then 'at-risk'
                             else 'off-track' end
                end
        end as status
    from with_change
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
    'month'                                        as period_grain,
    s.numerator,
    s.denominator,
    s.actual,
    s.baseline,
    s.target,
    s.change_vs_baseline,
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
