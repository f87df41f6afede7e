"""Alatau City investment projects: the SEZ administration's project register, a CSV a day.

Alatau City (the special economic zone city north of Almaty, on the Qapshagay reservoir) keeps a
register of the investment projects signed with investors; the daily export is the whole
register as it stands that day:

    landing/programme/alatau_projects/<YYYY-MM-DD>/alatau_projects_<YYYY-MM-DD>.csv

    project_id, name, sector, investor, investor_bin, agreement_signed_on, planned_start,
    planned_end, planned_investment_kzt, planned_to_date_kzt, disbursed_kzt,
    design_planned, design_actual, construction_planned, construction_actual,
    launch_planned, launch_actual, status

- fixed-size reference data: 40 projects at any scale (`scale` does not change them); a
  project is listed from the day its agreement is signed. `investor_bin` is a valid BIN
  (`people.bin_`: entity type 4, a resident company, or 5 for a foreign investor's branch);
- money: `planned_investment_kzt` is the whole plan; `planned_to_date_kzt` is the plan to the
  export day (the plan is linear from planned_start to planned_end); `disbursed_kzt` is what the
  investor has actually put in, cumulative to the export day. Whole tenge;
- milestones: design, construction start and launch, each planned and actual; an actual date
  is shown only once it has happened (projects behind on money slip more);
- the planted effect (ALA-02, investment disbursed vs plan): each project disburses
  f = 0.72 x (1 + d) of its plan to date, d uniform in [-0.25, 0.25] and centred so that the
  investment-weighted mean of d is 0. Once the projects are under way the register's total
  disbursed / total planned to date is 0.72 (within ~0.03 while only a few projects run);
- status: signed (before planned_start), in_progress, completed (launched).

Defects at the run's defect rate, each logged: a BIN with a wrong check digit (invalid_iin), a
negative disbursed amount (impossible_value), an empty investor_bin (missing_required),
duplicate rows, and schema drift (an added column, a renamed column).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from pathlib import Path

import numpy as np
import polars as pl

from qala_devkit.simulate import people
from qala_devkit.simulate.base import DayContext, RowDefects, csv_bytes, drift_schema, write_atomic
from qala_devkit.simulate.world import rng_for

FEED = "programme/alatau_projects"
DOMAIN, NAME = FEED.split("/")

CATALOGUE_DAY = date(2023, 1, 1)
PROJECTS = 40
DISBURSED_SHARE = 0.72  # ALA-02
SHARE_SPREAD = 0.25  # each project's factor is share x (1 + d), d in [-spread, spread]
STARTS = (date(2023, 1, 1), date(2026, 6, 30))
DURATION_DAYS = (730, 1826)  # 2-5 years
SIGNED_BEFORE_START_DAYS = (30, 180)
INVESTMENT_MEDIAN_KZT = 2.0e10  # 20 billion tenge; log-normal, sigma 1.1
INVESTMENT_SIGMA = 1.1
INVESTMENT_RANGE_KZT = (1.0e9, 6.0e11)
FOREIGN_INVESTOR_SHARE = 0.3
MILESTONES = {"design": 0.1, "construction": 0.25, "launch": 1.0}  # share of the way start -> end
MILESTONE_SLIP_DAYS = 120  # mean slip added per milestone for a project 28% behind plan; ~ (1 - f)

SECTORS = {
    "energy": ("Солнечная электростанция 100 МВт", "Ветровая электростанция 150 МВт", "Подстанция 220 кВ",
               "Аккумуляторная станция хранения энергии", "Газотурбинная электростанция"),
    "logistics": ("Мультимодальный логистический хаб", "Складской комплекс класса А", "Сухой порт",
                  "Грузовой терминал", "Контейнерный терминал"),
    "it": ("Центр обработки данных Tier III", "IT-парк", "Центр разработки программного обеспечения",
           "Облачная платформа для госсектора", "Центр искусственного интеллекта"),
    "manufacturing": ("Фармацевтический завод", "Завод солнечных панелей", "Завод строительных материалов",
                      "Сборочное производство электроники", "Завод компонентов для электромобилей"),
    "tourism": ("Курортный комплекс на Капшагайском водохранилище", 'Гостиничный комплекс "Алатау"',
                "Яхт-клуб и набережная", "Этнопарк"),
    "real_estate": ("Жилой квартал, I очередь", "Жилой квартал, II очередь", "Деловой центр",
                    "Торгово-развлекательный центр", "Жилой квартал, III очередь"),
    "agro_processing": ("Тепличный комплекс", "Мясоперерабатывающий комбинат", "Молочный завод",
                        "Плодоовощной хаб", "Элеватор"),
    "education": ("Международный университет", "Школа на 1200 мест", "Колледж цифровых технологий"),
    "healthcare": ("Многопрофильная больница", "Медицинский кластер", "Реабилитационный центр"),
    "finance": ("Региональный финансовый центр", "Финтех-хаб"),
}  # fmt: skip
_WORDS = ("Alatau", "Ile", "Qonaev", "Steppe", "Silk Way", "Zhetysu", "Nomad", "Altyn", "Sunkar",
          "Kapshagay", "Tengri", "Saryarka", "Khan Tengri", "Aral", "Baiterek")  # fmt: skip
_KINDS = {"energy": "Energy", "logistics": "Logistics", "it": "Digital", "manufacturing": "Industries",
          "tourism": "Resort", "real_estate": "Development", "agro_processing": "Agro",
          "education": "Education", "healthcare": "Medical", "finance": "Capital"}
COLUMNS = ("project_id", "name", "sector", "investor", "investor_bin", "agreement_signed_on", "planned_start",
           "planned_end", "planned_investment_kzt", "planned_to_date_kzt", "disbursed_kzt", "design_planned",
           "design_actual", "construction_planned", "construction_actual", "launch_planned", "launch_actual",
           "status")  # fmt: skip


@dataclass(frozen=True)
class Params:
    """The planted effect (ALA-02), overridable without editing the module."""

    disbursed_share: float = DISBURSED_SHARE


def generate_day(ctx: DayContext) -> int:
    """Write the register as it stands on ctx.day; return the projects listed (none: no file)."""
    params = ctx.params or Params()
    projects = catalogue(ctx.seed, params)
    signed = projects.filter(pl.col("signed") <= ctx.day.toordinal())
    if signed.height == 0:
        return 0
    frame = _render(signed, ctx.day)
    path = ctx.folder() / f"{NAME}_{ctx.day.isoformat()}.csv"
    frame = _plant_defects(ctx, frame, path)
    write_atomic(path, csv_bytes(frame))
    return frame.height


def ground_truth(params: Params = Params()) -> dict:
    return {
        "kind": "fixed-size reference data: a daily full snapshot of the signed projects",
        "projects": PROJECTS,
        "scale_dependent": False,
        "effects": {
            "ala_02_disbursed_vs_plan": {
                "share": params.disbursed_share,
                "project_factor": f"share x (1 + d), d ~ Uniform(-{SHARE_SPREAD}, {SHARE_SPREAD}), "
                                  "centred so the planned-investment-weighted mean of d is 0",
                "plan_to_date": "planned_investment_kzt x clip((day - planned_start) / (planned_end - "
                                "planned_start), 0, 1), rounded to whole tenge",
                "disbursed": "round(project factor x planned_to_date_kzt)",
                "measure": "sum(disbursed_kzt) / sum(planned_to_date_kzt) over the projects of a snapshot",
                "tolerance_note": "equal to the share when every project runs; within ~0.03 otherwise",
            },
        },  # fmt: skip
        "planned_investment_kzt": {"median": INVESTMENT_MEDIAN_KZT, "log_sigma": INVESTMENT_SIGMA,
                                   "range": list(INVESTMENT_RANGE_KZT)},  # fmt: skip
        "planned_starts": [STARTS[0].isoformat(), STARTS[1].isoformat()],
        "duration_days": list(DURATION_DAYS),
        "milestones_share_of_plan_window": MILESTONES,
        "foreign_investor_share": FOREIGN_INVESTOR_SHARE,
        "encoding": "utf-8",
        "defect_kinds": ["invalid_iin", "impossible_value", "missing_required", "duplicate_record",
                         "added_column", "renamed_column"],
    }  # fmt: skip


@lru_cache(maxsize=4)
def catalogue(seed: int, params: Params = Params()) -> pl.DataFrame:
    """The 40 projects: attributes, day ordinals (signed, start, end, milestones) and the factor."""
    rng = rng_for(seed, FEED + ":catalogue", CATALOGUE_DAY)
    names = [(sector, name) for sector, options in SECTORS.items() for name in options]
    picked = np.sort(rng.choice(len(names), PROJECTS, replace=False))
    sector, name = (np.asarray(column) for column in zip(*(names[i] for i in picked), strict=True))
    start = STARTS[0].toordinal() + rng.integers(0, (STARTS[1] - STARTS[0]).days + 1, PROJECTS)
    order = np.argsort(start, kind="stable")  # project ids follow the signing order
    sector, name, start = sector[order], name[order], start[order]
    end = start + rng.integers(DURATION_DAYS[0], DURATION_DAYS[1] + 1, PROJECTS)
    signed = start - rng.integers(SIGNED_BEFORE_START_DAYS[0], SIGNED_BEFORE_START_DAYS[1] + 1, PROJECTS)
    invest = np.exp(np.log(INVESTMENT_MEDIAN_KZT) + INVESTMENT_SIGMA * rng.standard_normal(PROJECTS))
    invest = (invest.clip(*INVESTMENT_RANGE_KZT) / 1e6).round() * 1e6
    spread = rng.uniform(-SHARE_SPREAD, SHARE_SPREAD, PROJECTS)
    factor = params.disbursed_share * (1 + spread - (spread * invest).sum() / invest.sum())
    foreign = rng.random(PROJECTS) < FOREIGN_INVESTOR_SHARE
    # The investor's brand: a place word and its sector's trade word, unique within the sector.
    words = rng.permutation(len(_WORDS))
    rank = [int((sector[:i] == sector[i]).sum()) for i in range(PROJECTS)]
    brand = np.array([f"{_WORDS[words[r]]} {_KINDS[s]}" for s, r in zip(sector, rank, strict=True)])
    investor = np.where(foreign, np.char.add(brand, " Ltd. (филиал)"),
                        np.char.add(np.char.add('ТОО "', brand), '"'))  # fmt: skip
    registered = np.datetime64("2005-01") + rng.integers(0, 18 * 12, PROJECTS).astype("timedelta64[M]")
    investor_bin = people.bin_(registered, np.where(foreign, 5, 4), rng)
    columns = {"project_id": [f"ALA-P-{i:03d}" for i in range(1, PROJECTS + 1)], "name": name,
               "sector": sector, "investor": investor, "investor_bin": investor_bin, "signed": signed,
               "start": start, "end": end, "invest": invest.astype(np.int64), "factor": factor}  # fmt: skip
    # Projects behind on money slip more: each milestone adds Exponential(120 days x (1 - f) / 0.28)
    # to the slip of the one before, so the actual dates keep their order.
    slip = np.zeros(PROJECTS)
    mean_step = MILESTONE_SLIP_DAYS * (1 - factor.clip(0, 1)) / (1 - DISBURSED_SHARE)
    for milestone, share in MILESTONES.items():
        planned = start + np.round(share * (end - start)).astype(np.int64)
        slip += rng.exponential(mean_step, PROJECTS)
        columns[milestone + "_planned"] = planned
        columns[milestone + "_actual"] = planned + np.round(slip).astype(np.int64)
    return pl.DataFrame(columns)


def _render(projects: pl.DataFrame, day: date) -> pl.DataFrame:
    epoch = date(1970, 1, 1).toordinal()
    today = day.toordinal()

    def as_date(expr: pl.Expr) -> pl.Expr:
        return (expr - epoch).cast(pl.Int32).cast(pl.Date).dt.strftime("%Y-%m-%d")

    progress = ((today - pl.col("start")) / (pl.col("end") - pl.col("start"))).clip(0.0, 1.0)
    to_date = (pl.col("invest") * progress).round().cast(pl.Int64)
    milestones = {}
    for milestone in MILESTONES:
        actual = pl.col(milestone + "_actual")
        milestones[milestone + "_planned"] = as_date(pl.col(milestone + "_planned"))
        milestones[milestone + "_actual"] = pl.when(actual <= today).then(as_date(actual))
    status = (pl.when(pl.col("launch_actual") <= today).then(pl.lit("completed"))
              .when(pl.col("start") <= today).then(pl.lit("in_progress"))
              .otherwise(pl.lit("signed")))  # fmt: skip
    return projects.select(
        "project_id", "name", "sector", "investor", "investor_bin",
        agreement_signed_on=as_date(pl.col("signed")), planned_start=as_date(pl.col("start")),
        planned_end=as_date(pl.col("end")), planned_investment_kzt="invest", planned_to_date_kzt=to_date,
        disbursed_kzt=(pl.col("factor") * to_date).round().cast(pl.Int64),
        **milestones, status=status,
    )  # fmt: skip


def _plant_defects(ctx: DayContext, frame: pl.DataFrame, path: Path) -> pl.DataFrame:
    if ctx.defect_rate <= 0:
        return frame
    planter = RowDefects(ctx, frame)
    planter.break_iin("investor_bin")
    planter.replace("impossible_value", "disbursed_kzt", lambda rng, old: [-(v or 1_000_000) for v in old])
    planter.blank("investor_bin")
    planter.duplicate()
    frame = planter.finish(path)
    # The renamed column is not one the row defects touch, so their logged column names stay true.
    return drift_schema(ctx, frame, path, "register", added=("currency", lambda: pl.lit("KZT")),
                        renamed=("planned_investment_kzt", "planned_investment"))
