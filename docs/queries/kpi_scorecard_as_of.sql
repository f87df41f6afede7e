-- The scorecard as it was at a past moment (DuckLake time travel): the table as the lake held it
-- then, whatever was loaded or rebuilt since. Any moment after the first KPI build works; the
-- lake's snapshots and their times: select * from ducklake_snapshots('qala');
SET VARIABLE as_of = TIMESTAMPTZ '2025-03-01 00:00:00+05';

select
    s.kpi_id,
    s.region_code,
    s.region_name_en                        as region,
    s.period_start                          as month,
    s.actual,
    s.change_vs_baseline,
    s.status,
    s.lake_snapshot_id
from marts.kpi_scorecard as s at (timestamp => getvariable('as_of'))
order by s.kpi_id, s.region_code;
