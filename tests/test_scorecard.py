"""The ministers' scorecard (transforms/scorecard.py) on the 14-month KPI world, opened in a real
headless Chromium with the network off: three languages, every area, the numbers of
marts.kpi_scorecard, sortable region tables, charts with text alternatives, and the PDF."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import query
from transforms import scorecard

LANG_NAMES = {"kk": "name_kk", "ru": "name_ru", "en": "name_en"}


@pytest.fixture(scope="module")
def written(kpi_world, tmp_path_factory):
    out = tmp_path_factory.mktemp("reports")
    page, pdf = scorecard.write(kpi_world.root, out=out)
    return kpi_world.root, page, pdf


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    chromium = scorecard.find_chromium()
    assert chromium, "Chromium is missing: `make test` installs Debian's chromium (make browser)"
    with sync_playwright() as playwright:
        flags = [f for f in scorecard.CHROMIUM_FLAGS if f != "--headless"]
        browser = playwright.chromium.launch(executable_path=chromium, args=flags)
        yield browser
        browser.close()


def _number(text: str) -> float:
    """A number as the page shows it: '57.4%' is 0.574, '1,234.50' is 1234.5."""
    text = text.strip().replace(",", "")
    return float(text[:-1]) / 100 if text.endswith("%") else float(text)


def _decimals(text: str) -> int:
    digits = text.strip().rstrip("%")
    return (len(digits.split(".")[1]) if "." in digits else 0) + (2 if text.strip().endswith("%") else 0)


def _shown_equals(text: str, value: float) -> bool:
    """The shown text is the mart value rounded to the digits shown."""
    return abs(_number(text) - value) <= 0.5 * 10 ** -_decimals(text) + 1e-12


def test_the_page_asks_no_other_host_for_anything(written):
    _, page, _ = written
    text = page.read_text(encoding="utf-8")
    assert not re.search(r"""(src|href|action)\s*=\s*["'](?!#)""", text), "only in-page links"
    assert "url(" not in text and "@import" not in text and "<link" not in text and "<iframe" not in text


