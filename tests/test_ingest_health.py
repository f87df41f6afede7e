"""Health through the one load path: the clinics' FHIR R4 Bulk Data export (Bulk Data Access IG
v2.0.0: manifest.json + NDJSON per resource type). Real DuckDB, real GX (through load_files), the
real simulator; fhir.resources' R4B models as the reference for the FHIR paths the contract reads."""

from __future__ import annotations

import hashlib
import hmac
import json
import types
import typing
from datetime import date
from pathlib import Path

import duckdb
import pytest

# fhir.resources 8 has no plain R4 package; R4B is its closest model of R4 and the resources read
# here (Patient, Appointment, Encounter, Immunization) are unchanged between R4 and R4B.
from fhir.resources.R4B.appointment import Appointment
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.encounter import Encounter
from fhir.resources.R4B.immunization import Immunization
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhir.resources.R4B.patient import Patient

from tests.conftest import land, query
from transforms import lake
from transforms.contract import load_contract
from transforms.load import LoadFailure, load_files
from transforms.privacy import scan_lake
from transforms.pseudonymise import hmac_key
from transforms.readers import fhir_bulk
from qala_devkit.simulate import simulate

FEED = "health/fhir_bulk"
DAY = "2025-03-01"
FOLDER = f"landing/{FEED}/{DAY}"
SILVER = "silver.health__fhir_bulk__"
QUARANTINE = "quarantine.health__fhir_bulk__"
MODELS = {"Patient": Patient, "Appointment": Appointment, "Encounter": Encounter, "Immunization": Immunization,
          "Observation": Observation, "OperationOutcome": OperationOutcome, "Bundle": Bundle}
FILES = "https://files.clinic.example.kz/bulk/0f3a9c"


def line(resource: dict) -> str:
    return json.dumps(resource, ensure_ascii=False, separators=(",", ":"))


# --- a hand-written export, as a FHIR server following the IG could write it (not our simulator):
# IG-style file names (patient_file_1.ndjson), Patient split over two files, a file served as a
# FHIR Binary (url without extension, saved as .ndjson), counts on some items only, CRLF line
# ends, a last line without newline, a blank line, the IG's `extension`, `deleted` and `error`.

IIN = "870412450121"
NAMES = ("Сейткали", "Айгерим", "Нурлановна")
PHONE = "+7 701 555 12 34"
STREET = "ул. Абая, д. 10, кв. 5"
KATO = "https://fhir.qala.example/StructureDefinition/address-kato"
CHANNEL = "https://fhir.qala.example/StructureDefinition/booking-channel"
V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"

PATIENT_1 = {
    "resourceType": "Patient", "id": "kz-p-0001",
    "meta": {"versionId": "3", "lastUpdated": "2025-03-01T10:15:00.000+05:00"},
    "identifier": [
        {"use": "usual", "type": {"coding": [{"system": V2_0203, "code": "MR"}]}, "system": "urn:oid:1.2.398.7.1.1",
         "value": "MR-778812"},
        {"use": "official", "type": {"coding": [{"system": V2_0203, "code": "NI"}], "text": "ИИН"},
         "system": "urn:oid:1.2.398.3.1.1", "value": IIN},
    ],
    "name": [{"use": "official", "family": NAMES[0], "given": list(NAMES[1:])}],
    "telecom": [{"system": "email", "value": "a.seitkali@mail.example.kz"},
                {"system": "phone", "value": PHONE, "use": "mobile"}],
    "gender": "female", "birthDate": "1987",
    "address": [{"extension": [{"url": KATO, "valueString": "751110000"}], "use": "home", "line": [STREET],
                 "city": "Алматы", "state": "город Алматы", "postalCode": "050000", "country": "KZ"}],
}
PATIENT_2 = {"resourceType": "Patient", "id": "kz-p-0002", "gender": "male", "birthDate": "2019-06"}


