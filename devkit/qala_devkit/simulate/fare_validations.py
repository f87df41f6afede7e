"""Smart-card fare validations (an Onay-like e-ticketing system): one CSV per operator per day.

Every boarding of a city bus, trolleybus, metro train or LRT car is a tap of a transport card,
a QR code from the app, or a contactless bank card on the vehicle's validator. The system
exports each operator's taps daily:
`landing/transport/fare_validations/<day>/validations_<operator>_<day>.csv`, UTF-8, a header line
and one tap per line, with the columns (in this order):

- validation_id: "<CODE>-<YYYYMMDD>-<8 digits>" (the day the tap happened, its number that day);
- card_id: the 16-digit card number (personal data: the pipeline must pseudonymise it). Cards
  live across days: the number is a fixed function of a card index (operator prefix, a
  bijective scramble of the index, a Luhn check digit; contactless bank cards carry a
  "4..." number), so the same card taps on many days;
- validated_at: local time (Asia/Almaty), "YYYY-MM-DD HH:MM:SS";
- operator: the GTFS agency_id of the route (bus/trolleybus carrier, metro, LRT);
- route_id, vehicle_id, stop_id: the same ids as that day's GTFS static zip (`_transit.py`):
  a tap is a boarding at a scheduled stop of a running trip (not at its last stop), within two
  minutes after the scheduled time;
- fare_type: adult, student, pensioner, privileged (free); amount_kzt: the operator's fare
  (approximate 2024 tariffs: Almaty 200, Astana 100, Shymkent 80 KZT; half for students and
  pensioners, 0 for privileged riders); payment_method: transport_card, qr, bank_card
  (concessions only on personalised transport cards). fare_type and payment_method are
  properties of the card.

Volumes at scale 1 (an ordinary weekday): Almaty ~1.2M taps, Astana ~0.8M, Shymkent ~0.3M
(order of magnitude of the cities' reported public-transport ridership: Almaty ~1.1-1.3M
passengers a day, Astana ~0.7-0.8M, Shymkent, with a smaller fleet and more minibuses, ~0.3M).
Saturday x0.80, Sunday and fixed-date holidays x0.65; ridership grows 5% a year (compounded
from 2025-01-01). Hours follow a commuter profile (peaks 07-09 and 17-19 on weekdays, a
midday plateau at weekends). A card that rides on a day taps 1 + Poisson(1.2) times (2.2 on
average); each operator has a pool of cards as large as its weekday taps, 35% of them
"regular" cards that make 60% of a day's active cards. Volumes are Poisson with means
∝ scale; the card pool ∝ scale.

Planted effect (TRN-02, boardings per resident per month): boardings = taps, so the rate at
scale 1 is taps per average day x 365.25/12 / population (Almaty ~15.1, Astana ~15.8,
Shymkent ~6.9 at 2025-01-01, see ground_truth()), times `scale` in a scaled run, growing 5%
a year.

Realistic feature, always on and logged: validators that lost their connection upload a day's
taps 1-3 days late: ~1% of the vehicle-days; their taps come after the day's own taps in a
later day's file (`late_record`, column validated_at).

Defects at the run's defect rate (see base.DEFECT_KINDS), each logged with file and line:
duplicate_record (a validator re-sent a tap), missing_required (route_id or card_id empty),
impossible_value (a negative amount_kzt), future_date (validated_at a year ahead),
truncated_file, added_column / renamed_column (schema drift).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache
from pathlib import Path

import numpy as np
import polars as pl

from qala_devkit.simulate import _transit as tr
from qala_devkit.simulate.base import DayContext, Defect, RowDefects, truncate, write_atomic
from qala_devkit.simulate.world import load_regions, rng_for

FEED = "transport/fare_validations"
DOMAIN, NAME = FEED.split("/")

COLUMNS = ("validation_id", "card_id", "validated_at", "operator", "route_id", "vehicle_id", "stop_id",
           "fare_type", "amount_kzt", "payment_method")  # fmt: skip
FARE_KZT = {"almaty": 200, "astana": 100, "shymkent": 80}
FARE_TYPES = ("adult", "student", "pensioner", "privileged")
FARE_TYPE_P = (0.70, 0.15, 0.10, 0.05)
FARE_FACTOR = (1.0, 0.5, 0.5, 0.0)
PAYMENT_METHODS = ("transport_card", "qr", "bank_card")
PAYMENT_P = (0.75, 0.15, 0.10)  # of adult cards; concessions are transport cards
CARD_PREFIX = {"almaty": 960010, "astana": 960020, "shymkent": 960030}
BANK_PREFIX = {"almaty": 410000, "astana": 420000, "shymkent": 430000}
SCRAMBLE = (387_420_489, 104_729)  # (a, b): index -> (a * index + b) mod 10^9, a bijection
REGULAR_POOL_SHARE, REGULAR_ACTIVE_SHARE = 0.35, 0.60
MODE_WEIGHT = {"bus": 1.0, "trolleybus": 1.0, "metro": 4.0, "lrt": 4.0}  # boardings per stop event
MAX_LATE_DAYS = 3
BOARDING_WINDOW_S = 120
DAYS_PER_MONTH = 365.25 / 12

# Relative taps by local hour.
HOURLY_WEEKDAY = (0.3, 0.1, 0.0, 0.0, 0.0, 0.5, 2.5, 7.5, 9.0, 6.5, 5.0, 4.8,
                  5.0, 5.0, 5.2, 5.8, 6.8, 8.5, 8.8, 6.5, 4.5, 3.2, 2.0, 0.9)  # fmt: skip
HOURLY_WEEKEND = (0.5, 0.2, 0.0, 0.0, 0.0, 0.3, 1.0, 2.5, 4.0, 5.5, 6.5, 7.0,
                  7.2, 7.2, 7.0, 6.8, 6.5, 6.2, 5.8, 5.0, 4.0, 3.0, 1.8, 0.9)  # fmt: skip

DEFECT_SHARES = {"missing_route": 0.2, "missing_card": 0.1, "negative_amount": 0.2, "future": 0.1,
                 "duplicate": 0.5}  # fmt: skip


@dataclass(frozen=True)
class Params:
    """Ridership (TRN-02) and the late uploads, overridable without editing the module."""

    taps_per_weekday_almaty: float = 1_200_000
    taps_per_weekday_astana: float = 800_000
    taps_per_weekday_shymkent: float = 300_000
    saturday_factor: float = 0.80
    sunday_factor: float = 0.65  # also fixed-date public holidays
    growth_per_year: float = 0.05
    growth_reference: date = date(2025, 1, 1)
    taps_per_card: float = 2.2
    late_vehicle_share: float = 0.01

    def weekday_taps(self, key: str) -> float:
        return getattr(self, f"taps_per_weekday_{key}")

    def day_factor(self, day: date) -> float:
        if day.weekday() == 6 or tr.is_holiday(day):
            factor = self.sunday_factor
        elif day.weekday() == 5:
            factor = self.saturday_factor
        else:
            factor = 1.0
        years = (day - self.growth_reference).days / 365.25
        return factor * (1.0 + self.growth_per_year) ** years


def generate_day(ctx: DayContext) -> int:
    """Write each operator's validations export of ctx.day; return the records written.

    The export holds the day's own taps, except those of validators uploading late, then the
    taps of the previous MAX_LATE_DAYS days whose upload lands today. Every day's taps come from
    that day's own random stream, so each tap lands in exactly one file.
    """
    params = ctx.params or Params()
    written = 0
    for key in tr.OPERATOR_KEYS:
        written += _write_operator(ctx, key, params)
    return written


def ground_truth(params: Params = Params()) -> dict:
    """Ridership per operator (TRN-02 at scale 1), the late uploads and the defect kinds."""
    population = {r.kato_prefix: r.population for r in load_regions()}
    mean_week = (5.0 + params.saturday_factor + params.sunday_factor) / 7.0
    operators = {}
    for op in tr.OPERATORS:
        weekday = params.weekday_taps(op.key)
        per_day = weekday * mean_week
        operators[op.key] = {
            "file": f"validations_{op.key}_<YYYY-MM-DD>.csv",
            "kato_prefix": op.kato_prefix,
            "population": population[op.kato_prefix],
            "taps_per_weekday_at_scale_1": weekday,
            "taps_per_average_day_at_scale_1": round(per_day, 1),
            "boardings_per_capita_per_month_at_scale_1": round(per_day * DAYS_PER_MONTH
                                                               / population[op.kato_prefix], 4),
            "card_pool_at_scale_1": int(weekday),
            "fare_kzt_adult": FARE_KZT[op.key],
        }  # fmt: skip
    return {
        "operators": operators,
        "effects": {
            "boardings_per_capita": {
                "kpi": "TRN-02",
                "definition": "taps (boardings) of the month / population; at a scaled run "
                              "multiply the scale-1 rate by the run's scale",
                "reference_date": params.growth_reference.isoformat(),
                "growth_per_year": params.growth_per_year,
                "day_factors": {"weekday": 1.0, "saturday": params.saturday_factor,
                                "sunday_and_holidays": params.sunday_factor},
                "average_month_days": DAYS_PER_MONTH,
                "holidays_ignored_in_per_capita": True,
            },
            "hourly_weights_weekday": list(HOURLY_WEEKDAY),
            "hourly_weights_weekend": list(HOURLY_WEEKEND),
        },
        "taps_per_active_card": params.taps_per_card,
        "cards": {"regular_pool_share": REGULAR_POOL_SHARE, "regular_active_share": REGULAR_ACTIVE_SHARE},
        "fare_type_p": dict(zip(FARE_TYPES, FARE_TYPE_P, strict=True)),
        "fare_factor": dict(zip(FARE_TYPES, FARE_FACTOR, strict=True)),
        "payment_p_adult": dict(zip(PAYMENT_METHODS, PAYMENT_P, strict=True)),
        "late_uploads": {"vehicle_day_share": params.late_vehicle_share, "days": [1, MAX_LATE_DAYS],
                         "logged_as": "late_record"},
        "pii_columns": ["card_id"],
        "defect_kinds": ["duplicate_record", "missing_required", "impossible_value", "future_date",
                         "late_record", "truncated_file", "added_column", "renamed_column"],
    }  # fmt: skip


# --- drawing ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Day:
    """One operator-day before the taps are placed: who rides, where boarding can happen, and
    which taps wait in a validator that uploads late."""

    cards: np.ndarray  # card index of each tap (random order)
    late_taps: int  # the first late_taps cards board vehicles whose validator uploads late
    rows: np.ndarray  # boarding stop_times rows, in time order
    second: np.ndarray  # their scheduled second of the calendar day
    weight: np.ndarray  # boarding probability of each row (sums to 1)
    late_days: np.ndarray  # per row: days until its vehicle's validator uploads (0: same day)
    rng: np.random.Generator  # the day's main stream, where _day() left it


def _day(seed: int, key: str, day: date, scale: float, params: Params) -> _Day:
    """The day's riders and boarding opportunities (see _Day).

    Taps are independent draws over the boarding rows; splitting them first by whether the
    row's vehicle uploads late (a binomial count), then drawing each part over its own rows, is
    the same distribution, and lets a later day re-derive only the late part cheaply.
    """
    net = tr.network(seed, key, scale)
    rng = rng_for(seed, f"{FEED}:{key}", day)
    expected = params.weekday_taps(key) * scale * params.day_factor(day)
    active = rng.poisson(expected / params.taps_per_card)
    pool = _pool(key, scale, params)
    regular_pool = max(1, round(pool * REGULAR_POOL_SHARE))
    n_regular = min(round(active * REGULAR_ACTIVE_SHARE), regular_pool)
    n_occasional = min(active - n_regular, pool - regular_pool)
    chosen = np.concatenate([rng.choice(regular_pool, n_regular, replace=False),
                             regular_pool + rng.choice(pool - regular_pool, n_occasional, replace=False)])
    cards = rng.permutation(np.repeat(chosen, 1 + rng.poisson(params.taps_per_card - 1.0, chosen.size)))
    # Boardings: at the stop events of the trips running that day (not at a trip's last stop),
    # weighted by the hour's demand over the hour's supply, the stop's busyness and the mode.
    rows, _, second = tr.calendar_day_rows(net, day)
    boarding = ~net.st_last[rows]
    rows, second = rows[boarding], second[boarding]
    by_time = np.argsort(second, kind="stable")
    rows, second = rows[by_time], second[by_time]
    hour = second // 3600
    profile = np.array(HOURLY_WEEKEND if tr.service_of(day) == tr.WEEKEND else HOURLY_WEEKDAY)
    mode_weight = np.array([MODE_WEIGHT[m.name] for m in tr.MODES])
    route = net.trip_route[net.st_trip[rows]]
    weight = net.stop_weight[net.st_stop[rows]] * mode_weight[net.route_mode[route]]
    supply = np.bincount(hour, weights=weight, minlength=24)
    demand = np.where(supply > 0, profile, 0.0)
    weight = weight * (demand / np.where(supply > 0, supply, 1.0))[hour]
    weight /= weight.sum()
    # Validators offline for the day: their vehicle's taps arrive 1-3 days late.
    late_rng = rng_for(seed, f"{FEED}:{key}:late-vehicles", day)
    vehicles = net.vehicle_id.size
    by_vehicle = np.where(late_rng.random(vehicles) < params.late_vehicle_share,
                          late_rng.integers(1, MAX_LATE_DAYS + 1, vehicles), 0)  # fmt: skip
    late_days = by_vehicle[net.trip_vehicle[net.st_trip[rows]]].astype(np.int8)
    late_share = float(weight[late_days > 0].sum())
    late_taps = int(rng.binomial(cards.size, min(late_share, 1.0)))
    return _Day(cards, late_taps, rows, second, weight, late_days, rng)


def _place(day: _Day, rng: np.random.Generator, late: bool) -> pl.DataFrame:
    """Place the day's on-time (or late) taps on boarding rows: second, card, row, late_days."""
    part = day.late_days > 0 if late else day.late_days == 0
    cards = day.cards[: day.late_taps] if late else day.cards[day.late_taps:]
    weight = day.weight[part]
    total = weight.sum()
    if cards.size == 0 or total <= 0:
        return pl.DataFrame({"second": [], "card": [], "row": [], "late_days": []},
                            schema=_TAPS_SCHEMA)  # fmt: skip
    event = np.repeat(np.arange(weight.size), rng.multinomial(cards.size, weight / total))
    at = np.minimum(day.second[part][event] + rng.integers(0, BOARDING_WINDOW_S, event.size), 86399)
    order = np.argsort(at, kind="stable")  # nearly sorted already: rows are in time order
    return pl.DataFrame({
        "second": at[order].astype(np.int32),
        "card": cards[order].astype(np.int64),
        "row": day.rows[part][event][order].astype(np.int32),
        "late_days": day.late_days[part][event][order],
    }, schema=_TAPS_SCHEMA)  # fmt: skip


