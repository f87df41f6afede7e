"""The ministers' scorecard: `marts.kpi_scorecard` as one self-contained HTML file in Kazakh,
Russian and English ($QALA_WAREHOUSE/reports/scorecard.html), and the same page printed to PDF
by Chromium (reports/scorecard.pdf).

Everything shown is read from the marts and the load ledger in one read-only session: tiles and
region tables from marts.kpi_scorecard, trends from marts.kpi_values, the feeds behind a KPI from
the batch ids of its rows, their health from ops.load_ledger and ops.gate_results. The page asks
no other host for anything (inline CSS, SVG and a few lines of script), so it opens offline and
travels by e-mail. Without script it shows all three languages one after another, as in print.
"""

from __future__ import annotations

import html
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
}
STATUS = {
    "on-track": ("Жоспар бойынша", "В графике", "On track"),
    "at-risk": ("Қауіп бар", "Под угрозой", "At risk"),
    "off-track": ("Артта қалуда", "Отстаёт", "Off track"),
    "no-baseline": ("Салыстыру базасы жоқ", "Нет базы сравнения", "No baseline"),
    "monitoring": ("Бақылау", "Мониторинг", "Monitoring"),
    "suppressed": ("Жасырылған", "Скрыто", "Suppressed"),
}
HEALTH = {
    "ok": ("Қалыпты", "Норма", "OK"),
    "warning": ("Ескерту бар", "Есть предупреждения", "Warnings"),
    "blocked": ("Бұғатталған", "Заблокировано", "Blocked"),
}
# The catalogue's units are in English; their Kazakh and Russian words.
UNITS = {
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


@dataclass
class Kpi:
    row: dict                      # the tile's row: the country, or the KPI's only place
    rows: list[dict]               # every place of the KPI's latest month
    trend: list[dict]              # the tile place's months from kpi_values
    feeds: list[str] = field(default_factory=list)

    @property
    def target_levels(self) -> list[float | None]:
        """Each trend month's target on the actual's own scale (None where there is none)."""
        return [_target_level(p, self.row) for p in self.trend]


def gather(con) -> dict:
    """Everything the page shows, from one read-only session on the lake."""
    areas = lake.rows(con, "select area, name_kk, name_ru, name_en from reference.programme_areas order by sort_order")
    rows = lake.rows(con, """select * exclude (batch_ids) from marts.kpi_scorecard
                         order by kpi_id, region_code = 'KZ' desc, region_name_en""")
    feeds = defaultdict(list)
    for kpi_id, feed in con.execute(
            """select distinct s.kpi_id, l.feed
               from (select kpi_id, unnest(batch_ids) as batch_id from marts.kpi_scorecard) s
               join ops.load_ledger l using (batch_id) order by all""").fetchall():
        feeds[kpi_id].append(feed)
    by_kpi = defaultdict(list)
    for row in rows:
        by_kpi[row["kpi_id"]].append(row)
    kpis = defaultdict(list)
    for kpi_id, places in by_kpi.items():
        country = [r for r in places if r["region_code"] == "KZ"]
        tile = country[0] if country else places[0] if len(places) == 1 else None
        trend = lake.rows(con, """select period_start, actual, baseline, target, suppressed from marts.kpi_values
                              where kpi_id = ? and region_code = ? order by period_start""",
                      [kpi_id, tile["region_code"]]) if tile else []
        kpis[places[0]["area"]].append(Kpi(tile, places, trend, feeds[kpi_id]))
    snapshot = con.execute(
        f"""select snapshot_id, snapshot_time from ducklake_snapshots('{settings.LAKE_ALIAS}')
            where snapshot_id = ?""", [max((r["lake_snapshot_id"] for r in rows), default=None)]).fetchone()
    return {"areas": areas, "kpis": kpis, "health": feed_health(con), "snapshot": snapshot}


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


def _suppression(reason: str | None, lang: str) -> str:
    for prefix, words in SUPPRESSION.items():
        if reason and reason.startswith(prefix):
            return words[LANGS.index(lang)]
    return reason or ""


def _target_level(point: dict, kpi: dict) -> float | None:
    """The target on the actual's own scale: a level, or the baseline moved by the target change."""
    if kpi["target_kind"] == "level":
        return point["target"]
    if kpi["target_kind"] == "change_vs_baseline" and point["target"] is not None and point["baseline"]:
        return point["baseline"] * (1 + point["target"])
    return None


def has_target_line(kpi: Kpi) -> bool:
    return any(t is not None for t in kpi.target_levels)


def chart(kpi: Kpi, lang: str, chart_id: str) -> str:
    """An inline SVG line chart of the tile place's months, with the target line dashed, and a
    text alternative (title and desc) naming every month's value."""
    row, points, levels = kpi.row, kpi.trend, kpi.target_levels
    width, height, left, right, top, bottom = 640, 220, 64, 36, 16, 36
    shown = [None if p["suppressed"] else p["actual"] for p in points]  # per month: the value drawn
    values = [v for v in shown if v is not None]
    targets = [t for t in levels if t is not None]
    if not values:
        return ""
    low, high = min(values + targets + [0.0]), max(values + targets)
    high = high if high > low else low + 1
    span_x = max(len(points) - 1, 1)
    x = lambda i: left + (width - left - right) * i / span_x  # noqa: E731
    y = lambda v: top + (height - top - bottom) * (1 - (v - low) / (high - low))  # noqa: E731

    def path(series):
        parts, pen = [], "M"
        for i, v in series:
            if v is None:
                pen = "M"
                continue
            parts.append(f"{pen}{x(i):.1f},{y(v):.1f}")
            pen = "L"
        return " ".join(parts)

    actual = path(enumerate(shown))
    target = path(enumerate(levels))
    unit = row["unit"]
    described = "; ".join(
        f"{_month(p['period_start'], lang)}: "
        + (_t("suppressed", lang) if p["suppressed"] else format_value(p["actual"], unit))
        for p in points)
    target_text = ""
    if targets:
        target_text = f" {_t('target_line', lang)}: " + "; ".join(
            f"{_month(p['period_start'], lang)}: {format_value(t, unit)}"
            for p, t in zip(points, levels) if t is not None)
    ticks = "".join(
        f'<text x="{left - 6}" y="{y(v) + 4:.1f}" text-anchor="end">{html.escape(format_value(v, unit))}</text>'
        f'<line x1="{left}" x2="{width - right}" y1="{y(v):.1f}" y2="{y(v):.1f}" class="grid"/>'
        for v in (low, (low + high) / 2, high))
    step = max(1, len(points) // 6)
    marked = list(range(0, len(points), step))
    if marked[-1] != len(points) - 1:  # the last month always, in place of a too-close neighbour
        marked[-1 if len(points) - 1 - marked[-1] < step / 2 + 1 and len(marked) > 1 else len(marked):] = [len(points) - 1]
    labels = "".join(
        f'<text x="{x(i):.1f}" y="{height - 12}" text-anchor="middle">{html.escape(_month(points[i]["period_start"], lang))}</text>'
        for i in marked)
    dots = "".join(f'<circle cx="{x(i):.1f}" cy="{y(v):.1f}" r="3" class="actual"/>'
                   for i, v in enumerate(shown) if v is not None)
    # a diamond per month with a target: a line alone would not show a target of one month
    dots += "".join(f'<path d="M{x(i) - 5:.1f},{y(t):.1f} l5,-5 l5,5 l-5,5 z" class="target-mark"/>'
                    for i, t in enumerate(levels) if t is not None)
    title = f"{row['name_' + lang]} — {row['region_name_' + lang]}, {_t('trend_of', lang)}"
    return (
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
        f'aria-labelledby="{chart_id}-t {chart_id}-d">'
        f'<title id="{chart_id}-t">{html.escape(title)}</title>'
        f'<desc id="{chart_id}-d">{html.escape(described + "." + target_text)}</desc>'
        f'{ticks}{labels}'
        + (f'<path d="{target}" class="target"/>' if target else "")
        + f'<path d="{actual}" class="actual"/>{dots}</svg>')


def render(data: dict, built_at: datetime) -> str:
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    env = Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"),
                      autoescape=select_autoescape(["html", "j2"]), trim_blocks=True, lstrip_blocks=True,
                      extensions=["jinja2.ext.do"])
    env.globals.update(t=_t, STATUS=STATUS, HEALTH=HEALTH, LANGS=LANGS, unit=_unit, month=_month,
                       value=format_value, change=format_change, target=format_target,
                       suppression=_suppression, chart=chart,
                       has_target_line=has_target_line)
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
