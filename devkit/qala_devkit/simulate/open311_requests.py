"""The akimats' 109 service desks: service requests as Open311 GeoReport v2 JSON, one file a day.

The source system is the 109 desks of the regional centres and the three cities, exporting in the
Open311 GeoReport v2 "GET requests" format. The daily export is the JSON array of the service
requests created or updated that day, each in its state at the end of the day: a request appears
on its creation day (open, or closed if it was closed the same day) and again on the day it is
closed (closed, `updated_datetime` = the closing time). Exactly the GeoReport v2 response fields,
in the spec's order: service_request_id, status (open|closed), status_notes, service_name,
service_code, description, agency_responsible, service_notice, requested_datetime,
updated_datetime, expected_datetime (W3C / ISO 8601 with the offset of the region's zone),
address, address_id, zipcode, lat, long, media_url.

File layout: `landing/housing/open311_requests/<YYYY-MM-DD>/requests_<YYYY-MM-DD>.json`: `[` on
line 1, one request object per line followed by `,` (the last without), `]` on the last line.
Sorted by updated_datetime. The export day is the Almaty-time day of the national server; each
request's times carry its region's offset: UTC+5 in the western regions (Aktobe, Atyrau, West
Kazakhstan, Mangystau, Kyzylorda) and UTC+6 elsewhere until 2024-03-01, UTC+5 everywhere since.

Volumes at scale 1.0 (an assumption, not a published figure: ~0.3 requests per 1,000 residents
a day in winter, ~0.13 in summer): ~5,900 requests created a day nationally in January,
~2,700 in July (heating and snow requests are seasonal), split by region population, 20% fewer
at weekends, and each appears a second time when closed on a later day: ~10,000 objects a day
in winter. The service catalogue (6 services) is fixed-size.

Planted effect HCS-03: time to close, lognormal per service with the stated median and log
sigma (clipped at 720 h); a stated share of each service's requests is never closed (stays
open). Descriptions are free text in Russian (60%) or Kazakh (40%), 5% empty; 12% of the
non-empty ones end with the requester's mobile number (personal data a pipeline must scrub),
written +7 7XX XXX XX XX, 87XXXXXXXXX or +77XXXXXXXXX. 30% of requests carry a photo
(`media_url`), 25% have no address_id (not matched to the address register); zipcodes are the
6-digit Kazpost codes.

Defects at the run's defect rate, each logged with its line: no requested_datetime or
service_code (`missing_required`, the value null), lat 0 or a negative long
(`outside_kazakhstan`), a requested_datetime after the export day (`future_date`), a line
repeated right after itself (`duplicate_record`), the file cut inside its last request
(`truncated_file`). The last request of a file never carries a row defect (it is the one a
truncation cuts).

Requests live across days: a day's export re-derives the previous 30 days' requests from their
creation days' streams (cached), so any day regenerates alone to the same bytes. Everything per
request is vectorised.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import polars as pl

from qala_devkit.simulate.base import DayContext, RowDefects, write_atomic
from qala_devkit.simulate.people import MOBILE_CODES, STREET_NAMES
from qala_devkit.simulate.street_lighting import local_day_bounds
from qala_devkit.simulate.world import load_regions, population_shares, rng_for

FEED = "housing/open311_requests"
DOMAIN, NAME = FEED.split("/")

FIELDS = ("service_request_id", "status", "status_notes", "service_name", "service_code", "description",
          "agency_responsible", "service_notice", "requested_datetime", "updated_datetime",
          "expected_datetime", "address", "address_id", "zipcode", "lat", "long", "media_url")  # fmt: skip


@dataclass(frozen=True)
class Service:
    code: str
    name: str
    agency: str
    notice: str
    per_day: float  # national requests a day at scale 1 in a month with multiplier 1
    months: tuple[float, ...]  # January..December multipliers
    median_hours: float
    sigma: float  # of log hours
    never_closed: float
    sla_hours: int  # expected_datetime = requested + sla
    texts_ru: tuple[str, ...]
    texts_kk: tuple[str, ...]
    notes: tuple[str, ...]


SERVICES = (
    Service("street_light", "Не горит уличное освещение", "Управление энергетики и коммунального хозяйства",
            "Срок устранения — 3 суток", 700, (1.3, 1.2, 1.0, 0.8, 0.7, 0.6, 0.6, 0.7, 0.9, 1.1, 1.3, 1.4),
            36.0, 0.8, 0.04, 72,
            ("Не горит фонарь возле подъезда.", "Не работает уличное освещение на всей улице.",
             "Фонарь мигает всю ночь, во дворе темно."),
            ("Кіреберіс жанындағы шам жанбайды.", "Көшеде жарық жоқ, кешке қараңғы."),
            ("Лампа заменена.", "Восстановлено питание линии освещения.", "Заменён светильник.")),
    Service("pothole", "Яма на дороге", "Управление городской мобильности", "Срок устранения — 10 суток",
            500, (0.6, 0.8, 1.6, 2.0, 1.6, 1.0, 0.8, 0.8, 0.8, 0.9, 0.8, 0.6), 120.0, 0.9, 0.10, 240,
            ("Большая яма на проезжей части.", "Яма во дворе, машины объезжают по тротуару.",
             "Провал асфальта у остановки."),
            ("Жолда үлкен шұңқыр пайда болды.", "Аулада асфальт бұзылған."),
            ("Выполнен ямочный ремонт.", "Включено в план ремонта дороги.")),
    Service("heating", "Нет отопления", "Управление энергетики и коммунального хозяйства",
            "Срок устранения — 24 часа", 1200, (1.2, 1.0, 0.8, 0.5, 0, 0, 0, 0, 0, 1.6, 1.0, 1.1),
            8.0, 0.7, 0.02, 24,
            ("В квартире холодные батареи.", "Нет отопления во всём доме.",
             "Батареи еле тёплые, дома 15 градусов."),
            ("Пәтерде жылу жоқ.", "Үйде батареялар суық."),
            ("Стояк развоздушен, отопление восстановлено.", "Устранена авария на теплосети.")),
    Service("garbage", "Не вывезен мусор", "Управление экологии и окружающей среды",
            "Срок устранения — 2 суток", 900, (0.9, 0.9, 1.0, 1.1, 1.2, 1.3, 1.3, 1.3, 1.1, 1.0, 0.9, 0.9),
            20.0, 0.6, 0.03, 48,
            ("Контейнеры переполнены, мусор не вывозят.", "Стихийная свалка во дворе."),
            ("Қоқыс шығарылмаған, контейнерлер толы.", "Аулада қоқыс үйіліп жатыр."),
            ("Мусор вывезен.", "Площадка убрана, график вывоза уточнён.")),
    Service("water_leak", "Порыв водопровода", "Водоканал", "Срок устранения — 24 часа",
            800, (1.2, 1.1, 1.0, 1.0, 0.9, 0.9, 0.9, 0.9, 0.9, 1.0, 1.1, 1.2), 12.0, 0.8, 0.03, 24,
            ("Течёт вода из-под асфальта.", "Порыв трубы в подвале, заливает.", "Утечка воды из колодца."),
            ("Құбыр жарылып, су ағып жатыр.", "Жертөлеге су толып кетті."),
            ("Порыв устранён.", "Заменён участок трубы.")),
    Service("snow_removal", "Не убран снег", "Управление городской мобильности", "Срок устранения — 2 суток",
            1000, (1.5, 1.3, 0.7, 0, 0, 0, 0, 0, 0, 0, 0.6, 1.3), 24.0, 0.7, 0.05, 48,
            ("Двор не чищен от снега.", "Гололёд на тротуаре, не посыпано.",
             "Снег с дороги сгребли на тротуар."),
            ("Аулада қар тазаланбаған.", "Жаяу жүргінші жолы мұз болып тұр."),
            ("Снег убран.", "Тротуар обработан противогололёдной смесью.")),
)  # fmt: skip
HEATING_SEASON_END = (4, 15)  # the heating season ends on 15 April: no heating requests after it

# The regional centre whose 109 desk serves each region, its postcode head and its time zone.
CITIES = {
    "10": ("г. Семей", "0714", "Asia/Almaty"), "11": ("г. Кокшетау", "0200", "Asia/Almaty"),
    "15": ("г. Актобе", "0300", "Asia/Aqtobe"), "19": ("г. Конаев", "0408", "Asia/Almaty"),
    "23": ("г. Атырау", "0600", "Asia/Atyrau"), "27": ("г. Уральск", "0900", "Asia/Oral"),
    "31": ("г. Тараз", "0800", "Asia/Almaty"), "33": ("г. Талдыкорган", "0400", "Asia/Almaty"),
    "35": ("г. Караганда", "1000", "Asia/Almaty"), "39": ("г. Костанай", "1100", "Asia/Qostanay"),
    "43": ("г. Кызылорда", "1200", "Asia/Qyzylorda"), "47": ("г. Актау", "1300", "Asia/Aqtau"),
    "55": ("г. Павлодар", "1400", "Asia/Almaty"), "59": ("г. Петропавловск", "1500", "Asia/Almaty"),
    "61": ("г. Туркестан", "1612", "Asia/Almaty"), "62": ("г. Жезказган", "1006", "Asia/Almaty"),
    "63": ("г. Усть-Каменогорск", "0700", "Asia/Almaty"), "71": ("г. Астана", "0100", "Asia/Almaty"),
    "75": ("г. Алматы", "0500", "Asia/Almaty"), "79": ("г. Шымкент", "1600", "Asia/Almaty"),
}  # fmt: skip

# Requests by local hour of the day.
HOURLY = (
    0.3, 0.2, 0.15, 0.1, 0.1, 0.2, 0.6, 1.4, 2.4, 2.8, 2.7, 2.5,
    2.3, 2.2, 2.2, 2.2, 2.3, 2.4, 2.5, 2.4, 2.1, 1.6, 1.0, 0.6,
)  # fmt: skip
WEEKEND_FACTOR = 0.8
COORD_SD_DEG, COORD_MAX_DEG = 0.04, 0.12  # around the city centre
MAX_CLOSE_HOURS = 720
LOOKBACK_DAYS = MAX_CLOSE_HOURS // 24  # a request closes at most 30 days after it is created
MIN_CLOSE_HOURS = 0.25

KAZAKH_TEXT_SHARE = 0.40
EMPTY_DESCRIPTION_SHARE = 0.05
PHONE_SHARE = 0.12  # of the non-empty descriptions
PHONE_LEADS = (" Тел.: ", " Мой номер ", " Байланыс телефоны: ")
MEDIA_SHARE = 0.30
NO_ADDRESS_ID_SHARE = 0.25
MEDIA_URL = "https://media.109.example.kz/requests/"


@dataclass(frozen=True)
class Params:
    """The planted effect (aligned with SERVICES), overridable without editing the module."""

    median_hours: tuple[float, ...] = tuple(s.median_hours for s in SERVICES)
    sigma: tuple[float, ...] = tuple(s.sigma for s in SERVICES)
    never_closed: tuple[float, ...] = tuple(s.never_closed for s in SERVICES)


def expected_created(day: date, scale: float = 1.0) -> np.ndarray:
    """Expected requests created on `day`, (regions, services)."""
    month = np.array([s.months[day.month - 1] for s in SERVICES])
    if (day.month, day.day) > HEATING_SEASON_END and day.month < 10:
        month[[s.code for s in SERVICES].index("heating")] = 0.0
    per_service = np.array([s.per_day for s in SERVICES]) * month
    weekday = WEEKEND_FACTOR if day.weekday() >= 5 else 1.0
    return np.outer(population_shares(), per_service) * weekday * scale


def generate_day(ctx: DayContext) -> int:
    """Write the day's GeoReport export; return the request objects written."""
    day, params = ctx.day, ctx.params or Params()
    frame = _render(_delivered(ctx.seed, day, ctx.scale, params))
    path = ctx.folder() / f"requests_{day.isoformat()}.json"
    frame = _plant_defects(ctx, frame, path)
    data = _json_array(frame)
    if ctx.maybe("truncated_file") and frame.height > 1:
        last = data.rindex(b"\n", 0, len(data) - 3) + 1  # where the last request's line starts
        keep = max(1, int((len(data) - 3 - last) * ctx.rng("truncate").uniform(0.2, 0.8)))
        data = data[: last + keep]
        ctx.record(path, "truncated_file", frame.height + 1,
                   detail="the transfer stopped inside this request")
    write_atomic(path, data)
    return frame.height


