"""The clinic FHIR Bulk Data export simulator: the Bulk Data manifest, valid FHIR R4 resources,
the _since semantics across days, the planted HLT-01..04 effects, determinism, defects."""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from datetime import date, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import numpy as np
import polars as pl
import pytest

# fhir.resources 8 has no plain R4 package; R4B is its closest model of R4. The resources
# simulated here (Patient, Appointment, Encounter, Immunization, Observation, OperationOutcome)
# are unchanged between R4 (4.0.1) and R4B (4.3.0): R4B only changed the medication definition,
# evidence and subscription modules (https://hl7.org/fhir/R4B/diff.html, r4b-explanation.html).
from fhir.resources.R4B.appointment import Appointment
from fhir.resources.R4B.encounter import Encounter
from fhir.resources.R4B.immunization import Immunization
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhir.resources.R4B.patient import Patient

from qala_devkit.simulate import fhir_bulk as fb
from qala_devkit.simulate import people, simulate
from qala_devkit.simulate.base import DayContext, read_defects
from qala_devkit.simulate.world import load_regions, rng_for

FEED = "health/fhir_bulk"
START = date(2024, 2, 19)  # a Monday; the run spans Kazakhstan's move to UTC+5 on 2024-03-01
DAYS = 14  # two whole weeks
SCALE = 0.01  # ~3,500 bookings a day
CHANGE = START + timedelta(days=7)  # the planted HLT-01/HLT-03 change, moved into the run
PARAMS = fb.Params(change_date=CHANGE)
MODELS = {"Patient": Patient, "Appointment": Appointment, "Encounter": Encounter,
          "Immunization": Immunization, "Observation": Observation}  # fmt: skip
SAMPLE_PER_TYPE = 600  # lines validated with fhir.resources per resource type
INSTANT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{3})?(\+0[56]:00)$")
KAZAKH_LETTERS = set("әғқңөұүһіӘҒҚҢӨҰҮҺІ")


@pytest.fixture(autouse=True)
def _fresh_cache():
    """Each test recomputes the draws, so determinism is not just the cache answering."""
    fb._bookings.cache_clear()
    yield


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("health")
    fb._bookings.cache_clear()
    rows = simulate(root, START, DAYS, scale=SCALE, seed=42, domains=["health"], defect_rate=0,
                    params={FEED: PARAMS})  # fmt: skip
    assert rows[FEED] > 0
    return root