def appointment(id_: str, status: str, channel: str, patient_reference: str, created: str) -> dict:
    return {
        "resourceType": "Appointment", "id": id_,
        "meta": {"versionId": "2", "lastUpdated": "2025-03-01T12:00:00+05:00"},
        "extension": [{"url": CHANNEL, "valueCoding": {"system": "https://fhir.qala.example/CodeSystem/booking-channel",
                                                       "code": channel}}],
        "status": status,
        "serviceType": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/service-type", "code": "124"}]}],
        "appointmentType": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0276", "code": "ROUTINE"}]},
        "start": "2025-03-01T09:00:00+05:00", "end": "2025-03-01T09:20:00+05:00", "minutesDuration": 20,
        "created": created,
        "participant": [{"actor": {"reference": "Practitioner/dr-17", "display": "Dr"}, "status": "accepted"},
                        {"actor": {"reference": patient_reference}, "status": "accepted"}],
    }


APPOINTMENTS = [
    appointment("kz-a-1", "fulfilled", "online", "Patient/kz-p-0001", "2025-02-26T21:40:00+05:00"),
    # A versioned reference to the patient, as R4 allows (Reference.reference may carry _history).
    appointment("kz-a-2", "noshow", "registry", "Patient/kz-p-0002/_history/1", "2025-03-01T08:05:00+05:00"),
]
ENCOUNTER = {
    "resourceType": "Encounter", "id": "kz-e-1", "status": "finished",
    "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
    "subject": {"reference": "Patient/kz-p-0001"}, "appointment": [{"reference": "Appointment/kz-a-1"}],
    "period": {"start": "2025-03-01T09:02:00+05:00", "end": "2025-03-01T09:18:00+05:00"},
    "serviceProvider": {"reference": "Organization/pol-5"},
}
IMMUNIZATION = {
    "resourceType": "Immunization", "id": "kz-i-1", "status": "completed",
    "vaccineCode": {"coding": [{"system": "http://hl7.org/fhir/sid/cvx", "code": "03"}], "text": "ККП"},
    "patient": {"reference": "Patient/kz-p-0002"}, "occurrenceDateTime": "2025-03-01", "primarySource": True,
    "protocolApplied": [{"doseNumberPositiveInt": 1}],
}
OBSERVATION = {
    "resourceType": "Observation", "id": "kz-o-1", "status": "final",
    "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]},
    "subject": {"reference": "Patient/kz-p-0001"}, "valueQuantity": {"value": 61, "unit": "kg"},
}
OUTCOME = {"resourceType": "OperationOutcome", "id": "err-1",
           "issue": [{"severity": "error", "code": "processing",
                      "diagnostics": "Observation/kz-o-2 could not be exported"}]}
DELETED = {"resourceType": "Bundle", "id": "del-1", "type": "transaction",
           "entry": [{"request": {"method": "DELETE", "url": "Patient/kz-p-0009"}}]}

HAND_WRITTEN_FILES = {
    "patient_file_1.ndjson": line(PATIENT_1) + "\r\n",
    "patient_file_2.ndjson": line(PATIENT_2) + "\n",
    "appointment_file_1.ndjson": "\r\n".join(line(a) for a in APPOINTMENTS),  # no final newline
    "encounter_file_1.ndjson": line(ENCOUNTER) + "\n\n",  # and a blank line
    "imm-7f2c.ndjson": line(IMMUNIZATION) + "\n",
    "observation_file_1.ndjson": line(OBSERVATION) + "\n",
    "err_file_1.ndjson": line(OUTCOME) + "\n",
    "del_file_1.ndjson": line(DELETED) + "\n",
}
HAND_WRITTEN_MANIFEST = {
    "transactionTime": "2025-03-01T19:00:05.123Z",
    "request": "https://fhir.clinic.example.kz/R4/$export?_type=Patient,Appointment,Encounter,Immunization,Observation"
               "&_since=2025-02-28T19:00:04.870Z",
    "requiresAccessToken": True,
    "output": [
        {"type": "Patient", "url": f"{FILES}/patient_file_1.ndjson", "count": 1},
        {"type": "Patient", "url": f"{FILES}/patient_file_2.ndjson"},
        {"type": "Appointment", "url": f"{FILES}/appointment_file_1.ndjson", "count": 2},
        {"type": "Encounter", "url": f"{FILES}/encounter_file_1.ndjson", "count": 1},
        {"type": "Immunization", "url": "https://fhir.clinic.example.kz/R4/Binary/imm-7f2c"},
        {"type": "Observation", "url": f"{FILES}/observation_file_1.ndjson", "count": 1},
    ],
    "deleted": [{"type": "Bundle", "url": f"{FILES}/del_file_1.ndjson"}],
    "error": [{"type": "OperationOutcome", "url": f"{FILES}/err_file_1.ndjson"}],
    "extension": {"https://fhir.clinic.example.kz/bulk-job": "0f3a9c"},
}