def _json_array(frame: pl.DataFrame) -> bytes:
    """The GeoReport JSON array, one request object per line: `[`, `{...},` ..., `{...}`, `]`.

    JSON escapes newlines inside strings, so every raw newline of the NDJSON ends an object."""
    buffer = io.BytesIO()
    frame.write_ndjson(buffer)
    body = buffer.getbuffer()
    if not body:
        return b"[\n]\n"
    return b"".join([b"[\n", bytes(body[:-1]).replace(b"\n", b",\n"), b"\n]\n"])


def _plant_defects(ctx: DayContext, frame: pl.DataFrame, path: Path) -> pl.DataFrame:
    """Row defects on every request but the last (a truncation cuts that one; and a duplicate of
    it would lose the comma its original has), each logged with its line (request i: line i+2)."""
    if ctx.defect_rate <= 0 or frame.height < 2:
        return frame
    planter = RowDefects(ctx, frame)
    planter.taken[-1] = True
    planter.blank("requested_datetime", share=0.2)
    planter.blank("service_code", share=0.1)
    planter.replace("outside_kazakhstan", "lat", lambda rng, old: [0.0] * len(old), share=0.15)
    planter.replace("outside_kazakhstan", "long", lambda rng, old: [-v for v in old], share=0.15)
    planter.replace("future_date", "requested_datetime", _in_the_future, share=0.2)
    planter.duplicate(share=0.3)
    return planter.finish(path, header_lines=1)