_TAPS_SCHEMA = {"second": pl.Int32, "card": pl.Int64, "row": pl.Int32, "late_days": pl.Int8}


def _own_taps(seed: int, key: str, day: date, scale: float, params: Params) -> pl.DataFrame:
    """The day's taps uploaded the same day, in time order, with `seq` (the tap's number on its
    day: these first, then the late ones). The taps held in offline validators are placed too,
    from their own stream, and kept for the next MAX_LATE_DAYS days (see _late_taps)."""
    plan = _day(seed, key, day, scale, params)
    on_time = _place(plan, plan.rng, late=False).with_row_index("seq")
    late = _place(plan, rng_for(seed, f"{FEED}:{key}:late-taps", day), late=True)
    _remember((seed, key, day, scale, params), late.with_row_index("seq", offset=on_time.height))
    return on_time


def _late_taps(seed: int, key: str, day: date, scale: float, params: Params) -> pl.DataFrame:
    """`day`'s taps held in offline validators (see _own_taps), re-derived only when not kept:
    from the late part's own stream, without placing the day's other taps."""
    found = _LATE.get((seed, key, day, scale, params))
    if found is not None:
        return found
    plan = _day(seed, key, day, scale, params)
    late = _place(plan, rng_for(seed, f"{FEED}:{key}:late-taps", day), late=True)
    on_time = plan.cards.size - plan.late_taps
    _remember((seed, key, day, scale, params), late.with_row_index("seq", offset=on_time))
    return _LATE[(seed, key, day, scale, params)]