def test_chromium_offline_shows_every_area_in_three_languages_with_the_marts_numbers(written, browser, tmp_path):
    root, page_file, _ = written
    marts = query(root, """select kpi_id, region_code, area, actual, change_vs_baseline, status, suppressed,
                                  lake_snapshot_id from marts.kpi_scorecard""")
    areas = query(root, "select area, name_kk, name_ru, name_en from reference.programme_areas")
    assert len(marts) > 100 and len(areas) == 6

    context = browser.new_context(offline=True, viewport={"width": 1280, "height": 2000})
    asked, errors = [], []
    context.route("**/*", lambda route: route.continue_() if route.request.url.startswith("file:")
                  else (asked.append(route.request.url), route.abort()))
    page = context.new_page()
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(page_file.as_uri())

    for lang in ("kk", "ru", "en"):
        page.click(f".switch button[data-lang={lang}]")
        assert page.evaluate("document.documentElement.lang") == lang
        block = page.locator(f"main#lang-{lang}")
        assert block.is_visible()
        assert page.locator("main.lang-block:visible").count() == 1
        assert page.locator(f".switch button[data-lang={lang}]").get_attribute("aria-pressed") == "true"
        assert block.locator(".asof").get_attribute("data-snapshot") == str(max(r[7] for r in marts))
        for area, *names in areas:
            heading = block.locator(f"section[data-area={area}] h2")
            assert heading.is_visible() and heading.inner_text() == names[("kk", "ru", "en").index(lang)]
        page.screenshot(path=tmp_path / f"scorecard_{lang}.png", full_page=True)
        assert (tmp_path / f"scorecard_{lang}.png").stat().st_size > 50_000

        # Every row of the mart is on the page, with its number, change and status.
        shown = block.evaluate("""b => Array.from(b.querySelectorAll('article.kpi')).flatMap(a =>
            Array.from(a.querySelectorAll('[data-region]')).map(r => ({
              kpi: a.dataset.kpi, region: r.dataset.region, area: a.closest('section').dataset.area,
              actual: r.querySelector('[data-field=actual]').textContent.trim(),
              change: r.querySelector('[data-field=change_vs_baseline]').textContent.trim(),
              status: r.querySelector('[data-field=status]').dataset.status})))""")
        assert {(s["kpi"], s["region"]) for s in shown} == {(r[0], r[1]) for r in marts}
        rows = {(r[0], r[1]): r for r in marts}
        suppressed_word = scorecard.LABELS["suppressed"][("kk", "ru", "en").index(lang)]
        for cell in shown:  # a region table's rows, and the tile of the country (or the only place)
            kpi, region, area, actual, change, status, suppressed, _ = rows[(cell["kpi"], cell["region"])]
            assert cell["area"] == area
            if suppressed:
                assert cell["actual"].lower().startswith(suppressed_word.lower()), (kpi, region, cell)
                assert cell["status"] == "suppressed"
                continue
            assert _shown_equals(cell["actual"], actual), (kpi, region, cell["actual"], actual)
            assert cell["status"] == (status or ""), (kpi, region)
            if change is None:
                assert cell["change"] == "—"
            else:
                assert _shown_equals(cell["change"], change), (kpi, region, cell["change"], change)
        # Status is told in words, not colour alone.
        for label in block.locator("article.kpi .status").all_inner_texts()[:50]:
            assert re.search(r"\w{2,}", label), label

    # Charts carry a text alternative naming the months' values.
    chart = page.locator("main#lang-en svg.chart").first
    assert chart.get_attribute("role") == "img"
    assert len(chart.locator("desc").text_content()) > 40

    # A region table sorts by value; suppressed places stay at the end.
    table = page.locator("main#lang-en article[data-kpi=HLT-01] table.sortable")
    table.locator("thead th").nth(1).locator("button").click()
    assert table.locator("thead th").nth(1).get_attribute("aria-sort") == "ascending"
    values = [v for v in table.locator("tbody td[data-field=actual]").evaluate_all(
        "cells => cells.map(c => c.dataset.sort)") if v]
    assert len(values) > 10 and [float(v) for v in values] == sorted(float(v) for v in values)
    table.locator("thead th").nth(1).locator("button").click()
    descending = [float(v) for v in table.locator("tbody td[data-field=actual]").evaluate_all(
        "cells => cells.map(c => c.dataset.sort)") if v]
    assert descending == sorted(descending, reverse=True)

    assert errors == [] and asked == []
    context.close()


def test_suppressed_cells_say_why(written):
    root, page_file, _ = written
    text = page_file.read_text(encoding="utf-8")
    reasons = {r[0] for r in query(root, "select suppression_reason from marts.kpi_scorecard where suppressed")}
    assert reasons, "the test world has suppressed cells"
    for reason in reasons:
        words = next(w for prefix, w in scorecard.SUPPRESSION.items() if reason.startswith(prefix))
        assert all(w in text for w in words), reason


def test_the_data_health_of_each_feed_behind_a_kpi_is_shown(written):
    root, page_file, _ = written
    text = page_file.read_text(encoding="utf-8")
    feeds = {r[0] for r in query(root, """select distinct l.feed
        from (select unnest(batch_ids) as batch_id from marts.kpi_scorecard) s join ops.load_ledger l using (batch_id)""")}
    assert len(feeds) >= 10
    for feed in feeds:
        assert f'data-feed="{feed}"' in text


def test_the_pdf_prints_the_three_languages(written):
    _, _, pdf = written
    assert pdf is not None and pdf.read_bytes().startswith(b"%PDF")
    pages = len(re.findall(rb"/Type\s*/Page(?!s)", pdf.read_bytes()))
    assert pages >= 3, pages
