"""The ministers' scorecard: `marts.kpi_scorecard` as one self-contained HTML file in Kazakh,
Russian and English ($QALA_WAREHOUSE/reports/scorecard.html), and the same page printed to PDF
by Chromium (reports/scorecard.pdf).

The page opens with a first page per language: every KPI in one table (its country row, or its one
place), the value and the change vs its baseline with their 95% intervals, the target, the status
and a sparkline, each row linking to the KPI's card. The cards follow as an appendix: window,
value and change with their intervals and the interval method, the trend with its 95% band, the
regions, and the data health of the feeds behind it. In print (and so in the PDF) the three first
pages come first, one after another, then the cards, compacted (region tables cut to the country
and the regions at either end); the screen keeps every region.

Everything shown is read from the marts and the load ledger in one read-only session: the first
page, tiles and region tables from marts.kpi_scorecard, trends from marts.kpi_values, the feeds
behind a KPI from the batch ids of its rows, their health from ops.load_ledger and
ops.gate_results. The page asks no other host for anything (inline CSS, SVG and a few lines of
script), so it opens offline and travels by e-mail. Without script it shows all three languages
one after another, as in print.
"""

from __future__ import annotations

import html
import math
import os
import shutil
import subprocess
import tempfile
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

from transforms import lake, settings

LANGS = ("kk", "ru", "en")
HEALTH_DAYS = 28  # the data-health window, in landing days, ending at the newest landing day