_LATE: dict[tuple, pl.DataFrame] = {}  # a few days' late parts: small (about 1% of the taps)


def _remember(key: tuple, frame: pl.DataFrame) -> None:
    _LATE[key] = frame
    while len(_LATE) > 4 * len(tr.OPERATOR_KEYS) * MAX_LATE_DAYS:
        del _LATE[next(iter(_LATE))]


def card_numbers(key: str, index: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(16-digit card number, fare type index, payment method index) of each card index."""
    index = np.asarray(index, dtype=np.int64)
    mixed = (index * 2_654_435_761) % (1 << 32)  # Knuth's multiplicative hash: fixed per card
    fare = np.searchsorted(np.cumsum(FARE_TYPE_P), (mixed % 1000) / 1000.0, side="right")
    pay_draw = ((mixed >> 10) % 1000) / 1000.0
    payment = np.where(fare == 0, np.searchsorted(np.cumsum(PAYMENT_P), pay_draw, side="right"), 0)
    body = (index * SCRAMBLE[0] + SCRAMBLE[1]) % 10**9
    prefix = np.where(payment == PAYMENT_METHODS.index("bank_card"), BANK_PREFIX[key], CARD_PREFIX[key])
    payload = prefix.astype(np.int64) * 10**9 + body  # 15 digits
    return payload * 10 + _luhn(payload), fare.astype(np.int8), payment.astype(np.int8)


@lru_cache(maxsize=4)
def _cards(key: str, pool: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """card_numbers() of the whole pool (cached: every day's taps gather from it)."""
    return card_numbers(key, np.arange(pool))


def _luhn(payload: np.ndarray) -> np.ndarray:
    """Luhn check digit of 15-digit numbers (the digit to append on the right)."""
    total = np.zeros(payload.size, dtype=np.int64)
    rest = payload.copy()
    for position in range(15):  # from the right: positions 0, 2, 4... are doubled
        digit = rest % 10
        rest //= 10
        if position % 2 == 0:
            digit = digit * 2
            digit -= 9 * (digit > 9)
        total += digit
    return (10 - total % 10) % 10


# --- writing ---------------------------------------------------------------------------------


def _write_operator(ctx: DayContext, key: str, params: Params) -> int:
    day = ctx.day
    # The day's own taps first, then the late uploads, oldest first. validation_id numbers
    # the taps of the day they happened: the on-time ones first, then the late ones.
    own = _own_taps(ctx.seed, key, day, ctx.scale, params)
    parts = [own.with_columns(back=pl.lit(0, dtype=pl.Int8))]
    for back in range(MAX_LATE_DAYS, 0, -1):
        late = _late_taps(ctx.seed, key, day - timedelta(days=back), ctx.scale, params)
        parts.append(late.filter(pl.col("late_days") == back).with_columns(back=pl.lit(back, dtype=pl.Int8)))
    delivered = pl.concat(parts)
    net = tr.network(ctx.seed, key, ctx.scale)
    frame = _render(net, key, day, delivered, _pool(key, ctx.scale, params))
    path = ctx.folder() / f"validations_{key}_{day.isoformat()}.csv"
    frame = _plant_row_defects(ctx, frame, path, key)
    # Late uploads: a feature of the source, logged for the ground truth (a copy planted as a
    # duplicate is logged as that). Built directly: tens of thousands a day at scale 1.
    relative = ctx.relative(path)
    copies = {d.line for d in ctx.defects if d.kind == "duplicate_record" and d.file == relative}
    ctx.defects += [Defect(relative, "late_record", line, column="validated_at",
                           detail="the validator uploaded this tap days after it happened")
                    for line in (np.flatnonzero(frame["_late"].to_numpy()) + 2).tolist()
                    if line not in copies]  # fmt: skip
    frame = _schema_drift(ctx, frame.drop("_late"), path, key)
    buffer = io.BytesIO()
    frame.write_csv(buffer)
    data = buffer.getvalue()
    if tr.maybe_file(ctx, "truncated_file", key) and frame.height > 1:
        data, line = truncate(data, ctx.rng(f"truncate:{key}"), delimiter=b",")
        # The partial record is the truncation: what was logged on that line is no longer there.
        ctx.defects = [d for d in ctx.defects if not (d.file == relative and d.line == line)]
        ctx.record(path, "truncated_file", line, detail="the transfer stopped inside this record")
    write_atomic(path, data)
    return frame.height


def _pool(key: str, scale: float, params: Params) -> int:
    """The operator's card pool: as many cards as weekday taps."""
    return max(1, round(params.weekday_taps(key) * scale))


def _render(net: tr.Network, key: str, day: date, taps: pl.DataFrame, pool: int) -> pl.DataFrame:
    """Numeric taps -> the export's text columns (plus a hidden `_late` flag)."""
    numbers, fares, payments = _cards(key, pool)
    card = taps["card"].to_numpy()
    fare, payment = fares[card], payments[card]
    row = taps["row"].to_numpy()
    trip = net.st_trip[row]
    route = net.trip_route[trip]
    agency = np.array([tr.MODES[m].agency for m in net.route_mode])[route]
    amount = np.round(FARE_KZT[key] * np.array(FARE_FACTOR)[fare]).astype(np.int64)
    back = taps["back"].to_numpy()
    days = [day - timedelta(days=k) for k in range(MAX_LATE_DAYS + 1)]
    prefix = pl.Series([f"{net.operator.code}-{d.strftime('%Y%m%d')}-" for d in days]).gather(back)
    dates = pl.Series([d.isoformat() + " " for d in days]).gather(back)
    return pl.DataFrame({
        "validation_id": prefix + (taps["seq"] + 100_000_001).cast(pl.String).str.slice(1),  # 8 digits
        "card_id": pl.Series(numbers[card]).cast(pl.String),
        "validated_at": dates + _CLOCK.gather(taps["second"]),
        "operator": pl.Series([a.agency_id for a in net.operator.agencies]).gather(agency),
        "route_id": pl.Series(net.route_id, dtype=pl.String).gather(route),
        "vehicle_id": pl.Series(net.vehicle_id, dtype=pl.String).gather(net.trip_vehicle[trip]),
        "stop_id": pl.Series(net.stop_id, dtype=pl.String).gather(net.st_stop[row]),
        "fare_type": pl.Series(FARE_TYPES).gather(fare),
        "amount_kzt": amount,
        "payment_method": pl.Series(PAYMENT_METHODS).gather(payment),
        "_late": back > 0,
    })  # fmt: skip


_CLOCK = pl.Series([f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}" for s in range(86400)])


def _plant_row_defects(ctx: DayContext, frame: pl.DataFrame, path: Path, key: str) -> pl.DataFrame:
    """Record defects (one per affected tap), each logged with its line."""
    if ctx.defect_rate <= 0:
        return frame
    planter = RowDefects(ctx, frame, stream=f"row-defects:{key}")
    planter.blank("route_id", share=DEFECT_SHARES["missing_route"])
    planter.blank("card_id", share=DEFECT_SHARES["missing_card"])
    planter.replace("impossible_value", "amount_kzt", lambda rng, old: [-(v or FARE_KZT[key]) for v in old],
                    share=DEFECT_SHARES["negative_amount"])  # fmt: skip
    planter.replace("future_date", "validated_at", lambda rng, old: [f"{int(v[:4]) + 1}{v[4:]}" for v in old],
                    share=DEFECT_SHARES["future"], eligible=~frame["_late"].to_numpy())  # fmt: skip
    planter.duplicate(share=DEFECT_SHARES["duplicate"])
    return planter.finish(path)


def _schema_drift(ctx: DayContext, frame: pl.DataFrame, path: Path, key: str) -> pl.DataFrame:
    if tr.maybe_file(ctx, "added_column", key):
        version = f"2.{int(ctx.rng(f'drift:{key}').integers(10, 40))}"
        ctx.record(path, "added_column", None, column="validator_firmware",
                   detail="the export added a column 'validator_firmware' after the last one")
        return frame.with_columns(validator_firmware=pl.lit(version))
    if tr.maybe_file(ctx, "renamed_column", key):
        ctx.record(path, "renamed_column", None, column="card_id", detail="sent as 'card_number'")
        return frame.rename({"card_id": "card_number"})
    return frame
