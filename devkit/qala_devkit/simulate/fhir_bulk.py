"""Clinic information systems: an HL7 FHIR R4 Bulk Data export ($export), one per day.

The source system
-----------------
Kazakhstan's polyclinics book, see and vaccinate patients in their medical information
systems; the national integration layer exposes them as one FHIR R4 server. Every night a
system-level Bulk Data export (FHIR Bulk Data Access IG v2.0.0, "STU2", the version servers
implement for R4) is kicked off with `_since` = the previous export's transactionTime, so
each export holds the resources CREATED OR CHANGED since the last one, in their CURRENT
version (bulk export returns no history):

    GET https://fhir.qala.example/R4/$export?_outputFormat=application%2Ffhir%2Bndjson
        &_type=Patient,Appointment,Encounter,Immunization,Observation&_since=<previous transactionTime>

File layout, in landing/health/fhir_bulk/<YYYY-MM-DD>/ (the day whose changes it holds; the
export runs just after midnight, at the start of the next day):

- `manifest.json`: the body of the completed status response: `transactionTime` (instant),
  `request` (the kick-off URL), `requiresAccessToken`, `output` [{type, url, count}] and
  `error` [{type: OperationOutcome, url}] (always present, usually empty);
- one NDJSON file per resource type, named as its `url` ends: `Patient.ndjson`, ...; a type
  with more than MAX_RESOURCES_PER_FILE resources is split as servers do: `Appointment_1.ndjson`,
  `Appointment_2.ndjson`, ... (read the manifest, not the folder);
- `OperationOutcome.ndjson` on the ~5% of days when the server could not serialise a few
  Observations (listed in `error`; those Observations are missing from the output).

Resources (all valid FHIR R4; the lines carry no spaces, UTF-8, Cyrillic as is):

- Patient: identifier = the IIN only (system IIN_SYSTEM, type v2-0203 NI), so its dotted path is
  `identifier.value`; name (family, given = [first name, patronymic], Kazakh and Russian names
  with Kazakh letters); telecom (mobile phone); gender; birthDate; address (line, city = the
  region's centre, state = the region's Russian name as in the regions seed, country KZ, and the
  9-digit KATO code in the extension ADDRESS_KATO_EXT). A patient is exported on every day their
  record is touched (a booking or a vaccination), with the same id and content; meta has
  lastUpdated only (the versionId of a long-lived record is not derivable per day). Patients are
  a fixed register of the national population (~19.9M people, regions as in the seed; fixed,
  like a catalogue: it does not grow with scale), every person's attributes a pure function of
  (seed, person): the same person has the same id, IIN and name in every export.
- Appointment: status, participant (patient + practitioner, each with status), start/end
  (instants), minutesDuration, created (the booking instant), specialty (SNOMED CT, c80
  practice codes), appointmentType (v2-0276), cancelationReason when cancelled, and the booking
  channel. R4 Appointment has no channel element: it is carried as an EXTENSION
  (CHANNEL_EXT, valueCoding from CHANNEL_SYSTEM: `online` | `registry`), not as a meta.tag,
  because the channel is a business fact of the booking that a profile can make mandatory and
  bind to a value set, whereas tags are workflow labels, changed with $meta-add/$meta-delete
  without a new version of the resource.
- Encounter (R4): status finished, class = v3-ActCode AMB, subject, participant (practitioner),
  appointment = [the Appointment], period, serviceProvider (the polyclinic).
- Immunization (R4): status completed | not-done (+ statusReason), vaccineCode (CVX, with the
  Russian name as text), patient, occurrenceDateTime, recorded, primarySource, lotNumber, route,
  doseQuantity, performer, protocolApplied.doseNumberPositiveInt.
- Observation (not used by Qala: the pipeline must count and skip it): blood pressure panel
  (LOINC 85354-9 with systolic/diastolic components) taken at ~35% of adult visits.

References are "Patient/<id>", "Appointment/<id>", ...; Practitioner and Organization
references point to reference data that is not part of this export. Ids are 16 hex digits.
Every instant/dateTime carries the Asia/Almaty offset for its date (+06:00 before 2024-03-01,
+05:00 from then: Kazakhstan's single time zone), from zoneinfo.

Clinical rhythm and the planted effects (Params)
------------------------------------------------
- Bookings: ~350,000 a day nationally at scale 1.0. Basis: ~20M people x ~6.5 outpatient visits
  per person per year (Bureau of National Statistics / WHO HFA report 6-7 for Kazakhstan)
  = ~130M visits a year = ~356k per calendar day, every polyclinic visit being booked in the
  MIS (online or at the registry desk). More on Mondays, few at weekends (BOOKING_WEEKDAY),
  more in winter (BOOKING_MONTH, both normalised to mean 1). Patients are people of the
  register (so regions get bookings in proportion to population), by the age mix of
  outpatient visits (VISIT_AGE_BANDS), 58% women.
- HLT-01 booking channel: online share `online_share_before` (0.45) for bookings created before
  `change_date` (2025-01-01), `online_share_after` (0.55) from then (eGov / app adoption).
- HLT-02 booking-to-visit days: calendar days from the booking's local date to the start's.
  Base distribution `lead_head` (P(0), P(1), P(2) = 0.10, 0.22, 0.30) then a geometric tail
  (ratio `lead_tail_ratio` = 0.75) up to MAX_LEAD days, re-weighted by the weekday the visit
  falls on (START_WEEKDAY_WEIGHT: polyclinics see patients Monday-Friday, Saturday mornings and
  a few on Sunday), so appointments are mostly on weekdays. The resulting distribution over all
  appointments and its median (2 days) are in ground_truth() (`lead_days_pmf`, exact).
- Outcome: `cancel_share` (7%) are cancelled at a uniform time between booking and start; of
  the others (the appointments that were due) `no_show_before` (12%) / `no_show_after` (10%)
  (by start date vs change_date) are marked noshow (HLT-03) after the slot, the rest are
  fulfilled: an Encounter referencing the Appointment is created at the visit.
- Because the export returns changed resources, an Appointment appears in the export of the day
  it was booked (status booked, versionId 1) and again on the day it was resolved (fulfilled,
  versionId 3 / noshow or cancelled, versionId 2); if both happen the same day, once. Each
  appointment is derived from the random stream of the day it was booked (cached, as in
  road_accidents), so any day regenerates alone to the same bytes.
- HLT-04 immunisations: `immunizations_per_1000_per_year` (600) COMPLETED immunisations per 1,000
  population per year (~12M doses: the childhood calendar for ~390k births a year, school
  boosters, ~3M flu doses, adult Td), x IMMUNIZATION_WEEKDAY x IMMUNIZATION_MONTH (flu season),
  both normalised to mean 1; plus `immunization_not_done_share` (3%) not-done records (refusals,
  medical contraindications) on top. Vaccines from the national calendar (VACCINES), each given
  at its ages: the patient is a person of the register of that age.

Volumes at scale 1.0 (weekly means, measured in April): ~650k Appointment versions (~350k
booked, ~300k resolved; a booking resolved the same day appears once), ~290k Encounters, ~75k
Observations, ~30k Immunizations and ~380k Patients: ~1.43M resources (~1.4 GB of NDJSON) a day.

Defects (at ctx.defect_rate; column = the dotted JSON path; line = physical line of the file):
invalid_json (a line that is not JSON: cut mid-object, a trailing comma or single quotes),
invalid_iin (Patient `identifier.value` with a wrong check digit), missing_required (Appointment
`status`, Encounter `class`, Immunization `patient`: key absent), future_date (Appointment
`created`, Immunization `occurrenceDateTime` a year late), duplicate_record (a line repeated
right after itself), truncated_file (one file cut inside its last line; the manifest's count
is what the server meant to write). Without defects nothing is logged: the Observations lost
on error days are a documented feature of the export, listed in its own `error` file.

Vectorised throughout: numpy draws, polars string templates (concat_str), ids from a
splitmix64 hash, NDJSON bytes taken straight from the Arrow string buffer; Python loops touch
only the few defect lines and small fixed catalogues.
"""

from __future__ import annotations

import json
import math
import zlib
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from urllib.parse import quote
from zoneinfo import ZoneInfo

import numpy as np
import polars as pl
import pyarrow as pa

from qala_devkit.simulate import people
from qala_devkit.simulate.base import DayContext, truncate, write_atomic
from qala_devkit.simulate.world import load_regions, rng_for

FEED = "health/fhir_bulk"

# --- the server and its identifiers -----------------------------------------------------------

BASE_URL = "https://fhir.qala.example/R4"  # fictional host (the .example TLD is reserved)
FILES_URL = "https://fhir.qala.example/bulk-files"
RESOURCE_TYPES = ("Patient", "Appointment", "Encounter", "Immunization", "Observation")
USED_BY_QALA = ("Patient", "Appointment", "Encounter", "Immunization")
MAX_RESOURCES_PER_FILE = 100_000
# The IIN has no HL7-registered namespace; this one follows the pattern national IGs use
# (e.g. Uzbekistan's https://dhp.uz/fhir/core/sid/pid/uz/ni). identifier.type = v2-0203 NI too.
IIN_SYSTEM = "https://fhir.qala.example/sid/pid/kz/ni"
CHANNEL_EXT = "https://fhir.qala.example/StructureDefinition/booking-channel"
CHANNEL_SYSTEM = "https://fhir.qala.example/CodeSystem/booking-channel"
ADDRESS_KATO_EXT = "https://fhir.qala.example/StructureDefinition/address-kato"
CHANNELS = ("online", "registry")
CHANNEL_DISPLAY = ("Онлайн-запись (eGov, мобильное приложение)", "Регистратура поликлиники")

