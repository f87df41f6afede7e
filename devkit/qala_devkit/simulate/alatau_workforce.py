"""Alatau City workforce: the employers' staff report, one CSV a month (on the 1st).

Employers of Alatau City report their staff to the city's SEZ administration every month, for
the programme's "local content" monitoring: one row per employee who worked for them at any
time in the month just ended. The export is written on the 1st of the next month:

    landing/programme/alatau_workforce/<YYYY-MM-01>/alatau_workforce_<YYYY-MM of the month>.csv

    employer_bin, employer_name, employee_iin, passport_no, last_name, first_name, patronymic,
    citizenship, position_level, hired_on, left_on

- cadence: monthly, on the 1st; on other days the feed writes nothing. `left_on` (the last day
  worked) is filled only for those who left in or before the month reported; staff at the end
  of that month are the rows with an empty `left_on`;
- personal data (pseudonymised downstream): citizens of Kazakhstan (citizenship "KZ") have a
  valid IIN and Cyrillic names from `people.py`; foreigners have a passport number in their
  country's format and Latin names, and no IIN. Citizenship is ISO 3166-1 alpha-2;
- employers: the 40 investors of programme/alatau_projects (same names and BINs; each employs
  from its agreement date) and 12 local employers (akimat, schools, clinics, utilities);
- volumes: hiring started 2022-01-01 at 470 hires a month at scale 1.0 (Poisson, x scale);
  staff stay Exponential(mean 48 months). So the staff grow as 470 x 48 x (1 - e^-t/48):
  ~13,000 by mid-2025 (Alatau City: ~30,000 residents plus commuters from Qonaev and Almaty),
  i.e. ~13,000 rows a month, ~430 rows a day on average;
- position levels: highly_qualified 12%, managerial 10%, specialist 38%, worker 40% of hires;
- the planted effect (ALA-01, Kazakhstani citizens in highly qualified + managerial jobs): the
  expected share among such staff at the end of day t is s(t) = 0.62 + 0.004 x (months since
  2024-01-01), i.e. 62% at 2024-01-01 rising 0.4 percentage point a month (capped at 95%).
  It is planted through hiring: such a hire on day u is a citizen with probability
  p(u) = s(u) + s'(u) x 48 months x (1 - e^-(u - 2022-01-01)/48 months), which for a constant
  hiring rate and exponential stays makes the expected citizens / expected staff exactly s(t).
  Other levels: 93% citizens.

Defects at the run's defect rate, each logged: an IIN or employer BIN with a wrong check digit
(invalid_iin), an empty citizenship (missing_required), duplicate rows, and schema drift (an
added column, or position_level sent as `position_category`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache
from pathlib import Path

import numpy as np
import polars as pl

from qala_devkit.simulate import alatau_projects, people
from qala_devkit.simulate.base import DayContext, RowDefects, csv_bytes, drift_schema, write_atomic
from qala_devkit.simulate.world import rng_for

FEED = "programme/alatau_workforce"
DOMAIN, NAME = FEED.split("/")

HIRING_START = date(2022, 1, 1)
HIRES_PER_MONTH = 470.0  # at scale 1
MEAN_TENURE_MONTHS = 48.0
DAYS_PER_MONTH = 365.25 / 12
LEVELS = ("highly_qualified", "managerial", "specialist", "worker")
LEVEL_P = (0.12, 0.10, 0.38, 0.40)
TOP_LEVELS = ("highly_qualified", "managerial")
ANCHOR = date(2024, 1, 1)
CITIZEN_SHARE_AT_ANCHOR = 0.62  # ALA-01
CITIZEN_SHARE_MONTHLY_GAIN = 0.004
CITIZEN_SHARE_CAP = 0.95
OTHER_LEVELS_CITIZEN_SHARE = 0.93
BORN = (date(1962, 1, 1), date(2005, 12, 31))

# Foreign staff: (ISO code, share of foreigners, passport prefix, digits after it, first names, surnames).
FOREIGN = (
    ("CN", 0.28, "E", 8, ("Wei", "Jing", "Lei", "Min", "Hao", "Yan"),
     ("WANG", "LI", "ZHANG", "LIU", "CHEN", "YANG")),
    ("TR", 0.14, "U", 8, ("Mehmet", "Ahmet", "Ayse", "Fatma", "Emre", "Zeynep"),
     ("YILMAZ", "KAYA", "DEMIR", "SAHIN", "CELIK", "AYDIN")),
    ("RU", 0.14, "", 9, ("Sergey", "Dmitry", "Elena", "Olga", "Andrey", "Anna"),
     ("IVANOV", "SMIRNOV", "KUZNETSOV", "POPOVA", "SOKOLOVA", "PETROV")),
    ("UZ", 0.10, "FA", 7, ("Jasur", "Dilnoza", "Bekzod", "Malika", "Sardor", "Nodira"),
     ("KARIMOV", "RAKHIMOVA", "YUSUPOV", "TOSHMATOVA", "ALIEV", "NAZAROV")),
    ("KR", 0.08, "M", 8, ("Min-jun", "Ji-woo", "Seo-yeon", "Do-hyun", "Ha-eun", "Joon"),
     ("KIM", "LEE", "PARK", "CHOI", "JUNG", "KANG")),
    ("IN", 0.07, "K", 7, ("Rahul", "Priya", "Amit", "Sneha", "Vikram", "Anjali"),
     ("SHARMA", "PATEL", "SINGH", "GUPTA", "KUMAR", "REDDY")),
    ("KG", 0.06, "AC", 7, ("Azamat", "Aigerim", "Bakyt", "Cholpon", "Nurlan", "Gulnara"),
     ("ASANOV", "TOKTOGULOVA", "SYDYKOV", "ABDRAKHMANOVA", "ISAEV", "OMUROVA")),
    ("DE", 0.05, "C", 8, ("Lukas", "Anna", "Jonas", "Lea", "Felix", "Laura"),
     ("MUELLER", "SCHMIDT", "SCHNEIDER", "FISCHER", "WEBER", "WAGNER")),
    ("GB", 0.04, "", 9, ("Oliver", "Amelia", "Harry", "Isla", "George", "Emily"),
     ("SMITH", "JONES", "TAYLOR", "BROWN", "WILLIAMS", "WILSON")),
    ("US", 0.04, "", 9, ("James", "Olivia", "Michael", "Emma", "David", "Sophia"),
     ("JOHNSON", "MILLER", "DAVIS", "GARCIA", "MARTINEZ", "ANDERSON")),
)  # fmt: skip
LOCAL_EMPLOYERS = (
    'ГУ "Аппарат акима города Алатау"', 'АО "Управляющая компания СЭЗ Alatau City"',
    'КГП на ПХВ "Городская поликлиника Алатау"', 'КГП на ПХВ "Многопрофильная больница Алатау"',
    'КГУ "Школа-гимназия № 1 города Алатау"', 'КГУ "Общеобразовательная школа № 2 города Алатау"',
    'ГККП "Ясли-сад "Балапан"', 'ТОО "Alatau Su Arnasy"', 'ТОО "Alatau Energy Service"',
    'ТОО "Alatau Clean City"', 'ТОО "Alatau Bus"', 'ИП "Сейітов Қ.М."',
)  # fmt: skip
COLUMNS = ("employer_bin", "employer_name", "employee_iin", "passport_no", "last_name", "first_name",
           "patronymic", "citizenship", "position_level", "hired_on", "left_on")  # fmt: skip


@dataclass(frozen=True)
class Params:
    """The planted effect (ALA-01), overridable without editing the module."""

    share_at_anchor: float = CITIZEN_SHARE_AT_ANCHOR
    monthly_gain: float = CITIZEN_SHARE_MONTHLY_GAIN
    anchor: date = ANCHOR


def citizen_share(day: date, params: Params = Params()) -> float:
    """s(t): the expected share of citizens among highly qualified + managerial staff at the end
    of `day` (the planted ALA-01 value)."""
    months = (day.toordinal() - params.anchor.toordinal()) / DAYS_PER_MONTH
    return float(np.clip(params.share_at_anchor + params.monthly_gain * months, 0.0, CITIZEN_SHARE_CAP))


def generate_day(ctx: DayContext) -> int:
    """On the 1st, write the report of the month just ended; other days write nothing."""
    if ctx.day.day != 1 or ctx.day <= HIRING_START:
        return 0
    params = ctx.params or Params()
    first = (ctx.day - timedelta(days=1)).replace(day=1)
    months = _months(HIRING_START, first)
    staff = pl.concat([_cohort(ctx.seed, m, ctx.scale, params) for m in months])
    last = ctx.day.toordinal() - 1
    staff = staff.filter(pl.col("left") >= first.toordinal())  # hired by `last`: the cohorts end there
    frame = _render(staff, _employers(ctx.seed), last)
    path = ctx.folder() / f"{NAME}_{first.strftime('%Y-%m')}.csv"
    frame = _plant_defects(ctx, frame, path)
    write_atomic(path, csv_bytes(frame))
    return frame.height


def ground_truth(params: Params = Params()) -> dict:
    return {
        "cadence": "monthly: written on the 1st, reporting everyone employed in the month just ended",
        "staff_at_month_end": "rows with an empty left_on",
        "hires_per_month_at_scale_1": HIRES_PER_MONTH,
        "hiring_start": HIRING_START.isoformat(),
        "mean_tenure_months": MEAN_TENURE_MONTHS,
        "staff_expected": f"{HIRES_PER_MONTH:g} x {MEAN_TENURE_MONTHS:g} x (1 - exp(-months since hiring "
                          f"start / {MEAN_TENURE_MONTHS:g})) x scale",
        "rows_per_export_at_scale_1_mid_2025": 13_000,
        "level_p": dict(zip(LEVELS, LEVEL_P, strict=True)),
        "effects": {
            "ala_01_citizens_in_top_jobs": {
                "levels": list(TOP_LEVELS),
                "anchor_date": params.anchor.isoformat(),
                "share_at_anchor": params.share_at_anchor,
                "monthly_gain": params.monthly_gain,
                "cap": CITIZEN_SHARE_CAP,
                "rule": "expected share of KZ citizens among highly_qualified + managerial staff at the end "
                        "of day t = share_at_anchor + monthly_gain x (t - anchor) / (365.25 / 12 days)",
                "hiring_probability": "p(u) = s(u) + s'(u) x T x (1 - exp(-(u - hiring_start) / T)), "
                                      "T = mean tenure: makes expected citizens / expected staff = s(t)",
                "values_at_month_ends": {d.isoformat(): round(citizen_share(d, params), 4)
                                         for d in _month_ends(date(2024, 1, 31), 24)},
            },
        },  # fmt: skip
        "other_levels_citizen_share": OTHER_LEVELS_CITIZEN_SHARE,
        "foreign_citizenship_p": {c: p for c, p, *_ in FOREIGN},
        "employers": {"investors": alatau_projects.PROJECTS, "local": len(LOCAL_EMPLOYERS)},
        "encoding": "utf-8",
        "pii": ["employee_iin", "passport_no", "last_name", "first_name", "patronymic"],
        "defect_kinds": ["invalid_iin", "missing_required", "duplicate_record", "added_column",
                         "renamed_column"],
    }  # fmt: skip


# --- drawing ---------------------------------------------------------------------------------


@lru_cache(maxsize=256)
def _cohort(seed: int, month: date, scale: float, params: Params) -> pl.DataFrame:
    """The people hired in `month`, with their (future) leaving day: ordinal days."""
    rng = rng_for(seed, FEED + ":hires", month)
    days = _month_length(month)
    n = int(rng.poisson(HIRES_PER_MONTH / DAYS_PER_MONTH * days * scale))
    hired = month.toordinal() + np.sort(rng.integers(0, days, n))
    tenure = np.ceil(rng.exponential(MEAN_TENURE_MONTHS * DAYS_PER_MONTH, n)).astype(np.int64)
    level = rng.choice(len(LEVELS), size=n, p=LEVEL_P)
    top = level < len(TOP_LEVELS)
    citizen = rng.random(n) < np.where(top, _hiring_probability(hired, params), OTHER_LEVELS_CITIZEN_SHARE)
    person = people.people(rng, n, *BORN)
    country = rng.choice(len(FOREIGN), size=n, p=[f[1] for f in FOREIGN])
    name = rng.integers(0, 6, (2, n))
    first_names = np.array([f[4] for f in FOREIGN])[country, name[0]]
    surnames = np.array([f[5] for f in FOREIGN])[country, name[1]]
    employers = _employers(seed)
    available = employers["from"].to_numpy() <= month.toordinal()
    weight = np.where(available, employers["weight"].to_numpy(), 0.0)
    employer = rng.choice(employers.height, size=n, p=weight / weight.sum())
    passport = pl.DataFrame({"country": pl.Series(country, dtype=pl.UInt32),
                             "number": rng.integers(0, 10**9, n)}).select(  # fmt: skip
        pl.concat_str(
            pl.lit(pl.Series([f[2] for f in FOREIGN])).gather(pl.col("country")),
            pl.col("number").cast(pl.String).str.zfill(9)
            .str.slice(9 - pl.lit(pl.Series([f[3] for f in FOREIGN])).gather(pl.col("country"))),
        )
    ).to_series()
    return pl.DataFrame({
        "employer": pl.Series(employer, dtype=pl.UInt32), "hired": hired, "left": hired + tenure - 1,
        "level": pl.Series(level, dtype=pl.UInt32),
        "citizenship": np.where(citizen, "KZ", np.array([f[0] for f in FOREIGN])[country]),
        "employee_iin": pl.Series(person["iin"]).set(pl.Series(~citizen), None),
        "passport_no": passport.set(pl.Series(citizen), None),
        "last_name": np.where(citizen, person["last_name"], surnames),
        "first_name": np.where(citizen, person["first_name"], first_names),
        "patronymic": pl.Series(np.where(citizen, person["patronymic"], "")).set(pl.Series(~citizen), None),
    })  # fmt: skip


def _hiring_probability(hired: np.ndarray, params: Params) -> np.ndarray:
    """p(u) of a highly qualified / managerial hire on day u being a citizen (see the docstring)."""
    tenure = MEAN_TENURE_MONTHS * DAYS_PER_MONTH
    months = (hired - params.anchor.toordinal()) / DAYS_PER_MONTH
    share = params.share_at_anchor + params.monthly_gain * months
    growing = share < CITIZEN_SHARE_CAP
    slope = np.where(growing, params.monthly_gain / DAYS_PER_MONTH, 0.0)
    catch_up = slope * tenure * (1 - np.exp(-(hired - HIRING_START.toordinal()) / tenure))
    return np.clip(np.minimum(share, CITIZEN_SHARE_CAP) + catch_up, 0.0, 1.0)


@lru_cache(maxsize=4)
def _employers(seed: int) -> pl.DataFrame:
    """The investors (from their agreement day) and the local employers (from the hiring start),
    with BINs and a size weight."""
    investors = alatau_projects.catalogue(seed)
    rng = rng_for(seed, FEED + ":employers", HIRING_START)
    n = len(LOCAL_EMPLOYERS)
    registered = np.datetime64("1998-01") + rng.integers(0, 20 * 12, n).astype("timedelta64[M]")
    # The sole proprietor (ИП) registers as an individual entrepreneur: entity type 6.
    kind = np.where(np.char.startswith(np.asarray(LOCAL_EMPLOYERS), "ИП"), 6, 4)
    local = pl.DataFrame({
        "bin": people.bin_(registered, kind, rng), "name": LOCAL_EMPLOYERS,
        "from": np.full(n, HIRING_START.toordinal()), "weight": rng.lognormal(0.0, 0.8, n),
    })  # fmt: skip
    return pl.concat([
        investors.select(bin="investor_bin", name="investor", **{"from": "signed"},
                         weight=(pl.col("invest") / 1e10).sqrt()),
        local,
    ])  # fmt: skip


# --- writing ---------------------------------------------------------------------------------


def _render(staff: pl.DataFrame, employers: pl.DataFrame, last: int) -> pl.DataFrame:
    """The report rows, by employer then hiring day; `left_on` only if by `last` (an ordinal)."""
    epoch = date(1970, 1, 1).toordinal()

    def as_date(column: str) -> pl.Expr:
        return (pl.col(column) - epoch).cast(pl.Int32).cast(pl.Date).dt.strftime("%Y-%m-%d")

    return staff.sort("employer", "hired", maintain_order=True).select(
        employer_bin=pl.lit(employers["bin"]).gather(pl.col("employer")),
        employer_name=pl.lit(employers["name"]).gather(pl.col("employer")),
        employee_iin="employee_iin", passport_no="passport_no", last_name="last_name",
        first_name="first_name", patronymic="patronymic", citizenship="citizenship",
        position_level=pl.lit(pl.Series(LEVELS)).gather(pl.col("level")),
        hired_on=as_date("hired"),
        left_on=pl.when(pl.col("left") <= last).then(as_date("left")),
    )  # fmt: skip


def _plant_defects(ctx: DayContext, frame: pl.DataFrame, path: Path) -> pl.DataFrame:
    if ctx.defect_rate <= 0:
        return frame
    planter = RowDefects(ctx, frame)
    is_citizen = frame["employee_iin"].is_not_null().to_numpy()
    planter.break_iin("employee_iin", share=0.7, eligible=is_citizen)
    planter.break_iin("employer_bin", share=0.3)
    planter.blank("citizenship")
    planter.duplicate()
    frame = planter.finish(path)
    # The renamed column is not one the row defects touch, so their logged column names stay true.
    return drift_schema(ctx, frame, path, "report",
                        added=("department", lambda: pl.lit(None, dtype=pl.String)),
                        renamed=("position_level", "position_category"))


# --- calendar --------------------------------------------------------------------------------


def _month_length(first: date) -> int:
    return (_next_month(first) - first).days


def _next_month(day: date) -> date:
    return date(day.year + day.month // 12, day.month % 12 + 1, 1)


def _months(start: date, last: date) -> list[date]:
    """First days of the months from start's to last's, inclusive."""
    months, month = [], start.replace(day=1)
    while month <= last:
        months.append(month)
        month = _next_month(month)
    return months


def _month_ends(first_end: date, count: int) -> list[date]:
    ends, month = [], first_end.replace(day=1)
    for _ in range(count):
        month = _next_month(month)
        ends.append(month - timedelta(days=1))
    return ends