@pytest.fixture(scope="module")
def export(run) -> dict:
    """Every resource of the run, flattened per type (read with polars: the files are NDJSON),
    with the folder day; and evenly spaced samples of whole resources for validation."""
    frames: dict[str, list[pl.DataFrame]] = {t: [] for t in fb.RESOURCE_TYPES}
    texts: dict[str, list[pl.Series]] = {t: [] for t in fb.RESOURCE_TYPES}
    for folder in _folders(run):
        day = date.fromisoformat(folder.name)
        for entry in _manifest(folder)["output"]:
            kind, raw = entry["type"], _lines(folder / _name(entry))
            frame = pl.select(raw.str.json_decode(pl.Struct(_SCHEMAS[kind]))).unnest(raw.name)
            frame = frame.select(day=pl.lit(day), **_FIELDS[kind])
            if kind == "Patient":  # the whole resource but meta, to compare a person across days
                frame = frame.with_columns(content=raw.str.replace(r'"meta":\{[^}]*\},', "").hash())
            frames[kind].append(frame)
            texts[kind].append(raw)
    samples = {}
    for kind, parts in texts.items():
        raw = pl.concat(parts)
        samples[kind] = [json.loads(x) for x in raw.gather_every(max(1, raw.len() // SAMPLE_PER_TYPE)).to_list()]
    return {"frames": {t: pl.concat(f) for t, f in frames.items()}, "samples": samples}


def _lines(path: Path) -> pl.Series:
    """An NDJSON file's lines, read by polars (no JSON line holds the unit separator)."""
    return pl.read_csv(path, has_header=False, separator="\x1f", quote_char=None,
                       schema={"line": pl.String})["line"]  # fmt: skip


def _struct(**fields) -> pl.Struct:
    return pl.Struct(fields)


_REF = _struct(reference=pl.String)
_META = _struct(versionId=pl.String, lastUpdated=pl.String)
_SCHEMAS = {
    "Appointment": {"id": pl.String, "meta": _META, "status": pl.String, "created": pl.String, "start": pl.String,
                    "extension": pl.List(_struct(valueCoding=_struct(code=pl.String))),
                    "participant": pl.List(_struct(actor=_REF))},
    "Encounter": {"id": pl.String, "meta": _META, "subject": _REF, "appointment": pl.List(_REF),
                  "period": _struct(start=pl.String)},
    "Observation": {"id": pl.String, "meta": _META, "subject": _REF, "encounter": _REF},
    "Immunization": {"id": pl.String, "meta": _META, "status": pl.String, "patient": _REF,
                     "occurrenceDateTime": pl.String,
                     "vaccineCode": _struct(coding=pl.List(_struct(code=pl.String)))},
    "Patient": {"id": pl.String, "meta": _META, "gender": pl.String, "birthDate": pl.String,
                "identifier": pl.List(_struct(value=pl.String)),
                "address": pl.List(_struct(state=pl.String, extension=pl.List(_struct(valueString=pl.String))))},
}  # fmt: skip
_BASE = {"id": pl.col("id"), "updated": pl.col("meta").struct.field("lastUpdated"),
         "version": pl.col("meta").struct.field("versionId")}  # fmt: skip
_FIELDS = {
    "Appointment": {**_BASE, "status": pl.col("status"), "created": pl.col("created"), "start": pl.col("start"),
                    "channel": pl.col("extension").list.first().struct.field("valueCoding").struct.field("code"),
                    "patient": pl.col("participant").list.first().struct.field("actor").struct.field("reference")},
    "Encounter": {**_BASE, "subject": pl.col("subject").struct.field("reference"),
                  "appointment": pl.col("appointment").list.first().struct.field("reference"),
                  "period_start": pl.col("period").struct.field("start")},
    "Observation": {**_BASE, "subject": pl.col("subject").struct.field("reference"),
                    "encounter": pl.col("encounter").struct.field("reference")},
    "Immunization": {**_BASE, "status": pl.col("status"), "patient": pl.col("patient").struct.field("reference"),
                     "occurrence": pl.col("occurrenceDateTime"),
                     "cvx": pl.col("vaccineCode").struct.field("coding").list.first().struct.field("code")},
    "Patient": {**_BASE, "gender": pl.col("gender"), "birth": pl.col("birthDate"),
                "iin": pl.col("identifier").list.first().struct.field("value"),
                "state": pl.col("address").list.first().struct.field("state"),
                "kato": pl.col("address").list.first().struct.field("extension").list.first()
                .struct.field("valueString")},
}  # fmt: skip


def _folders(root: Path) -> list[Path]:
    return sorted(p for p in (root / "landing" / FEED).iterdir() if p.is_dir())


def _manifest(folder: Path) -> dict:
    return json.loads((folder / "manifest.json").read_text(encoding="utf-8"))


def _name(entry: dict) -> str:
    return entry["url"].rsplit("/", 1)[1]


def _local_date(column: str) -> pl.Expr:
    return pl.col(column).str.slice(0, 10).str.to_date()


def _digests(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted((root / "landing" / FEED).rglob("*")) if p.is_file()}  # fmt: skip


# --- the Bulk Data manifest ------------------------------------------------------------------


def test_manifest_follows_the_bulk_data_spec_and_names_every_file(run):
    # Bulk Data Access IG v2.0.0, complete status response: transactionTime (instant), request
    # (the kick-off URL), requiresAccessToken (boolean), output [{type, url, count}], error [].
    previous = None
    for folder in _folders(run):
        day = date.fromisoformat(folder.name)
        manifest = _manifest(folder)
        assert list(manifest) == ["transactionTime", "request", "requiresAccessToken", "output", "error"]
        tx = manifest["transactionTime"]
        assert INSTANT.match(tx) and tx.startswith((day + timedelta(days=1)).isoformat() + "T00:00:")
        assert isinstance(manifest["requiresAccessToken"], bool)
        request = urlsplit(manifest["request"])
        assert manifest["request"].startswith(fb.BASE_URL + "/$export?")
        query = {k: v[0] for k, v in parse_qs(request.query).items()}
        assert query["_type"].split(",") == list(fb.RESOURCE_TYPES)
        assert query["_outputFormat"] == "application/fhir+ndjson"
        assert datetime.fromisoformat(query["_since"]) < datetime.fromisoformat(tx)
        if previous is not None:  # each export asks for the changes since the previous one
            assert query["_since"] == previous
        previous = tx
        named = {"manifest.json"}
        assert {e["type"] for e in manifest["output"]} == set(fb.RESOURCE_TYPES)
        for entry in manifest["output"]:
            assert set(entry) == {"type", "url", "count"}
            assert entry["url"].startswith("https://") and entry["url"].endswith(".ndjson")
            data = (folder / _name(entry)).read_bytes()
            assert data.endswith(b"\n") and data.count(b"\n") == entry["count"] > 0
            named.add(_name(entry))
        assert isinstance(manifest["error"], list)
        named |= {_name(e) for e in manifest["error"]}
        assert {p.name for p in folder.iterdir()} == named


def test_big_types_are_split_into_numbered_files_as_the_manifest_says(tmp_path, monkeypatch):
    monkeypatch.setattr(fb, "MAX_RESOURCES_PER_FILE", 400)
    ctx = DayContext(root=tmp_path, feed=FEED, day=date(2025, 4, 8), scale=0.005, seed=5, defect_rate=0.01)
    written = fb.generate_day(ctx)
    manifest = _manifest(ctx.folder())
    appointment_files = [_name(e) for e in manifest["output"] if e["type"] == "Appointment"]
    assert len(appointment_files) > 2
    assert appointment_files == [f"Appointment_{k}.ndjson" for k in range(1, len(appointment_files) + 1)]
    assert sum(e["count"] for e in manifest["output"]) == written
    cut = {Path(d.file).name for d in ctx.defects if d.kind == "truncated_file"}
    for entry in manifest["output"]:
        lines = (ctx.folder() / _name(entry)).read_bytes().count(b"\n")
        assert lines == entry["count"] - (_name(entry) in cut)
    assert ctx.defects
    for defect in ctx.defects:
        _check_defect(tmp_path, vars(defect))


# --- FHIR R4 validity ------------------------------------------------------------------------


def test_every_resource_type_validates_as_fhir_r4(export):
    # fhir.resources checks types, required elements and choice types, not cardinality 1..*
    # of lists nor required-binding codes: those are checked here, per the R4 spec.
    for kind, model in MODELS.items():
        sample = export["samples"][kind]
        assert len(sample) >= SAMPLE_PER_TYPE, kind  # spread over the whole run
        for resource in sample:
            model.model_validate(resource)
            _check_r4_rules(resource)


def _check_r4_rules(r: dict) -> None:
    kind = r["resourceType"]
    assert re.fullmatch(r"[A-Za-z0-9\-.]{1,64}", r["id"])
    assert INSTANT.match(r["meta"]["lastUpdated"])
    if kind == "Appointment":
        assert r["status"] in {"proposed", "pending", "booked", "arrived", "fulfilled", "cancelled", "noshow",
                               "entered-in-error", "checked-in", "waitlist"}  # fmt: skip
        assert len(r["participant"]) >= 1
        assert all(p["status"] in {"accepted", "declined", "tentative", "needs-action"} for p in r["participant"])
        assert r["participant"][0]["actor"]["reference"].startswith("Patient/")
        assert INSTANT.match(r["start"]) and INSTANT.match(r["end"]) and INSTANT.match(r["created"])
        assert r["start"] < r["end"]  # same offset within a day: text order is time order
        (channel,) = r["extension"]
        assert channel["url"] == fb.CHANNEL_EXT and channel["valueCoding"]["code"] in fb.CHANNELS
        assert ("cancelationReason" in r) == (r["status"] == "cancelled")
    elif kind == "Encounter":
        assert r["status"] in {"planned", "arrived", "triaged", "in-progress", "onleave", "finished", "cancelled",
                               "entered-in-error", "unknown"}  # fmt: skip
        assert r["class"] == {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB",
                              "display": "ambulatory"}  # fmt: skip
        assert r["appointment"][0]["reference"].startswith("Appointment/")
        assert r["subject"]["reference"].startswith("Patient/")
        assert INSTANT.match(r["period"]["start"]) and r["period"]["start"] <= r["period"]["end"]
    elif kind == "Immunization":
        assert r["status"] in {"completed", "entered-in-error", "not-done"}
        assert ("statusReason" in r) == (r["status"] == "not-done")
        assert r["vaccineCode"]["coding"][0]["system"] == "http://hl7.org/fhir/sid/cvx"
        assert r["vaccineCode"]["coding"][0]["code"] in {v[0] for v in fb.VACCINES}
        assert r["patient"]["reference"].startswith("Patient/")
        assert INSTANT.match(r["occurrenceDateTime"])
    elif kind == "Observation":
        assert r["status"] in {"registered", "preliminary", "final", "amended", "corrected", "cancelled",
                               "entered-in-error", "unknown"}  # fmt: skip
        assert [c["code"]["coding"][0]["code"] for c in r["component"]] == ["8480-6", "8462-4"]
    elif kind == "Patient":
        (identifier,) = r["identifier"]
        assert identifier["system"] == fb.IIN_SYSTEM and identifier["type"]["coding"][0]["code"] == "NI"
        assert r["gender"] in {"male", "female", "other", "unknown"}
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", r["birthDate"])
        assert r["telecom"][0]["system"] == "phone"


def test_instants_carry_the_almaty_offset_of_their_date(export):
    # Kazakhstan moved to a single zone, UTC+5, on 2024-03-01: +06:00 before, +05:00 from then.
    offsets = Counter()
    for kind in ("Appointment", "Encounter", "Immunization"):
        frame = export["frames"][kind]
        for column in {"Appointment": ("updated", "created", "start"), "Encounter": ("updated", "period_start"),
                       "Immunization": ("updated", "occurrence")}[kind]:  # fmt: skip
            values = frame[column]
            assert values.str.contains(INSTANT.pattern).all()
            before = values.str.slice(0, 10) < "2024-03-01"
            assert (values.str.slice(-6) == pl.select(pl.when(before).then(pl.lit("+06:00"))
                                                      .otherwise(pl.lit("+05:00"))).to_series()).all(), column
            offsets.update(values.str.slice(-6).to_list())
    assert offsets["+06:00"] > 0 and offsets["+05:00"] > 0


def test_patients_carry_valid_iins_cyrillic_names_phones_and_regions(export):
    patients = export["frames"]["Patient"]
    assert people.is_valid(patients["iin"].to_numpy()).all()
    # The IIN agrees with the birth date and sex: YYMMDD, then 3/4 (1900s) or 5/6 (2000s).
    born = patients["birth"]
    assert (patients["iin"].str.slice(0, 6) == born.str.slice(2, 2) + born.str.slice(5, 2) + born.str.slice(8, 2)).all()
    century = patients["iin"].str.slice(6, 1).cast(pl.Int32)
    expected = (pl.Series([3] * patients.height) + 2 * (born.str.slice(0, 4) >= "2000").cast(pl.Int32)
                + (patients["gender"] == "female").cast(pl.Int32))  # fmt: skip
    assert (century == expected).all()
    # One person, one IIN; the same person is the same resource on every day (but meta).
    unique = patients.unique("id")
    assert unique["iin"].n_unique() == unique.height
    assert patients.group_by("id").agg(pl.col("content").n_unique())["content"].max() == 1
    assert patients.group_by("id").len()["len"].max() > 1  # people come back
    regions = {r.name_ru: r.kato_prefix for r in load_regions()}
    assert set(patients["state"].unique()) <= set(regions)
    assert (patients["kato"].str.slice(0, 2) == patients["state"].replace_strict(regions)).all()
    assert patients["kato"].str.contains(r"^\d{9}$").all()
    names = [r["name"][0] for r in export["samples"]["Patient"]]
    assert all(re.fullmatch(r"[А-Яа-яЁёӘәҒғҚқҢңӨөҰұҮүҺһІі\- ]+", " ".join([n["family"], *n["given"]])) for n in names)
    assert sum(bool(KAZAKH_LETTERS & set(n["text"])) for n in names) > len(names) / 3
    phones = [r["telecom"][0]["value"] for r in export["samples"]["Patient"]]
    assert all(re.fullmatch(r"\+7 7\d\d \d{3} \d{2} \d{2}", p) for p in phones)


# --- the export across days: _since, references, the appointment's life ----------------------


def test_each_export_holds_exactly_the_resources_changed_that_day(export):
    # Bulk export with _since returns the current version of what changed since the last
    # export: every resource's lastUpdated falls on the folder's day, once per export.
    for kind, frame in export["frames"].items():
        assert frame.select((_local_date("updated") == pl.col("day")).all()).item(), kind
        assert frame.group_by("day").agg(pl.col("id").is_unique().all())["id"].all(), kind


def test_references_resolve_within_the_exports_so_far(export):
    frames = export["frames"]
    patients = frames["Patient"].select(pid=pl.concat_str(pl.lit("Patient/"), "id"), first_seen="day").group_by(
        "pid").agg(pl.col("first_seen").min())  # fmt: skip
    appointments = frames["Appointment"]
    # Appointments booked inside the run: their patient was exported on the booking day.
    booked_in_run = appointments.filter(_local_date("created") >= START)
    joined = booked_in_run.join(patients, left_on="patient", right_on="pid", how="left")
    assert joined["first_seen"].null_count() == 0
    assert (joined["first_seen"] <= joined["day"]).all()
    # Immunisations touch the patient's record the same day.
    touched = frames["Patient"].select("day", pid=pl.concat_str(pl.lit("Patient/"), "id"), touched=pl.lit(True))
    immunized = frames["Immunization"].join(touched, left_on=["day", "patient"], right_on=["day", "pid"], how="left")
    assert immunized["touched"].null_count() == 0
    # An Encounter refers to the Appointment fulfilled in the same export, and to its patient.
    fulfilled = appointments.filter(pl.col("status") == "fulfilled").select(
        "day", "patient", ref=pl.concat_str(pl.lit("Appointment/"), "id"))
    encounters = frames["Encounter"].join(fulfilled, left_on=["day", "appointment"], right_on=["day", "ref"],
                                          how="left")
    assert encounters["patient"].null_count() == 0 and (encounters["patient"] == encounters["subject"]).all()
    assert encounters.height == fulfilled.height  # and every fulfilled appointment has one
    observed = frames["Observation"].join(
        frames["Encounter"].select("day", "subject", ref=pl.concat_str(pl.lit("Encounter/"), "id")),
        left_on=["day", "encounter"], right_on=["day", "ref"], how="left", suffix="_encounter")
    assert observed["subject_encounter"].null_count() == 0
    assert (observed["subject"] == observed["subject_encounter"]).all()


def test_an_appointment_appears_when_booked_and_again_when_resolved(export):
    appointments = export["frames"]["Appointment"].sort("day")
    versions = {"booked": "1", "fulfilled": "3", "noshow": "2", "cancelled": "2"}
    assert (appointments["version"] == appointments["status"].replace_strict(versions)).all()
    history = appointments.group_by("id", maintain_order=True).agg(
        pl.col("status"), pl.col("day"), pl.col("created").n_unique().alias("created_n"),
        pl.col("start").n_unique().alias("start_n"))  # fmt: skip
    assert history["status"].list.len().max() == 2
    twice = history.filter(pl.col("status").list.len() == 2)
    assert twice.height > 1000
    assert (twice["status"].list.first() == "booked").all()
    assert twice["status"].list.last().is_in(["fulfilled", "noshow", "cancelled"]).all()
    assert (twice["day"].list.first() < twice["day"].list.last()).all()
    assert (history["created_n"] == 1).all() and (history["start_n"] == 1).all()
    # Booked versions are exported the day they were made; resolutions when they happen.
    booked = appointments.filter(pl.col("status") == "booked")
    assert (booked["day"] == booked.select(_local_date("created")).to_series()).all()
    attended = appointments.filter(pl.col("status").is_in(["fulfilled", "noshow"]))
    assert (attended["day"] == attended.select(_local_date("start")).to_series()).all()
    cancelled = appointments.filter(pl.col("status") == "cancelled")
    assert (_dates(cancelled["created"]) <= cancelled["day"]).all()
    assert (cancelled["day"] <= _dates(cancelled["start"])).all()
    # Same-day bookings resolved the same day appear once, already resolved.
    once = history.filter(pl.col("status").list.len() == 1)["status"].list.first()
    assert once.is_in(["fulfilled", "noshow", "cancelled", "booked"]).all() and (once != "booked").sum() > 0


def _dates(values: pl.Series) -> pl.Series:
    return values.str.slice(0, 10).str.to_date()


def test_visits_fall_mostly_on_weekdays(export):
    starts = _latest(export).select(_local_date("start").dt.weekday().alias("weekday"))["weekday"]
    share = {w: (starts == w).mean() for w in range(1, 8)}
    # Expected from START_WEEKDAY_WEIGHT: Saturday ~7%, Sunday ~1%; weekdays ~92%.
    assert sum(share[w] for w in range(1, 6)) > 0.85
    assert 0.03 < share[6] < 0.12 and share[7] < 0.03


def _latest(export) -> pl.DataFrame:
    """Each appointment once, in its latest version."""
    return export["frames"]["Appointment"].sort("day").unique("id", keep="last", maintain_order=True)


# --- the planted effects ---------------------------------------------------------------------


def test_hlt01_online_share_steps_up_at_the_change_date(export):
    # ~35k appointments created before CHANGE (some before the run, resolved in it) and ~26k
    # from it: the share's sigma is at most sqrt(0.25/26000) = 0.0031, so 0.013 is > 4 sigma;
    # the step itself (0.10) is > 30 sigma.
    latest = _latest(export).with_columns(online=pl.col("channel") == "online", created_day=_local_date("created"))
    before = latest.filter(pl.col("created_day") < CHANGE)["online"]
    after = latest.filter(pl.col("created_day") >= CHANGE)["online"]
    assert before.len() > 20_000 and after.len() > 20_000
    assert before.mean() == pytest.approx(PARAMS.online_share_before, abs=0.013)
    assert after.mean() == pytest.approx(PARAMS.online_share_after, abs=0.013)


def test_hlt03_no_show_rate_among_due_appointments(export):
    # ~24k due appointments each side: sigma = sqrt(0.12 x 0.88 / 24000) = 0.0021; 0.01 is 4.7
    # sigma. Cancelled among ~50k resolved: sigma 0.0011.
    latest = _latest(export)
    due = latest.filter(pl.col("status").is_in(["fulfilled", "noshow"])).with_columns(start_day=_local_date("start"))
    for side, expected in ((due["start_day"] < CHANGE, PARAMS.no_show_before),
                           (due["start_day"] >= CHANGE, PARAMS.no_show_after)):  # fmt: skip
        rate = (due.filter(side)["status"] == "noshow").mean()
        assert rate == pytest.approx(expected, abs=0.01)
    resolved = latest.filter(pl.col("status") != "booked")
    assert (resolved["status"] == "cancelled").mean() == pytest.approx(PARAMS.cancel_share, abs=0.01)


def test_hlt02_booking_to_visit_days_have_the_stated_median(export, run):
    # Appointments held (fulfilled) in two whole weeks: ~42k, whatever their booking day.
    # The stated distribution mixes booking weekdays by volume, which whole weeks of visits
    # reproduce. Each CDF value's sigma is <= sqrt(0.25/42000) = 0.0024: 0.012 is 5 sigma, and
    # the median (the CDF goes 0.355 -> 0.618 at 2 days) cannot move.
    truth = json.loads((run / "simulator" / "ground_truth.json").read_text(encoding="utf-8"))[FEED]
    stated = truth["effects"]["HLT-02_booking_to_visit_days"]
    held = _latest(export).filter(pl.col("status") == "fulfilled")
    lead = held.select((_local_date("start") - _local_date("created")).dt.total_days().alias("lead"))["lead"]
    assert held.height > 30_000
    assert lead.min() >= 0 and lead.max() <= fb.MAX_LEAD
    assert int(lead.median()) == stated["median"] == 2
    cdf = np.cumsum(stated["lead_days_pmf"])
    for k in range(5):
        assert (lead <= k).mean() == pytest.approx(cdf[k], abs=0.012), k
    assert stated["cdf_at_median_minus_1"] < 0.45 and stated["cdf_at_median"] > 0.55


def test_hlt04_immunisations_per_1000_population(export):
    # Completed immunisations vs the exact Poisson mean summed over the days: ~4,400 expected,
    # sigma ~66; 4 sigma is ~6%. Not-done among ~4,500 records: sigma 0.0025.
    immunizations = export["frames"]["Immunization"]
    completed = (immunizations["status"] == "completed").sum()
    expected = sum(fb.expected_immunizations(START + timedelta(days=k), SCALE, PARAMS) for k in range(DAYS))
    assert completed == pytest.approx(expected, abs=4 * expected**0.5)
    # The stated yearly rate per 1,000 people (the register is the seeds' population).
    population = fb._register().population * SCALE
    weekday = np.asarray(fb.IMMUNIZATION_WEEKDAY) / np.mean(fb.IMMUNIZATION_WEEKDAY)
    month = np.asarray(fb.IMMUNIZATION_MONTH) / np.mean(fb.IMMUNIZATION_MONTH)
    factors = sum(weekday[d.weekday()] * month[d.month - 1] for d in (START + timedelta(days=k) for k in range(DAYS)))
    per_1000_year = completed / population * 1000 * 365.25 / factors
    assert per_1000_year == pytest.approx(PARAMS.immunizations_per_1000_per_year, rel=4 / expected**0.5)
    not_done = (immunizations["status"] == "not-done").mean()
    assert not_done == pytest.approx(PARAMS.immunization_not_done_share, abs=0.012)
    assert immunizations["cvx"].n_unique() == len(fb.VACCINES)


def test_patients_come_from_regions_in_proportion_to_population(export):
    patients = export["frames"]["Patient"].unique("id")
    by_prefix = dict(patients.group_by(pl.col("kato").str.slice(0, 2)).len().iter_rows())
    assert by_prefix["75"] > 5 * by_prefix["62"]  # Almaty city 2.23M people vs Ulytau 0.22M
    share = patients.height and by_prefix["61"] / patients.height  # Turkistan: 2.13M of 19.95M
    assert share == pytest.approx(2131 / 19951, abs=0.01)


def test_volumes_are_national_at_scale_1_and_linear_in_scale(tmp_path):
    assert fb.BOOKINGS_PER_DAY == 350_000
    day = date(2025, 4, 9)
    assert fb._expected_bookings(day, 0.5) == pytest.approx(fb._expected_bookings(day, 1.0) / 2)
    counts = {}
    for scale in (0.004, 0.008):
        root = tmp_path / str(scale)
        fb._bookings.cache_clear()
        counts[scale] = sum(simulate(root, day, 3, scale=scale, seed=11, domains=["health"], defect_rate=0).values())
    # ~20k vs ~40k resources, driven by ~4,000 vs ~8,000 bookings (sigma of the ratio ~2.5%).
    assert counts[0.008] / counts[0.004] == pytest.approx(2.0, rel=0.1)


# --- determinism -----------------------------------------------------------------------------


def test_same_seed_gives_identical_bytes_and_another_seed_differs(tmp_path):
    for name, seed in (("a", 7), ("b", 7), ("c", 8)):
        fb._bookings.cache_clear()
        simulate(tmp_path / name, date(2025, 3, 1), 3, scale=0.003, seed=seed, domains=["health"], defect_rate=0.01)
    a, b, c = (_digests(tmp_path / name) for name in "abc")
    assert len(a) >= 3 * 6
    assert a == b
    shared = set(a) & set(c)
    assert all(a[k] != c[k] for k in shared)


def test_a_day_alone_is_byte_identical_to_the_same_day_in_the_run(run, tmp_path):
    day = START + timedelta(days=10)
    fb._bookings.cache_clear()
    fb.generate_day(DayContext(root=tmp_path, feed=FEED, day=day, scale=SCALE, seed=42, params=PARAMS))
    alone = _digests(tmp_path)
    in_run = {k: v for k, v in _digests(run).items() if f"/{day.isoformat()}/" in k}
    assert len(alone) >= 6 and alone == in_run


# --- defects ---------------------------------------------------------------------------------


def test_no_defects_without_a_defect_rate(run):
    assert read_defects(run, FEED) == []


def test_record_defects_are_planted_where_the_log_says(tmp_path):
    simulate(tmp_path, date(2025, 5, 5), 3, scale=0.005, seed=3, domains=["health"], defect_rate=0.01)
    defects = read_defects(tmp_path, FEED)
    kinds = Counter(d["kind"] for d in defects)
    assert {"invalid_json", "invalid_iin", "missing_required", "future_date", "duplicate_record"} <= set(kinds)
    assert set(kinds) <= set(fb.ground_truth()["defect_kinds"])
    columns = {(d["kind"], d.get("column")) for d in defects}
    assert ("invalid_iin", "identifier.value") in columns and ("missing_required", "status") in columns
    for defect in defects:
        _check_defect(tmp_path, defect)


def test_a_truncated_file_is_cut_inside_its_last_line(tmp_path):
    rate = 0.05
    # The first day whose file-defect stream truncates (the choice does not depend on scale).
    day = next(date(2025, 1, 1) + timedelta(days=k) for k in range(400)
               if DayContext(root=tmp_path, feed=FEED, day=date(2025, 1, 1) + timedelta(days=k),
                             defect_rate=rate).maybe("truncated_file"))  # fmt: skip
    ctx = DayContext(root=tmp_path, feed=FEED, day=day, scale=0.003, seed=42, defect_rate=rate)
    fb.generate_day(ctx)
    truncated = [vars(d) for d in ctx.defects if d.kind == "truncated_file"]
    assert len(truncated) == 1
    for defect in (vars(d) for d in ctx.defects):
        _check_defect(tmp_path, defect)


def _check_defect(root: Path, defect: dict) -> None:
    """The lead's conventions: the defect is exactly at (file, line, column)."""
    path = root / "landing" / defect["file"]
    data = path.read_bytes()
    lines = data.split(b"\n")
    text = lines[defect["line"] - 1]
    kind, column = defect["kind"], defect.get("column")
    if kind == "truncated_file":
        assert not data.endswith(b"\n") and defect["line"] == len(lines)
        with pytest.raises(json.JSONDecodeError):
            json.loads(text)
        return
    if kind == "invalid_json":
        with pytest.raises(json.JSONDecodeError):
            json.loads(text)
        return
    if kind == "duplicate_record":
        original = int(defect["detail"].rsplit(" ", 1)[1])
        assert text == lines[original - 1] and original == defect["line"] - 1
        return
    resource = json.loads(text)
    if kind == "missing_required":
        assert resource.get(column) is None
        assert column in {"status", "class", "patient"}
        return
    value = resource
    for key in column.split("."):
        value = value[0][key] if isinstance(value, list) else value[key]
    if kind == "invalid_iin":
        assert not people.is_valid([value])[0]
    elif kind == "future_date":
        assert value[:10] > path.parent.name
    else:
        raise AssertionError(kind)


def test_some_days_report_export_errors_for_the_observations_they_lost(tmp_path):
    day = next(date(2025, 1, 1) + timedelta(days=k) for k in range(400)
               if rng_for(42, FEED + ":export-errors", date(2025, 1, 1) + timedelta(days=k)).random()
               < fb.ERROR_DAY_SHARE)  # fmt: skip
    ctx = DayContext(root=tmp_path, feed=FEED, day=day, scale=0.003, seed=42)
    fb.generate_day(ctx)
    manifest = _manifest(ctx.folder())
    assert [e["type"] for e in manifest["error"]] == ["OperationOutcome"]
    outcomes = [json.loads(line) for line in (ctx.folder() / _name(manifest["error"][0])).read_text().splitlines()]
    assert 1 <= len(outcomes) <= 3
    observed = {json.loads(line)["id"] for line in (ctx.folder() / "Observation.ndjson").read_text().splitlines()}
    for outcome in outcomes:
        OperationOutcome.model_validate(outcome)
        lost = re.search(r"Observation/([0-9a-f]{16})", outcome["issue"][0]["diagnostics"]).group(1)
        assert lost not in observed
    assert not ctx.defects  # a feature of the export, not a planted defect


# --- ground truth ----------------------------------------------------------------------------


def test_ground_truth_states_the_planted_effects(run):
    truth = json.loads((run / "simulator" / "ground_truth.json").read_text(encoding="utf-8"))[FEED]
    effects = truth["effects"]
    assert effects["HLT-01_online_share"]["change_date"] == CHANGE.isoformat()
    defaults = fb.ground_truth()["effects"]
    assert defaults["HLT-01_online_share"] | {"before": 0.45, "after": 0.55, "change_date": "2025-01-01"} == \
        defaults["HLT-01_online_share"]  # fmt: skip
    assert defaults["HLT-03_no_show_rate"]["before"] == 0.12 and defaults["HLT-03_no_show_rate"]["after"] == 0.10
    assert defaults["HLT-04_immunizations"]["completed_per_1000_per_year"] == 600
    assert sum(defaults["HLT-02_booking_to_visit_days"]["lead_days_pmf"]) == pytest.approx(1.0, abs=1e-5)
    assert truth["volumes_at_scale_1"]["bookings_per_day_mean"] == 350_000
    assert truth["not_used_by_qala"] == ["Observation"]
    assert truth["run"]["scale"] == SCALE and truth["defects"]["count_by_kind"] == {}
