-- Open311 GeoReport v2 service requests as exported: a request appears in the export of every
-- day it was created or updated, in its state at the end of that day, so silver holds one row
-- per request per landing day. is_current_state marks the request's latest state (latest
-- updated_datetime; on a tie the later landing day, then a closed state first).
-- GeoReport v2 carries no administrative area: region_prefix is the region or city
-- (reference.regions) whose administrative centre is nearest to the request's lat/long
-- (equirectangular distance); null without coordinates.
-- hours_to_update = updated_datetime - requested_datetime in hours: for a closed request the
-- hours to close it.
with requests as (
    select * from {{ source('silver', 'housing__open311_requests') }}
),

located as (
    select
        q.service_request_id,
        q._landing_date,
        arg_min(r.kato_prefix,
                pow(q.lat - r.centre_lat, 2)
                + pow((q.long - r.centre_lon) * cos(radians((q.lat + r.centre_lat) / 2)), 2)) as region_prefix
    from requests as q
    cross join {{ ref('regions') }} as r
    where q.lat is not null and q.long is not null
    group by q.service_request_id, q._landing_date
)

select
    q.service_request_id,
    q.status,
    q.service_name,
    q.service_code,
    q.agency_responsible,
    q.service_notice,
    q.requested_datetime,
    q.updated_datetime,
    q.expected_datetime,
    cast(q.requested_datetime as date)                                 as requested_date,
    cast(q.updated_datetime as date)                                   as updated_date,
    cast(date_trunc('month', cast(q.updated_datetime as date)) as date) as updated_month,
    (epoch(q.updated_datetime) - epoch(q.requested_datetime)) / 3600.0 as hours_to_update,
    q.address_id,
    q.zipcode,
    q.lat,
    q.long,
    l.region_prefix,
    row_number() over (
        partition by q.service_request_id
        order by q.updated_datetime desc nulls last, q._landing_date desc, (q.status = 'closed') desc
    ) = 1                                                              as is_current_state,
    q.media_url,
    q._batch_id,
    q._landing_date,
    q._source_file,
    q._source_member,
    q._source_line
from requests as q
left join located as l using (service_request_id, _landing_date)
