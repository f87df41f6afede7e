"""Gas payments of the Smart Aqkol pilot: the gas utility's billing export, one CSV per day.

The source system is the billing of the regional gas distribution company in Akmola Region.
The export covers the Smart Aqkol pilot town (`world.load_towns()["aqkol"]`) and, as a
comparison group without the pilot's push to digital payment, two other gasified Akmola towns:
Shchuchinsk and Makinsk (their KATO codes and populations are approximate, for the simulation).

File layout: `landing/housing/utility_payments/<YYYY-MM-DD>/utility_payments_<YYYY-MM-DD>.csv`,
header `payment_id,account_id,payer_iin,payer_name,kato_code,service,period,amount_kzt,paid_at,
channel`, one row per payment received that day, sorted by `paid_at` (local time, Asia/Almaty,
no offset, as the billing writes it). `payment_id` is the day (YYYYMMDD) and a 7-digit
sequence; `account_id` (the personal account number, 11 digits: the town's 4-digit district
code and a 7-digit serial), `payer_iin` and `payer_name` are personal data. `period` is the
billing month paid for (`YYYY-MM`), `service` is always `gas`, `amount_kzt` has 2 decimals.

Volumes at scale 1.0: households ~ population / 2.9, 90% of them with a gas account: ~4,300
accounts in Aqkol (14,000 people), ~14,600 in Shchuchinsk (47,000), ~5,000 in Makinsk (16,000):
~23,900 accounts paying about once a month, ~790 payments a day on average (more before the
25th, fewer at the start of the month and on Sundays). Accounts are proportional to scale.

Rhythm: bills go out in the first days of the month and are due by the 25th, so payments pile
up from the 10th to the 24th (`DAY_OF_MONTH_WEIGHTS`). Heating season: a household with gas
heating burns ~450 m3 in January and ~30 m3 in July (cooking and hot water only), at ~33 KZT/m3
(the approximate household tariff): bills, hence amounts, are ~15 times larger in winter.
Payment channels: auto_debit (a bank's standing order, run at night), online (Kaspi / bank apps,
eGov), bank (a branch or a bank's terminal) and cash (the utility's cash desk or a payment
terminal; cash amounts are rounded up to 100 KZT).

Planted effect HCS-02: the share of AUTOMATED payments (auto_debit + online) in Aqkol rises
linearly from 35% on 2024-01-01 to 75% on 2026-01-01 (constant outside those dates); in the
comparison towns it rises from 30% to 40% over the same dates (the national drift to digital
payment). Within automated payments 40% are auto_debit and 60% online; the rest are 45% bank,
55% cash.

Realistic feature (logged, at any defect rate): the billing's old export server writes ~10% of
days in Windows-1251 (`windows_1251`), Kazakh letters folded to Russian look-alikes.

Defects at the run's defect rate, each logged with its line: IINs with a wrong check digit
(`invalid_iin`), empty IIN, account or amount (`missing_required`), negative amounts
(`impossible_value`), payments sent twice (`duplicate_record`).

Everything per row is vectorised (numpy draws -> polars frame -> write_csv).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from pathlib import Path

import numpy as np
import polars as pl

from qala_devkit.simulate import people
from qala_devkit.simulate.base import DayContext, RowDefects, csv_bytes, to_windows_1251, write_atomic
from qala_devkit.simulate.world import load_towns, rng_for

FEED = "housing/utility_payments"
DOMAIN, NAME = FEED.split("/")

COLUMNS = ("payment_id", "account_id", "payer_iin", "payer_name", "kato_code", "service", "period",
           "amount_kzt", "paid_at", "channel")  # fmt: skip
CHANNELS = ("auto_debit", "online", "bank", "cash")
AUTOMATED = ("auto_debit", "online")
AUTO_DEBIT_OF_AUTOMATED = 0.40
BANK_OF_MANUAL = 0.45

PERSONS_PER_HOUSEHOLD = 2.9
GAS_ACCOUNT_SHARE = 0.90
PAYMENTS_PER_ACCOUNT_MONTH = 1.0


@dataclass(frozen=True)
class Town:
    key: str
    kato_code: str
    name_ru: str
    population: int
    pilot: bool


def towns() -> tuple[Town, ...]:
    """The pilot town first, then the comparison towns (approximate KATO codes and populations)."""
    aqkol = load_towns()["aqkol"]
    return (
        Town("aqkol", aqkol.kato_code, aqkol.name_ru, aqkol.population, True),
        Town("shchuchinsk", "117020100", "город Щучинск", 47_000, False),
        Town("makinsk", "114020100", "город Макинск", 16_000, False),
    )


def accounts_at_scale_1() -> dict[str, int]:
    return {t.key: round(t.population / PERSONS_PER_HOUSEHOLD * GAS_ACCOUNT_SHARE) for t in towns()}


# The planted effect HCS-02.
ANCHOR_DATE = date(2024, 1, 1)
TARGET_DATE = date(2026, 1, 1)
PILOT_SHARES = (0.35, 0.75)  # automated share on ANCHOR_DATE and TARGET_DATE, linear between
COMPARISON_SHARES = (0.30, 0.40)

# Payments by day of month (1..31): bills arrive from the 3rd, the deadline is the 25th.
DAY_OF_MONTH_WEIGHTS = (
    0.35, 0.35, 0.45, 0.55, 0.7, 0.8, 0.9, 1.0, 1.0, 1.1, 1.2, 1.2, 1.3, 1.3, 1.4, 1.5,
    1.5, 1.6, 1.6, 1.7, 1.8, 1.9, 2.0, 2.1, 1.2, 0.5, 0.45, 0.4, 0.4, 0.4, 0.4,
)  # fmt: skip
WEEKDAY_FACTORS = (1.05, 1.05, 1.05, 1.05, 1.1, 0.95, 0.75)  # Monday..Sunday

# Gas burnt per billing month (m3, a household with gas heating), and the tariff.
MONTHLY_M3 = (450, 400, 320, 200, 80, 35, 30, 30, 60, 200, 330, 420)
CONSUMPTION_SIGMA = 0.4  # lognormal spread between households
TARIFF_KZT_PER_M3 = 33.0
CASH_ROUNDING_KZT = 100
# Which billing month a payment is for: last month's bill, arrears, or an advance.
PERIOD_LAGS = (1, 2, 0)
PERIOD_LAG_P = (0.90, 0.07, 0.03)

# Local hour profiles by channel (auto_debit runs as a night batch at 03:00-03:59).
HOURLY_ONLINE = (
    0.3, 0.15, 0.1, 0.05, 0.05, 0.1, 0.4, 1.0, 1.8, 2.2, 2.4, 2.4,
    2.5, 2.4, 2.3, 2.3, 2.4, 2.6, 2.9, 3.2, 3.3, 2.8, 1.8, 0.9,
)  # fmt: skip
HOURLY_OFFICE = (
    0, 0, 0, 0, 0, 0, 0, 0, 0.5, 2.5, 3.2, 3.3,
    3.0, 2.6, 3.0, 3.1, 3.0, 2.7, 1.8, 0.8, 0.4, 0.2, 0, 0,
)  # fmt: skip
AUTO_DEBIT_HOUR = 3

CP1251_SHARE = 0.10
# The letters Windows-1251 lacks and the Russian look-alikes the old server writes instead.
KAZAKH_LETTERS = list("әғқңөұүһӘҒҚҢӨҰҮҺ")
RUSSIAN_FORMS = list(to_windows_1251("әғқңөұүһӘҒҚҢӨҰҮҺ"))
REGISTER_DAY = date(2020, 1, 1)  # the account register's stream is not tied to an export day


@dataclass(frozen=True)
class Params:
    """The planted effect, overridable (e.g. by a test) without editing the module."""

    anchor_date: date = ANCHOR_DATE
    target_date: date = TARGET_DATE
    pilot_shares: tuple[float, float] = PILOT_SHARES
    comparison_shares: tuple[float, float] = COMPARISON_SHARES


def automated_share(day: date, pilot: bool, params: Params = Params()) -> float:
    """The probability that a payment on `day` goes through an automated channel."""
    lo, hi = params.pilot_shares if pilot else params.comparison_shares
    span = (params.target_date - params.anchor_date).days
    progress = min(max((day - params.anchor_date).days / span, 0.0), 1.0)
    return lo + (hi - lo) * progress


def generate_day(ctx: DayContext) -> int:
    """Write the billing's export for ctx.day; return the payments written."""
    day, params = ctx.day, ctx.params or Params()
    frame = _render(_payments(ctx.seed, day, ctx.scale, params), ctx.seed, ctx.scale, day)
    path = ctx.folder() / f"{NAME}_{day.isoformat()}.csv"
    frame = _plant_defects(ctx, frame, path)
    # An empty day has nothing Cyrillic to encode: its export is plain UTF-8.
    cp1251 = _is_cp1251_day(ctx.seed, day) and frame.height > 0
    if cp1251:
        frame = frame.with_columns(pl.col("payer_name").str.replace_many(KAZAKH_LETTERS, RUSSIAN_FORMS))
        ctx.record(path, "windows_1251", detail="the whole file is Windows-1251 (the old export server)")
    write_atomic(path, csv_bytes(frame, "cp1251" if cp1251 else "utf-8", float_precision=2))
    return frame.height


