-- Time travel: the silver rows a number of marts.kpi_values was computed from, exactly as the
-- lake held them when the number was built (its lake_snapshot_id), even after later loads.
-- Example for SAF-01 (road accidents, a rolling 12-month window): the accidents of a region in
-- the window (window_start .. the end of period_start's month) at that snapshot.
SET VARIABLE kpi_id = 'SAF-01';
SET VARIABLE region_code = '710000000';
SET VARIABLE period_start = DATE '2025-01-01';
SET VARIABLE snapshot = (
    select lake_snapshot_id from marts.kpi_values
    where kpi_id = getvariable('kpi_id') and region_code = getvariable('region_code')
      and period_start = getvariable('period_start'));
SET VARIABLE window_start = (
    select window_start from marts.kpi_values
    where kpi_id = getvariable('kpi_id') and region_code = getvariable('region_code')
      and period_start = getvariable('period_start'));

-- One row per landed file: its accidents of the region in the window (they sum to the numerator).
select _source_file, count(*) as accidents
from silver.safety__road_accidents AT (VERSION => getvariable('snapshot'))
where left(kato_code, 2) = left(getvariable('region_code'), 2)
  and date_trunc('month', occurred_at) between getvariable('window_start') and getvariable('period_start')
group by _source_file
order by _source_file;
