"""Contracts and suites are validated by their declared models (transforms/contract.py): a typo or
a wrong type is refused with the file, the key and the line, not silently ignored."""

import json
import re
import typing

import pytest

from transforms import settings
from transforms.contract import all_feeds, load_contract, parse_contract, parse_suite, render_format_docs

ROAD = settings.CONTRACTS_DIR / "safety" / "road_accidents.yaml"
ROAD_SUITE = settings.EXPECTATIONS_DIR / "safety__road_accidents.json"


def _line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def _contract_copy(tmp_path, edit) -> tuple:
    (tmp_path / "safety").mkdir()
    path = tmp_path / "safety" / "road_accidents.yaml"
    text = edit(ROAD.read_text(encoding="utf-8"))
    path.write_text(text, encoding="utf-8")
    return path, text


def _suite_copy(tmp_path, edit) -> tuple:
    path = tmp_path / ROAD_SUITE.name
    text = edit(ROAD_SUITE.read_text(encoding="utf-8"))
    path.write_text(text, encoding="utf-8")
    return path, text


def test_every_shipped_contract_and_suite_validates():
    feeds = all_feeds()
    assert len(feeds) == 17
    suites = [t.suite() for feed in feeds for t in load_contract(feed).tables]
    assert len(suites) == len(list(settings.EXPECTATIONS_DIR.glob("*.json"))) == 32
    assert all(s["expectations"] for s in suites)


def test_a_shipped_contract_parsed_from_its_path_equals_the_loaded_one(tmp_path):
    path, _ = _contract_copy(tmp_path, lambda t: t)
    assert parse_contract(path) == load_contract("safety/road_accidents")


def test_a_typo_in_a_column_key_is_refused_with_file_key_and_line(tmp_path):
    path, text = _contract_copy(tmp_path, lambda t: t.replace(
        "injured: {type: INTEGER, required: true", "injured: {type: INTEGER, requried: true"))
    with pytest.raises(ValueError) as error:
        parse_contract(path)
    line = _line_of(text, "requried")
    assert f"contract {path} line {line}: columns.injured.requried: unknown key (did you mean 'required'?)" \
        in str(error.value)


def test_a_top_level_min_row_is_refused(tmp_path):
    path, text = _contract_copy(tmp_path, lambda t: t.replace("min_rows: 1", "min_row: 1"))
    with pytest.raises(ValueError, match=re.escape(
            f"contract {path} line {_line_of(text, 'min_row:')}: min_row: unknown key (did you mean 'min_rows'?)")):
        parse_contract(path)


def test_a_wrong_type_is_refused_and_every_problem_of_the_file_is_named(tmp_path):
    path, text = _contract_copy(tmp_path, lambda t: t.replace("min_rows: 1", "min_rows: many").replace(
        "killed: {type: INTEGER, required: true", "killed: {type: INTEGER, required: yes please"))
    with pytest.raises(ValueError) as error:
        parse_contract(path)
    message = str(error.value)
    assert f"contract {path} line {_line_of(text, 'min_rows:')}: min_rows: Input should be a valid integer" in message
    assert f"contract {path} line {_line_of(text, 'yes please')}: columns.killed.required: Input should be a valid boolean" \
        in message


def test_the_cross_field_checks_still_hold(tmp_path):
    path, text = _contract_copy(tmp_path, lambda t: t.replace("{type: INTEGER, required: true, description: People injured",
                                                          "{type: INT4, required: true, description: People injured"))
    with pytest.raises(ValueError, match=re.escape(
            f"contract {path} line {_line_of(text, 'INT4')}: column injured: unknown type INT4")):
        parse_contract(path)


def test_an_unknown_suite_key_is_refused_with_file_key_and_line(tmp_path):
    path, text = _suite_copy(tmp_path, lambda t: t.replace('"history": {', '"histroy": {', 1))
    with pytest.raises(ValueError, match=re.escape(
            f"suite {path} line {_line_of(text, 'histroy')}: histroy: unknown key (did you mean 'history'?)")):
        parse_suite(path)


def test_a_bad_severity_is_refused_with_file_key_and_line(tmp_path):
    def edit(text):
        suite = json.loads(text)
        suite["expectations"][2]["meta"]["severity"] = "fatal"
        return json.dumps(suite, indent=2, ensure_ascii=False)

    path, text = _suite_copy(tmp_path, edit)
    with pytest.raises(ValueError) as error:
        parse_suite(path)
    line = _line_of(text, '"severity": "fatal"')
    assert f"suite {path} line {line}: expectations.2.meta.severity: Input should be 'block', " \
           "'warn' or 'row'" in str(error.value)


def test_the_committed_format_doc_is_the_generated_one():
    committed = (settings.REPO_ROOT / "docs" / "contract_format.md").read_text(encoding="utf-8")
    assert committed == render_format_docs(), "run: python -m transforms.contract --docs > docs/contract_format.md"
    assert "| `requried`" not in committed and "| `required` | `bool` |" in committed


def test_a_typo_in_the_format_section_and_an_unknown_reader_are_refused(tmp_path):
    path, text = _contract_copy(tmp_path, lambda t: t.replace("delimiter:", "delimter:").replace("type: csv", "type: cvs"))
    with pytest.raises(ValueError) as error:
        parse_contract(path)
    message = str(error.value)
    assert f"contract {path} line {_line_of(text, 'delimter:')}: format.delimter: unknown key (did you mean 'delimiter'?)" \
        in message
    assert f"contract {path} line {_line_of(text, 'type: cvs')}: format.type: Input should be 'csv'" in message


def test_the_format_model_names_every_reader():
    from transforms.contract import FormatSpec
    from transforms.readers import _MODULES

    assert set(typing.get_args(FormatSpec.model_fields["type"].annotation)) == set(_MODULES)


def test_a_cross_key_problem_of_a_several_table_feed_names_its_line(tmp_path):
    (tmp_path / "transport").mkdir()
    path = tmp_path / "transport" / "gtfs_static.yaml"
    text = (settings.CONTRACTS_DIR / "transport" / "gtfs_static.yaml").read_text(encoding="utf-8").replace(
        "agency_id: agency.agency_id", "agency_id: agency.agency_code", 1)
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match=re.escape(
            f"contract {path} line {_line_of(text, 'agency.agency_code')}: table routes: reference agency_id → "
            "agency.agency_code: no such table column")):
        parse_contract(path)