def land_export(root: Path, files: dict[str, str | bytes], manifest: dict | str | bytes | None = None,
                day: str = DAY) -> Path:
    """Land an export: its NDJSON files and its manifest (by default one output item per file,
    typed by the file's name, with the count of its lines)."""
    for name, content in files.items():
        land(root, day, name, content, feed=FEED)
    if manifest is None:
        manifest = {"transactionTime": "2025-03-01T19:00:05Z", "request": "https://fhir.clinic.example.kz/R4/$export",
                    "requiresAccessToken": True, "error": [],
                    "output": [{"type": name.split(".")[0].split("_")[0], "url": f"{FILES}/{name}",
                                "count": len((c if isinstance(c, str) else c.decode("latin-1")).splitlines())}
                               for name, c in files.items()]}
    if isinstance(manifest, dict):
        manifest = json.dumps(manifest, indent=2)
    return land(root, day, "manifest.json", manifest, feed=FEED)


def pseudonym(root: Path, value: str) -> str:
    return hmac.new(hmac_key(root), value.encode("utf-8"), hashlib.sha256).hexdigest()


def refused(path: Path) -> str:
    """The reason of the one export's `failed` ledger row."""
    with pytest.raises(LoadFailure) as caught:
        load_files(FEED, [path])
    (row,) = caught.value.rows
    assert (row.status, row.rows_in, row.rows_published) == ("failed", 0, 0)
    return row.reason


def quarantined(root: Path, table: str) -> list[tuple]:
    return query(root, f"select _source_member, _source_line, _rule, _reason, _raw_line from {QUARANTINE}{table} "
                       f"order by _source_member, _source_line")


# --- the standard: a hand-written export ------------------------------------------------------------


def test_a_hand_written_bulk_export_following_the_ig_loads(warehouse):
    path = land_export(warehouse, HAND_WRITTEN_FILES, HAND_WRITTEN_MANIFEST)
    (row,) = load_files(FEED, [path])

    assert (row.status, row.rows_in, row.rows_published, row.rows_quarantined) == ("published", 6, 6, 0)
    assert row.tables == {"patient": {"in": 2, "published": 2, "quarantined": 0},
                          "appointment": {"in": 2, "published": 2, "quarantined": 0},
                          "encounter": {"in": 1, "published": 1, "quarantined": 0},
                          "immunization": {"in": 1, "published": 1, "quarantined": 0}}
    assert row.skipped == {"Observation": 1, "OperationOutcome": 1, "Bundle (deleted)": 1}
    assert row.rows_skipped == 3
    assert "encounter_file_1.ndjson: 1 blank line(s) ignored" in row.reason
    assert "err_file_1.ndjson: the server reported 1 OperationOutcome(s) (1 × error/processing)" in row.reason
    assert "del_file_1.ndjson: 1 Bundle(s) of resources deleted" in row.reason
    assert "kz-o-2" not in row.reason  # the error file's free text stays in the landing zone

    p1, p2 = pseudonym(warehouse, "kz-p-0001"), pseudonym(warehouse, "kz-p-0002")
    assert query(warehouse, f"select patient_id, iin, gender, birth_date, kato_code, region, _source_member, "
                            f"_source_line from {SILVER}patient order by _source_member") == [
        (p1, pseudonym(warehouse, IIN), "female", 1987, "751110000", "город Алматы", "patient_file_1.ndjson",
         1),
        (p2, None, "male", 2019, None, None, "patient_file_2.ndjson", 1)]
    assert query(warehouse, f"select appointment_id, status, channel, patient_id, created_date, start_date, "
                            f"minutes_duration, _source_line from {SILVER}appointment order by 1") == [
        ("kz-a-1", "fulfilled", "online", p1, date(2025, 2, 26), date(2025, 3, 1), 20, 1),
        ("kz-a-2", "noshow", "registry", p2, date(2025, 3, 1), date(2025, 3, 1), 20, 2)]
    # HLT-02: calendar days from booking to the visit, on the local dates as written.
    assert query(warehouse, f"select start_date - created_date from {SILVER}appointment "
                            f"order by appointment_id") == [(3,), (0,)]
    assert query(warehouse, f"select patient_id, appointment_id, class_code, service_provider_id "
                            f"from {SILVER}encounter") == [(p1, "kz-a-1", "AMB", "pol-5")]
    assert query(warehouse, f"select patient_id, status, vaccine_code, occurrence_date, primary_source, dose_number, "
                            f"_source_member from {SILVER}immunization") == [
        (p2, "completed", "03", date(2025, 3, 1), True, 1, "imm-7f2c.ndjson")]
    # The same HMAC in every table: joins work without the raw id (HLT-04 places an immunisation
    # by its patient's region).
    assert query(warehouse, f"select count(*) from {SILVER}appointment a "
                            f"join {SILVER}patient p using (patient_id)") == [(2,)]
    silver = _silver_texts(warehouse)
    for raw in (IIN, "kz-p-0001", PHONE, STREET, *NAMES):
        assert raw not in silver