def _in_the_future(rng: np.random.Generator, old: list[str]) -> list[str]:
    """A clock set a year wrong: 35-400 days later (later than the export day, as a request on
    the export is at most 30 days old)."""
    shift = rng.integers(35, 401, len(old))
    return [(datetime.fromisoformat(v) + timedelta(days=int(k))).isoformat()
            for v, k in zip(old, shift, strict=True)]


def ground_truth(params: Params = Params()) -> dict:
    """Every parameter of the simulated feed, for checking what the pipeline recovers."""
    january, july = expected_created(date(2025, 1, 15)).sum(), expected_created(date(2025, 7, 15)).sum()
    return {
        "system": "the akimats' 109 desks (regional centres and cities), Open311 GeoReport v2 GET requests",
        "created_per_weekday_at_scale_1": {"january": round(float(january), 1),
                                           "july": round(float(july), 1)},
        "allocation": "Poisson per region and service: per_day * month multiplier * population share "
                      f"* {WEEKEND_FACTOR} at weekends * scale",
        "fields": list(FIELDS),
        "services": {
            s.code: {"service_name": s.name, "agency_responsible": s.agency, "per_day": s.per_day,
                     "month_multipliers": list(s.months), "sla_hours": s.sla_hours}
            for s in SERVICES
        },  # fmt: skip
        "heating_season": f"1 October - {HEATING_SEASON_END[1]} April (by the month multipliers)",
        "hourly_weights": list(HOURLY),
        "effects": {
            "time_to_close": {
                "id": "HCS-03",
                "distribution": "lognormal: median * exp(sigma * N(0, 1)) hours, "
                                f"clipped to [{MIN_CLOSE_HOURS}, {MAX_CLOSE_HOURS}]",
                "by_service": {
                    s.code: {"median_hours": m, "sigma_log": sd, "never_closed_share": nc}
                    for s, m, sd, nc in zip(SERVICES, params.median_hours, params.sigma,
                                            params.never_closed, strict=True)
                },  # fmt: skip
                "measured_as": "updated_datetime - requested_datetime of the closed objects",
            },
        },
        "descriptions": {"kazakh_share": KAZAKH_TEXT_SHARE, "empty_share": EMPTY_DESCRIPTION_SHARE,
                         "phone_share_of_non_empty": PHONE_SHARE,
                         "phone_formats": ["+7 7XX XXX XX XX", "87XXXXXXXXX", "+77XXXXXXXXX"]},
        "media_share": MEDIA_SHARE,
        "no_address_id_share": NO_ADDRESS_ID_SHARE,
        "coordinates": {"sd_deg": COORD_SD_DEG, "max_offset_deg": COORD_MAX_DEG,
                        "around": "region centre_lat/centre_lon"},  # fmt: skip
        "encoding": "utf-8",
        "defect_kinds": ["missing_required", "outside_kazakhstan", "future_date", "duplicate_record",
                         "truncated_file"],  # fmt: skip
    }