# --- volumes and rhythm -----------------------------------------------------------------------

BOOKINGS_PER_DAY = 350_000.0
BOOKING_WEEKDAY = (1.25, 1.15, 1.10, 1.05, 1.00, 0.35, 0.10)  # Mon..Sun, normalised to mean 1
BOOKING_MONTH = (1.08, 1.06, 1.04, 1.00, 0.96, 0.90, 0.84, 0.88, 1.02, 1.06, 1.08, 1.08)  # Jan..Dec
START_WEEKDAY_WEIGHT = (1.0, 1.0, 1.0, 1.0, 1.0, 0.40, 0.06)  # Mon..Sun: when visits can be
MAX_LEAD = 21  # days from booking to visit, at most
# Opening hours (local) by weekday of the visit: first slot, number of 15-minute slots.
SLOTS = {"weekday": (8 * 3600, 48), "saturday": (9 * 3600, 20), "sunday": (9 * 3600, 16)}
SLOT_SECONDS = 900
DURATIONS_MIN = (15, 30)
DURATION_P = (0.8, 0.2)
# When bookings are made (local hour): online around the clock, the registry desk 8:00-20:00.
HOURLY_ONLINE = (0.3, 0.15, 0.1, 0.1, 0.15, 0.4, 1.0, 2.2, 3.5, 4.0, 3.8, 3.4,
                 3.0, 3.0, 3.0, 2.9, 2.8, 2.7, 2.8, 3.0, 3.0, 2.4, 1.5, 0.8)  # fmt: skip
HOURLY_REGISTRY = (0, 0, 0, 0, 0, 0, 0, 0, 4.0, 4.5, 4.0, 3.4,
                   2.5, 2.5, 2.8, 2.6, 2.3, 1.8, 1.0, 0.4, 0, 0, 0, 0)  # fmt: skip
# Nothing is recorded in the first minute of a day: the previous export's transactionTime
# (00:00:03-00:00:59) is this export's _since.
QUIET_SECONDS = 60

# Who visits: age bands (years, [from, to)) and their share of visits; women 58%.
VISIT_AGE_BANDS = ((0, 5, 0.13), (5, 18, 0.13), (18, 40, 0.24), (40, 60, 0.24), (60, 80, 0.21),
                   (80, 95, 0.05))  # fmt: skip
FEMALE_VISIT_SHARE = 0.58
SPECIALTIES = (  # SNOMED CT (c80 practice codes), display, Russian text
    ("394814009", "General practice", "Врач общей практики"),
    ("394537008", "Pediatric specialty", "Педиатр"),
    ("394579002", "Cardiology", "Кардиолог"),
    ("394594003", "Ophthalmology", "Офтальмолог"),
    ("394585009", "Obstetrics and gynecology", "Акушер-гинеколог"),
)
APPOINTMENT_TYPES = ("ROUTINE", "FOLLOWUP", "CHECKUP")  # v2-0276
APPOINTMENT_TYPE_P = (0.6, 0.3, 0.1)
CANCEL_REASONS = (("pat", "Patient"), ("prov", "Provider"))  # appointment-cancellation-reason
CANCEL_REASON_P = (0.8, 0.2)
BP_SHARE = 0.35  # adult visits with a blood pressure measurement (Observation)
ERROR_DAY_SHARE = 0.05  # days on which a few Observations fail to export (OperationOutcome)

# Immunisations.
IMMUNIZATION_WEEKDAY = (1.15, 1.15, 1.15, 1.15, 1.10, 0.40, 0.05)
IMMUNIZATION_MONTH = (1.0, 0.95, 0.95, 0.9, 0.9, 0.8, 0.75, 0.8, 1.05, 1.35, 1.35, 1.2)
# (CVX code, CVX short name, Russian name, share of doses, age from, age to [days), sexes, route,
#  dose mL, doses in the series)
VACCINES = (
    ("19", "BCG", "БЦЖ", 0.03, 0, 5, "both", "IDINJ", 0.05, 1),
    ("08", "Hep B, adolescent or pediatric", "Вирусный гепатит B (детский)", 0.06, 0, 130, "both", "IM", 0.5, 3),
    ("120", "DTaP-Hib-IPV", "АбКДС-Hib-ИПВ", 0.12, 60, 140, "both", "IM", 0.5, 3),
    ("133", "Pneumococcal conjugate PCV 13", "Пневмококковая конъюгированная (ПКВ13)", 0.09, 60, 400,
     "both", "IM", 0.5, 3),
    ("10", "IPV", "Инактивированная полиовакцина (ИПВ)", 0.05, 60, 550, "both", "IM", 0.5, 3),
    ("03", "MMR", "Корь, краснуха, паротит (ККП)", 0.08, 365, 2300, "both", "SQ", 0.5, 2),
    ("20", "DTaP", "АбКДС", 0.06, 540, 2300, "both", "IM", 0.5, 1),
    ("09", "Td (adult)", "АДС-М", 0.15, 2190, 32000, "both", "IM", 0.5, 1),
    ("165", "HPV9", "Вирус папилломы человека (ВПЧ)", 0.02, 4015, 4745, "female", "IM", 0.5, 2),
    ("150", "influenza, injectable, quadrivalent, preservative free", "Грипп (четырёхвалентная)", 0.30,
     180, 32000, "both", "IM", 0.5, 1),
    ("33", "pneumococcal polysaccharide PPV23", "Пневмококковая полисахаридная (ППВ23)", 0.02, 23740,
     32000, "both", "IM", 0.5, 1),
    ("213", "SARS-COV-2 (COVID-19) vaccine, UNSPECIFIED FORMULATION", "COVID-19", 0.02, 6570, 32000,
     "both", "IM", 0.5, 1),
)  # fmt: skip
ROUTES = {"IM": "Injection, intramuscular", "SQ": "Injection, subcutaneous", "IDINJ": "Injection, intradermal"}
NOT_DONE_REASONS = (("PATOBJ", "patient objection"), ("MEDPREC", "medical precaution"))

# The register: every person of the regions seed, born in a fixed window wide enough for
# everyone the simulation may meet (visits up to 95 years of age, newborns until 2040).
REGISTRY_FIRST_BIRTH = date(1925, 1, 1)
REGISTRY_LAST_BIRTH = date(2040, 12, 31)
PRACTITIONERS = 75_000  # doctors and nurses seeing patients, split by population (fixed)
PRACTITIONERS_PER_CLINIC = 25
REGION_CENTRES = {
    "10": "Семей", "11": "Кокшетау", "15": "Актобе", "19": "Конаев", "23": "Атырау", "27": "Уральск",
    "31": "Тараз", "33": "Талдыкорган", "35": "Караганда", "39": "Костанай", "43": "Кызылорда",
    "47": "Актау", "55": "Павлодар", "59": "Петропавловск", "61": "Туркестан", "62": "Жезказган",
    "63": "Усть-Каменогорск", "71": "Астана", "75": "Алматы", "79": "Шымкент",
}  # fmt: skip

LOCAL_TZ = ZoneInfo("Asia/Almaty")
EPOCH = date(2000, 1, 1)  # times are int seconds of local wall time since EPOCH 00:00
DAY = 86_400


@dataclass(frozen=True)
class Params:
    """The planted effects, overridable (e.g. by a test) without editing the module. Hashable
    (tuples, not lists): the booking draws are cached by it."""

    change_date: date = date(2025, 1, 1)
    online_share_before: float = 0.45
    online_share_after: float = 0.55
    no_show_before: float = 0.12
    no_show_after: float = 0.10
    cancel_share: float = 0.07
    lead_head: tuple[float, ...] = (0.10, 0.22, 0.30)
    lead_tail_ratio: float = 0.75
    immunizations_per_1000_per_year: float = 600.0
    immunization_not_done_share: float = 0.03

    def online_share(self, created: date) -> float:
        return self.online_share_before if created < self.change_date else self.online_share_after


# --- the day's export -------------------------------------------------------------------------


def generate_day(ctx: DayContext) -> int:
    """Write the export of ctx.day's changes; return the resources written (all NDJSON lines
    of the output files, duplicates included)."""
    day, params = ctx.day, ctx.params or Params()
    today = _day_index(day)
    frames = [_bookings(ctx.seed, day - timedelta(days=k), ctx.scale, params).lazy()
              for k in range(MAX_LEAD, -1, -1)]  # fmt: skip
    booked_today = frames[-1]
    # Each appointment at most twice: booked (if resolved on a later day), then resolved.
    pending = booked_today.filter(pl.col("final_day") > today).with_columns(
        status=pl.lit(_STATUS_BOOKED, pl.UInt8), updated=pl.col("created"))
    resolved = pl.concat(frames).filter(pl.col("final_day") == today).with_columns(
        status=pl.col("outcome"), updated=pl.col("final"))
    appointments = pl.concat([pending, resolved]).collect()
    encounters = appointments.filter(pl.col("status") == _STATUS_FULFILLED)
    observations = encounters.filter(pl.col("bp"))
    immunizations = _immunizations(ctx.seed, day, ctx.scale, params)
    touched = pl.concat([booked_today.select("patient", t=pl.col("created")).collect(),
                         immunizations.select("patient", t=pl.col("recorded"))])  # fmt: skip
    patients = touched.group_by("patient").agg(pl.col("t").max()).sort("t", "patient")

    observation_lines = _render_observations(ctx.seed, observations)
    errors = _export_errors(ctx, observation_lines)
    if errors is not None:
        observation_lines = observation_lines.filter(~pl.col("id").is_in(errors["id"].implode()))
    lines = {
        "Patient": _render_patients(ctx.seed, patients),
        "Appointment": _render_appointments(ctx.seed, appointments),
        "Encounter": _render_encounters(ctx.seed, encounters),
        "Immunization": _render_immunizations(ctx.seed, immunizations),
        "Observation": observation_lines,
    }
    return _write_export(ctx, {t: frame["line"] for t, frame in lines.items()}, errors)