def _silver_texts(root: Path) -> set[str]:
    """Every text value of every health silver and quarantine table (one lake connection)."""
    values: set[str] = set()
    con = lake.connect(root, read_only=True)
    try:
        for schema in ("silver", "quarantine"):
            for table in ("patient", "appointment", "encounter", "immunization"):
                name = f"{schema}.health__fhir_bulk__{table}"
                columns = [f'"{c}"' for c, kind, *_ in con.execute(f"describe {name}").fetchall() if kind == "VARCHAR"]
                distinct = f"select distinct unnest([{', '.join(columns)}]) from {name}"
                values |= {v for (v,) in con.execute(distinct).fetchall()}
    finally:
        con.close()
    return values - {None}


def test_every_contract_path_is_an_r4_element_with_its_cardinality():
    """Each column's source walks real R4 elements (fhir.resources' R4B models), `[*]` exactly
    where the element repeats, down to a primitive value."""
    for table in load_contract(FEED).tables:
        model = MODELS[table.member]
        for column in table.columns:
            source = fhir_bulk.parse_source(column.source or column.name)
            _check_path(model, source.steps, f"{table.member}.{column.name}")


def _check_path(model, steps, where: str) -> None:
    for k, step in enumerate(steps):
        # Elements named like Python keywords are fields with an alias (Encounter.class → class_fhir).
        fields = {field.alias or name: field for name, field in model.model_fields.items()}
        assert step.name in fields, f"{where}: {model.__name__} has no element {step.name}"
        annotation = fields[step.name].annotation
        many, inner = _unwrap(annotation)
        assert step.each == many, f"{where}: {model.__name__}.{step.name} {'repeats' if many else 'does not repeat'}"
        element = inner.get_model_klass() if hasattr(inner, "get_model_klass") else None
        if step.where:
            _check_path(element, step.where[0], where)
        if k == len(steps) - 1:
            assert element is None, f"{where}: {step.name} is a {element.__name__}, not a value"
        else:
            assert element is not None, f"{where}: {step.name} is a value, it has no {steps[k + 1].name}"
            model = element


def _unwrap(annotation) -> tuple[bool, object]:
    """(repeats, the element type) of a pydantic field annotation."""
    many = False
    while True:
        origin = typing.get_origin(annotation)
        if origin in (typing.Union, types.UnionType):
            annotation = next(a for a in typing.get_args(annotation) if a is not type(None))
        elif origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin is list:
            many, annotation = True, typing.get_args(annotation)[0]
        else:
            return many, annotation


