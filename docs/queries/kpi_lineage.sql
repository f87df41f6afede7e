-- The batches and landed source files behind one number of marts.kpi_values.
-- In the DuckDB shell (make sql) or any session that ran attach.sql. Say which number:
SET VARIABLE kpi_id = 'SAF-01';
SET VARIABLE region_code = '710000000';   -- a KATO code, or 'KZ' for the country
SET VARIABLE period_start = DATE '2025-01-01';

-- One row per landed file of the batches the number was computed from: the feed, the file, its
-- landing day and checksum, the rows it brought, and the lake snapshot that published it.
select
    v.kpi_id,
    v.region_code,
    v.period_start,
    v.actual,
    v.lake_snapshot_id,
    l.batch_id,
    l.feed,
    l.source_file,
    l.logical_date,
    l.sha256,
    l.rows_published,
    l.snapshot_id                                  as published_in_snapshot
from marts.kpi_values as v
cross join unnest(v.batch_ids) as b(batch_id)
join ops.load_ledger as l
  on l.batch_id = b.batch_id and l.status = 'published'
where v.kpi_id = getvariable('kpi_id')
  and v.region_code = getvariable('region_code')
  and v.period_start = getvariable('period_start')
order by l.feed, l.logical_date, l.source_file;