# --- the requests ----------------------------------------------------------------------------


@lru_cache(maxsize=LOOKBACK_DAYS + 2)
def _created(seed: int, day: date, scale: float, params: Params) -> pl.DataFrame:
    """The requests created on `day` (numeric columns; text attributes come from `key`).

    Cached: the next LOOKBACK_DAYS days' exports re-read them for the ones they close.
    """
    rng = rng_for(seed, FEED, day)
    counts = rng.poisson(expected_created(day, scale))
    cell = np.repeat(np.arange(counts.size), counts.ravel())
    region, service = cell // len(SERVICES), cell % len(SERVICES)
    n = cell.size
    start, end = local_day_bounds(day)
    hourly = np.asarray(HOURLY) / np.sum(HOURLY)
    second = rng.choice(24, n, p=hourly) * 3600 + rng.integers(0, 3600, n)
    requested = start + np.minimum(second, end - start - 1)
    never = rng.random(n) < np.asarray(params.never_closed)[service]
    median, sigma = np.asarray(params.median_hours)[service], np.asarray(params.sigma)[service]
    hours = (median * np.exp(sigma * rng.normal(size=n))).clip(MIN_CLOSE_HOURS, MAX_CLOSE_HOURS)
    closes = np.where(never, -1, requested + np.rint(hours * 3600).astype(np.int64))
    offset = rng.normal(0.0, COORD_SD_DEG, (2, n)).clip(-COORD_MAX_DEG, COORD_MAX_DEG)
    regions = load_regions()
    lat = np.array([r.centre_lat for r in regions])[region] + offset[0]
    lon = np.array([r.centre_lon for r in regions])[region] + offset[1]
    key = rng.integers(0, np.iinfo(np.int64).max, n)
    frame = pl.DataFrame({
        "region": pl.Series(region, dtype=pl.UInt8), "service": pl.Series(service, dtype=pl.UInt8),
        "requested": requested, "closes": closes, "lat": lat.round(6), "long": lon.round(6), "key": key,
    }).sort("requested", maintain_order=True)  # fmt: skip
    # The desk numbers its requests per region and day, in order of arrival.
    return frame.with_columns(seq=pl.int_range(1, pl.len() + 1).over("region"), created=pl.lit(day))