def _plant_defects(ctx: DayContext, frame: pl.DataFrame, path: Path) -> pl.DataFrame:
    if ctx.defect_rate <= 0:
        return frame
    planter = RowDefects(ctx, frame)
    planter.break_iin("payer_iin", share=0.4)
    planter.blank("payer_iin", share=0.15)
    planter.blank("account_id", share=0.15)
    planter.blank("amount_kzt", share=0.1)
    planter.replace("impossible_value", "amount_kzt", lambda rng, old: [-v for v in old], share=0.3)
    planter.duplicate(share=0.4)
    return planter.finish(path)


def ground_truth(params: Params = Params()) -> dict:
    """Every parameter of the simulated feed, for checking what the pipeline recovers."""
    accounts = accounts_at_scale_1()
    return {
        "system": "Akmola gas utility billing: the Smart Aqkol pilot town and two comparison towns",
        "towns": {t.key: {"kato_code": t.kato_code, "name_ru": t.name_ru, "population": t.population,
                          "accounts_at_scale_1": accounts[t.key], "pilot": t.pilot} for t in towns()},
        "account_id": "kato_code[:4] + a 7-digit serial; one holder (payer) per account",
        "payments_per_account_month": PAYMENTS_PER_ACCOUNT_MONTH,
        "records_per_day_at_scale_1": round(sum(accounts.values()) * 12 / 365.25, 1),
        "allocation": "Poisson per town and day: accounts * 12/365.25 * day-of-month weight (normalised "
                      "over the month) * weekday factor",
        "day_of_month_weights": list(DAY_OF_MONTH_WEIGHTS),
        "weekday_factors_mon_to_sun": list(WEEKDAY_FACTORS),
        "amount": {"m3_by_billing_month": list(MONTHLY_M3), "sigma_log": CONSUMPTION_SIGMA,
                   "tariff_kzt_per_m3": TARIFF_KZT_PER_M3, "cash_rounded_up_to_kzt": CASH_ROUNDING_KZT},
        "period_lag_months": dict(zip(map(str, PERIOD_LAGS), PERIOD_LAG_P, strict=True)),
        "hours": {"auto_debit": f"{AUTO_DEBIT_HOUR}:00-{AUTO_DEBIT_HOUR}:59", "online": list(HOURLY_ONLINE),
                  "bank_and_cash": list(HOURLY_OFFICE)},  # fmt: skip
        "effects": {
            "automated_payments": {
                "id": "HCS-02",
                "automated_channels": list(AUTOMATED),
                "shape": "linear between anchor_date and target_date, constant outside",
                "anchor_date": params.anchor_date.isoformat(),
                "target_date": params.target_date.isoformat(),
                "pilot_kato_code": towns()[0].kato_code,
                "pilot_share": {"at_anchor": params.pilot_shares[0], "at_target": params.pilot_shares[1]},
                "comparison_share": {"at_anchor": params.comparison_shares[0],
                                     "at_target": params.comparison_shares[1]},  # fmt: skip
                "auto_debit_of_automated": AUTO_DEBIT_OF_AUTOMATED,
                "bank_of_manual": BANK_OF_MANUAL,
            },
        },
        "cp1251_day_share": CP1251_SHARE,
        "defect_kinds": ["invalid_iin", "missing_required", "impossible_value", "duplicate_record",
                         "windows_1251"],  # fmt: skip
    }