# --- drawing: bookings (cached per booking day) -----------------------------------------------

_STATUS = ("fulfilled", "noshow", "cancelled", "booked")
_STATUS_FULFILLED, _STATUS_NOSHOW, _STATUS_CANCELLED, _STATUS_BOOKED = range(4)
_VERSION = ("3", "2", "2", "1")  # booked -> (arrived ->) fulfilled; booked -> noshow/cancelled


@lru_cache(maxsize=MAX_LEAD + 2)
def _bookings(seed: int, day: date, scale: float, params: Params) -> pl.DataFrame:
    """The appointments booked on `day`, with their whole future: start, outcome and the time
    it is recorded (`final`, `final_day`). Cached: a day's export reads the MAX_LEAD days
    before it too; narrow dtypes keep the window small (~20 MB a day at scale 1)."""
    rng = rng_for(seed, FEED + ":bookings", day)
    n = int(rng.poisson(_expected_bookings(day, scale)))
    booked = _day_index(day) * DAY
    # The patient: a person of the register, by the age mix of outpatient visits.
    band = rng.choice(len(VISIT_AGE_BANDS), n, p=[b[2] for b in VISIT_AGE_BANDS])
    band_from = np.array([b[0] for b in VISIT_AGE_BANDS]) * 365.25
    band_to = np.array([b[1] for b in VISIT_AGE_BANDS]) * 365.25
    age_days = (band_from[band] + rng.random(n) * (band_to - band_from)[band]).astype(np.int64)
    female = rng.random(n) < FEMALE_VISIT_SHARE
    patient = _register().person(_day_index(day) - age_days, female, rng.random(n))
    # The booking: channel and time of day.
    online = rng.random(n) < params.online_share(day)
    created = booked + np.where(online, _seconds_of_day(rng, HOURLY_ONLINE, n),
                                _seconds_of_day(rng, HOURLY_REGISTRY, n))  # fmt: skip
    # The visit: lead days (weighted by the weekday the visit falls on), slot, length.
    cdf = np.cumsum(_lead_pmf_given(params, day.weekday()))
    lead = np.minimum(np.searchsorted(cdf, rng.random(n) * cdf[-1], side="right"), MAX_LEAD)
    start_weekday = (day.weekday() + lead) % 7
    opening = np.select([start_weekday == 5, start_weekday == 6], [SLOTS["saturday"][0], SLOTS["sunday"][0]],
                        SLOTS["weekday"][0])  # fmt: skip
    slots = np.select([start_weekday == 5, start_weekday == 6], [SLOTS["saturday"][1], SLOTS["sunday"][1]],
                      SLOTS["weekday"][1])  # fmt: skip
    start = booked + lead * DAY + opening + (rng.random(n) * slots).astype(np.int64) * SLOT_SECONDS
    minutes = np.asarray(DURATIONS_MIN)[rng.choice(len(DURATIONS_MIN), n, p=DURATION_P)]
    # A same-day booking is made before its slot: 10 minutes to 3 hours before.
    before = rng.uniform(600, 10_800, n).astype(np.int64)
    same_day_clash = (lead == 0) & (created > start - 600)
    created = np.where(same_day_clash, np.maximum(start - before, booked + QUIET_SECONDS), created)
    specialty = _specialties(rng, age_days, female)
    appointment_type = rng.choice(len(APPOINTMENT_TYPES), n, p=APPOINTMENT_TYPE_P)
    practitioner = _register().practitioner(patient, rng.random(n))
    # The outcome and when it is recorded.
    cancelled = rng.random(n) < params.cancel_share
    no_show_p = np.where(start < _day_index(params.change_date) * DAY, params.no_show_before, params.no_show_after)
    noshow = ~cancelled & (rng.random(n) < no_show_p)
    outcome = np.select([cancelled, noshow], [_STATUS_CANCELLED, _STATUS_NOSHOW], _STATUS_FULFILLED)
    cancel_at = created + (rng.random(n) * (start - created)).astype(np.int64)
    cancel_at += np.where(cancel_at % DAY < QUIET_SECONDS, QUIET_SECONDS, 0)
    cancel_reason = rng.choice(len(CANCEL_REASONS), n, p=CANCEL_REASON_P)
    noshow_at = start + rng.uniform(1800, 7200, n).astype(np.int64)
    wait = rng.uniform(0, 1200, n).astype(np.int64)
    visit_end = start + wait + (minutes * 60 * rng.uniform(0.6, 1.4, n)).astype(np.int64)
    fulfilled_at = visit_end + rng.uniform(0, 300, n).astype(np.int64)
    final = np.select([cancelled, noshow], [cancel_at, noshow_at], fulfilled_at)
    bp = (outcome == _STATUS_FULFILLED) & (age_days >= 18 * 365.25) & (rng.random(n) < BP_SHARE)
    systolic = np.clip(rng.normal(128, 16, n), 90, 210).astype(np.int64)
    diastolic = np.clip(systolic * 0.62 + rng.normal(0, 7, n), 50, 130).astype(np.int64)
    measured = rng.uniform(60, 500, n).astype(np.int64)  # the shortest visit lasts 540 s
    return pl.DataFrame(
        {
            "booking_day": pl.Series([day.toordinal()] * n, dtype=pl.Int32),
            "seq": pl.Series(np.arange(n), dtype=pl.Int32),
            "patient": pl.Series(patient, dtype=pl.Int32),
            "online": online,
            "created": pl.Series(created, dtype=pl.Int32),
            "start": pl.Series(start, dtype=pl.Int32),
            "minutes": pl.Series(minutes, dtype=pl.UInt8),
            "specialty": pl.Series(specialty, dtype=pl.UInt8),
            "appointment_type": pl.Series(appointment_type, dtype=pl.UInt8),
            "practitioner": pl.Series(practitioner, dtype=pl.Int32),
            "outcome": pl.Series(outcome, dtype=pl.UInt8),
            "cancel_reason": pl.Series(cancel_reason, dtype=pl.UInt8),
            "final": pl.Series(final, dtype=pl.Int32),
            "final_day": pl.Series(final // DAY, dtype=pl.Int32),
            "visit_start": pl.Series(start + wait, dtype=pl.Int32),
            "visit_end": pl.Series(visit_end, dtype=pl.Int32),
            "bp": bp,
            "systolic": pl.Series(systolic, dtype=pl.Int16),
            "diastolic": pl.Series(diastolic, dtype=pl.Int16),
            "measured": pl.Series(start + wait + measured, dtype=pl.Int32),
        }
    )


def _expected_bookings(day: date, scale: float) -> float:
    weekday = np.asarray(BOOKING_WEEKDAY) / np.mean(BOOKING_WEEKDAY)
    month = np.asarray(BOOKING_MONTH) / np.mean(BOOKING_MONTH)
    return BOOKINGS_PER_DAY * scale * float(weekday[day.weekday()] * month[day.month - 1])


def _base_lead_pmf(params: Params) -> np.ndarray:
    """P(lead = k) before the weekday weighting: the head, then a geometric tail to MAX_LEAD."""
    head = np.asarray(params.lead_head, dtype=np.float64)
    tail = params.lead_tail_ratio ** np.arange(1, MAX_LEAD + 2 - head.size)
    tail *= (1.0 - head.sum()) / tail.sum()
    return np.concatenate([head, tail])


def _lead_pmf_given(params: Params, booking_weekday: int) -> np.ndarray:
    """P(lead = k | the weekday of the booking): base x the weight of the visit's weekday."""
    weight = np.asarray(START_WEEKDAY_WEIGHT)[(booking_weekday + np.arange(MAX_LEAD + 1)) % 7]
    pmf = _base_lead_pmf(params) * weight
    return pmf / pmf.sum()


def lead_days_pmf(params: Params = Params()) -> np.ndarray:
    """P(lead = k) over all appointments: the weekday conditionals mixed by booking volume."""
    volume = np.asarray(BOOKING_WEEKDAY) / np.sum(BOOKING_WEEKDAY)
    return sum(volume[w] * _lead_pmf_given(params, w) for w in range(7))


def _seconds_of_day(rng: np.random.Generator, hourly: tuple[float, ...], n: int) -> np.ndarray:
    weights = np.asarray(hourly, dtype=np.float64)
    hour = rng.choice(24, n, p=weights / weights.sum())
    quiet = np.where(hour == 0, QUIET_SECONDS, 0)
    return hour * 3600 + quiet + rng.integers(0, 3600 - quiet)


def _specialties(rng: np.random.Generator, age_days: np.ndarray, female: np.ndarray) -> np.ndarray:
    """Specialty index per visit: children see paediatricians, adults mostly the GP."""
    n = age_days.size
    age = age_days / 365.25
    child = age < 18
    weights = np.zeros((n, len(SPECIALTIES)))
    weights[:, 0] = np.where(child, 0.0, 0.68)
    weights[:, 1] = np.where(child, 0.85, 0.0)
    weights[:, 2] = np.where(child, 0.0, np.where(age >= 60, 0.18, 0.08))
    weights[:, 3] = np.where(child, 0.15, 0.08)
    weights[:, 4] = np.where(~child & female & (age < 50), 0.12, 0.0)
    cumulative = np.cumsum(weights, axis=1)
    u = rng.random(n) * cumulative[:, -1]
    return (u[:, None] >= cumulative).sum(axis=1)


# --- drawing: immunisations (the day's own stream) --------------------------------------------


def expected_immunizations(day: date, scale: float, params: Params = Params()) -> float:
    """Mean number of COMPLETED immunisations on `day` (not-done records come on top)."""
    weekday = np.asarray(IMMUNIZATION_WEEKDAY) / np.mean(IMMUNIZATION_WEEKDAY)
    month = np.asarray(IMMUNIZATION_MONTH) / np.mean(IMMUNIZATION_MONTH)
    per_day = params.immunizations_per_1000_per_year / 1000 / 365.25 * _register().population
    return per_day * scale * float(weekday[day.weekday()] * month[day.month - 1])


def _immunizations(seed: int, day: date, scale: float, params: Params) -> pl.DataFrame:
    rng = rng_for(seed, FEED + ":immunizations", day)
    records = expected_immunizations(day, scale, params) / (1.0 - params.immunization_not_done_share)
    n = int(rng.poisson(records))
    vaccine = rng.choice(len(VACCINES), n, p=[v[3] for v in VACCINES])
    age_from = np.array([v[4] for v in VACCINES])[vaccine]
    age_to = np.array([v[5] for v in VACCINES])[vaccine]
    age_days = (age_from + rng.random(n) * (age_to - age_from)).astype(np.int64)
    female = np.where(np.array([v[6] == "female" for v in VACCINES])[vaccine], True, rng.random(n) < 0.5)
    patient = _register().person(_day_index(day) - age_days, female, rng.random(n))
    weekday = day.weekday()
    opening, slots = SLOTS["sunday" if weekday == 6 else "saturday" if weekday == 5 else "weekday"]
    occurred = _day_index(day) * DAY + opening + (rng.random(n) * slots * SLOT_SECONDS).astype(np.int64)
    recorded = occurred + rng.uniform(60, 1800, n).astype(np.int64)
    not_done = rng.random(n) < params.immunization_not_done_share
    reason = rng.integers(0, len(NOT_DONE_REASONS), n)
    dose = 1 + (rng.random(n) * np.array([v[9] for v in VACCINES])[vaccine]).astype(np.int64)
    lot = rng.integers(0, 4, n)  # four lots of each vaccine in circulation
    practitioner = _register().practitioner(patient, rng.random(n))
    return pl.DataFrame(
        {
            "day": pl.Series([day.toordinal()] * n, dtype=pl.Int32),
            "seq": pl.Series(np.arange(n), dtype=pl.Int32),
            "patient": pl.Series(patient, dtype=pl.Int32),
            "vaccine": pl.Series(vaccine, dtype=pl.UInt8),
            "occurred": pl.Series(occurred, dtype=pl.Int32),
            "recorded": pl.Series(recorded, dtype=pl.Int32),
            "not_done": not_done,
            "reason": pl.Series(reason, dtype=pl.UInt8),
            "dose": pl.Series(dose, dtype=pl.UInt8),
            "lot": pl.Series(lot, dtype=pl.UInt8),
            "practitioner": pl.Series(practitioner, dtype=pl.Int32),
        }
    ).sort("recorded", "seq")


# --- the register of people and practitioners -------------------------------------------------


@dataclass(frozen=True)
class _Register:
    """The national population as person numbers 0..population-1, regions in contiguous blocks
    (sized by the seed's population). Person i has birth-and-sex slot c = i % K (K = 2 x the
    days of the birth window; c // 2 = birth day, c % 2 = female) and serial block j = i // K,
    so (birth, sex, j) is unique and so is the IIN built from it."""

    population: int
    starts: np.ndarray  # first person of each region (load_regions() order), then population
    practitioner_starts: np.ndarray
    clinic_starts: np.ndarray
    slots: int  # K

    def person(self, birth_day: np.ndarray, female: np.ndarray, u: np.ndarray) -> np.ndarray:
        """A person born on `birth_day` (day index since EPOCH) of that sex, picked by `u`."""
        first, last = _day_index(REGISTRY_FIRST_BIRTH), _day_index(REGISTRY_LAST_BIRTH)
        c = 2 * (np.clip(birth_day, first, last) - first) + female.astype(np.int64)
        blocks = (self.population - c + self.slots - 1) // self.slots
        return c + self.slots * (u * blocks).astype(np.int64)

    def region(self, person: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.starts, person, side="right") - 1

    def practitioner(self, person: np.ndarray, u: np.ndarray) -> np.ndarray:
        """A practitioner of the person's region."""
        region = self.region(person)
        count = np.diff(self.practitioner_starts)[region]
        return self.practitioner_starts[region] + (u * count).astype(np.int64)

    def clinic(self, practitioner: np.ndarray) -> np.ndarray:
        """The polyclinic of a practitioner: consecutive blocks within the region."""
        region = np.searchsorted(self.practitioner_starts, practitioner, side="right") - 1
        within = practitioner - self.practitioner_starts[region]
        return self.clinic_starts[region] + within // PRACTITIONERS_PER_CLINIC


@lru_cache(maxsize=1)
def _register() -> _Register:
    population = np.array([r.population for r in load_regions()], dtype=np.int64)
    practitioners = np.maximum(np.round(PRACTITIONERS * population / population.sum()).astype(np.int64), 1)
    clinics = -(-practitioners // PRACTITIONERS_PER_CLINIC)
    birth_days = (REGISTRY_LAST_BIRTH - REGISTRY_FIRST_BIRTH).days + 1
    return _Register(
        population=int(population.sum()),
        starts=np.concatenate([[0], np.cumsum(population)]),
        practitioner_starts=np.concatenate([[0], np.cumsum(practitioners)]),
        clinic_starts=np.concatenate([[0], np.cumsum(clinics)]),
        slots=2 * birth_days,
    )


def _people(seed: int, person: np.ndarray) -> pl.DataFrame:
    """Everything the Patient resource says about each person: a pure function of (seed, person)."""
    register = _register()
    c = person % register.slots
    block = person // register.slots
    female = (c % 2).astype(bool)
    birth = np.datetime64(REGISTRY_FIRST_BIRTH, "D") + (c // 2).astype("timedelta64[D]")
    iin = _iin(birth, female, block)
    h = _hash(seed, "person", person)
    kazakh = _uniform(h, 1) < people.KAZAKH_SHARE
    group = kazakh.astype(np.int64) * 2 + female  # 0 RU man, 1 RU woman, 2 KZ man, 3 KZ woman
    first = _pick(_NAMES.first, group, _uniform(h, 2))
    surname = _pick(_NAMES.surname, group, _uniform(h, 3))
    patronymic = _pick(_NAMES.patronymic, group, _uniform(h, 4))
    region = register.region(person)
    prefixes = [r.kato_prefix for r in load_regions()]
    districts = np.array([_district_count(r.kind, r.population) for r in load_regions()])
    district = 10 + (_uniform(h, 5) * districts[region]).astype(np.int64)
    phone_code = people.MOBILE_CODES[(_uniform(h, 6) * people.MOBILE_CODES.size).astype(np.int64)]
    phone = (_uniform(h, 7) * 10_000_000).astype(np.int64)
    street = (_uniform(h, 8) * len(people.STREET_NAMES)).astype(np.int64)
    house = 1 + (_uniform(h, 9) * 249).astype(np.int64)
    flat = np.where(_uniform(h, 10) < 0.7, 1 + (_uniform(h, 11) * 180).astype(np.int64), 0)  # 30% houses
    frame = pl.DataFrame(
        {
            "id": _hex_ids(_hash(seed, "Patient", person)),
            "iin": iin,
            "female": female,
            "birth": birth,
            "first": first, "surname": surname, "patronymic": patronymic,
            "region": pl.Series(region, dtype=pl.UInt32),
            "district": district, "phone_code": phone_code, "phone": phone,
            "street": pl.Series(street, dtype=pl.UInt32), "house": house, "flat": flat,
        }  # fmt: skip
    )
    phone_str = pl.col("phone").cast(pl.String).str.zfill(7)
    flat_text = pl.concat_str(pl.lit(", кв. "), pl.col("flat").cast(pl.String))
    line = pl.concat_str(pl.lit("ул. "), pl.lit(pl.Series(people.STREET_NAMES)).gather(pl.col("street")),
                         pl.lit(", д. "), pl.col("house").cast(pl.String),
                         pl.when(pl.col("flat") > 0).then(flat_text).otherwise(pl.lit("")))  # fmt: skip
    prefix = pl.lit(pl.Series(prefixes)).gather(pl.col("region"))
    return frame.select(
        "id", "iin", "surname",
        given=pl.col("first"), patronymic="patronymic",
        gender=pl.when(pl.col("female")).then(pl.lit("female")).otherwise(pl.lit("male")),
        birth_date=pl.col("birth").dt.strftime("%Y-%m-%d"),
        phone=pl.concat_str(pl.lit("+7 "), pl.col("phone_code").cast(pl.String), pl.lit(" "),
                            phone_str.str.slice(0, 3), pl.lit(" "), phone_str.str.slice(3, 2), pl.lit(" "),
                            phone_str.str.slice(5, 2)),
        line=line,
        city=pl.lit(pl.Series([REGION_CENTRES[p] for p in prefixes])).gather(pl.col("region")),
        state=pl.lit(pl.Series([r.name_ru for r in load_regions()])).gather(pl.col("region")),
        kato=pl.concat_str(prefix, pl.col("district").cast(pl.String), pl.lit("00000")),
    )  # fmt: skip


def _iin(birth: np.ndarray, female: np.ndarray, block: np.ndarray) -> pl.Series:
    """IINs (see people.py): YYMMDD, century-and-sex digit, serial = 10 x block + bump, check digit.
    The bump is 0, or 1 where 0 would give the never-issued check digit 10 (the last serial digit
    has weight 11 = 0 mod 11 in the first pass and 2 in the second, so 1 always fixes it).
    Unique per (birth, sex, block)."""
    years = birth.astype("datetime64[Y]").astype(np.int64) + 1970
    months = birth.astype("datetime64[M]").astype(np.int64) % 12 + 1
    days = (birth - birth.astype("datetime64[M]")).astype(np.int64) + 1
    century = np.where(years < 2000, 3, 5) + female.astype(np.int64)
    yy = years % 100
    head = [yy // 10, yy % 10, months // 10, months % 10, days // 10, days % 10, century]
    serial = block * 10
    check = people.check_digit(np.column_stack([*head, *_serial_digits(serial)]))
    serial = np.where(check == 10, serial + 1, serial)
    check = np.where(check == 10, people.check_digit(np.column_stack([*head, *_serial_digits(serial)])), check)
    number = (((yy * 100 + months) * 100 + days) * 10 + century) * 100_000 + serial * 10 + check
    return pl.Series(number).cast(pl.String).str.zfill(12)


def _serial_digits(serial: np.ndarray) -> list[np.ndarray]:
    return [serial // 1000, serial // 100 % 10, serial // 10 % 10, serial % 10]


@dataclass(frozen=True)
class _NameTables:
    """Name catalogues per group (0 RU man, 1 RU woman, 2 KZ man, 3 KZ woman), flattened."""

    first: tuple[pl.Series, np.ndarray, np.ndarray]  # values, start and size per group
    surname: tuple[pl.Series, np.ndarray, np.ndarray]
    patronymic: tuple[pl.Series, np.ndarray, np.ndarray]


def _catalogue(groups: list[list[str]]) -> tuple[pl.Series, np.ndarray, np.ndarray]:
    sizes = np.array([len(g) for g in groups])
    return pl.Series([v for g in groups for v in g]), np.concatenate([[0], np.cumsum(sizes)[:-1]]), sizes


def _russian_patronymic(father: str, female: bool) -> str:
    stem, soft = (father[:-1], True) if father.endswith("й") else (father, False)
    return stem + ("евна" if soft else "овна") if female else stem + ("евич" if soft else "ович")


def _female_surname(surname: str) -> str:
    return surname if surname in ("Ким", "Пак") else surname + "а"


_NAMES = _NameTables(
    first=_catalogue([list(people.RUSSIAN_MALE), list(people.RUSSIAN_FEMALE), list(people.KAZAKH_MALE),
                      list(people.KAZAKH_FEMALE)]),  # fmt: skip
    surname=_catalogue([list(people.RUSSIAN_SURNAMES), [_female_surname(s) for s in people.RUSSIAN_SURNAMES],
                        list(people.KAZAKH_SURNAMES),
                        [_female_surname(s) for s in people.KAZAKH_SURNAMES]]),  # fmt: skip
    patronymic=_catalogue([[_russian_patronymic(f, False) for f in people.RUSSIAN_MALE],
                           [_russian_patronymic(f, True) for f in people.RUSSIAN_MALE],
                           [f + "ұлы" for f in people.KAZAKH_MALE],
                           [f + "қызы" for f in people.KAZAKH_MALE]]),  # fmt: skip
)


def _pick(table: tuple[pl.Series, np.ndarray, np.ndarray], group: np.ndarray, u: np.ndarray) -> pl.Series:
    values, starts, sizes = table
    return values.gather(starts[group] + (u * sizes[group]).astype(np.int64))


def _district_count(kind: str, population: int) -> int:
    """Districts per region for KATO codes (as road_accidents): cities few, regions up to 18."""
    if kind == "city":
        return min(max(population // 300_000, 3), 8)
    return min(max(population // 90_000, 4), 18)


# --- ids: a splitmix64 hash of (seed, purpose, numbers) ---------------------------------------

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX_1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX_2 = np.uint64(0x94D049BB133111EB)


def _mix(x: np.ndarray) -> np.ndarray:
    x = x + _GOLDEN
    x = (x ^ (x >> np.uint64(30))) * _MIX_1
    x = (x ^ (x >> np.uint64(27))) * _MIX_2
    return x ^ (x >> np.uint64(31))


def _hash(seed: int, purpose: str, *parts) -> np.ndarray:
    """uint64 per element; arrays only (numpy warns on overflowing scalars, not on arrays)."""
    arrays = [np.atleast_1d(np.asarray(p, dtype=np.int64)).astype(np.uint64) for p in parts]
    key = (seed * 0x1_0000_0001 + zlib.crc32(purpose.encode("utf-8"))) % 2**64
    h = np.full(np.broadcast_shapes(*(a.shape for a in arrays)), key, dtype=np.uint64)
    for a in arrays:
        h = _mix(h ^ a)
    return h


def _uniform(h: np.ndarray, k: int) -> np.ndarray:
    return (_mix(h + np.uint64(k)) >> np.uint64(11)).astype(np.float64) * 2.0**-53


def _hex_ids(h: np.ndarray) -> pl.Series:
    """16 lowercase hex digits per hash (a valid FHIR id)."""
    pairs = _HEX_PAIRS[np.ascontiguousarray(h, dtype=">u8").view(np.uint8).reshape(-1, 8)]
    return _fixed_width_strings(pairs.view(np.uint8).reshape(h.size, 16))


_HEX_PAIRS = np.frombuffer(b"".join(f"{i:02x}".encode() for i in range(256)), dtype=np.uint16)


def _fixed_width_strings(chars: np.ndarray) -> pl.Series:
    """A string per row of an (n, width) array of ASCII bytes (via an Arrow buffer)."""
    n, width = chars.shape
    offsets = pa.py_buffer(np.arange(0, n * width + 1, width, dtype=np.int64).tobytes())
    data = pa.py_buffer(np.ascontiguousarray(chars).tobytes())
    return pl.Series(pl.from_arrow(pa.Array.from_buffers(pa.large_string(), n, [None, offsets, data])))


# --- rendering: string templates, one JSON object per line ------------------------------------


def _day_index(day: date) -> int:
    return (day - EPOCH).days


@lru_cache(maxsize=1)
def _time_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ASCII lookup tables: 'YYYY-MM-DDT' and the UTC offset '+HH:MM' (zoneinfo, at noon) per
    day since EPOCH (to 2069), and 'HH:MM:SS' per second of the day."""
    days = [EPOCH + timedelta(days=d) for d in range(70 * 366)]
    offsets = []
    for d in days:
        minutes = int(datetime.combine(d, time(12), LOCAL_TZ).utcoffset().total_seconds()) // 60
        offsets.append(f"{'+' if minutes >= 0 else '-'}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}")
    seconds = np.arange(DAY)
    clock = (f"{h:02d}:{m:02d}:{s:02d}" for h, m, s in zip(seconds // 3600, seconds // 60 % 60, seconds % 60,
                                                          strict=True))  # fmt: skip
    return _ascii_table((d.isoformat() + "T" for d in days), 11), _ascii_table(offsets, 6), _ascii_table(clock, 8)


def _ascii_table(texts, width: int) -> np.ndarray:
    return np.frombuffer("".join(texts).encode("ascii"), np.uint8).reshape(-1, width)


def _instant(seconds: pl.Series, millis: pl.Series | None = None) -> pl.Series:
    """Local seconds since EPOCH -> FHIR instant with the Asia/Almaty offset of that date, e.g.
    2025-03-04T08:30:00+05:00 (with .mmm when millis are given). Fixed width, built as bytes."""
    dates, offsets, clock = _time_tables()
    seconds = seconds.to_numpy().astype(np.int64)
    day = seconds // DAY
    parts = [dates[day], clock[seconds % DAY]]
    if millis is not None:
        ms = millis.to_numpy().astype(np.int64)
        parts.append(np.column_stack([np.full(ms.size, ord(".")), ms // 100 + 48, ms // 10 % 10 + 48,
                                      ms % 10 + 48]).astype(np.uint8))  # fmt: skip
    parts.append(offsets[day])
    return _fixed_width_strings(np.concatenate(parts, axis=1))


def _json(*parts: str | pl.Expr) -> pl.Expr:
    """A JSON line from literal fragments and (already JSON-safe) string expressions."""
    return pl.concat_str([pl.lit(p) if isinstance(p, str) else p for p in parts])


def _line(*parts: str | pl.Expr) -> pl.Expr:
    """One NDJSON line, newline included (so the file is the lines' bytes back to back)."""
    return _json(*parts, "\n")


def _json_safe(texts) -> bool:
    """Whether strings can go into a JSON string as they are (no quote, backslash or control)."""
    return not any(c in '"\\' or ord(c) < 0x20 for text in texts for c in text)


# Every text in a resource comes from these catalogues: checked once here, so the templates
# need no per-row escaping.
if not _json_safe([*people.KAZAKH_MALE, *people.KAZAKH_FEMALE, *people.KAZAKH_SURNAMES, *people.RUSSIAN_MALE,
                   *people.RUSSIAN_FEMALE, *people.RUSSIAN_SURNAMES, *people.STREET_NAMES, *REGION_CENTRES.values(),
                   *(r.name_ru for r in load_regions()), *(t for v in VACCINES for t in v[1:3]), *CHANNEL_DISPLAY,
                   *(t for s in SPECIALTIES for t in s[1:])]):  # fmt: skip
    raise ValueError("a catalogue text needs JSON escaping: escape it in the templates")


def _ref(resource_type: str, column: str) -> pl.Expr:
    return _json('{"reference":"' + resource_type + "/", pl.col(column), '"}')


def _millis(h: np.ndarray) -> pl.Series:
    return pl.Series((h >> np.uint64(40)) % np.uint64(1000), dtype=pl.UInt16)


def _coding(system: str, values: pl.Series, index: str, display: pl.Series | None = None) -> list:
    """Fragments of a Coding whose code (and display) come from small catalogues by index."""
    parts: list = ['{"system":"' + system + '","code":"', pl.lit(values).gather(pl.col(index))]
    if display is not None:
        parts += ['","display":"', pl.lit(display).gather(pl.col(index))]
    return [*parts, '"}']


def _render_patients(seed: int, patients: pl.DataFrame) -> pl.DataFrame:
    person = patients["patient"].to_numpy().astype(np.int64)
    info = _people(seed, person).with_columns(
        updated_at=_instant(patients["t"], _millis(_hash(seed, "patient-ms", person))))
    return info.select(
        id="id",
        line=_line(
            '{"resourceType":"Patient","id":"', pl.col("id"),
            '","meta":{"lastUpdated":"', pl.col("updated_at"),
            '"},"identifier":[{"use":"official","type":{"coding":[{"system":'
            '"http://terminology.hl7.org/CodeSystem/v2-0203","code":"NI",'
            '"display":"National unique individual identifier"}],"text":"ИИН"},"system":"' + IIN_SYSTEM
            + '","value":"', pl.col("iin"),
            '"}],"active":true,"name":[{"use":"official","text":"',
            pl.concat_str(pl.col("surname"), pl.col("given"), pl.col("patronymic"), separator=" "),
            '","family":"', pl.col("surname"), '","given":["', pl.col("given"), '","', pl.col("patronymic"),
            '"]}],"telecom":[{"system":"phone","value":"', pl.col("phone"),
            '","use":"mobile"}],"gender":"', pl.col("gender"), '","birthDate":"', pl.col("birth_date"),
            '","address":[{"extension":[{"url":"' + ADDRESS_KATO_EXT + '","valueString":"', pl.col("kato"),
            '"}],"use":"home","type":"physical","text":"', pl.col("city"), ", ", pl.col("line"),
            '","line":["', pl.col("line"), '"],"city":"', pl.col("city"), '","state":"', pl.col("state"),
            '","country":"KZ"}]}',
        ),
    )  # fmt: skip


def _render_appointments(seed: int, frame: pl.DataFrame) -> pl.DataFrame:
    h = _hash(seed, "appointment-ms", frame["booking_day"].to_numpy(), frame["seq"].to_numpy(),
              frame["status"].to_numpy())  # fmt: skip
    frame = frame.with_columns(ms=_millis(h)).sort("updated", "ms", "booking_day", "seq")
    frame = _with_entity_ids(seed, frame, "appointment_id", "patient_id", "practitioner_id").with_columns(
        updated_at=_instant(frame["updated"], frame["ms"]), start_at=_instant(frame["start"]),
        end_at=_instant(frame["start"] + frame["minutes"].cast(pl.Int32) * 60),
        created_at=_instant(frame["created"]))  # fmt: skip
    codes = pl.Series([s[0] for s in SPECIALTIES])
    displays = pl.Series([s[1] for s in SPECIALTIES])
    texts = pl.Series([s[2] for s in SPECIALTIES])
    status = pl.col("status")
    cancelled = _json(
        ',"cancelationReason":{"coding":[',
        *_coding("http://terminology.hl7.org/CodeSystem/appointment-cancellation-reason",
                 pl.Series([r[0] for r in CANCEL_REASONS]), "cancel_reason", pl.Series([r[1] for r in CANCEL_REASONS])),
        "]}",
    )  # fmt: skip
    channel = pl.when(pl.col("online")).then(0).otherwise(1)
    return frame.select(
        id="appointment_id",
        line=_line(
            '{"resourceType":"Appointment","id":"', pl.col("appointment_id"),
            '","meta":{"versionId":"', pl.lit(pl.Series(_VERSION)).gather(status),
            '","lastUpdated":"', pl.col("updated_at"),
            '"},"extension":[{"url":"' + CHANNEL_EXT + '","valueCoding":{"system":"' + CHANNEL_SYSTEM + '","code":"',
            pl.lit(pl.Series(CHANNELS)).gather(channel), '","display":"',
            pl.lit(pl.Series(CHANNEL_DISPLAY)).gather(channel),
            '"}}],"status":"', pl.lit(pl.Series(_STATUS)).gather(status), '"',
            pl.when(status == _STATUS_CANCELLED).then(cancelled).otherwise(pl.lit("")),
            ',"specialty":[{"coding":[', *_coding("http://snomed.info/sct", codes, "specialty", displays),
            '],"text":"', pl.lit(texts).gather(pl.col("specialty")),
            '"}],"appointmentType":{"coding":[',
            *_coding("http://terminology.hl7.org/CodeSystem/v2-0276", pl.Series(APPOINTMENT_TYPES), "appointment_type"),
            ']},"start":"', pl.col("start_at"), '","end":"', pl.col("end_at"),
            '","minutesDuration":', pl.col("minutes").cast(pl.String),
            ',"created":"', pl.col("created_at"),
            '","participant":[{"actor":', _ref("Patient", "patient_id"),
            ',"required":"required","status":"accepted"},{"actor":', _ref("Practitioner", "practitioner_id"),
            ',"required":"required","status":"accepted"}]}',
        ),
    )  # fmt: skip


def _render_encounters(seed: int, frame: pl.DataFrame) -> pl.DataFrame:
    h = _hash(seed, "encounter-ms", frame["booking_day"].to_numpy(), frame["seq"].to_numpy())
    frame = frame.with_columns(ms=_millis(h)).sort("visit_end", "ms", "booking_day", "seq")
    clinic = _register().clinic(frame["practitioner"].to_numpy().astype(np.int64))
    frame = _with_entity_ids(seed, frame, "appointment_id", "encounter_id", "patient_id", "practitioner_id")
    frame = frame.with_columns(
        clinic_id=_hex_ids(_hash(seed, "Organization", clinic)), updated_at=_instant(frame["visit_end"], frame["ms"]),
        start_at=_instant(frame["visit_start"]), end_at=_instant(frame["visit_end"]))  # fmt: skip
    return frame.select(
        id="encounter_id",
        line=_line(
            '{"resourceType":"Encounter","id":"', pl.col("encounter_id"),
            '","meta":{"versionId":"1","lastUpdated":"', pl.col("updated_at"),
            '"},"status":"finished","class":{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode",'
            '"code":"AMB","display":"ambulatory"},"subject":', _ref("Patient", "patient_id"),
            ',"participant":[{"individual":', _ref("Practitioner", "practitioner_id"),
            '}],"appointment":[', _ref("Appointment", "appointment_id"),
            '],"period":{"start":"', pl.col("start_at"), '","end":"', pl.col("end_at"),
            '"},"serviceProvider":', _ref("Organization", "clinic_id"), "}",
        ),
    )  # fmt: skip


def _render_observations(seed: int, frame: pl.DataFrame) -> pl.DataFrame:
    h = _hash(seed, "Observation", frame["booking_day"].to_numpy(), frame["seq"].to_numpy())
    frame = frame.with_columns(observation_id=_hex_ids(h), ms=_millis(_mix(h)))
    frame = frame.sort("visit_end", "ms", "observation_id")
    frame = _with_entity_ids(seed, frame, "encounter_id", "patient_id").with_columns(
        updated_at=_instant(frame["visit_end"], frame["ms"]), measured_at=_instant(frame["measured"]))

    def component(loinc: str, display: str, column: str) -> list:
        return ['{"code":{"coding":[{"system":"http://loinc.org","code":"' + loinc + '","display":"' + display
                + '"}]},"valueQuantity":{"value":', pl.col(column).cast(pl.String),
                ',"unit":"mmHg","system":"http://unitsofmeasure.org","code":"mm[Hg]"}}']  # fmt: skip

    return frame.select(
        id="observation_id",
        line=_line(
            '{"resourceType":"Observation","id":"', pl.col("observation_id"),
            '","meta":{"versionId":"1","lastUpdated":"', pl.col("updated_at"),
            '"},"status":"final","category":[{"coding":[{"system":'
            '"http://terminology.hl7.org/CodeSystem/observation-category","code":"vital-signs",'
            '"display":"Vital Signs"}]}],"code":{"coding":[{"system":"http://loinc.org","code":"85354-9",'
            '"display":"Blood pressure panel with all children optional"}],"text":"Артериальное давление"},'
            '"subject":', _ref("Patient", "patient_id"), ',"encounter":', _ref("Encounter", "encounter_id"),
            ',"effectiveDateTime":"', pl.col("measured_at"), '","component":[',
            *component("8480-6", "Systolic blood pressure", "systolic"), ",",
            *component("8462-4", "Diastolic blood pressure", "diastolic"), "]}",
        ),
    )  # fmt: skip


def _render_immunizations(seed: int, frame: pl.DataFrame) -> pl.DataFrame:
    person = frame["patient"].to_numpy().astype(np.int64)
    h = _hash(seed, "Immunization", frame["day"].to_numpy(), frame["seq"].to_numpy())
    frame = frame.with_columns(
        immunization_id=_hex_ids(h), ms=_millis(_mix(h)),
        patient_id=_hex_ids(_hash(seed, "Patient", person)),
        practitioner_id=_hex_ids(_hash(seed, "Practitioner", frame["practitioner"].to_numpy())),
    ).sort("recorded", "ms", "seq")  # fmt: skip
    frame = frame.with_columns(updated_at=_instant(frame["recorded"], frame["ms"]),
                               occurred_at=_instant(frame["occurred"]), recorded_at=_instant(frame["recorded"]))
    vaccine = pl.col("vaccine")
    catalogue = lambda k: pl.lit(pl.Series([str(v[k]) for v in VACCINES])).gather(vaccine)  # noqa: E731
    route = pl.lit(pl.Series([ROUTES[v[7]] for v in VACCINES])).gather(vaccine)
    lot = pl.concat_str(pl.lit("KZ"), catalogue(0).str.zfill(3), pl.lit("-"), pl.col("lot").cast(pl.String))
    given = _json(
        ',"lotNumber":"', lot, '","route":{"coding":[{"system":'
        '"http://terminology.hl7.org/CodeSystem/v3-RouteOfAdministration","code":"', catalogue(7),
        '","display":"', route, '"}]},"doseQuantity":{"value":', catalogue(8),
        ',"unit":"mL","system":"http://unitsofmeasure.org","code":"mL"}',
    )  # fmt: skip
    reasons = pl.Series([r[0] for r in NOT_DONE_REASONS]), pl.Series([r[1] for r in NOT_DONE_REASONS])
    refused = _json(',"statusReason":{"coding":[',
                    *_coding("http://terminology.hl7.org/CodeSystem/v3-ActReason", *reasons[:1], "reason", reasons[1]),
                    "]}")  # fmt: skip
    not_done = pl.col("not_done")
    return frame.select(
        id="immunization_id",
        line=_line(
            '{"resourceType":"Immunization","id":"', pl.col("immunization_id"),
            '","meta":{"versionId":"1","lastUpdated":"', pl.col("updated_at"),
            '"},"status":"', pl.when(not_done).then(pl.lit("not-done")).otherwise(pl.lit("completed")), '"',
            pl.when(not_done).then(refused).otherwise(pl.lit("")),
            ',"vaccineCode":{"coding":[{"system":"http://hl7.org/fhir/sid/cvx","code":"', catalogue(0),
            '","display":"', catalogue(1), '"}],"text":"', catalogue(2),
            '"},"patient":', _ref("Patient", "patient_id"),
            ',"occurrenceDateTime":"', pl.col("occurred_at"), '","recorded":"', pl.col("recorded_at"),
            '","primarySource":true', pl.when(not_done).then(pl.lit("")).otherwise(given),
            ',"performer":[{"actor":', _ref("Practitioner", "practitioner_id"),
            '}],"protocolApplied":[{"doseNumberPositiveInt":', pl.col("dose").cast(pl.String), "}]}",
        ),
    )  # fmt: skip


def _with_entity_ids(seed: int, frame: pl.DataFrame, *names: str) -> pl.DataFrame:
    """The named ids: an appointment's own resources (from its booking day and number), and
    the people it references."""
    sources = {"appointment_id": ("Appointment", "booking_day", "seq"),
               "encounter_id": ("Encounter", "booking_day", "seq"),
               "patient_id": ("Patient", "patient"), "practitioner_id": ("Practitioner", "practitioner")}  # fmt: skip
    ids = {}
    for name in names:
        purpose, *columns = sources[name]
        ids[name] = _hex_ids(_hash(seed, purpose, *(frame[c].to_numpy() for c in columns)))
    return frame.with_columns(**ids)


# --- the export: errors, defects, files, manifest ---------------------------------------------


def _transaction_time(seed: int, day: date) -> str:
    """When the export of `day`'s changes ran: just after midnight at the start of the next day."""
    rng = rng_for(seed, FEED + ":transaction", day)
    at = datetime.combine(day + timedelta(days=1), time(0), LOCAL_TZ) + timedelta(
        seconds=int(rng.integers(3, 59)), milliseconds=int(rng.integers(0, 1000)))
    return at.isoformat(timespec="milliseconds")


def _export_errors(ctx: DayContext, observations: pl.DataFrame) -> pl.DataFrame | None:
    """On some days 1-3 Observations fail to serialise: OperationOutcome lines name them."""
    rng = ctx.rng("export-errors")
    if rng.random() >= ERROR_DAY_SHARE or observations.height == 0:
        return None
    rows = np.sort(rng.choice(observations.height, min(int(rng.integers(1, 4)), observations.height), replace=False))
    failed = observations[rows]
    ids = _hex_ids(_hash(ctx.seed, "OperationOutcome", ctx.day.toordinal(), rows))
    return failed.select("id").with_columns(outcome_id=ids).with_columns(
        line=_line('{"resourceType":"OperationOutcome","id":"', pl.col("outcome_id"),
                   '","issue":[{"severity":"error","code":"exception","diagnostics":"Failed to export Observation/',
                   pl.col("id"), ': resource could not be serialized (referenced Encounter was being updated)"}]}')
    )  # fmt: skip


@dataclass(frozen=True)
class _Defect:
    kind: str
    column: str | None
    share: float


# Record defects by resource type, in the order they are drawn (each line gets at most one).
ROW_DEFECTS: dict[str, tuple[_Defect, ...]] = {
    "Patient": (_Defect("invalid_iin", "identifier.value", 1.0),),
    "Appointment": (_Defect("missing_required", "status", 0.5), _Defect("future_date", "created", 0.3)),
    "Encounter": (_Defect("missing_required", "class", 0.5),),
    "Immunization": (_Defect("missing_required", "patient", 0.5),
                     _Defect("future_date", "occurrenceDateTime", 0.5)),  # fmt: skip
    "Observation": (),
}
INVALID_JSON_SHARE = 0.3
DUPLICATE_SHARE = 0.5


def _write_export(ctx: DayContext, lines: dict[str, pl.Series], errors: pl.DataFrame | None) -> int:
    folder = ctx.folder()
    job = _hex_ids(_hash(ctx.seed, "export-job", ctx.day.toordinal()))[0]
    files = {t: _split(s.len()) for t, s in lines.items() if s.len()}
    truncated: tuple[str, int] | None = None  # (type, file number)
    if ctx.maybe("truncated_file"):
        candidates = [(t, k) for t, sizes in files.items() for k, size in enumerate(sizes) if size >= 2]
        if candidates:
            truncated = candidates[int(ctx.rng("truncate-file").integers(len(candidates)))]
    output, written = [], 0
    for resource_type, sizes in files.items():
        names = [f"{resource_type}.ndjson"] if len(sizes) == 1 else [
            f"{resource_type}_{k + 1}.ndjson" for k in range(len(sizes))]  # fmt: skip
        # The last line of a file that will be cut carries no other defect.
        protect = None
        if truncated and truncated[0] == resource_type:
            protect = sum(sizes[: truncated[1] + 1]) - 1
        series, source, marks = _plant(ctx, resource_type, lines[resource_type], protect)
        file_of = source // MAX_RESOURCES_PER_FILE
        first = np.searchsorted(file_of, np.arange(len(sizes)))
        line_no = np.arange(source.size) - first[file_of] + 1
        for position, kind, column, detail in marks:
            if kind == "duplicate_record":  # the copy follows its original, in the same file
                detail = f"same record as line {int(line_no[position]) - 1}"
            ctx.record(folder / names[file_of[position]], kind, int(line_no[position]), column=column, detail=detail)
        bounds = np.append(first, source.size)
        for k, name in enumerate(names):
            rows = source[bounds[k]: bounds[k + 1]]
            count = rows.size
            # A slice (no copy) unless the file holds a duplicate.
            part = series.slice(int(rows[0]), count) if rows[-1] - rows[0] + 1 == count else series.gather(rows)
            data = _ndjson_bytes(part)
            if truncated == (resource_type, k):
                data, last = truncate(bytes(data), ctx.rng("truncate"))
                ctx.record(folder / name, "truncated_file", last, detail="the transfer stopped inside this record")
            write_atomic(folder / name, data)
            output.append({"type": resource_type, "url": f"{FILES_URL}/{job}/{name}", "count": count})
            written += count
    error = []
    if errors is not None:
        write_atomic(folder / "OperationOutcome.ndjson", _ndjson_bytes(errors["line"]))
        error.append({"type": "OperationOutcome", "url": f"{FILES_URL}/{job}/OperationOutcome.ndjson"})
    manifest = {
        "transactionTime": _transaction_time(ctx.seed, ctx.day),
        "request": _request_url(_transaction_time(ctx.seed, ctx.day - timedelta(days=1))),
        "requiresAccessToken": True,
        "output": output,
        "error": error,
    }
    write_atomic(folder / "manifest.json", (json.dumps(manifest, ensure_ascii=False, indent=2) + "\n").encode("utf-8"))
    return written


def _request_url(since: str) -> str:
    return (f"{BASE_URL}/$export?_outputFormat={quote('application/fhir+ndjson', safe='')}"
            f"&_type={','.join(RESOURCE_TYPES)}&_since={quote(since, safe='')}")  # fmt: skip


def _split(n: int) -> list[int]:
    """Resources per file: MAX_RESOURCES_PER_FILE each, the rest in the last."""
    files = max(1, math.ceil(n / MAX_RESOURCES_PER_FILE))
    return [min(MAX_RESOURCES_PER_FILE, n - k * MAX_RESOURCES_PER_FILE) for k in range(files)]


def _plant(ctx: DayContext, resource_type: str, lines: pl.Series, protect: int | None
           ) -> tuple[pl.Series, np.ndarray, list[tuple[int, str, str | None, str]]]:  # fmt: skip
    """Record defects in one type's lines. Returns the lines (corrupted where planted), the
    line of `lines` each written line is (duplicates right after their original) and the
    defects as (written position, kind, column, detail)."""
    n = lines.len()
    source = np.arange(n)
    if ctx.defect_rate <= 0 or n == 0:
        return lines, source, []
    rng = ctx.rng("row-defects:" + resource_type)
    taken = np.zeros(n, dtype=bool)
    if protect is not None:
        taken[protect] = True
    marks: list[tuple[int, str, str | None, str]] = []
    replaced: dict[int, str] = {}

    def pick(share: float) -> np.ndarray:
        rows = np.flatnonzero((rng.random(n) < ctx.defect_rate * share) & ~taken)
        taken[rows] = True
        return rows

    for row in pick(INVALID_JSON_SHARE):
        replaced[int(row)], detail = _break_json(lines[int(row)], rng)
        marks.append((int(row), "invalid_json", None, detail))
    for defect in ROW_DEFECTS[resource_type]:
        for row in pick(defect.share):
            replaced[int(row)], detail = _corrupt(lines[int(row)], defect)
            marks.append((int(row), defect.kind, defect.column, detail))
    duplicated = pick(DUPLICATE_SHARE)
    if replaced:
        rows = np.array(sorted(replaced))
        lines = lines.scatter(rows, pl.Series([replaced[r] for r in rows], dtype=pl.String))
    copies = np.zeros(n, dtype=np.int64)
    copies[duplicated] = 1
    source = np.repeat(np.arange(n), 1 + copies)
    position = np.cumsum(1 + copies) - 1 - copies  # where each original lands
    marks = [(int(position[r]), kind, column, detail) for r, kind, column, detail in marks]
    marks += [(int(position[r]) + 1, "duplicate_record", None, "") for r in duplicated]
    return lines, source, marks


def _break_json(line: str, rng: np.random.Generator) -> tuple[str, str]:
    line = line.rstrip("\n")
    form = int(rng.integers(3))
    if form == 0:
        cut = int(len(line) * rng.uniform(0.25, 0.75))
        return line[:cut] + "\n", "the line stops mid-object (a torn write)"
    if form == 1:
        return line[:-1] + ",}\n", "a trailing comma before the closing brace"
    return line.replace('"', "'") + "\n", "single quotes instead of double quotes"


def _corrupt(line: str, defect: _Defect) -> tuple[str, str]:
    resource = json.loads(line)
    if defect.kind == "missing_required":
        del resource[defect.column]
        detail = f"{defect.column} left out"
    elif defect.kind == "future_date":
        old = resource[defect.column]
        resource[defect.column] = _a_year_later(old)
        detail = f"{defect.column}: {old!r} -> {resource[defect.column]!r}"
    elif defect.kind == "invalid_iin":
        old = resource["identifier"][0]["value"]
        resource["identifier"][0]["value"] = str(people.break_check_digit([old])[0])
        detail = f"identifier.value: {old!r} -> {resource['identifier'][0]['value']!r}"
    else:
        raise ValueError(defect.kind)
    return json.dumps(resource, ensure_ascii=False, separators=(",", ":")) + "\n", detail


def _a_year_later(instant: str) -> str:
    year, rest = int(instant[:4]), instant[4:]
    if rest.startswith("-02-29"):
        rest = "-02-28" + rest[6:]
    return f"{year + 1}{rest}"


def _ndjson_bytes(lines: pl.Series) -> memoryview:
    """The file: its lines (each ending in a newline) back to back, viewed in the Arrow buffer."""
    array = lines.to_arrow()
    if array.type != pa.large_string():
        array = pa.compute.cast(array, pa.large_string())
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    _, offsets, data = array.buffers()
    bounds = np.frombuffer(offsets, dtype=np.int64)[array.offset: array.offset + len(array) + 1]
    return memoryview(data)[int(bounds[0]): int(bounds[-1])]


# --- ground truth -----------------------------------------------------------------------------


def ground_truth(params: Params = Params()) -> dict:
    """Every parameter of the simulated export, for checking what the pipeline recovers."""
    pmf = lead_days_pmf(params)
    cdf = np.cumsum(pmf)
    median = int(np.searchsorted(cdf, 0.5))
    weekday = np.asarray(IMMUNIZATION_WEEKDAY) / np.mean(IMMUNIZATION_WEEKDAY)
    month = np.asarray(IMMUNIZATION_MONTH) / np.mean(IMMUNIZATION_MONTH)
    per_month = [round(float(params.immunizations_per_1000_per_year / 365.25 * m * d), 3)
                 for m, d in zip(month, (31, 28.25, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31), strict=True)]  # fmt: skip
    due = 1 - params.cancel_share
    return {
        "standard": "HL7 FHIR R4 Bulk Data export (Bulk Data Access IG v2.0.0), system level, _since",
        "files": {"manifest": "manifest.json", "resources": "<Type>.ndjson or <Type>_<n>.ndjson (see manifest)",
                  "max_resources_per_file": MAX_RESOURCES_PER_FILE, "errors": "OperationOutcome.ndjson",
                  "error_day_share": ERROR_DAY_SHARE},  # fmt: skip
        "resource_types": list(RESOURCE_TYPES),
        "used_by_qala": list(USED_BY_QALA),
        "not_used_by_qala": [t for t in RESOURCE_TYPES if t not in USED_BY_QALA],
        "identifiers": {"iin_system": IIN_SYSTEM, "iin_path": "Patient.identifier.value",
                        "booking_channel": {"extension": CHANNEL_EXT, "system": CHANNEL_SYSTEM,
                                            "codes": list(CHANNELS)},
                        "address_kato_extension": ADDRESS_KATO_EXT,
                        "region": "Patient.address.state = regions seed name_ru"},  # fmt: skip
        "volumes_at_scale_1": {
            "bookings_per_day_mean": BOOKINGS_PER_DAY,
            "basis": "~20M people x ~6.5 outpatient visits a year = ~130M visits = ~356k a day",
            "resources_per_day_approx": 1_430_000,
            "immunizations_completed_per_day_mean": round(
                params.immunizations_per_1000_per_year / 1000 / 365.25 * _register().population, 1),
            "register_population": _register().population,
            "register": "fixed (does not scale): every person of the regions seed",
            "practitioners": PRACTITIONERS,
        },  # fmt: skip
        "allocation": "patients are people of the register: regions in proportion to population",
        "effects": {
            "HLT-01_online_share": {"change_date": params.change_date.isoformat(),
                                    "before": params.online_share_before, "after": params.online_share_after,
                                    "by": "Appointment.created local date"},
            "HLT-02_booking_to_visit_days": {
                "definition": "start local date - created local date, calendar days",
                "median": median, "lead_days_pmf": [round(float(p), 6) for p in pmf],
                "cdf_at_median_minus_1": round(float(cdf[median - 1]), 4) if median else 0.0,
                "cdf_at_median": round(float(cdf[median]), 4),
                "base_head": list(params.lead_head), "tail_ratio": params.lead_tail_ratio, "max_days": MAX_LEAD,
            },
            "HLT-03_no_show_rate": {"change_date": params.change_date.isoformat(),
                                    "before": params.no_show_before, "after": params.no_show_after,
                                    "denominator": "appointments due (fulfilled + noshow)",
                                    "by": "Appointment.start local date"},
            "cancelled_share": params.cancel_share,
            "fulfilled_share_of_all": round(due * (1 - params.no_show_after), 4),
            "HLT-04_immunizations": {"completed_per_1000_per_year": params.immunizations_per_1000_per_year,
                                     "completed_per_1000_by_month_mean": per_month,
                                     "not_done_share": params.immunization_not_done_share,
                                     "weekday_factors_mon_to_sun": [round(float(w), 4) for w in weekday],
                                     "month_factors": [round(float(m), 4) for m in month]},
            "booking_weekday_factors_mon_to_sun": list(BOOKING_WEEKDAY),
            "booking_month_factors": list(BOOKING_MONTH),
            "start_weekday_weights_mon_to_sun": list(START_WEEKDAY_WEIGHT),
            "blood_pressure_share_of_adult_visits": BP_SHARE,
        },
        "defect_kinds": ["invalid_json", "invalid_iin", "missing_required", "future_date", "duplicate_record",
                         "truncated_file"],
        "defect_columns": {t: [f"{d.kind}:{d.column}" for d in ds] for t, ds in ROW_DEFECTS.items() if ds},
    }  # fmt: skip