def _delivered(seed: int, day: date, scale: float, params: Params) -> pl.DataFrame:
    """The requests in day's export: created today, or closed today; with status and update time."""
    start, end = local_day_bounds(day)
    today = _created(seed, day, scale, params)
    earlier = [_created(seed, day - timedelta(days=k), scale, params) for k in range(LOOKBACK_DAYS, 0, -1)]
    closing = pl.concat(earlier).filter(pl.col("closes").is_between(start, end, closed="left"))
    frame = pl.concat([today, closing])
    closed = (pl.col("closes") >= 0) & (pl.col("closes") < end)
    return frame.with_columns(
        closed=closed, updated=pl.when(closed).then(pl.col("closes")).otherwise(pl.col("requested")),
    ).sort("updated", "created", "region", "seq")


# --- rendering -------------------------------------------------------------------------------


def _mix(key: np.ndarray, salt: int) -> np.ndarray:
    """A well-spread non-negative int64 from each request's key and a salt (splitmix64), so a
    request's text attributes are the same on its creation day and on its closing day."""
    z = key.astype(np.uint64) + np.uint64(salt * 0x9E3779B97F4A7C15 % 2**64)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return ((z ^ (z >> np.uint64(31))) >> np.uint64(1)).astype(np.int64)


def _uniform(key: np.ndarray, salt: int) -> np.ndarray:
    return (_mix(key, salt) >> 11) / float(1 << 52)