# --- the account register --------------------------------------------------------------------


@dataclass(frozen=True)
class _Accounts:
    town: np.ndarray  # town index of each account
    first: np.ndarray  # first account index of each town
    count: np.ndarray  # accounts per town
    account_id: pl.Series
    iin: pl.Series
    name: pl.Series


@lru_cache(maxsize=2)
def _accounts(seed: int, scale: float) -> _Accounts:
    """Every gas account at this scale and its holder (the payer)."""
    count = np.array([max(1, round(n * scale)) for n in accounts_at_scale_1().values()])
    town = np.repeat(np.arange(count.size), count)
    serial = np.arange(town.size) - np.repeat(np.cumsum(count) - count, count) + 1
    districts = np.array([t.kato_code[:4] for t in towns()])
    account_id = np.char.add(districts[town], np.char.zfill(serial.astype("U7"), 7))
    holders = people.people(rng_for(seed, FEED + ":accounts", REGISTER_DAY), town.size,
                            date(1940, 1, 1), date(2002, 12, 31))  # fmt: skip
    name = np.char.add(np.char.add(np.char.add(holders["last_name"], " "), holders["first_name"]),
                       np.char.add(" ", holders["patronymic"]))  # fmt: skip
    return _Accounts(town=town, first=np.cumsum(count) - count, count=count,
                     account_id=pl.Series(account_id), iin=pl.Series(holders["iin"]),
                     name=pl.Series(name))  # fmt: skip