def test_the_hand_written_and_simulated_resources_are_valid_r4_and_read_as_the_models_read_them(tmp_path):
    """The hand-written export and a simulated one parse with the R4B models; the values the
    reader takes are the values the models hold."""
    for text in HAND_WRITTEN_FILES.values():
        for resource_line in text.splitlines():
            if resource_line.strip():
                resource = json.loads(resource_line)
                MODELS[resource["resourceType"]].model_validate(resource)
    simulate(tmp_path, date(2025, 3, 3), 1, scale=0.0005, seed=7, feeds=[FEED], defect_rate=0)
    manifest = next(tmp_path.glob(f"landing/{FEED}/*/manifest.json"))
    con = duckdb.connect()
    read = fhir_bulk.read(con, manifest, load_contract(FEED), "manifest.json")
    for table, resource_type in (("patient", "Patient"), ("appointment", "Appointment"), ("encounter", "Encounter"),
                                 ("immunization", "Immunization")):
        key = f"{table}_id"
        records = {r[key]: r for r in _rows(con, read.tables[table].relation)}
        lines = (manifest.parent / f"{resource_type}.ndjson").read_text(encoding="utf-8").splitlines()
        assert len(records) == len(lines) > 0
        for text in lines[:40]:
            model = MODELS[resource_type].model_validate_json(text)
            _compare(resource_type, model, records[model.id])


def _rows(con: duckdb.DuckDBPyConnection, relation: str) -> list[dict]:
    cursor = con.execute(f"select * from {relation}")
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, r, strict=True)) for r in cursor.fetchall()]


def _compare(resource_type: str, model, record: dict) -> None:
    def ref_id(reference) -> str | None:
        return reference.reference.split("/")[1] if reference else None

    if resource_type == "Patient":
        (ni,) = [i for i in model.identifier if any(c.code == "NI" for c in i.type.coding)]
        kato = [e.valueString for e in model.address[0].extension if e.url == KATO]
        assert (record["iin"], record["gender"], record["birth_date"], record["kato_code"], record["region"]) == (
            ni.value, model.gender, model.birthDate.isoformat(), kato[0], model.address[0].state)
    elif resource_type == "Appointment":
        (channel,) = [e.valueCoding.code for e in model.extension if e.url == CHANNEL]
        (patient,) = [p.actor for p in model.participant if p.actor.reference.startswith("Patient/")]
        assert (record["status"], record["channel"], record["patient_id"], record["created_date"],
                record["start_date"], int(record["minutes_duration"])) == (
            model.status, channel, ref_id(patient), model.created.date().isoformat(), model.start.date().isoformat(),
            model.minutesDuration)
    elif resource_type == "Encounter":
        assert (record["status"], record["class_code"], record["patient_id"], record["appointment_id"]) == (
            model.status, model.class_fhir.code, ref_id(model.subject), ref_id(model.appointment[0]))
    else:
        assert (record["status"], record["vaccine_code"], record["patient_id"], record["occurrence_date"]) == (
            model.status, model.vaccineCode.coding[0].code, ref_id(model.patient),
            model.occurrenceDateTime.date().isoformat())


# --- bad inputs: one resource ---------------------------------------------------------------------


def test_an_invalid_json_line_is_one_quarantined_record_with_its_line(warehouse):
    lines = [line(PATIENT_1), line(PATIENT_2)[:-1] + ",}", line(dict(PATIENT_2, id="kz-p-0003"))]
    path = land_export(warehouse, {"Patient.ndjson": "\n".join(lines) + "\n"})
    (row,) = load_files(FEED, [path])
    assert (row.status, row.rows_in, row.rows_published, row.rows_quarantined) == ("published", 3, 2, 1)
    assert row.reason.startswith("quarantined: 1 × format")
    # The line is kept out of quarantine too: it may hold a personal identifier anywhere.
    assert quarantined(warehouse, "patient") == [
        ("Patient.ndjson", 2, "format", "json: the line is not valid JSON", None)]


def test_a_resource_of_another_type_than_its_file_is_quarantined(warehouse):
    lines = [line(ENCOUNTER), line(OBSERVATION), line(dict(ENCOUNTER, id="kz-e-2"))]
    path = land_export(warehouse, {"Encounter.ndjson": "\n".join(lines) + "\n"})
    (row,) = load_files(FEED, [path])
    assert (row.status, row.rows_in, row.rows_published, row.rows_quarantined) == ("published", 3, 2, 1)
    assert quarantined(warehouse, "encounter") == [
        ("Encounter.ndjson", 2, "format", "resourceType: Observation in a file the manifest lists as Encounter", None)]