def _catalogue(groups: list[tuple[str, ...]]) -> tuple[pl.Series, np.ndarray, np.ndarray]:
    """All the groups' texts in one Series, each group's first index and size."""
    sizes = np.array([len(texts) for texts in groups])
    return pl.Series([t for texts in groups for t in texts], dtype=pl.String), np.cumsum(sizes) - sizes, sizes


def _render(requests: pl.DataFrame) -> pl.DataFrame:
    """Numeric requests -> the GeoReport objects' fields, in the spec's order.

    Every text comes from a small catalogue gathered by an index drawn from the request's key:
    one vectorised query, no strings built per row in Python or numpy."""
    key = requests["key"].to_numpy()
    service = requests["service"].to_numpy().astype(np.int64)
    prefixes = [r.kato_prefix for r in load_regions()]
    # One of the service's texts: Russian, or Kazakh (those follow the Russian ones).
    texts, first, _ = _catalogue([(*s.texts_ru, *s.texts_kk) for s in SERVICES])
    n_ru = np.array([len(s.texts_ru) for s in SERVICES])[service]
    n_kk = np.array([len(s.texts_kk) for s in SERVICES])[service]
    kazakh = _uniform(key, 1) < KAZAKH_TEXT_SHARE
    text_index = first[service] + np.where(kazakh, n_ru + _mix(key, 2) % n_kk, _mix(key, 2) % n_ru)
    notes, first, sizes = _catalogue([s.notes for s in SERVICES])
    notes_index = first[service] + _mix(key, 10) % sizes[service]
    numbers = pl.DataFrame({
        "text": text_index, "notes": notes_index,
        "phone": _uniform(key, 3) < PHONE_SHARE, "empty": _uniform(key, 4) < EMPTY_DESCRIPTION_SHARE,
        "street": _mix(key, 5) % len(STREET_NAMES), "house": _mix(key, 6) % 180 + 1,
        "address_id": _mix(key, 7) % 10**15 + 10**15,
        "has_address_id": _uniform(key, 11) >= NO_ADDRESS_ID_SHARE,
        "zip": _mix(key, 8) % 100, "media": _uniform(key, 9) < MEDIA_SHARE,
        "code": _mix(key, 12) % MOBILE_CODES.size, "number": _mix(key, 13) % 10_000_000,
        "style": _mix(key, 14) % 3, "lead": _mix(key, 15) % len(PHONE_LEADS),
    })  # fmt: skip
    region, service_ = pl.col("region"), pl.col("service")

    def catalogue(values, index: pl.Expr) -> pl.Expr:
        return pl.lit(pl.Series(list(values), dtype=pl.String)).gather(index)

    number = pl.col("number").cast(pl.String).str.zfill(7)
    code = catalogue(MOBILE_CODES.astype(str), pl.col("code"))
    phone = (pl.when(pl.col("style") == 0)
             .then(pl.concat_str(pl.lit("+7 "), code, pl.lit(" "), number.str.slice(0, 3), pl.lit(" "),
                                 number.str.slice(3, 2), pl.lit(" "), number.str.slice(5, 2)))
             .when(pl.col("style") == 1).then(pl.concat_str(pl.lit("8"), code, number))
             .otherwise(pl.concat_str(pl.lit("+7"), code, number)))  # fmt: skip
    text = pl.lit(texts).gather(pl.col("text"))
    request_id = pl.concat_str(catalogue(prefixes, region), pl.col("created").dt.strftime("%Y%m%d"),
                               pl.col("seq").cast(pl.String).str.zfill(6))  # fmt: skip
    city = catalogue([CITIES[p][0] for p in prefixes], region)
    times = _local_times(requests)
    return (
        pl.concat([requests, numbers, times], how="horizontal").lazy()
        .select(
            service_request_id=request_id,
            status=pl.when(pl.col("closed")).then(pl.lit("closed")).otherwise(pl.lit("open")),
            status_notes=pl.when(pl.col("closed")).then(pl.lit(notes).gather(pl.col("notes"))),
            service_name=catalogue([s.name for s in SERVICES], service_),
            service_code=catalogue([s.code for s in SERVICES], service_),
            description=pl.when(~pl.col("empty")).then(
                pl.when(pl.col("phone"))
                .then(pl.concat_str(text, catalogue(PHONE_LEADS, pl.col("lead")), phone))
                .otherwise(text)),
            agency_responsible=catalogue([s.agency for s in SERVICES], service_),
            service_notice=catalogue([s.notice for s in SERVICES], service_),
            requested_datetime="requested_datetime",
            updated_datetime="updated_datetime",
            expected_datetime="expected_datetime",
            address=pl.concat_str(city, pl.lit(", ул. "), catalogue(STREET_NAMES, pl.col("street")),
                                  pl.lit(", "), pl.col("house").cast(pl.String)),
            address_id=pl.when(pl.col("has_address_id")).then(pl.col("address_id").cast(pl.String)),
            zipcode=pl.concat_str(catalogue([CITIES[p][1] for p in prefixes], region),
                                  pl.col("zip").cast(pl.String).str.zfill(2)),
            lat="lat",
            long="long",
            media_url=pl.when(pl.col("media")).then(pl.concat_str(pl.lit(MEDIA_URL), request_id,
                                                                  pl.lit("/photo.jpg"))),
        )
        .collect()
    )  # fmt: skip


