"""The programme plan: the 120 events of the Digital Kazakhstan programme, a CSV snapshot a day.

The programme office keeps the plan of events (мероприятия) in its monitoring register and
exports the whole plan every day as it stands that day:

    landing/programme/events/<YYYY-MM-DD>/events_<YYYY-MM-DD>.csv

    event_id, area, initiative, name_kk, name_ru, responsible_ministry, planned_start,
    planned_end, actual_start, actual_end, status

- fixed-size reference data: exactly 120 events at any scale, under 17 initiatives in 5 areas
  (housing & communal services, education, health, public safety, transport); planned from
  2024-01-01 to 2026-12-31. `scale` does not change it;
- the snapshot shows only what is known on the export day: `actual_start` / `actual_end` are
  empty until they have happened, and `status` is `not_started`, `in_progress`, `overdue`
  (past planned_end, not finished) or `completed`. An event completed after the export day is
  not shown completed;
- the planted effect (PRG-01, share of events completed on schedule): exactly 30 of the 120
  events (25%) finish late, by 7 + round(Gamma(shape 2, scale 20)) days (mean 47 days); the
  other 90 finish 0-10 days before or on their planned end. Starts slip by 0-14 days. So among
  events whose planned end has passed, ~75% are completed on or before the planned date;
- the plan is the old register's: now and then the export comes in Windows-1251 (Kazakh
  letters folded to Russian look-alikes).

Defects at the run's defect rate, each logged: duplicate rows, an empty responsible_ministry
(missing_required), and whole-file defects: Windows-1251, an added column, a renamed one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from pathlib import Path

import numpy as np
import polars as pl

from qala_devkit.simulate.base import DayContext, RowDefects, csv_bytes, drift_schema, to_windows_1251, write_atomic
from qala_devkit.simulate.world import rng_for

FEED = "programme/events"
DOMAIN, NAME = FEED.split("/")

CATALOGUE_DAY = date(2024, 1, 1)
PLAN_START = date(2024, 1, 1)
PLAN_END = date(2026, 12, 31)
EVENTS = 120
LATE_EVENTS = 30  # 25%
LATE_DELAY_MIN_DAYS = 7
LATE_DELAY_GAMMA = (2.0, 20.0)  # shape, scale (days)
EARLY_FINISH_MAX_DAYS = 10
START_SLIP_MAX_DAYS = 14
DURATION_DAYS = (60, 300)
STATUSES = ("not_started", "in_progress", "overdue", "completed")

# Areas (as the plan writes them, in Russian) and their initiatives (area, ru, kk, ministry).
AREAS = {
    "housing": "Жилищно-коммунальное хозяйство",
    "education": "Образование",
    "health": "Здравоохранение",
    "public_safety": "Общественная безопасность",
    "transport": "Транспорт",
}
INITIATIVES = (
    ("housing", "Smart Aqkol", "Smart Aqkol",
     "Министерство промышленности и строительства"),
    ("housing", "Умное уличное освещение Алматы", "Алматының ақылды көше жарығы",
     "Министерство промышленности и строительства"),
    ("housing", "Единая служба обращений акимата (Open311)", "Әкімдіктің бірыңғай өтініш қызметі (Open311)",
     "Министерство промышленности и строительства"),
    ("housing", "Умный учет коммунальных ресурсов", "Коммуналдық ресурстарды ақылды есепке алу",
     "Министерство энергетики"),
    ("education", "Онлайн-запись в первый класс", "Бірінші сыныпқа онлайн жазылу",
     "Министерство просвещения"),
    ("education", "Электронная очередь в детский сад", "Балабақшаға электрондық кезек",
     "Министерство просвещения"),
    ("education", "Цифровая школа", "Цифрлық мектеп",
     "Министерство просвещения"),
    ("health", "Цифровые поликлиники", "Цифрлық емханалар",
     "Министерство здравоохранения"),
    ("health", "Электронный паспорт здоровья", "Электрондық денсаулық паспорты",
     "Министерство здравоохранения"),
    ("health", "Телемедицина в сельской местности", "Ауылдық жерлердегі телемедицина",
     "Министерство здравоохранения"),
    ("public_safety", "Камеры Сергек", "Сергек камералары",
     "Министерство внутренних дел"),
    ("public_safety", "Видеонаблюдение Smart Aqkol", "Smart Aqkol бейнебақылауы",
     "Министерство внутренних дел"),
    ("public_safety", "Единый номер экстренных служб 112", "Шұғыл қызметтердің бірыңғай 112 нөмірі",
     "Министерство по чрезвычайным ситуациям"),
    ("transport", "Умный общественный транспорт", "Ақылды қоғамдық көлік",
     "Министерство транспорта"),
    ("transport", "Электронный билет", "Электрондық билет",
     "Министерство транспорта"),
    ("transport", "Интеллектуальные светофоры", "Зияткерлік бағдаршамдар",
     "Министерство транспорта"),
    ("transport", "Управление парковками", "Тұрақтарды басқару",
     "Министерство транспорта"),
)  # fmt: skip
# The stages every initiative goes through, in order (ru, kk).
STAGES = (
    ("Разработка технического задания", "Техникалық тапсырманы әзірлеу"),
    ("Закупка оборудования и услуг", "Жабдықтар мен қызметтерді сатып алу"),
    ("Интеграция с egov и государственными базами", "egov және мемлекеттік базалармен интеграция"),
    ("Пилотное внедрение", "Пилоттық енгізу"),
    ("Обучение персонала", "Қызметкерлерді оқыту"),
    ("Ввод в промышленную эксплуатацию", "Өнеркәсіптік пайдалануға енгізу"),
    ("Масштабирование на регионы", "Өңірлерге ауқымдау"),
    ("Оценка эффекта", "Әсерді бағалау"),
)  # fmt: skip
COLUMNS = ("event_id", "area", "initiative", "name_kk", "name_ru", "responsible_ministry", "planned_start",
           "planned_end", "actual_start", "actual_end", "status")  # fmt: skip
_KAZAKH = "әғқңөұүһӘҒҚҢӨҰҮҺ"


@dataclass(frozen=True)
class Params:
    """The planted effect (PRG-01), overridable without editing the module."""

    late_events: int = LATE_EVENTS


def generate_day(ctx: DayContext) -> int:
    """Write the plan as known on ctx.day; return the events listed."""
    params = ctx.params or Params()
    frame = _render(plan(ctx.seed, params), ctx.day)
    path = ctx.folder() / f"{NAME}_{ctx.day.isoformat()}.csv"
    frame, encoding = _plant_defects(ctx, frame, path)
    write_atomic(path, csv_bytes(frame, encoding))
    return frame.height


def ground_truth(params: Params = Params()) -> dict:
    return {
        "kind": "fixed-size reference data: a daily full snapshot of the plan as known that day",
        "events": EVENTS,
        "initiatives": len(INITIATIVES),
        "areas": AREAS,
        "scale_dependent": False,
        "plan_window": [PLAN_START.isoformat(), PLAN_END.isoformat()],
        "effects": {
            "prg_01_on_schedule": {
                "late_events": params.late_events,
                "late_share": params.late_events / EVENTS,
                "on_schedule_share": 1 - params.late_events / EVENTS,
                "late_delay_days": f"{LATE_DELAY_MIN_DAYS} + round(Gamma(shape {LATE_DELAY_GAMMA[0]}, "
                                   f"scale {LATE_DELAY_GAMMA[1]}))",
                "late_delay_mean_days": LATE_DELAY_MIN_DAYS + LATE_DELAY_GAMMA[0] * LATE_DELAY_GAMMA[1],
                "on_time_finish": f"0-{EARLY_FINISH_MAX_DAYS} days before or on planned_end",
            },
        },  # fmt: skip
        "start_slip_days": [0, START_SLIP_MAX_DAYS],
        "duration_days": list(DURATION_DAYS),
        "status_values": list(STATUSES),
        "encoding": "utf-8; windows-1251 when the old register exports (a defect)",
        "defect_kinds": ["duplicate_record", "missing_required", "windows_1251", "added_column",
                         "renamed_column"],
    }


@lru_cache(maxsize=4)
def plan(seed: int, params: Params = Params()) -> pl.DataFrame:
    """The 120 events with planned and actual dates (ordinals), in event_id order.

    Each initiative gets 7 events (one gets 8), its stages in order, spread over the plan window.
    """
    rng = rng_for(seed, FEED + ":plan", CATALOGUE_DAY)
    per_initiative = np.full(len(INITIATIVES), EVENTS // len(INITIATIVES))
    per_initiative[rng.integers(0, len(INITIATIVES), EVENTS % len(INITIATIVES))] += 1
    initiative = np.repeat(np.arange(len(INITIATIVES)), per_initiative)
    stage = np.concatenate([np.sort(rng.choice(len(STAGES), k, replace=False)) for k in per_initiative])
    window = (PLAN_END - PLAN_START).days
    # Stage s of 8 is planned to start around s/8 of the way through the window.
    position = (stage + rng.random(EVENTS)) / len(STAGES)
    duration = rng.integers(DURATION_DAYS[0], DURATION_DAYS[1] + 1, EVENTS)
    planned_start = PLAN_START.toordinal() + (position * (window - duration)).astype(np.int64)
    planned_end = planned_start + duration
    actual_start = planned_start + rng.integers(0, START_SLIP_MAX_DAYS + 1, EVENTS)
    late = np.zeros(EVENTS, dtype=bool)
    late[rng.choice(EVENTS, params.late_events, replace=False)] = True
    delay = LATE_DELAY_MIN_DAYS + np.round(rng.gamma(*LATE_DELAY_GAMMA, EVENTS)).astype(np.int64)
    early = rng.integers(0, EARLY_FINISH_MAX_DAYS + 1, EVENTS)
    actual_end = np.where(late, planned_end + delay, np.maximum(planned_end - early, actual_start + 1))
    area, name_ru, name_kk, ministry = zip(*INITIATIVES, strict=True)
    stages_ru, stages_kk = (np.asarray(names)[stage] for names in zip(*STAGES, strict=True))
    return pl.DataFrame({
        "event_id": [f"EV-{i:03d}" for i in range(1, EVENTS + 1)],
        "area": np.asarray(area)[initiative], "initiative": np.asarray(name_ru)[initiative],
        "name_kk": np.char.add(np.asarray(name_kk)[initiative], np.char.add(": ", stages_kk)),
        "name_ru": np.char.add(np.asarray(name_ru)[initiative], np.char.add(": ", stages_ru)),
        "responsible_ministry": np.asarray(ministry)[initiative],
        "planned_start": planned_start, "planned_end": planned_end,
        "actual_start": actual_start, "actual_end": actual_end, "late": late,
    })  # fmt: skip


def _render(events: pl.DataFrame, day: date) -> pl.DataFrame:
    epoch = date(1970, 1, 1).toordinal()
    today = day.toordinal()

    def as_date(column: str) -> pl.Expr:
        return (pl.col(column) - epoch).cast(pl.Int32).cast(pl.Date).dt.strftime("%Y-%m-%d")

    started = pl.col("actual_start") <= today
    ended = pl.col("actual_end") <= today
    status = (pl.when(ended).then(pl.lit("completed"))
              .when(pl.col("planned_end") < today).then(pl.lit("overdue"))
              .when(started).then(pl.lit("in_progress"))
              .otherwise(pl.lit("not_started")))  # fmt: skip
    return events.select(
        "event_id", area=pl.col("area").replace_strict(AREAS), initiative="initiative",
        name_kk="name_kk", name_ru="name_ru", responsible_ministry="responsible_ministry",
        planned_start=as_date("planned_start"), planned_end=as_date("planned_end"),
        actual_start=pl.when(started).then(as_date("actual_start")),
        actual_end=pl.when(ended).then(as_date("actual_end")),
        status=status,
    )  # fmt: skip


def _plant_defects(ctx: DayContext, frame: pl.DataFrame, path: Path) -> tuple[pl.DataFrame, str]:
    if ctx.defect_rate <= 0:
        return frame, "utf-8"
    planter = RowDefects(ctx, frame)
    planter.blank("responsible_ministry")
    planter.duplicate()
    frame = planter.finish(path)
    frame = drift_schema(ctx, frame, path, "register", added=("comment", lambda: pl.lit("")),
                         renamed=("planned_end", "deadline"))
    if ctx.maybe("windows_1251"):
        folded = pl.col("name_kk").str.replace_many(list(_KAZAKH), list(to_windows_1251(_KAZAKH)))
        frame = frame.with_columns(folded)
        ctx.record(path, "windows_1251", detail="the old register exported the plan in Windows-1251")
        return frame, "cp1251"
    return frame, "utf-8"
