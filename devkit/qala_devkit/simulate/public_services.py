"""The egov register of public services: a full CSV snapshot of the catalogue, once a day.

The Ministry of Digital Development keeps the register of state services (the list behind
egov.kz and the public service centres, ЦОН/ХҚКО). Its daily open-data export is the whole
catalogue, one row per service, as a CSV (the register's open-data portal publishes CSV):

    landing/programme/public_services/<YYYY-MM-DD>/public_services_<YYYY-MM-DD>.csv

    service_code, name_kk, name_ru, name_en, category, ministry, channel, automated,
    automated_on, term_days, paid

- fixed-size reference data: 700 services at any scale (the real register lists ~700-750);
  `scale` does not change it. `service_code` is 8-digit text with leading zeros (2-digit
  category, 3-digit group, 3-digit item): a reader that takes it for a number loses the zeros;
- the planted effect (GOV-01, share of services automated): exactly 58% of the services
  (406) are automated on the anchor date 2024-01-01, and exactly 7 more (1 percentage point of
  700) are automated in each following month until 95% (665) - the share at the end of month
  m after the anchor is (406 + 7m) / 700. Before the anchor the 406 were automated evenly from
  2016-01-01. Each service's `automated_on` is fixed per seed; the snapshot shows it (and
  `automated` = true, and an online `channel`) only once that date has passed;
- the 42% not automated at the anchor include, by name (kk/ru/en): kindergarten enrolment,
  home schooling, allowances for mothers of four or more children, and paternity registration;
- names are generated from per-category actions and objects in the three languages;
  Kazakh names use the letters ә ғ қ ң ө ұ ү һ і.

Defects at the run's defect rate, each logged: duplicate rows, an empty ministry
(missing_required), and whole-file defects: the catalogue exported by the old register in
Windows-1251 (Kazakh letters folded to Russian look-alikes), an added column or a renamed one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from itertools import product
from pathlib import Path

import numpy as np
import polars as pl

from qala_devkit.simulate.base import DayContext, RowDefects, csv_bytes, drift_schema, to_windows_1251, write_atomic
from qala_devkit.simulate.world import rng_for

FEED = "programme/public_services"
DOMAIN, NAME = FEED.split("/")

CATALOGUE_DAY = date(2016, 1, 1)  # the fixed stream day of every catalogue draw
SERVICES = 700
ANCHOR = date(2024, 1, 1)
AUTOMATED_AT_ANCHOR = 0.58
MONTHLY_GAIN = 0.01  # share of the register automated per month after the anchor
CEILING = 0.95  # some services stay in person (they need the citizen's presence)
AUTOMATION_STARTED = date(2016, 1, 1)

CHANNELS_AUTOMATED = ("egov_portal", "egov_mobile", "proactive")
CHANNELS_AUTOMATED_P = (0.55, 0.30, 0.15)
CHANNELS_MANUAL = ("psc", "service_provider")
CHANNELS_MANUAL_P = (0.7, 0.3)
TERM_DAYS = (0, 1, 3, 5, 10, 15, 30)  # the legal processing term; 0: issued at once
TERM_DAYS_P = (0.2, 0.2, 0.2, 0.15, 0.1, 0.1, 0.05)
PAID_SHARE = 0.2  # services with a state fee

# The services the programme names among the 42% not automated at the start: (kk, ru, en).
NAMED_MANUAL = (
    ("Мектепке дейінгі ұйымдарға құжаттар қабылдау және балаларды қабылдау",
     "Прием документов и зачисление детей в дошкольные организации",
     "Kindergarten enrolment", "education"),
    ("Үйде жеке тегін оқытуды ұйымдастыру үшін құжаттар қабылдау",
     "Прием документов для организации индивидуального бесплатного обучения на дому",
     "Home schooling", "education"),
    ("Көп балалы аналарға (төрт және одан да көп бала) жәрдемақы тағайындау",
     "Назначение пособия многодетным матерям (четверо и более детей)",
     "Allowance for mothers of four or more children", "social"),
    ("Әкелікті анықтауды тіркеу", "Регистрация установления отцовства",
     "Paternity registration", "civil_registry"),
)  # fmt: skip

# Categories: (key, code, ministry (ru, as the register writes it), actions, objects).
# An action and an object are (kk, ru, en); a service name joins them.
_MINISTRIES = {
    "civil_registry": "Министерство юстиции Республики Казахстан",
    "social": "Министерство труда и социальной защиты населения Республики Казахстан",
    "education": "Министерство просвещения Республики Казахстан",
    "health": "Министерство здравоохранения Республики Казахстан",
    "land": "Министерство сельского хозяйства Республики Казахстан",
    "housing": "Министерство промышленности и строительства Республики Казахстан",
    "transport": "Министерство транспорта Республики Казахстан",
    "business": "Министерство национальной экономики Республики Казахстан",
    "tax": "Министерство финансов Республики Казахстан",
    "digital": "Министерство цифрового развития, инноваций и аэрокосмической промышленности "
               "Республики Казахстан",
}  # fmt: skip
_ACTIONS = (
    ("анықтама беру", "Выдача справки", "Issuing a certificate"),
    ("рұқсат беру", "Выдача разрешения", "Issuing a permit"),
    ("тіркеу", "Регистрация", "Registration"),
    ("тіркеуден шығару", "Снятие с учета", "Deregistration"),
    ("телнұсқа беру", "Выдача дубликата", "Issuing a duplicate"),
    ("өзгерістер енгізу", "Внесение изменений", "Amending the record"),
    ("мәліметтер беру", "Предоставление сведений", "Providing information"),
    ("өтінішті қабылдау", "Прием заявления", "Accepting an application"),
    ("есепке қою", "Постановка на учет", "Placing on the register"),
    ("мерзімін ұзарту", "Продление срока", "Extension"),
)  # fmt: skip
_OBJECTS = {
    "civil_registry": (
        ("туу", "рождение", "birth"),
        ("неке", "брак", "marriage"),
        ("ажырасу", "расторжение брака", "divorce"),
        ("қайтыс болу", "смерть", "death"),
        ("тегін өзгерту", "перемена фамилии", "change of surname"),
        ("тұрғылықты жер", "место жительства", "place of residence"),
        ("жеке куәлік", "удостоверение личности", "identity card"),
        ("төлқұжат", "паспорт", "passport"),
        ("азаматтық", "гражданство", "citizenship"),
    ),
    "social": (
        ("зейнетақы", "пенсия", "pension"),
        ("мүгедектік", "инвалидность", "disability"),
        ("бала күтімі", "уход за ребенком", "childcare"),
        ("жұмыссыздық", "безработица", "unemployment"),
        ("тұрғын үй көмегі", "жилищная помощь", "housing assistance"),
        ("атаулы әлеуметтік көмек", "адресная социальная помощь", "targeted social assistance"),
        ("жерлеу", "погребение", "burial"),
        ("асыраушысынан айырылу", "потеря кормильца", "loss of breadwinner"),
    ),
    "education": (
        ("аттестат", "аттестат", "school certificate"),
        ("диплом", "диплом", "diploma"),
        ("жатақхана", "общежитие", "dormitory"),
        ("тегін тамақтану", "бесплатное питание", "free meals"),
        ("оқулықтар", "учебники", "textbooks"),
        ("білім гранты", "образовательный грант", "education grant"),
        ("қосымша білім", "дополнительное образование", "extracurricular education"),
        ("педагог санаты", "категория педагога", "teacher grade"),
    ),
    "health": (
        ("медициналық ұйымға бекіту", "прикрепление к медорганизации", "clinic registration"),
        ("дәрігерге жазылу", "запись к врачу", "doctor's appointment"),
        ("еңбекке жарамсыздық парағы", "лист нетрудоспособности", "sick leave certificate"),
        ("вакцинация", "вакцинация", "vaccination"),
        ("медициналық анықтама", "медицинская справка", "medical certificate"),
        ("дәрілік заттар", "лекарственные средства", "medicines"),
        ("санаторий", "санаторное лечение", "sanatorium treatment"),
        ("денсаулық паспорты", "паспорт здоровья", "health passport"),
    ),
    "land": (
        ("жер учаскесі", "земельный участок", "land plot"),
        ("жер сервитуты", "земельный сервитут", "land easement"),
        ("жайылым", "пастбище", "pasture"),
        ("ауыл шаруашылығы техникасы", "сельхозтехника", "farm machinery"),
        ("мал басы", "поголовье скота", "livestock"),
        ("су пайдалану", "водопользование", "water use"),
        ("субсидия", "субсидия", "subsidy"),
        ("тұқым", "семена", "seeds"),
    ),
    "housing": (
        ("тұрғын үй кезегі", "очередь на жилье", "housing queue"),
        ("құрылыс", "строительство", "construction"),
        ("қайта жоспарлау", "перепланировка", "redevelopment"),
        ("мекенжай", "адрес", "address"),
        ("коммуналдық қызметтер", "коммунальные услуги", "utilities"),
        ("жылжымайтын мүлік", "недвижимость", "real estate"),
        ("пәтер", "квартира", "apartment"),
        ("сәулет-жоспарлау тапсырмасы", "архитектурно-планировочное задание", "planning brief"),
    ),
    "transport": (
        ("көлік құралы", "транспортное средство", "vehicle"),
        ("жүргізуші куәлігі", "водительское удостоверение", "driving licence"),
        ("мемлекеттік нөмір", "госномер", "licence plate"),
        ("техникалық байқау", "техосмотр", "roadworthiness test"),
        ("жүк тасымалдау", "грузоперевозки", "freight transport"),
        ("такси", "такси", "taxi"),
        ("автобус маршруты", "автобусный маршрут", "bus route"),
        ("тұрақ", "парковка", "parking"),
    ),
    "business": (
        ("жеке кәсіпкер", "индивидуальный предприниматель", "sole proprietor"),
        ("заңды тұлға", "юридическое лицо", "legal entity"),
        ("лицензия", "лицензия", "licence"),
        ("хабарлама", "уведомление", "notification"),
        ("сауда", "торговля", "trade"),
        ("экспорт", "экспорт", "export"),
        ("мемлекеттік сатып алу", "госзакупки", "public procurement"),
        ("сертификат", "сертификат", "certificate of origin"),
    ),
    "tax": (
        ("салық берешегі", "налоговая задолженность", "tax arrears"),
        ("салық төлеуші", "налогоплательщик", "taxpayer"),
        ("ҚҚС", "НДС", "VAT"),
        ("кеден декларациясы", "таможенная декларация", "customs declaration"),
        ("мүлік салығы", "налог на имущество", "property tax"),
        ("резиденттік", "резидентство", "tax residency"),
        ("бюджетке төлем", "платеж в бюджет", "budget payment"),
        ("салық тексеруі", "налоговая проверка", "tax audit"),
    ),
    "digital": (
        ("электрондық цифрлық қолтаңба", "электронная цифровая подпись", "digital signature"),
        ("байланыс", "связь", "telecommunications"),
        ("радиожиілік", "радиочастота", "radio frequency"),
        ("пошта", "почта", "postal service"),
        ("домен", "домен", "domain name"),
        ("ғарыштық суреттер", "космические снимки", "satellite imagery"),
        ("ақпараттық жүйе", "информационная система", "information system"),
        ("ашық деректер", "открытые данные", "open data"),
    ),
}
CATEGORIES = tuple(_MINISTRIES)
_KAZAKH = "әғқңөұүһӘҒҚҢӨҰҮҺ"  # the letters Windows-1251 lacks
COLUMNS = ("service_code", "name_kk", "name_ru", "name_en", "category", "ministry", "channel", "automated",
           "automated_on", "term_days", "paid")  # fmt: skip


@dataclass(frozen=True)
class Params:
    """The planted effect (GOV-01), overridable without editing the module."""

    anchor: date = ANCHOR
    automated_at_anchor: float = AUTOMATED_AT_ANCHOR
    monthly_gain: float = MONTHLY_GAIN


def generate_day(ctx: DayContext) -> int:
    """Write the register snapshot of ctx.day; return the services listed."""
    params = ctx.params or Params()
    frame = _render(catalogue(ctx.seed, params), ctx.day)
    path = ctx.folder() / f"{NAME}_{ctx.day.isoformat()}.csv"
    frame, encoding = _plant_defects(ctx, frame, path)
    write_atomic(path, csv_bytes(frame, encoding))
    return frame.height


def ground_truth(params: Params = Params()) -> dict:
    at_anchor = round(SERVICES * params.automated_at_anchor)
    per_month = round(SERVICES * params.monthly_gain)
    return {
        "kind": "fixed-size reference data: a daily full snapshot of the register",
        "services": SERVICES,
        "scale_dependent": False,
        "effects": {
            "gov_01_share_automated": {
                "anchor_date": params.anchor.isoformat(),
                "share_at_anchor": params.automated_at_anchor,
                "services_automated_at_anchor": at_anchor,
                "monthly_gain": params.monthly_gain,
                "services_automated_per_month_after_anchor": per_month,
                "ceiling": CEILING,
                "rule": "share automated at the end of month m after the anchor month = "
                        f"({at_anchor} + {per_month} x m) / {SERVICES}, capped at the ceiling; before the "
                        f"anchor the first {at_anchor} were automated evenly from {AUTOMATION_STARTED}",
            },
            "not_automated_at_anchor_include": [en for _, _, en, _ in NAMED_MANUAL],
        },  # fmt: skip
        "channels_automated_p": dict(zip(CHANNELS_AUTOMATED, CHANNELS_AUTOMATED_P, strict=True)),
        "channels_manual_p": dict(zip(CHANNELS_MANUAL, CHANNELS_MANUAL_P, strict=True)),
        "encoding": "utf-8; windows-1251 when the old register exports (a defect)",
        "defect_kinds": ["duplicate_record", "missing_required", "windows_1251", "added_column",
                         "renamed_column"],
    }


# --- the catalogue ---------------------------------------------------------------------------


@lru_cache(maxsize=4)
def catalogue(seed: int, params: Params = Params()) -> pl.DataFrame:
    """The register: every service with its fixed attributes and automated_on (ordinal, 0 =
    never), in service_code order. The named services come first among their category's rows."""
    rng = rng_for(seed, FEED + ":catalogue", CATALOGUE_DAY)
    rows = [(kk, ru, en, category) for kk, ru, en, category in NAMED_MANUAL]
    per_category = -(-(SERVICES - len(rows)) // len(CATEGORIES))
    for category in CATEGORIES:
        combos = list(product(_ACTIONS, _OBJECTS[category]))
        picks = rng.permutation(len(combos))[:per_category]
        rows += [(f"{o[0].capitalize()}: {a[0]}", f"{a[1]}: {o[1]}", f"{a[2]}: {o[2]}", category)
                 for a, o in (combos[i] for i in picks)]  # fmt: skip
    rows = rows[:SERVICES]
    frame = pl.DataFrame(rows, schema=["name_kk", "name_ru", "name_en", "category"], orient="row")
    frame = frame.with_columns(named=pl.int_range(pl.len()) < len(NAMED_MANUAL)).sort(
        pl.col("category").replace_strict({c: i for i, c in enumerate(CATEGORIES)}), maintain_order=True)
    code = frame["category"].replace_strict({c: i + 1 for i, c in enumerate(CATEGORIES)}).to_numpy()
    item = frame.with_row_index()["index"].to_numpy() - np.searchsorted(np.sort(code), code)
    n = frame.height
    return frame.with_columns(
        service_code=pl.Series([f"{c:02d}{1 + i // 50:03d}{1 + i % 50:03d}" for c, i in zip(code, item)]),
        ministry=pl.col("category").replace_strict(_MINISTRIES),
        automated_on=pl.Series(_automated_on_ordinals(seed, params, frame["named"].to_numpy())),
        channel_online=pl.Series(rng.choice(len(CHANNELS_AUTOMATED), size=n, p=CHANNELS_AUTOMATED_P)),
        channel_manual=pl.Series(rng.choice(len(CHANNELS_MANUAL), size=n, p=CHANNELS_MANUAL_P)),
        term_days=pl.Series(rng.choice(TERM_DAYS, size=n, p=TERM_DAYS_P)),
        paid=pl.Series(rng.random(n) < PAID_SHARE),
    ).sort("service_code")  # fmt: skip


def _automated_on_ordinals(seed: int, params: Params, named: np.ndarray) -> np.ndarray:
    """Each service's automation day (ordinal; 0 = not by the ceiling), in catalogue order.

    Exactly round(SERVICES x share) services by the anchor, spread evenly back to 2016; then
    round(SERVICES x gain) in each month after the anchor month, on random days of the month.
    The named services are never among the first group.
    """
    rng = rng_for(seed, FEED + ":automation", CATALOGUE_DAY)
    at_anchor = round(SERVICES * params.automated_at_anchor)
    per_month = round(SERVICES * params.monthly_gain)
    ceiling = round(SERVICES * CEILING)
    # The order in which services get automated: the named ones are never in the first group.
    order = np.concatenate([rng.permutation(np.flatnonzero(~named)), np.flatnonzero(named)])
    order = np.concatenate([order[:at_anchor], rng.permutation(order[at_anchor:])])
    start, anchor = AUTOMATION_STARTED.toordinal(), params.anchor.toordinal()
    early = np.sort(start + rng.integers(0, anchor - start + 1, at_anchor))
    later_count = ceiling - at_anchor
    month = np.arange(later_count) // per_month + 1  # months after the anchor's month
    first = np.array([_add_months(params.anchor, int(m)).toordinal() for m in range(1, month.max() + 2)])
    lengths = first[1:] - first[:-1]
    later = first[month - 1] + (rng.random(later_count) * lengths[month - 1]).astype(np.int64)
    days = np.zeros(SERVICES, dtype=np.int64)
    days[order[:at_anchor]] = early
    days[order[at_anchor:ceiling]] = np.sort(later)
    return days


def _add_months(day: date, months: int) -> date:
    """The first day of the month `months` after `day`'s month."""
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


# --- writing ---------------------------------------------------------------------------------


def _render(services: pl.DataFrame, day: date) -> pl.DataFrame:
    epoch = date(1970, 1, 1).toordinal()
    done = (pl.col("automated_on") > 0) & (pl.col("automated_on") <= day.toordinal())
    return services.select(
        "service_code", "name_kk", "name_ru", "name_en", "category", "ministry",
        channel=pl.when(done).then(pl.lit(pl.Series(CHANNELS_AUTOMATED)).gather(pl.col("channel_online")))
        .otherwise(pl.lit(pl.Series(CHANNELS_MANUAL)).gather(pl.col("channel_manual"))),
        automated=pl.when(done).then(pl.lit("true")).otherwise(pl.lit("false")),
        automated_on=pl.when(done).then((pl.col("automated_on") - epoch).cast(pl.Int32).cast(pl.Date)
                                        .dt.strftime("%Y-%m-%d")),
        term_days="term_days",
        paid=pl.when(pl.col("paid")).then(pl.lit("true")).otherwise(pl.lit("false")),
    )  # fmt: skip


def _plant_defects(ctx: DayContext, frame: pl.DataFrame, path: Path) -> tuple[pl.DataFrame, str]:
    if ctx.defect_rate <= 0:
        return frame, "utf-8"
    planter = RowDefects(ctx, frame)
    planter.blank("ministry")
    planter.duplicate()
    frame = planter.finish(path)
    frame = drift_schema(ctx, frame, path, "register", added=("updated_by", lambda: pl.lit("egov-sync")),
                         renamed=("service_code", "code"))
    if ctx.maybe("windows_1251"):
        folded = pl.col("name_kk").str.replace_many(list(_KAZAKH), list(to_windows_1251(_KAZAKH)))
        frame = frame.with_columns(folded)
        ctx.record(path, "windows_1251", detail="the old register exported the catalogue in Windows-1251")
        return frame, "cp1251"
    return frame, "utf-8"