# The page's own words. KPI, area and place names come from the marts (reference seeds).
LABELS = {
    "title": ("Цифрлық Қазақстан — KPI көрсеткіштер картасы", "Цифровой Казахстан — карта показателей KPI",
              "Digital Kazakhstan — KPI scorecard"),
    "language": ("Тіл", "Язык", "Language"),
    "as_of": ("Деректер көлінің суреті", "Снимок озера данных", "As of lake snapshot"),
    "built": ("жасалған уақыты", "построено", "built"),
    "areas": ("Бағыттар", "Направления", "Areas"),
    "actual": ("Нақты мәні", "Факт", "Actual"),
    "target": ("Мақсат", "Цель", "Target"),
    "baseline": ("Бір жыл бұрын", "Год назад", "A year earlier"),
    "change": ("Өзгеріс", "Изменение", "Change vs baseline"),
    "status": ("Мәртебе", "Статус", "Status"),
    "region": ("Өңір", "Регион", "Region"),
    "month": ("Ай", "Месяц", "Month"),
    "unit": ("Өлшем бірлігі", "Единица", "Unit"),
    "owner": ("Жауапты министрлік", "Ответственное министерство", "Accountable ministry"),
    "no_target": ("мақсат жоқ", "цели нет", "no target"),
    "illustrative": ("шартты мақсат", "условная цель", "illustrative target"),
    "target_line": ("мақсат сызығы", "линия цели", "target line"),
    "no_baseline_yet": ("салыстыратын бір жыл бұрынғы мән әлі жоқ", "значения годом ранее для сравнения ещё нет",
                        "no year-earlier value to apply it to yet"),
    "trend": ("Серпіні", "Динамика", "Trend"),
    "trend_of": ("айлар бойынша", "по месяцам", "by month"),
    "regions": ("Өңірлер бойынша", "По регионам", "By region"),
    "sort_hint": ("Сұрыптау үшін баған атауын басыңыз", "Нажмите на заголовок столбца, чтобы отсортировать",
                  "Press a column heading to sort"),
    "suppressed": ("жасырылған", "скрыто", "suppressed"),
    "data_health": ("Деректер күйі", "Состояние данных", "Data health"),
    "sources": ("Дереккөздер", "Источники", "Sources"),
    "feed": ("Дереккөз", "Источник", "Feed"),
    "last_day": ("Соңғы жүктелген күн", "Последний загруженный день", "Last landing day loaded"),
    "last_load": ("Соңғы жүктеу", "Последняя загрузка", "Last load"),
    "window": (f"Соңғы {HEALTH_DAYS} күн", f"Последние {HEALTH_DAYS} дней", f"Last {HEALTH_DAYS} days"),
    "blocked_batches": ("бұғатталған партиялар", "заблокированных партий", "blocked batches"),
    "quarantined": ("карантиндегі жолдар", "строк в карантине", "rows quarantined"),
    "not_read": ("оқылмаған файлдар", "непрочитанных файлов", "files not read"),
    "warnings": ("ескертулер", "предупреждений", "warnings"),
    "no_rows": ("Әзірге толық ай жүктелмеген.", "Полных месяцев пока не загружено.",
                "No month is loaded whole yet."),
    "no_kpis": ("Бұл бағытта әзірге көрсеткіш жоқ.", "По этому направлению пока нет показателей.",
                "No KPI of this area is published yet."),
    "country_row": ("Ел бойынша", "По стране", "Country"),
    "regions_count": ("өңір", "регионов", "regions"),
    "footer": ("Әрбір сан marts.kpi_scorecard кестесінен алынған; дереккөз файлдарына дейін batch_ids арқылы бақыланады.",
               "Каждое число взято из marts.kpi_scorecard; до исходных файлов прослеживается по batch_ids.",
               "Every number comes from marts.kpi_scorecard and traces back to its source files through batch_ids."),
    # the first page
    "overview": ("Барлық KPI бір бетте", "Все KPI на одной странице", "All KPIs on one page"),
    "kpi": ("Көрсеткіш", "Показатель", "KPI"),
    "place": ("Аумақ, кезең", "Территория, период", "Place, period"),
    "value_ci": ("Мәні (95% интервал)", "Значение (95% интервал)", "Value (95% interval)"),
    "change_ci": ("Өзгеріс (95% интервал)", "Изменение (95% интервал)", "Change (95% interval)"),
    "kpis_count": ("KPI", "KPI", "KPIs"),
    "overview_note": (
        "Әр жолда — ел бойынша мән (ел бойынша жолы жоқ KPI үшін — оның жалғыз аумағы). Өзгеріс — салыстыру базасымен "
        "(көбіне бір жыл бұрынғы сол кезең; карточкада жазылған). Жақшадағы — 95% сенімділік интервалы. KPI атауын басып, оның "
        "карточкасын ашыңыз. Бір бағыт ішінде артта қалғандар бірінші.",
        "В каждой строке — значение по стране (для KPI без строки по стране — его единственная территория). "
        "Изменение — к базе сравнения (чаще всего тот же период годом ранее; см. карточку). В скобках — 95% доверительный интервал. Название KPI "
        "ведёт к его карточке. Внутри направления отстающие идут первыми.",
        "Each row is the country's value (or, for a KPI with no country row, its one place). Change is vs the "
        "baseline (mostly the same period a year earlier; the card says which). In brackets: the 95% interval. A KPI's name leads to its card. Within "
        "an area the off-track KPIs come first."),
    "to": ("…", "до", "to"),
    "from": ("", "от", ""),
    "no_upper": ("жоғарғы шегі жоқ", "без верхней границы", "no upper bound"),
    "interval": ("95% интервал", "95% интервал", "95% interval"),
    "band": ("95% интервал", "95% интервал", "95% interval"),
    "appendix": ("Қосымша: KPI карточкалары", "Приложение: карточки KPI", "Appendix: KPI cards"),
    "back": ("Бірінші бетке", "К первой странице", "Back to the first page"),
    "print_rows": ("Басылымда: ел бойынша жол және ең жоғары мен ең төмен өңірлер; HTML бетінде — барлық {n} аумақ.",
                   "В печати: страна и регионы с самыми высокими и низкими значениями; на HTML-странице — все {n}.",
                   "In print: the country and the regions at either end; the HTML page lists all {n}."),
    "months_short": ("ай", "мес.", "mo"),
    "baseline_window": ("Алдыңғы {n} ай", "Предыдущие {n} месяцев", "The {n} months before"),
    "baseline_model": ("Жаңғыртуға дейін", "До модернизации", "Before the retrofit"),
}
# Status words and colours (CSS classes s-<status> in the template). 'within-noise': the evidence
# (the 95% intervals) does not tell the value or the change apart from chance.
STATUS = {
    "on-track": ("Жоспар бойынша", "В графике", "On track"),
    "at-risk": ("Қауіп бар", "Под угрозой", "At risk"),
    "off-track": ("Артта қалуда", "Отстаёт", "Off track"),
    "within-noise": ("Кездейсоқ ауытқу шегінде", "В пределах погрешности", "Within noise"),
    "no-baseline": ("Салыстыру базасы жоқ", "Нет базы сравнения", "No baseline"),
    "monitoring": ("Бақылау", "Мониторинг", "Monitoring"),
    "suppressed": ("Жасырылған", "Скрыто", "Suppressed"),
}
# What each status means, in a few words (the first page's legend).
STATUS_MEANING = {
    "on-track": ("95% интервал мақсатқа жетеді (мақсат жоқ болса — кездейсоқтықтан тыс жақсару)",
                 "95% интервал достигает цели (без цели — улучшение сверх случайного)",
                 "the 95% interval meets the target (no target: improving beyond chance)"),
    "at-risk": ("кездейсоқтықтан тыс жақсару бар, бірақ мақсатқа әлі жетпеді",
                "улучшение сверх случайного, но цель ещё не достигнута",
                "improving beyond chance, but short of the target"),
    "off-track": ("мақсаттан айқын артта және жақсару жоқ",
                  "явно не достигает цели и не улучшается",
                  "clearly short of the target and not improving"),
    "within-noise": ("айырмашылықты кездейсоқтықтан ажыратуға болмайды",
                     "разницу нельзя отличить от случайной",
                     "the difference cannot be told from chance"),
    "no-baseline": ("салыстыратын бір жыл бұрынғы мән жоқ", "нет значения годом ранее для сравнения",
                    "no year-earlier value to compare with"),
    "monitoring": ("бақыланады: мақсаты да, бағыты да жоқ", "наблюдение: нет ни цели, ни направления",
                   "watched only: no target, no direction"),
}
# The first page's order within an area: what needs attention first. Suppressed (None) last.
STATUS_ORDER = ("off-track", "at-risk", "within-noise", "no-baseline", "monitoring", "on-track")
# kpi_values.interval_method: how the 95% intervals are computed (the card's legend line).
METHODS = {
    "poisson": ("Пуассон санының score-интервалы; өзгеріс — жиіліктер қатынасы бойынша",
                "score-интервал Пуассона для числа событий; изменение — по отношению интенсивностей",
                "Poisson score interval of the count; change from the rate ratio"),
    "wilson": ("Уилсонның score-интервалы; өзгеріс — MOVER-R әдісімен",
               "score-интервал Уилсона; изменение — методом MOVER-R",
               "Wilson score interval; change by MOVER-R"),
    "median": ("медиананың үлестірімге тәуелсіз интервалы (реттік статистикалар); өзгеріс — MOVER-R әдісімен",
               "непараметрический интервал медианы (порядковые статистики); изменение — методом MOVER-R",
               "distribution-free interval of the median (order statistics); change by MOVER-R"),
    "ratio": ("шкафтар бойынша қатынас бағалауы (дельта әдісі); мән өлшенеді, интервал тек өзгеріске",
              "оценка отношения по шкафам (дельта-метод); значение измерено, интервал только у изменения",
              "ratio estimator over cabinets (delta method); the value is measured, only the change has an interval"),
    "cluster": ("шоғырлар бойынша интервал (рейстер, карталар: бір шоғырдың оқиғалары өзара байланысты); өзгеріс — MOVER-R әдісімен",
                "интервал по кластерам (рейсы, карты: события одного кластера связаны); изменение — методом MOVER-R",
                "interval over clusters (trip runs, cards: one cluster's events move together); change by MOVER-R"),
    "exact": ("нақты мән: жобалардың толық есебі, іріктеусіз (интервал ені нөл)",
              "точное значение: полный учёт проектов, без выборки (интервал нулевой ширины)",
              "exact: the complete project accounts, no sampling (zero-width interval)"),
}
HEALTH = {
    "ok": ("Қалыпты", "Норма", "OK"),
    "warning": ("Ескерту бар", "Есть предупреждения", "Warnings"),
    "blocked": ("Бұғатталған", "Заблокировано", "Blocked"),
}
# The catalogue's units are in English; their Kazakh and Russian words.
UNITS = {
    "accidents per 100,000 population in 12 months": ("12 айдағы 100 000 тұрғынға шаққандағы ЖКО",
                                                      "ДТП на 100 000 населения за 12 месяцев"),
    "deaths per 100,000 population in 12 months": ("12 айдағы 100 000 тұрғынға шаққандағы қаза тапқандар",
                                                   "погибших на 100 000 населения за 12 месяцев"),
    "kWh (change vs pre-retrofit)": ("кВт·сағ (жаңғыртуға дейінгі деңгейге қарағанда өзгеріс)",
                                     "кВт·ч (изменение к уровню до модернизации)"),
    "accidents per 100,000 population": ("100 000 тұрғынға шаққандағы ЖКО", "ДТП на 100 000 населения"),
    "deaths per 100,000 population": ("100 000 тұрғынға шаққандағы қаза тапқандар", "погибших на 100 000 населения"),
    "immunisations per 1,000 population": ("1 000 тұрғынға шаққандағы екпелер", "прививок на 1 000 населения"),
    "boardings per resident": ("бір тұрғынға шаққандағы сапарлар", "поездок на жителя"),
    "share (0-1)": ("үлес", "доля"),
    "share of plan (0-1)": ("жоспардағы үлес", "доля от плана"),
    "days": ("күн", "дней"),
    "hours": ("сағат", "часов"),
    "violations per camera-day": ("бір камераға тәулігіне бұзушылықтар", "нарушений на камеру в сутки"),
}
# Why a value is withheld (kpi_values.suppression_reason starts with the rule's name).
SUPPRESSION = {
    "small cell": ("аз сан (1–9 адам): жеке адамдарды тануға болмайды",
                   "малое число (1–9 человек): чтобы нельзя было узнать людей",
                   "small count (1–9 people), so no one can be recognised"),
    "complementary": ("қосымша жасыру: әйтпесе жасырылған санды ел жиынынан шығаруға болады",
                      "дополнительное скрытие: иначе скрытое число можно вычислить из итога по стране",
                      "withheld as well, or a suppressed count could be derived from the country total"),
}
MONTHS = {
    "kk": "қаң ақп нау сәу мам мау шіл там қыр қаз қар жел".split(),
    "ru": "янв фев мар апр май июн июл авг сен окт ноя дек".split(),
    "en": "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split(),
}
MONTH_NAMES = {
    "kk": "қаңтар ақпан наурыз сәуір мамыр маусым шілде тамыз қыркүйек қазан қараша желтоқсан".split(),
    "ru": "январь февраль март апрель май июнь июль август сентябрь октябрь ноябрь декабрь".split(),
    "en": "January February March April May June July August September October November December".split(),
}
MINUS = "\u2212"  # the page writes negative numbers with a true minus sign
INFINITY = "∞"


