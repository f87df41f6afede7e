{#-
  Helpers shared by the intermediate KPI models (int_kpi__<area>).

  complete_months(relation, landing_col): a select of `month` (date, first day) for every
  month the loaded landing days of `relation` cover from its first to its last day. A KPI is
  only computed for complete months: a half-loaded month compared with a whole month a year
  earlier would show a change that never happened.

  snapshot_days(relation, landing_col): for feeds that deliver a full snapshot every day
  (registers, plans), the landing day whose snapshot stands for the END of each complete
  month: the last landing day on or before the month's last day. One row per month:
  (month, snapshot_day).

  month_of(expr): the month (first day, date) an event time falls in.
-#}

{% macro complete_months(relation, landing_col='_landing_date') -%}
    (
        with _bounds as (
            select
                case when day(min({{ landing_col }})) = 1 then date_trunc('month', min({{ landing_col }}))
                     else date_trunc('month', min({{ landing_col }})) + interval 1 month end as first_month,
                case when max({{ landing_col }}) = last_day(max({{ landing_col }})) then date_trunc('month', max({{ landing_col }}))
                     else date_trunc('month', max({{ landing_col }})) - interval 1 month end as last_month
            from {{ relation }}
        )
        select cast(m as date) as month
        from _bounds,
             range(_bounds.first_month, _bounds.last_month + interval 1 month, interval 1 month) as _t(m)
        where _bounds.first_month <= _bounds.last_month
    )
{%- endmacro %}

{% macro snapshot_days(relation, landing_col='_landing_date') -%}
    (
        select _m.month, max(_d.day) as snapshot_day
        from {{ complete_months(relation, landing_col) }} as _m
        join (select distinct {{ landing_col }} as day from {{ relation }}) as _d
          on _d.day <= last_day(_m.month) and _d.day >= _m.month
        group by _m.month
    )
{%- endmacro %}

{% macro month_of(expr) -%}
    cast(date_trunc('month', {{ expr }}) as date)
{%- endmacro %}

{#- The DuckLake snapshot this statement reads silver at. -#}
{% macro lake_snapshot_id() -%}
    (select id from {{ target.database }}.current_snapshot())
{%- endmacro %}

{#- Sorted distinct batch ids of a group (empty list, not null, for none). -#}
{% macro batch_list(col='_batch_id') -%}
    coalesce(list(distinct {{ col }} order by {{ col }}) filter (where {{ col }} is not null), cast([] as varchar[]))
{%- endmacro %}

{#- The long KPI format's columns with no rows: an area model that has none yet. -#}
{% macro empty_kpi_rows() -%}
    select
        cast(null as varchar) as kpi_id, cast(null as varchar) as region_code,
        cast(null as date) as period_start, cast(null as double) as numerator,
        cast(null as double) as denominator, cast(null as double) as actual,
        cast(null as bigint) as disclosure_count, cast(null as double) as own_baseline,
        cast([] as varchar[]) as batch_ids, cast(null as bigint) as lake_snapshot_id,
        cast(null as double) as actual_lower, cast(null as double) as actual_upper,
        cast(null as double) as change_lower, cast(null as double) as change_upper
    where false
{%- endmacro %}

{#- An area's mart for analysts: every kpi_values row of the area's KPIs with the KPI's and the
    place's names in the three languages, unit, direction and target kind. -#}
{% macro area_mart(area) -%}
select
    v.kpi_id,
    c.name_kk                                                  as kpi_name_kk,
    c.name_ru                                                  as kpi_name_ru,
    c.name_en                                                  as kpi_name_en,
    c.initiative,
    c.unit,
    c.direction,
    v.region_code,
    v.region_name_kk,
    v.region_name_ru,
    v.region_name_en,
    v.period_start,
    v.period_grain,
    v.window_start,
    v.numerator,
    v.denominator,
    v.population_scale,
    v.actual,
    v.actual_lower,
    v.actual_upper,
    v.baseline,
    v.change_vs_baseline,
    v.change_lower,
    v.change_upper,
    v.target,
    v.gap_to_target,
    v.gap_lower,
    v.gap_upper,
    c.target_kind,
    c.target_is_illustrative,
    v.interval_method,
    v.status,
    v.suppressed,
    v.suppression_reason,
    v.lake_snapshot_id,
    v.batch_ids
from {{ ref('kpi_values') }} as v
join {{ ref('kpi_catalogue') }} as c using (kpi_id)
where c.area = '{{ area }}'
{%- endmacro %}

{#- disclosure_count of a share of people: the smaller non-zero of its two parts (part and
    whole - part); when one part is 0 the other is the whole, which is then disclosed. -#}
{% macro share_disclosure(part, whole) -%}
    cast(case when ({{ part }}) > 0 and ({{ part }}) < ({{ whole }})
              then least({{ part }}, ({{ whole }}) - ({{ part }}))
              else ({{ whole }}) end as bigint)
{%- endmacro %}

{#- `expr` (a time) falls in one of `months` (a list of 'YYYY-MM-DD' first days, local time): as
    plain comparisons, which DuckDB pushes into the scan. -#}
{% macro in_months(expr, months) -%}
    ({% for m in months %}({{ expr }} >= date '{{ m }}' and {{ expr }} < date '{{ m }}' + interval 1 month){{ ' or ' if not loop.last }}{% else %}false{% endfor %})
{%- endmacro %}

{#- ---- 95% intervals (see marts.kpi_values and the catalogue's interval_method) ---------------- -#}

{#- z of a two-sided 95% interval. -#}
{% macro z95() -%}1.959963984540054{%- endmacro %}

{#- A median's distribution-free 95% interval from order statistics: `sorted` is the sorted list
    of the n observations the median is taken over (list_sort(list(x))); lower = x(j),
    upper = x(k), j = max(1, floor(n/2 - z sqrt(n)/2)), k = min(n, ceil(n/2 + 1 + z sqrt(n)/2)). -#}
{% macro median_lower(sorted) -%}
    ({{ sorted }})[cast(greatest(1, floor(len({{ sorted }}) / 2 - {{ z95() }} * sqrt(len({{ sorted }})) / 2)) as bigint)]
{%- endmacro %}
{% macro median_upper(sorted) -%}
    ({{ sorted }})[cast(least(len({{ sorted }}), ceil(len({{ sorted }}) / 2 + 1 + {{ z95() }} * sqrt(len({{ sorted }})) / 2)) as bigint)]
{%- endmacro %}

{#- Wilson score interval of k successes out of n (no continuity correction): `bound` is -1 for
    the lower limit, +1 for the upper. -#}
{% macro wilson(k, n, bound) -%}
    ((({{ k }}) + {{ z95() }}^2 / 2 {{ '-' if bound < 0 else '+' }} {{ z95() }} * sqrt(greatest(({{ k }}) * (({{ n }}) - ({{ k }})) / ({{ n }}), 0) + {{ z95() }}^2 / 4))
     / (({{ n }}) + {{ z95() }}^2))
{%- endmacro %}

{#- Score interval of a Poisson count n: n + z^2/2 -/+ z sqrt(n + z^2/4). -#}
{% macro poisson_count(n, bound) -%}
    greatest(({{ n }}) + {{ z95() }}^2 / 2 {{ '-' if bound < 0 else '+' }} {{ z95() }} * sqrt(({{ n }}) + {{ z95() }}^2 / 4), 0)
{%- endmacro %}

{#- MOVER-R (Donner & Zou 2012): 95% limits of the ratio t1 / t0 from each one's own interval
    (l1, u1), (l0, u0); lower 0 when u0 (2 t0 - u0) <= 0, upper +inf when l0 (2 t0 - l0) <= 0. -#}
{% macro mover_ratio_lower(t1, l1, t0, u0) -%}
    case when ({{ u0 }}) * (2 * ({{ t0 }}) - ({{ u0 }})) <= 0 then 0.0
         else (({{ t1 }}) * ({{ t0 }}) - sqrt(greatest((({{ t1 }}) * ({{ t0 }}))^2 - ({{ l1 }}) * ({{ u0 }}) * (2 * ({{ t1 }}) - ({{ l1 }})) * (2 * ({{ t0 }}) - ({{ u0 }})), 0)))
              / (({{ u0 }}) * (2 * ({{ t0 }}) - ({{ u0 }}))) end
{%- endmacro %}
{% macro mover_ratio_upper(t1, u1, t0, l0) -%}
    case when ({{ l0 }}) * (2 * ({{ t0 }}) - ({{ l0 }})) <= 0 then cast('infinity' as double)
         else (({{ t1 }}) * ({{ t0 }}) + sqrt(greatest((({{ t1 }}) * ({{ t0 }}))^2 - ({{ u1 }}) * ({{ l0 }}) * (2 * ({{ t1 }}) - ({{ u1 }})) * (2 * ({{ t0 }}) - ({{ l0 }})), 0)))
              / (({{ l0 }}) * (2 * ({{ t0 }}) - ({{ l0 }}))) end
{%- endmacro %}

{#- ---- the world the data comes from ---------------------------------------------------------- -#}

{#- Each simulated feed's scale: {feed: scale} from $QALA_WAREHOUSE/simulator/ground_truth.json
    (written by `qala simulate`: run.scale per feed); {} for a real warehouse (no such file) and
    while dbt parses. A simulated warehouse's population is the regions seed times its scale.
    The var world_scales, when set ({} or {feed: scale}), is used instead (unit tests set {}). -#}
{% macro world_scales() -%}
    {%- if var('world_scales', none) is not none -%}{{ return(var('world_scales')) }}{%- endif -%}
    {%- if not execute -%}{{ return({}) }}{%- endif -%}
    {%- set path = env_var('QALA_WAREHOUSE', 'warehouse') ~ '/simulator/ground_truth.json' -%}
    {%- set quoted = "'" ~ path | replace("'", "''") ~ "'" -%}
    {%- set found = run_query("select count(*) from glob(" ~ quoted ~ ")").columns[0].values()[0] -%}
    {%- if found == 0 -%}{{ return({}) }}{%- endif -%}
    {%- set truth = fromjson(run_query("select content from read_text(" ~ quoted ~ ")").columns[0].values()[0]) -%}
    {%- set scales = {} -%}
    {%- for feed, entry in truth.items() -%}
        {%- if entry is mapping and entry.get('run') is mapping and entry['run'].get('scale') is not none -%}
            {%- do scales.update({feed: entry['run']['scale'] | float}) -%}
        {%- endif -%}
    {%- endfor -%}
    {{ return(scales) }}
{%- endmacro %}

{#- The population multiplier of a feed's per-capita KPIs: its simulated scale, 1 for a real warehouse. -#}
{% macro world_scale(feed) -%}
    {{ return(world_scales().get(feed, 1.0)) }}
{%- endmacro %}
