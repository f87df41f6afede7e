-- One row per smart-card tap (boarding) from silver, with the local day and month of the tap
-- (validated_at is Asia/Almaty wall time). A late-uploaded tap keeps the moment of the tap.
select
    validation_id,
    card_id,
    validated_at,
    operator,
    route_id,
    vehicle_id,
    stop_id,
    fare_type,
    amount_kzt,
    payment_method,
    cast(validated_at as date) as validated_date,
    cast(date_trunc('month', validated_at) as date) as month,
    _batch_id,
    _landing_date,
    _source_file,
    _source_member,
    _source_line
from {{ source('silver', 'transport__fare_validations') }}