def format_value(value: float | None, unit: str) -> str:
    """A KPI value as the scorecard shows it: shares as percentages, other units to 2 decimals."""
    if value is None:
        return "—"
    return f"{value:.1%}" if unit.startswith("share") else f"{value:,.2f}"


def format_change(value: float | None) -> str:
    return "—" if value is None else f"{value:+.1%}"


def format_target(target: float | None, target_kind: str, unit: str) -> str:
    if target is None:
        return "—"
    return f"{target:+.0%}" if target_kind == "change_vs_baseline" else format_value(target, unit)


# kpi_values' interval columns (issue 21); a lake built before them shows no intervals
INTERVAL_COLUMNS = ("window_months", "window_start", "interval_method", "confidence", "actual_lower",
                    "actual_upper", "baseline_lower", "baseline_upper", "change_lower", "change_upper",
                    "gap_to_target", "gap_lower", "gap_upper", "population_scale")
PRINT_ENDS = 2  # in print, a region table keeps the country and this many regions at either end


@dataclass
class Kpi:
    row: dict | None               # the tile's row: the country, or the KPI's only place
    rows: list[dict]               # every place of the KPI's latest month
    trend: list[dict]              # the tile place's months from kpi_values
    feeds: list[str] = field(default_factory=list)
    baseline_source: str = "previous_year"

    @property
    def kpi_id(self) -> str:
        return self.rows[0]["kpi_id"]

    @property
    def status(self) -> str | None:
        """The first page's status of the KPI: its tile row's ('suppressed' when withheld)."""
        if self.row is None:
            return None
        return "suppressed" if self.row["suppressed"] else self.row["status"]

    @property
    def target_levels(self) -> list[float | None]:
        """Each trend month's target on the actual's own scale (None where there is none)."""
        return [_target_level(p, self.row) for p in self.trend]

    @property
    def has_band(self) -> bool:
        return any(has_interval(p["actual_lower"], p["actual_upper"]) for p in self.trend if not p["suppressed"])

    @property
    def print_regions(self) -> set[str]:
        """The region table's rows kept in print: the country, and the PRINT_ENDS published regions
        with the highest and the lowest value (by change when the target is a change)."""
        published = [r for r in self.rows if r["region_code"] != "KZ" and not r["suppressed"]]
        key = "change_vs_baseline" if self.rows[0]["target_kind"] == "change_vs_baseline" and any(
            r["change_vs_baseline"] is not None for r in published) else "actual"
        ranked = sorted((r for r in published if r[key] is not None), key=lambda r: (r[key], r["region_code"]))
        keep = {r["region_code"] for r in ranked[:PRINT_ENDS] + ranked[-PRINT_ENDS:]}
        return keep | {r["region_code"] for r in self.rows if r["region_code"] == "KZ"}