def test_a_truncated_last_line_is_quarantined_as_a_transfer_cut_short(warehouse):
    lines = [line(a) for a in APPOINTMENTS]
    path = land_export(warehouse, {"Appointment.ndjson": lines[0] + "\n" + lines[1][: len(lines[1]) // 2]})
    (row,) = load_files(FEED, [path])
    assert (row.status, row.rows_in, row.rows_published, row.rows_quarantined) == ("published", 2, 1, 1)
    assert quarantined(warehouse, "appointment") == [
        ("Appointment.ndjson", 2, "format",
         "json: the line is not valid JSON (the file ends inside this record: a transfer cut short)", None)]


def test_a_line_that_breaks_a_value_rule_is_quarantined_by_its_rule(warehouse):
    bad = dict(IMMUNIZATION, id="kz-i-2", status="given")  # not an R4 ImmunizationStatusCodes code
    no_patient = {k: v for k, v in IMMUNIZATION.items() if k != "patient"} | {"id": "kz-i-3"}
    lines = [line(IMMUNIZATION), line(bad), line(no_patient)]
    path = land_export(warehouse, {"Immunization.ndjson": "\n".join(lines) + "\n"})
    (row,) = load_files(FEED, [path])
    assert (row.rows_in, row.rows_published, row.rows_quarantined) == (3, 1, 2)
    (given, missing) = query(warehouse, f"select _source_line, _rule, _reason from {QUARANTINE}immunization order by 1")
    assert given[:2] == (2, "expect_column_values_to_be_in_set(status)") and given[2].endswith(", got given")
    assert missing == (3, "required", "required: patient_id is empty")


def test_every_line_is_judged_alone_with_its_physical_line_number(tmp_path):
    """Read directly (no lake): what each kind of line becomes, whatever its line ending."""
    folder = tmp_path / "2025-03-01"
    folder.mkdir()
    patient = line(PATIENT_2)
    lines = [
        "\ufeff" + patient + "\r",                                  # 1 a byte order mark, CRLF: read
        "",                                                          # 2 blank: not a record
        patient[:-1] + ',"gender":NaN}',                             # 3 NaN is not JSON (RFC 8259)
        line(dict(PATIENT_2, id="kz-p-0003", gender="a,}")),         # 4 ",}" inside a string: read
        "[1,2]",                                                     # 5 not a resource
        '{"id":"kz-p-0004"}',                                        # 6 no resourceType
    ]
    data = "\n".join(lines).encode() + b"\n" + patient.replace("kz-p-0002", "kz-p-\xff").encode("latin-1") + b"\n"
    (folder / "Patient.ndjson").write_bytes(data)                    # 7 not UTF-8
    manifest = folder / "manifest.json"
    manifest.write_text(json.dumps({"transactionTime": "2025-03-01T19:00:05Z", "error": [],
                                    "output": [{"type": "Patient", "url": f"{FILES}/Patient.ndjson", "count": 6}]}))
    con = duckdb.connect()
    read = fhir_bulk.read(con, manifest, load_contract(FEED), "export/manifest.json")
    assert con.execute("select patient_id, gender, _source_line, _source_member from raw__patient").fetchall() == [
        ("kz-p-0002", "male", 1, "Patient.ndjson"), ("kz-p-0003", "a,}", 4, "Patient.ndjson")]
    assert con.execute("select _source_line, reason from rejected__patient order by 1").fetchall() == [
        (3, "json: the line is not valid JSON"),
        (5, "json: not a FHIR resource (no resourceType)"),
        (6, "json: not a FHIR resource (no resourceType)"),
        (7, "encoding: the line is not valid UTF-8 (NDJSON is UTF-8)")]
    assert read.notes == ["Patient.ndjson: 1 blank line(s) ignored"]  # 6 resources, as counted
    assert read.tables["appointment"].relation == "raw__appointment"  # a type absent from the export: empty
    assert con.execute("select count(*) from raw__appointment").fetchone() == (0,)


# --- bad inputs: the whole export ----------------------------------------------------------------


def test_a_manifest_that_is_not_json_is_refused_with_its_line(warehouse):
    path = land_export(warehouse, {"Patient.ndjson": line(PATIENT_1) + "\n"},
                       manifest=('{\n  "transactionTime": "2025-03-01T19:00:05Z",\n  "output": [\n'
                                 '    {"type": "Patient",}\n'))
    assert refused(path) == (f"{FOLDER}/manifest.json, line 4: [manifest] not valid JSON "
                             f"(Expecting property name enclosed in double quotes, column 24)")


def test_a_manifest_without_transaction_time_is_refused(warehouse):
    path = land_export(warehouse, {"Patient.ndjson": line(PATIENT_1) + "\n"},
                       manifest={"output": [{"type": "Patient", "url": f"{FILES}/Patient.ndjson"}], "error": []})
    assert refused(path).startswith(
        f"{FOLDER}/manifest.json: [manifest] transactionTime is missing or not a FHIR instant")


def test_a_manifest_naming_a_missing_file_is_refused_naming_it(warehouse):
    missing = {"type": "Immunization", "url": f"{FILES}/immunization_file_2.ndjson"}
    manifest = dict(HAND_WRITTEN_MANIFEST, output=[*HAND_WRITTEN_MANIFEST["output"], missing])
    path = land_export(warehouse, HAND_WRITTEN_FILES, manifest)
    assert refused(path) == (f"{FOLDER}/manifest.json: [manifest] output[6] (Immunization) lists "
                             f"immunization_file_2.ndjson, which is not in the folder beside the manifest: "
                             f"the export was not fully downloaded")


def test_an_empty_ndjson_file_the_manifest_counts_resources_in_is_refused(warehouse):
    manifest = {"transactionTime": "2025-03-01T19:00:05Z", "request": "x", "requiresAccessToken": True, "error": [],
                "output": [{"type": "Patient", "url": f"{FILES}/Patient.ndjson", "count": 1},
                           {"type": "Encounter", "url": f"{FILES}/Encounter.ndjson", "count": 3}]}
    path = land_export(warehouse, {"Patient.ndjson": line(PATIENT_1) + "\n", "Encounter.ndjson": ""}, manifest)
    assert refused(path) == (f"{FOLDER}/Encounter.ndjson: [format] empty file (0 bytes), but the manifest counts "
                             f"3 Encounter resource(s) in it: the download failed")


def test_an_empty_ndjson_file_without_a_count_is_a_note(warehouse):
    manifest = {"transactionTime": "2025-03-01T19:00:05Z", "request": "x", "requiresAccessToken": True, "error": [],
                "output": [{"type": "Patient", "url": f"{FILES}/Patient.ndjson"},
                           {"type": "Encounter", "url": f"{FILES}/Encounter.ndjson"}]}
    path = land_export(warehouse, {"Patient.ndjson": line(PATIENT_1) + "\n", "Encounter.ndjson": ""}, manifest)
    (row,) = load_files(FEED, [path])
    assert (row.status, row.rows_in, row.rows_published) == ("published", 1, 1)
    assert "Encounter.ndjson: empty file (0 bytes), no Encounter resources" in row.reason


def test_binary_garbage_in_an_ndjson_file_is_refused(warehouse):
    garbage = bytes(range(256)) * 8
    path = land_export(warehouse, {"Patient.ndjson": line(PATIENT_1) + "\n", "Appointment.ndjson": garbage})
    assert refused(path) == (f"{FOLDER}/Appointment.ndjson: [format] binary data (a NUL byte at offset 0), "
                             f"not NDJSON text")


def test_a_gzip_compressed_ndjson_file_is_refused_saying_so(warehouse):
    import gzip

    path = land_export(warehouse, {"Patient.ndjson": gzip.compress((line(PATIENT_1) + "\n").encode())})
    assert refused(path) == (f"{FOLDER}/Patient.ndjson: [format] gzip-compressed (decompress it before landing), "
                             f"not NDJSON text")


def test_a_count_that_differs_from_the_file_is_a_note_not_a_refusal(warehouse):
    manifest = {"transactionTime": "2025-03-01T19:00:05Z", "request": "x", "requiresAccessToken": True, "error": [],
                "output": [{"type": "Patient", "url": f"{FILES}/Patient.ndjson", "count": 5}]}
    path = land_export(warehouse, {"Patient.ndjson": line(PATIENT_1) + "\n"}, manifest)
    (row,) = load_files(FEED, [path])
    assert row.status == "published"
    assert "Patient.ndjson: the manifest counts 5 resource(s), the file holds 1 line(s)" in row.reason


def test_a_url_that_names_no_file_is_refused(warehouse):
    manifest = {"transactionTime": "2025-03-01T19:00:05Z", "request": "x", "requiresAccessToken": True, "error": [],
                "output": [{"type": "Patient", "url": "https://files.clinic.example.kz/bulk/../"}]}
    path = land_export(warehouse, {"Patient.ndjson": line(PATIENT_1) + "\n"}, manifest)
    assert refused(path) == f"{FOLDER}/manifest.json: [manifest] output[0]: cannot take a file name from its url"


# --- end to end ------------------------------------------------------------------------------------


def test_simulated_exports_load_whole_and_no_raw_personal_data_reaches_silver(warehouse):
    start = date(2025, 3, 3)
    simulate(warehouse, start, 2, scale=0.002, seed=1, feeds=[FEED], defect_rate=0)
    manifests = sorted(warehouse.glob(f"landing/{FEED}/*/manifest.json"))
    assert len(manifests) == 2
    rows = load_files(FEED, manifests)

    tables = {"Patient": "patient", "Appointment": "appointment", "Encounter": "encounter",
              "Immunization": "immunization"}
    for row, manifest in zip(rows, manifests, strict=True):
        assert row.status == "published" and row.reason is None
        assert row.rows_in == row.rows_published + row.rows_quarantined and row.rows_quarantined == 0
        listed = json.loads(manifest.read_text(encoding="utf-8"))["output"]
        for resource_type, table in tables.items():
            expected = sum(item["count"] for item in listed if item["type"] == resource_type)
            assert row.tables[table] == {"in": expected, "published": expected, "quarantined": 0}
            (in_silver,) = query(warehouse, f"select count(*) from {SILVER}{table} where _source_file = ?",
                                 [row.source_file])[0]
            assert in_silver == expected
        assert row.skipped == {"Observation": sum(i["count"] for i in listed if i["type"] == "Observation")}

    # The planted effects are there to be measured: both channels, no-shows, HLT-02 lead days.
    channels = dict(query(warehouse, f"select channel, count(*) from {SILVER}appointment group by 1"))
    assert set(channels) == {"online", "registry"}
    assert query(warehouse, f"select count(*) from {SILVER}appointment where status = 'noshow'")[0][0] > 0
    assert query(warehouse, f"select min(start_date - created_date) from {SILVER}appointment")[0][0] == 0
    # Every immunised patient of an export is in that export, placed in a region (HLT-04).
    assert query(warehouse, f"""select count(*) from {SILVER}immunization i left join {SILVER}patient p
                                on p.patient_id = i.patient_id and p._source_file = i._source_file
                                where p.kato_code is null""") == [(0,)]

    personal = _personal_values(manifests)
    assert len(personal) > 1000
    assert not personal & _silver_texts(warehouse)
    assert scan_lake(warehouse) == []  # nothing that looks like a raw IIN or phone in any Parquet file


def _personal_values(manifests: list[Path]) -> set[str]:
    """IINs, names, phones, address lines and patient ids of the landed Patient files."""
    con = duckdb.connect()
    values: set[str] = set()
    for manifest in manifests:
        files = [str(manifest.parent / f"{i['url'].rsplit('/', 1)[1]}")
                 for i in json.loads(manifest.read_text(encoding="utf-8"))["output"] if i["type"] == "Patient"]
        values |= {v for (v,) in con.execute(
            """select unnest([id, identifier[1].value, name[1].family, name[1].given[1], name[1].given[2],
                              name[1].text, telecom[1].value, address[1].line[1], address[1].text])
               from read_json(?, format = 'newline_delimited')""", [files]).fetchall() if v}
    return values
