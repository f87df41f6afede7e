-- One row per gas payment of the Smart Aqkol pilot billing (account and payer IIN already
-- HMAC-pseudonymised in silver), with the local day and month it was received (paid_at is
-- local wall time, no offset), the region (KATO prefix) and whether it went through an
-- automated channel (auto_debit: a bank's standing order; online: Kaspi / bank apps, eGov).
select
    payment_id,
    account_id,
    payer_iin,
    kato_code,
    left(kato_code, 2)                                 as region_prefix,
    service,
    period,
    amount_kzt,
    paid_at,
    cast(paid_at as date)                              as paid_date,
    cast(date_trunc('month', paid_at) as date)         as month,
    channel,
    channel in ('auto_debit', 'online')                as is_automated,
    _batch_id,
    _landing_date,
    _source_file,
    _source_member,
    _source_line
from {{ source('silver', 'housing__utility_payments') }}