def _status_rank(status: str | None) -> int:
    return STATUS_ORDER.index(status) if status in STATUS_ORDER else len(STATUS_ORDER)


def overview(kpis: dict[str, list[Kpi]], areas: list[dict]) -> list[tuple[dict, list[Kpi]]]:
    """The first page: every KPI, grouped by area in the programme's own order (the same order
    every month, so a reader finds an area where it was last time), and within an area by status,
    the ones that need attention first: off-track, at-risk, within-noise, no-baseline, monitoring,
    on-track, then a withheld one; by KPI id within a status."""
    return [(area, sorted(kpis[area["area"]], key=lambda k: (_status_rank(k.status), k.kpi_id)))
            for area in areas if kpis.get(area["area"])]


def status_counts(kpis: dict[str, list[Kpi]]) -> dict[str, int]:
    """How many KPIs (their first-page row) are in each status, in STATUS_ORDER (then suppressed)."""
    counts = defaultdict(int)
    for area_kpis in kpis.values():
        for kpi in area_kpis:
            counts[kpi.status] += 1
    return {s: counts[s] for s in (*STATUS_ORDER, "suppressed") if counts[s]}


def gather(con) -> dict:
    """Everything the page shows, from one read-only session on the lake."""
    areas = lake.rows(con, "select area, name_kk, name_ru, name_en from reference.programme_areas order by sort_order")
    rows = lake.rows(con, """select * exclude (batch_ids) from marts.kpi_scorecard
                         order by kpi_id, region_code = 'KZ' desc, region_name_en""")
    baseline_source = dict(con.execute("select kpi_id, baseline_source from reference.kpi_catalogue").fetchall())
    feeds = defaultdict(list)
    for kpi_id, feed in con.execute(
            """select distinct s.kpi_id, l.feed
               from (select kpi_id, unnest(batch_ids) as batch_id from marts.kpi_scorecard) s
               join ops.load_ledger l using (batch_id) order by all""").fetchall():
        feeds[kpi_id].append(feed)
    by_kpi = defaultdict(list)
    for row in rows:
        for column in INTERVAL_COLUMNS:
            row.setdefault(column, None)
        by_kpi[row["kpi_id"]].append(row)
    kpis = defaultdict(list)
    for kpi_id, places in by_kpi.items():
        country = [r for r in places if r["region_code"] == "KZ"]
        tile = country[0] if country else places[0] if len(places) == 1 else None
        # every month of the tile's place, published or not (a withheld month is a gap)
        trend = lake.rows(con, """select * exclude (batch_ids) from marts.kpi_values
                              where kpi_id = ? and region_code = ? order by period_start""",
                          [kpi_id, tile["region_code"]]) if tile else []
        for point in trend:
            for column in INTERVAL_COLUMNS:
                point.setdefault(column, None)
        kpis[places[0]["area"]].append(
            Kpi(tile, places, trend, feeds[kpi_id], baseline_source.get(kpi_id) or "previous_year"))
    snapshot = con.execute(
        f"""select snapshot_id, snapshot_time from ducklake_snapshots('{settings.LAKE_ALIAS}')
            where snapshot_id = ?""", [max((r["lake_snapshot_id"] for r in rows), default=None)]).fetchone()
    return {"areas": areas, "kpis": kpis, "overview": overview(kpis, areas), "counts": status_counts(kpis),
            "health": feed_health(con), "snapshot": snapshot}