# --- the payments ----------------------------------------------------------------------------


def _expected(day: date, scale: float) -> np.ndarray:
    """Expected payments per town on `day`."""
    accounts = np.array(list(accounts_at_scale_1().values()), dtype=np.float64) * scale
    month_days = (date(day.year + day.month // 12, day.month % 12 + 1, 1) - date(day.year, day.month, 1)).days
    dom = DAY_OF_MONTH_WEIGHTS[day.day - 1] / np.mean(DAY_OF_MONTH_WEIGHTS[:month_days])
    return accounts * PAYMENTS_PER_ACCOUNT_MONTH * 12 / 365.25 * dom * WEEKDAY_FACTORS[day.weekday()]


def _payments(seed: int, day: date, scale: float, params: Params) -> pl.DataFrame:
    """The day's payments, numeric, sorted by time."""
    rng = rng_for(seed, FEED, day)
    registry = _accounts(seed, scale)
    counts = rng.poisson(_expected(day, scale))
    town = np.repeat(np.arange(counts.size), counts)
    n = town.size
    account = registry.first[town] + (rng.random(n) * registry.count[town]).astype(np.int64)
    automated = np.array([automated_share(day, t.pilot, params) for t in towns()])[town]
    auto = rng.random(n) < automated
    split = rng.random(n)
    channel = np.where(auto, np.where(split < AUTO_DEBIT_OF_AUTOMATED, 0, 1),
                       np.where(split < BANK_OF_MANUAL, 2, 3))  # fmt: skip
    online_p, office_p = (np.asarray(h) / np.sum(h) for h in (HOURLY_ONLINE, HOURLY_OFFICE))
    hour = np.select([channel == 0, channel == 1], [AUTO_DEBIT_HOUR, rng.choice(24, n, p=online_p)],
                     rng.choice(24, n, p=office_p))  # fmt: skip
    second = hour * 3600 + rng.integers(0, 3600, n)
    lag = rng.choice(PERIOD_LAGS, n, p=PERIOD_LAG_P)
    period = day.year * 12 + day.month - 1 - lag  # months since year 0
    m3 = np.asarray(MONTHLY_M3)[period % 12] * rng.lognormal(0.0, CONSUMPTION_SIGMA, n)
    amount = np.round(m3 * TARIFF_KZT_PER_M3, 2)
    amount = np.where(channel == 3, np.ceil(amount / CASH_ROUNDING_KZT) * CASH_ROUNDING_KZT, amount)
    paid = (np.datetime64(day, "s") + second).astype("datetime64[ms]")
    return pl.DataFrame({
        "account": account, "town": town, "period": period, "amount": amount, "paid": paid,
        "channel": pl.Series(channel, dtype=pl.UInt32),
    }).sort("paid", maintain_order=True)  # fmt: skip


def _render(payments: pl.DataFrame, seed: int, scale: float, day: date) -> pl.DataFrame:
    registry = _accounts(seed, scale)
    account = payments["account"]
    period = payments["period"]
    year, month = period // 12, period % 12 + 1
    return pl.DataFrame({
        "payment_id": day.strftime("%Y%m%d") + pl.int_range(1, payments.height + 1, eager=True)
                      .cast(pl.String).str.zfill(7),
        "account_id": registry.account_id.gather(account),
        "payer_iin": registry.iin.gather(account),
        "payer_name": registry.name.gather(account),
        "kato_code": pl.Series([t.kato_code for t in towns()]).gather(payments["town"]),
        "service": pl.repeat("gas", payments.height, eager=True),
        "period": year.cast(pl.String) + "-" + month.cast(pl.String).str.zfill(2),
        "amount_kzt": payments["amount"],
        "paid_at": payments["paid"].dt.strftime("%Y-%m-%d %H:%M:%S"),
        "channel": pl.Series(CHANNELS).gather(payments["channel"]),
    }).select(COLUMNS)  # fmt: skip


def _is_cp1251_day(seed: int, day: date) -> bool:
    """Whether the day's export comes from the old server (its own stream: scale-independent)."""
    return bool(rng_for(seed, FEED + ":encoding", day).random() < CP1251_SHARE)