def _local_times(requests: pl.DataFrame) -> pl.DataFrame:
    """requested/updated/expected datetimes as W3C strings with the offset of the region's zone.

    The offset of each (zone, UTC hour) comes from zoneinfo (Kazakhstan's clock changes fall on
    whole hours); the rows then add it and format naive local time plus the offset's text.
    """
    prefixes = [r.kato_prefix for r in load_regions()]
    zones = sorted({CITIES[p][2] for p in prefixes})
    zone_of_region = np.array([zones.index(CITIES[p][2]) for p in prefixes])
    zone = zone_of_region[requests["region"].to_numpy().astype(np.int64)]
    sla = np.array([s.sla_hours for s in SERVICES])[requests["service"].to_numpy().astype(np.int64)] * 3600
    epochs = {"requested_datetime": requests["requested"].to_numpy(),
              "updated_datetime": requests["updated"].to_numpy(),
              "expected_datetime": requests["requested"].to_numpy() + sla}  # fmt: skip
    hours = np.unique(np.concatenate([e // 3600 for e in epochs.values()]))
    instants = [datetime.fromtimestamp(int(h) * 3600, UTC) for h in hours]
    offsets = np.array([[int(ZoneInfo(z).utcoffset(t).total_seconds()) for t in instants] for z in zones],
                       dtype=np.int64).reshape(len(zones), hours.size)  # fmt: skip
    out = {}
    for name, epoch in epochs.items():
        offset = offsets[zone, np.searchsorted(hours, epoch // 3600)]
        local = pl.from_epoch(pl.Series(epoch + offset), time_unit="s").dt.strftime("%Y-%m-%dT%H:%M:%S")
        distinct = np.unique(offset)
        labels = pl.Series([f"{'-' if o < 0 else '+'}{abs(o) // 3600:02d}:{abs(o) // 60 % 60:02d}"
                            for o in distinct])
        out[name] = local + labels.gather(np.searchsorted(distinct, offset))
    return pl.DataFrame(out)