def feed_health(con) -> dict[str, dict]:
    """Each feed's state over the last HEALTH_DAYS landing days of the lake: blocked when its newest
    batch is not published, warnings when any batch of the window was blocked, quarantined rows,
    landed a file the feed does not read (`not_read`) or
    failed a warn expectation, else ok."""
    rows = lake.rows(con, f"""
        with newest as (select max(logical_date) - {HEALTH_DAYS} as since from ops.load_ledger),
        warned as (
            select g.feed, count(*) as warnings from ops.gate_results g
            join ops.load_ledger l using (batch_id), newest
            where g.severity = 'warn' and not g.success and l.logical_date > newest.since
            group by g.feed)
        select l.feed,
               max(l.logical_date) filter (where l.status = 'published') as last_day,
               max(l.finished_at) as last_load,
               arg_max(l.status, l.finished_at) filter (where l.status <> 'not_read') as latest_status,
               count(distinct l.batch_id) filter (where l.status not in ('published', 'not_read')
                                                  and l.logical_date > newest.since) as blocked_batches,
               count(distinct l.source_file) filter (where l.status = 'not_read' and l.logical_date > newest.since)
                   as not_read,
               coalesce(sum(l.rows_quarantined) filter (where l.logical_date > newest.since), 0) as quarantined,
               coalesce(any_value(w.warnings), 0) as warnings
        from ops.load_ledger l cross join newest left join warned w using (feed)
        group by l.feed order by l.feed""")
    for row in rows:
        row["state"] = ("blocked" if row["latest_status"] not in ("published", None)
                        else "warning" if (row["blocked_batches"] or row["quarantined"] or row["warnings"]
                                           or row["not_read"])
                        else "ok")
    return {row["feed"]: row for row in rows}


# --- rendering -----------------------------------------------------------------------------

def _t(key: str, lang: str, table: dict = LABELS) -> str:
    return table[key][LANGS.index(lang)]


def _unit(unit: str, lang: str) -> str:
    return unit if lang == "en" or unit not in UNITS else UNITS[unit][LANGS.index(lang)]


def _month(day: date, lang: str) -> str:
    return f"{MONTHS[lang][day.month - 1]} {day.year}"


def _month_name(day: date, lang: str) -> str:
    return f"{MONTH_NAMES[lang][day.month - 1]} {day.year}"


def _months_before(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 - months
    return date(index // 12, index % 12 + 1, 1)


def _suppression(reason: str | None, lang: str) -> str:
    for prefix, words in SUPPRESSION.items():
        if reason and reason.startswith(prefix):
            return words[LANGS.index(lang)]
    return reason or ""


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def shown_value(value: float | None, unit: str) -> str:
    """A value or an interval bound as the page shows it: format_value with a true minus sign,
    an unbounded upper bound as ∞."""
    if value is not None and math.isinf(value):
        return INFINITY if value > 0 else MINUS + INFINITY
    return format_value(value, unit).replace("-", MINUS)


def shown_change(value: float | None) -> str:
    """A change (or a bound of its interval) as the page shows it: −16.0%, +4.2%, ∞."""
    if value is not None and math.isinf(value):
        return INFINITY if value > 0 else MINUS + INFINITY
    return format_change(value).replace("-", MINUS)


def shown_target(target: float | None, target_kind: str, unit: str) -> str:
    return format_target(target, target_kind, unit).replace("-", MINUS)


def has_interval(lower: float | None, upper: float | None) -> bool:
    """Whether a 95% interval is shown: both bounds known and not the point itself ('exact'
    KPIs, zero-width, show the value alone; the legend line names the method)."""
    return lower is not None and upper is not None and not (math.isnan(lower) or math.isnan(upper)) \
        and lower != upper


def window_text(kpi: Kpi, row: dict, lang: str) -> str:
    """Which period the row is and what it is compared with: a month against the same month a year
    earlier (or the area model's pre-retrofit baseline), or a rolling window against the window
    before."""
    end = row["period_start"]
    months = row["window_months"] or (12 if row["period_grain"] == "rolling_12_months" else 1)
    if months > 1:
        start = row["window_start"] or _months_before(end, months - 1)
        span = f"{_month_name(start, lang)} – {_month_name(end, lang)}"
        return {"kk": f"{months} ай ({span}), алдыңғы {months} аймен салыстырғанда",
                "ru": f"{months} месяцев ({span}) в сравнении с предыдущими {months} месяцами",
                "en": f"{months} months to {_month_name(end, lang)} ({span}) vs the {months} months before"}[lang]
    if kpi.baseline_source == "model":
        return {"kk": f"Ай: {_month_name(end, lang)}; салыстыру базасы: жаңғыртуға дейінгі сол ай",
                "ru": f"Месяц: {_month_name(end, lang)}; база сравнения: тот же месяц до модернизации",
                "en": f"Month: {_month_name(end, lang)} vs the same month before the retrofit"}[lang]
    before = _month_name(_months_before(end, 12), lang)
    return {"kk": f"Ай: {_month_name(end, lang)}; салыстыру базасы: {before}",
            "ru": f"Месяц: {_month_name(end, lang)}; база сравнения: {before}",
            "en": f"Month: {_month_name(end, lang)} vs {before}"}[lang]


def baseline_label(kpi: Kpi, row: dict, lang: str) -> str:
    """What the baseline is, in a few words: a year earlier, the window before, or the area model's."""
    months = row["window_months"] or (12 if row["period_grain"] == "rolling_12_months" else 1)
    if months > 1:
        return _t("baseline_window", lang).format(n=months)
    return _t("baseline_model" if kpi.baseline_source == "model" else "baseline", lang)


def period_short(row: dict, lang: str) -> str:
    """The row's period in a few characters: 'Feb 2025', or '12 mo: Mar 2024 – Feb 2025'."""
    end = row["period_start"]
    months = row["window_months"] or (12 if row["period_grain"] == "rolling_12_months" else 1)
    if months == 1:
        return _month(end, lang)
    start = row["window_start"] or _months_before(end, months - 1)
    return f"{months} {_t('months_short', lang)}: {_month(start, lang)} – {_month(end, lang)}"


def _target_level(point: dict, kpi: dict) -> float | None:
    """The target on the actual's own scale: a level, or the baseline moved by the target change."""
    if kpi["target_kind"] == "level":
        return point["target"]
    if kpi["target_kind"] == "change_vs_baseline" and point["target"] is not None and point["baseline"]:
        return point["baseline"] * (1 + point["target"])
    return None


def has_target_line(kpi: Kpi) -> bool:
    return any(t is not None for t in kpi.target_levels)


def _month_index(day: date) -> int:
    return day.year * 12 + day.month - 1


def _published(point: dict) -> float | None:
    return None if point["suppressed"] or not _finite(point["actual"]) else point["actual"]


def _runs(series: list[tuple[int, object]]) -> list[list[tuple[int, object]]]:
    """The series cut where a month has no value (None) or is missing: each run is months in a row."""
    runs, previous = [], None
    for i, v in series:
        if v is None:
            previous = None
            continue
        if previous is None or i != previous + 1:
            runs.append([])
        runs[-1].append((i, v))
        previous = i
    return runs


def _band(series: list[tuple[int, float | None, float | None]]) -> list[list[tuple[int, tuple]]]:
    """The runs of months with a (finite, not zero-width) 95% interval: the shaded band's pieces."""
    return _runs([(i, (lo, hi) if _finite(lo) and _finite(hi) and has_interval(lo, hi) else None)
                  for i, lo, hi in series])


def chart(kpi: Kpi, lang: str, chart_id: str) -> str:
    """An inline SVG line chart of the tile place's months: every month with a published value on
    its own calendar position (a withheld or missing month is a gap, its neighbours are not joined
    across it), the 95% interval of the value as a shaded band, the target line dashed, and a text
    alternative (title and desc) naming every month's value and interval."""
    row, points, levels = kpi.row, kpi.trend, kpi.target_levels
    width, height, left, right, top, bottom = 640, 220, 64, 36, 16, 36
    if not points or not any(_published(p) is not None for p in points):
        return ""
    first = _month_index(points[0]["period_start"])
    pos = [_month_index(p["period_start"]) - first for p in points]
    shown = [(i, _published(p)) for i, p in zip(pos, points)]
    band = _band([(i, p["actual_lower"], p["actual_upper"]) if _published(p) is not None else (i, None, None)
                  for i, p in zip(pos, points)])
    values = [v for _, v in shown if v is not None]
    targets = [t for t in levels if t is not None]
    bounds = [b for run in band for _, pair in run for b in pair]
    low, high = min(values + targets + bounds + [0.0]), max(values + targets + bounds)
    high = high if high > low else low + 1
    span_x = max(pos[-1], 1)
    x = lambda i: left + (width - left - right) * i / span_x  # noqa: E731
    y = lambda v: top + (height - top - bottom) * (1 - (v - low) / (high - low))  # noqa: E731

    def path(series) -> str:
        return " ".join(" ".join(f"{'L' if k else 'M'}{x(i):.1f},{y(v):.1f}" for k, (i, v) in enumerate(run))
                        for run in _runs(series))

    def area(run) -> str:
        if len(run) == 1:  # a month alone: a bar as wide as a dot
            (i, (lo, hi)), = run
            return f"M{x(i) - 4:.1f},{y(hi):.1f} H{x(i) + 4:.1f} V{y(lo):.1f} H{x(i) - 4:.1f} Z"
        upper = " ".join(f"{'L' if k else 'M'}{x(i):.1f},{y(hi):.1f}" for k, (i, (lo, hi)) in enumerate(run))
        lower = " ".join(f"L{x(i):.1f},{y(lo):.1f}" for i, (lo, hi) in reversed(run))
        return f"{upper} {lower} Z"

    actual = path(shown)
    target = path(list(zip(pos, levels)))
    unit = row["unit"]

    def month_text(p: dict) -> str:
        if p["suppressed"]:
            return f"{_month(p['period_start'], lang)}: {_t('suppressed', lang)}"
        text = f"{_month(p['period_start'], lang)}: {shown_value(p['actual'], unit)}"
        if has_interval(p["actual_lower"], p["actual_upper"]):
            text += f" ({interval_text(p['actual_lower'], p['actual_upper'], unit, lang)})"
        return text

    described = "; ".join(month_text(p) for p in points)
    target_text = ""
    if targets:
        target_text = f" {_t('target_line', lang)}: " + "; ".join(
            f"{_month(p['period_start'], lang)}: {shown_value(t, unit)}"
            for p, t in zip(points, levels) if t is not None)
    ticks = "".join(
        f'<text x="{left - 6}" y="{y(v) + 4:.1f}" text-anchor="end">{html.escape(shown_value(v, unit))}</text>'
        f'<line x1="{left}" x2="{width - right}" y1="{y(v):.1f}" y2="{y(v):.1f}" class="grid"/>'
        for v in (low, (low + high) / 2, high))
    months = pos[-1] + 1
    step = max(1, months // 6)
    marked = list(range(0, months, step))
    if marked[-1] != months - 1:  # the last month always, in place of a too-close neighbour
        marked[-1 if months - 1 - marked[-1] < step / 2 + 1 and len(marked) > 1 else len(marked):] = [months - 1]
    start = points[0]["period_start"]
    labels = "".join(
        f'<text x="{x(i):.1f}" y="{height - 12}" text-anchor="middle">'
        f'{html.escape(_month(_months_before(start, -i), lang))}</text>' for i in marked)
    bands = "".join(f'<path d="{area(run)}" class="band"/>' for run in band)
    dots = "".join(f'<circle cx="{x(i):.1f}" cy="{y(v):.1f}" r="3" class="actual"/>'
                   for i, v in shown if v is not None)
    # a diamond per month with a target: a line alone would not show a target of one month
    dots += "".join(f'<path d="M{x(i) - 5:.1f},{y(t):.1f} l5,-5 l5,5 l-5,5 z" class="target-mark"/>'
                    for i, t in zip(pos, levels) if t is not None)
    title = f"{row['name_' + lang]} — {row['region_name_' + lang]}, {_t('trend_of', lang)}"
    return (
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" data-months="{len(values)}" '
        f'aria-labelledby="{chart_id}-t {chart_id}-d">'
        f'<title id="{chart_id}-t">{html.escape(title)}</title>'
        f'<desc id="{chart_id}-d">{html.escape(described + "." + target_text)}</desc>'
        f'{ticks}{labels}{bands}'
        + (f'<path d="{target}" class="target"/>' if target else "")
        + f'<path d="{actual}" class="actual"/>{dots}</svg>')


def sparkline(kpi: Kpi, lang: str) -> str:
    """The first page's trend: every month with a published value (gaps where withheld or
    missing), the 95% band shaded, the latest month a dot."""
    points = kpi.trend
    shown_points = [p for p in points if _published(p) is not None]
    if not shown_points:
        return ""
    width, height, pad = 110, 26, 3
    first = _month_index(points[0]["period_start"])
    pos = [_month_index(p["period_start"]) - first for p in points]
    shown = [(i, _published(p)) for i, p in zip(pos, points)]
    band = _band([(i, p["actual_lower"], p["actual_upper"]) if _published(p) is not None else (i, None, None)
                  for i, p in zip(pos, points)])
    values = [v for _, v in shown if v is not None] + [b for run in band for _, pair in run for b in pair]
    low, high = min(values), max(values)
    high = high if high > low else low + 1
    span_x = max(pos[-1], 1)
    x = lambda i: pad + (width - 2 * pad) * i / span_x  # noqa: E731
    y = lambda v: pad + (height - 2 * pad) * (1 - (v - low) / (high - low))  # noqa: E731
    runs = _runs(shown)
    line = " ".join(" ".join(f"{'L' if k else 'M'}{x(i):.1f},{y(v):.1f}" for k, (i, v) in enumerate(run))
                    for run in runs)
    bands = "".join(
        '<path class="band" d="'
        + " ".join(f"{'L' if k else 'M'}{x(i):.1f},{y(hi):.1f}" for k, (i, (lo, hi)) in enumerate(run))
        + " " + " ".join(f"L{x(i):.1f},{y(lo):.1f}" for i, (lo, hi) in reversed(run)) + ' Z"/>'
        for run in band if len(run) > 1)
    # a month alone between gaps draws no line: a dot; and the latest month is a dot
    alone = [run[0] for run in runs if len(run) == 1]
    last = runs[-1][-1]
    dots = "".join(f'<circle cx="{x(i):.1f}" cy="{y(v):.1f}" r="{2.2 if (i, v) == last else 1.6}"/>'
                   for i, v in dict.fromkeys(alone + [last]))
    label = (f"{_t('trend', lang)}: {_month(shown_points[0]['period_start'], lang)} – "
             f"{_month(shown_points[-1]['period_start'], lang)}")
    return (f'<svg class="spark" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
            f'aria-label="{html.escape(label)}" data-months="{len(shown_points)}">'
            f'{bands}<path class="line" d="{line}"/>{dots}</svg>')


def interval_text(lower: float, upper: float, unit: str | None, lang: str) -> str:
    """'−22.1% to −9.4%' (en), 'от −22.1% до −9.4%' (ru), '−22.1% … −9.4%' (kk); unit None: a change."""
    show = shown_change if unit is None else (lambda v: shown_value(v, unit))
    words = f"{_t('from', lang)} " if _t("from", lang) else ""
    return f"{words}{show(lower)} {_t('to', lang)} {show(upper)}"


def render(data: dict, built_at: datetime) -> str:
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    env = Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"),
                      autoescape=select_autoescape(["html", "j2"]), trim_blocks=True, lstrip_blocks=True,
                      extensions=["jinja2.ext.do"])
    env.globals.update(t=_t, STATUS=STATUS, STATUS_MEANING=STATUS_MEANING, STATUS_ORDER=STATUS_ORDER,
                       METHODS=METHODS, HEALTH=HEALTH, LANGS=LANGS, PRINT_ENDS=PRINT_ENDS, unit=_unit,
                       month=_month, value=shown_value, change=shown_change, target=shown_target,
                       has_interval=has_interval, interval=interval_text, is_inf=lambda v: v == math.inf,
                       window=window_text, period=period_short, baseline_label=baseline_label, suppression=_suppression, chart=chart,
                       sparkline=sparkline, has_target_line=has_target_line)
    return env.get_template("scorecard.html.j2").render(built_at=built_at, **data)


def find_chromium() -> str | None:
    """$QALA_CHROMIUM, else Chromium or Chrome on the PATH."""
    for name in (os.environ.get("QALA_CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if name and (found := shutil.which(name)):
            return found
    return None


# Chromium's flags for a closed network: without the background-networking ones it keeps trying
# to reach Google's hosts. The page itself requests nothing.
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-extensions"]


def print_pdf(page: Path, pdf: Path, chromium: str) -> None:
    """The page printed by headless Chromium: all three languages, each from a new page."""
    with tempfile.TemporaryDirectory() as profile:
        partial = pdf.with_suffix(".pdf.partial")
        done = subprocess.run(
            [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--no-pdf-header-footer",
             f"--print-to-pdf={partial}", page.resolve().as_uri()],
            capture_output=True, text=True, timeout=300)
        if done.returncode != 0 or not partial.exists() or partial.stat().st_size == 0:
            partial.unlink(missing_ok=True)
            raise RuntimeError(f"Chromium could not print {page} to PDF (exit {done.returncode}): "
                               f"{done.stderr[-2000:]}")
        partial.replace(pdf)


def write(root: Path | None = None, out: Path | None = None) -> tuple[Path, Path | None]:
    """reports/scorecard.html from the lake as it is now, and reports/scorecard.pdf when Chromium
    is installed (or both in `out`). Each file is written beside and renamed into place, so a
    reader never opens a half-written one."""
    root = root or settings.warehouse_root()
    con = lake.connect(root, read_only=True)
    try:
        with lake.explained(root):  # a damaged lake file: named, with its table and the repair
            data = gather(con)
    finally:
        con.close()
    out = out or settings.reports_dir(root)
    out.mkdir(parents=True, exist_ok=True)
    page = settings.write_atomic(out / "scorecard.html", render(data, datetime.now().astimezone()))
    chromium = find_chromium()
    if chromium is None:
        print(f"scorecard: {page}; no PDF: Chromium is not installed (Debian: apt-get install chromium, "
              "or set QALA_CHROMIUM)")
        return page, None
    print_pdf(page, out / "scorecard.pdf", chromium)
    print(f"scorecard: {page} and {out / 'scorecard.pdf'}")
    return page, out / "scorecard.pdf"
