"""The ministers' scorecard (transforms/scorecard.py) on the 14-month KPI world, opened in a real
headless Chromium with the network off: the first page of every KPI in three languages (the mart's
values, 95% intervals and status words, links to the cards), every area's cards with the numbers
of marts.kpi_scorecard, their windows, interval methods and trend charts, sortable region tables,
and the PDF, which opens with the three first pages."""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict

import pytest

from tests.conftest import query
from transforms import lake, scorecard

LANGS = ("kk", "ru", "en")


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


@pytest.fixture
def offline_page(browser):
    """A page in a context with the network off; every request to another host is refused and
    recorded, as is every script error."""
    context = browser.new_context(offline=True, viewport={"width": 1280, "height": 2000})
    asked, errors = [], []
    context.route("**/*", lambda route: route.continue_() if route.request.url.startswith("file:")
                  else (asked.append(route.request.url), route.abort()))
    page = context.new_page()
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    assert errors == [] and asked == []
    context.close()


def _rows(root, sql: str) -> list[dict]:
    con = lake.connect(root, read_only=True)
    try:
        cursor = con.execute(sql)
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, r)) for r in cursor.fetchall()]
    finally:
        con.close()


def _number(text: str) -> float:
    """A number as the page shows it: '57.4%' is 0.574, '1,234.50' is 1234.5, '−16.0%' is -0.16,
    '∞' is infinity."""
    text = text.strip().replace(",", "").replace("\u2212", "-")
    if text.lstrip("+-") == "∞":
        return -math.inf if text.startswith("-") else math.inf
    return float(text[:-1]) / 100 if text.endswith("%") else float(text)


def _decimals(text: str) -> int:
    digits = text.strip().rstrip("%")
    return (len(digits.split(".")[1]) if "." in digits else 0) + (2 if text.strip().endswith("%") else 0)


def _shown_equals(text: str, value: float) -> bool:
    """The shown text is the mart value rounded to the digits shown (∞ for an unbounded bound)."""
    if math.isinf(_number(text)) or math.isinf(value):
        return _number(text) == value
    return abs(_number(text) - value) <= 0.5 * 10 ** -_decimals(text) + 1e-12


def _has_interval(lower, upper) -> bool:
    """The page shows an interval when both bounds are known and differ (an 'exact' KPI's zero-width
    interval is shown as its value alone)."""
    return lower is not None and upper is not None and lower != upper


def _check_estimate(cell: dict, value, lower, upper, where) -> None:
    """A shown value (or change) and its interval against the mart's."""
    if value is None:
        assert cell["v"] == "—", where
        return
    assert _shown_equals(cell["v"], value), (where, cell, value)
    if _has_interval(lower, upper):
        assert cell["lo"] is not None and cell["hi"] is not None, (where, cell, lower, upper)
        assert _shown_equals(cell["lo"], lower) and _shown_equals(cell["hi"], upper), (where, cell, lower, upper)
    else:
        assert cell["lo"] is None, (where, cell)


# In a page: a cell's value and interval as shown ({v, lo, hi}).
ESTIMATE_JS = """c => c ? ({v: (c.querySelector('.v') || c).textContent.trim(),
                      lo: c.querySelector('.ci .lo') ? c.querySelector('.ci .lo').textContent.trim() : null,
                      hi: c.querySelector('.ci .hi') ? c.querySelector('.ci .hi').textContent.trim() : null,
                      text: c.textContent.trim()}) : null"""


def _first_page_rows(root) -> dict[str, dict]:
    """Each KPI's first-page row of marts.kpi_scorecard: its country row, else its only place."""
    places = defaultdict(list)
    for row in _rows(root, "select * exclude (batch_ids) from marts.kpi_scorecard order by kpi_id, region_code"):
        places[row["kpi_id"]].append(row)
    chosen = {}
    for kpi_id, rows in places.items():
        country = [r for r in rows if r["region_code"] == "KZ"]
        assert country or len(rows) == 1, f"{kpi_id}: no country row and {len(rows)} places"
        chosen[kpi_id] = country[0] if country else rows[0]
    return chosen


def _published_months(root) -> dict[tuple[str, str], tuple[int, int]]:
    """Per KPI and place: how many months have a published value, and in how many runs of
    consecutive calendar months (a withheld or missing month breaks a run: a chart's gap)."""
    months = defaultdict(list)
    for kpi_id, region, start in query(root, """
            select kpi_id, region_code, period_start from marts.kpi_values
            where not suppressed and isfinite(actual) order by all"""):
        months[(kpi_id, region)].append(start.year * 12 + start.month)
    return {key: (len(m), 1 + sum(b != a + 1 for a, b in zip(m, m[1:]))) for key, m in months.items()}


# In a page: the months an SVG trend draws (distinct x of its line's vertices and of its dots)
# and the pieces its line is drawn in (one 'M' each).
DRAWN_JS = """(svg, line, dot) => {
    if (!svg) { return {months: 0, runs: 0}; }
    const d = svg.querySelector(line).getAttribute('d');
    const xs = new Set(Array.from(d.matchAll(/[ML]([\\d.]+),/g), m => m[1]));
    svg.querySelectorAll(dot).forEach(c => xs.add(Number(c.getAttribute('cx')).toFixed(1)));
    return {months: xs.size, runs: (d.match(/M/g) || []).length}; }"""


def test_the_page_asks_no_other_host_for_anything(written):
    _, page, _ = written
    text = page.read_text(encoding="utf-8")
    assert not re.search(r"""(src|href|action)\s*=\s*["'](?!#)""", text), "only in-page links"
    assert "url(" not in text and "@import" not in text and "<link" not in text and "<iframe" not in text


def test_the_first_page_shows_every_kpi_with_its_interval_and_status_in_three_languages(written, offline_page):
    root, page_file, _ = written
    chosen = _first_page_rows(root)
    months = _published_months(root)
    assert len(chosen) >= 15
    assert {r["status"] for r in chosen.values()} - {None} <= set(scorecard.STATUS)
    assert any(r["change_lower"] is not None for r in chosen.values()), "the mart has change intervals"
    page = offline_page
    page.goto(page_file.as_uri())

    for i, lang in enumerate(LANGS):
        page.click(f".switch button[data-lang={lang}]")
        first = page.locator(f"section#first-{lang}")
        assert first.is_visible()
        assert all(lang == b for b in page.locator(".lang-block:visible").evaluate_all("bs => bs.map(b => b.lang)"))
        # the first page comes before its cards
        assert page.evaluate(f"""() => !!(document.getElementById('first-{lang}').compareDocumentPosition(
            document.getElementById('lang-{lang}')) & Node.DOCUMENT_POSITION_FOLLOWING)""")

        shown = first.evaluate(f"""s => Array.from(s.querySelectorAll('tr[data-kpi]')).map(r => ({{
            kpi: r.dataset.kpi, place: r.dataset.place, area: r.closest('tbody').dataset.area,
            actual: ({ESTIMATE_JS})(r.querySelector('[data-field=actual]')),
            change: ({ESTIMATE_JS})(r.querySelector('[data-field=change_vs_baseline]')),
            target: r.querySelector('[data-field=target]').textContent.trim(),
            status: r.querySelector('[data-field=status]').dataset.status,
            status_word: r.querySelector('[data-field=status]').textContent.trim(),
            href: r.querySelector('a').getAttribute('href'),
            spark: ({DRAWN_JS})(r.querySelector('svg.spark'), 'path.line', 'circle')}}))""")
        assert sorted(s["kpi"] for s in shown) == sorted(chosen), lang  # every KPI, once
        for cell in shown:
            row = chosen[cell["kpi"]]
            where = (lang, cell["kpi"])
            assert cell["place"] == row["region_code"] and cell["area"] == row["area"], where
            status = "suppressed" if row["suppressed"] else row["status"] or ""
            assert cell["status"] == status, where
            if status:
                assert cell["status_word"] == scorecard.STATUS[status][i], (where, cell["status_word"])
            if row["suppressed"]:
                assert scorecard.LABELS["suppressed"][i] in cell["actual"]["text"], where
                continue
            _check_estimate(cell["actual"], row["actual"], row["actual_lower"], row["actual_upper"], where)
            _check_estimate(cell["change"], row["change_vs_baseline"], row["change_lower"], row["change_upper"], where)
            assert cell["target"] == scorecard.shown_target(row["target"], row["target_kind"], row["unit"]), where
            # the sparkline draws every month of the place that has a published value, joined
            # where the months follow one another
            drawn = (cell["spark"]["months"], cell["spark"]["runs"])
            assert drawn == months.get((cell["kpi"], row["region_code"]), (0, 0)), (where, drawn)
        # within an area, what needs attention first
        for area in {s["area"] for s in shown}:
            ranks = [scorecard._status_rank(s["status"] if s["status"] != "suppressed" else None)
                     for s in shown if s["area"] == area]
            assert ranks == sorted(ranks), (lang, area)

        # every in-page link of the first page leads to an element there is; a KPI's to its card
        links = first.evaluate("""s => Array.from(s.querySelectorAll('a[href^="#"]')).map(a => {
            const t = document.getElementById(a.getAttribute('href').slice(1));
            return {href: a.getAttribute('href'), found: !!t, kpi: t && t.dataset.kpi,
                    lang: t && t.closest('.lang-block') && t.closest('.lang-block').lang}; })""")
        assert len(links) >= len(chosen) and all(link["found"] for link in links), links
        for cell in shown:
            (link,) = [x for x in links if x["href"] == cell["href"]]
            assert (link["kpi"], link["lang"]) == (cell["kpi"], lang), link

        # the count line: how many KPIs are in each status
        counts = dict(first.locator(".counts .count").evaluate_all(
            "cs => cs.map(c => [c.dataset.status, Number(c.querySelector('strong').textContent)])"))
        assert counts == dict(Counter("suppressed" if r["suppressed"] else r["status"] for r in chosen.values()))
        for status, n in counts.items():
            assert first.locator(f".count[data-status='{status}'] .status").inner_text() == scorecard.STATUS[status][i]

    # a KPI's link opens its card
    page.click(".switch button[data-lang=en]")
    kpi_id = sorted(chosen)[0]
    page.click(f"section#first-en tr[data-kpi='{kpi_id}'] a")
    card = page.locator(f"article#en-{kpi_id}")
    assert card.is_visible() and abs(card.bounding_box()["y"]) < 5


def test_chromium_offline_shows_every_area_in_three_languages_with_the_marts_numbers(written, offline_page, tmp_path):
    root, page_file, _ = written
    marts = _rows(root, "select * exclude (batch_ids) from marts.kpi_scorecard")
    areas = query(root, "select area, name_kk, name_ru, name_en from reference.programme_areas")
    assert len(marts) > 100 and len(areas) == 6
    rows = {(r["kpi_id"], r["region_code"]): r for r in marts}
    chosen = _first_page_rows(root)
    months = _published_months(root)
    banded = {(k, r) for k, r in query(root, """select distinct kpi_id, region_code from marts.kpi_values
        where not suppressed and actual_lower is not null and actual_lower <> actual_upper""")}

    page = offline_page
    page.goto(page_file.as_uri())
    for i, lang in enumerate(LANGS):
        page.click(f".switch button[data-lang={lang}]")
        assert page.evaluate("document.documentElement.lang") == lang
        block = page.locator(f"#lang-{lang}")
        assert block.is_visible()
        assert page.locator(".lang-block:visible").count() == 2  # the first page and the cards
        assert page.locator(f".switch button[data-lang={lang}]").get_attribute("aria-pressed") == "true"
        assert page.locator(f"#first-{lang} .asof").get_attribute("data-snapshot") == str(
            max(r["lake_snapshot_id"] for r in marts))
        for area, *names in areas:
            heading = block.locator(f"section[data-area={area}] h2")
            assert heading.is_visible() and heading.inner_text() == names[i]
        page.screenshot(path=tmp_path / f"scorecard_{lang}.png", full_page=True)
        assert (tmp_path / f"scorecard_{lang}.png").stat().st_size > 50_000

        # Every row of the mart is on the page, with its number, interval, change and status.
        shown = block.evaluate(f"""b => Array.from(b.querySelectorAll('article.kpi')).flatMap(a =>
            Array.from(a.querySelectorAll('[data-region]')).map(r => ({{
              kpi: a.dataset.kpi, region: r.dataset.region, area: a.closest('section').dataset.area,
              actual: ({ESTIMATE_JS})(r.querySelector('[data-field=actual]')),
              change: ({ESTIMATE_JS})(r.querySelector('[data-field=change_vs_baseline]')),
              status: r.querySelector('[data-field=status]').dataset.status}})))""")
        assert {(s["kpi"], s["region"]) for s in shown} == set(rows)
        suppressed_word = scorecard.LABELS["suppressed"][i]
        for cell in shown:  # a region table's rows, and the tile of the country (or the only place)
            row = rows[(cell["kpi"], cell["region"])]
            where = (lang, cell["kpi"], cell["region"])
            assert cell["area"] == row["area"]
            if row["suppressed"]:
                assert cell["actual"]["text"].lower().startswith(suppressed_word.lower()), (where, cell)
                assert cell["status"] == "suppressed"
                continue
            assert cell["status"] == (row["status"] or ""), where
            _check_estimate(cell["actual"], row["actual"], row["actual_lower"], row["actual_upper"], where)
            _check_estimate(cell["change"], row["change_vs_baseline"], row["change_lower"], row["change_upper"], where)
        # Status is told in words, not colour alone.
        for label in block.locator("article.kpi .status").all_inner_texts()[:50]:
            assert re.search(r"\w{2,}", label), label

        # Each card names its window and its interval method; its chart draws every published
        # month of its place, with the 95% band where the months have intervals.
        cards = block.evaluate(f"""b => Array.from(b.querySelectorAll('article.kpi')).map(a => ({{
            kpi: a.dataset.kpi, id: a.id, grain: a.querySelector('.window').dataset.grain,
            window: a.querySelector('.window').textContent.trim(),
            method: a.querySelector('.method') && a.querySelector('.method').dataset.method,
            method_text: a.querySelector('.method') && a.querySelector('.method').textContent,
            drawn: ({DRAWN_JS})(a.querySelector('svg.chart'), 'path.actual', 'circle.actual'),
            dots: a.querySelectorAll('svg.chart circle.actual').length,
            bands: a.querySelectorAll('svg.chart path.band').length}}))""")
        assert sorted(c["kpi"] for c in cards) == sorted(chosen)
        for card in cards:
            row = chosen[card["kpi"]]
            where = (lang, card["kpi"])
            assert card["id"] == f"{lang}-{card['kpi']}"
            assert card["grain"] == row["period_grain"], where
            if row["period_grain"] == "rolling_12_months" and lang == "en":
                end = scorecard._month_name(row["period_start"], "en")
                assert card["window"].startswith(f"12 months to {end}") and "12 months before" in card["window"]
            assert card["method"] == row["interval_method"], where
            assert scorecard.METHODS[row["interval_method"]][i] in card["method_text"], where
            n, runs = months.get((card["kpi"], row["region_code"]), (0, 0))
            assert (card["drawn"]["months"], card["dots"], card["drawn"]["runs"]) == (n, n, runs), (where, card)
            assert (card["bands"] > 0) == ((card["kpi"], row["region_code"]) in banded), (where, card)

    # Charts carry a text alternative naming the months' values.
    chart = page.locator("#lang-en svg.chart").first
    assert chart.get_attribute("role") == "img"
    assert len(chart.locator("desc").text_content()) > 40

    # A region table sorts by value; suppressed places stay at the end.
    table = page.locator("#lang-en article[data-kpi=HLT-01] table.sortable")
    table.locator("thead th").nth(1).locator("button").click()
    assert table.locator("thead th").nth(1).get_attribute("aria-sort") == "ascending"
    values = [v for v in table.locator("tbody td[data-field=actual]").evaluate_all(
        "cells => cells.map(c => c.dataset.sort)") if v]
    assert len(values) > 10 and [float(v) for v in values] == sorted(float(v) for v in values)
    table.locator("thead th").nth(1).locator("button").click()
    descending = [float(v) for v in table.locator("tbody td[data-field=actual]").evaluate_all(
        "cells => cells.map(c => c.dataset.sort)") if v]
    assert descending == sorted(descending, reverse=True)


def test_every_status_has_its_words_and_its_own_colour(written):
    _, page_file, _ = written
    text = page_file.read_text(encoding="utf-8")
    styles = {}
    for status in ("on-track", "at-risk", "off-track", "within-noise", "no-baseline", "monitoring"):
        assert all(scorecard.STATUS[status]) and all(scorecard.STATUS_MEANING[status])
        rule = re.search(rf"\.s-{status} \{{([^}}]*)\}}", text)
        assert rule, status
        styles[status] = re.sub(r"\s", "", rule.group(1))
    assert len(set(styles.values())) == len(styles), styles
    assert scorecard.STATUS["within-noise"] == ("Кездейсоқ ауытқу шегінде", "В пределах погрешности", "Within noise")


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


def test_in_print_the_three_first_pages_come_first_each_on_one_page(written, offline_page):
    """The print layout (what Chromium's PDF is made of): the first pages of kk, ru and en before
    every card, each starting a page and short enough for one A4 page; the cards' region tables
    cut to a few rows."""
    _, page_file, _ = written
    page = offline_page
    page.set_viewport_size({"width": 718, "height": 1000})  # A4's printable width (190 mm) in CSS px
    page.goto(page_file.as_uri())
    page.emulate_media(media="print")
    blocks = page.locator(".lang-block").evaluate_all("""bs => bs.map(b => ({
        id: b.id, visible: b.offsetParent !== null || getComputedStyle(b).display !== 'none',
        breakAfter: getComputedStyle(b).breakAfter, height: b.getBoundingClientRect().height}))""")
    assert [b["id"] for b in blocks] == ["first-kk", "first-ru", "first-en", "lang-kk", "lang-ru", "lang-en"]
    assert all(b["visible"] for b in blocks)
    printable = (297 - 21) / 25.4 * 96  # A4 less the @page margins, in CSS px
    for b in blocks[:3]:
        assert b["breakAfter"] == "page" and b["height"] < printable, b
    assert page.locator("#lang-en tr.print-drop").count() > 0
    assert page.locator("#lang-en tr.print-drop").first.is_hidden()


def _pdf_outline(data: bytes) -> tuple[list[list[str]], dict[str, int]]:
    """Chromium's PDF as pages and places, read from its (uncompressed) object dictionaries: for each
    page in order, the in-page link targets of its links (/Annots, /Dest), and the page (0-based)
    each named destination (an element id) is on."""
    objects = {}
    for m in re.finditer(rb"(\d+) 0 obj\s*", data):
        body = data[m.end():data.find(b"endobj", m.end())]
        if body.startswith(b"<<") and b"stream" not in body:
            objects[int(m.group(1))] = body
    (catalog,) = [o for o in objects.values() if re.search(rb"/Type\s*/Catalog", o)]

    def ref(body: bytes, key: bytes) -> int:
        return int(re.search(rb"/" + key + rb"\s+(\d+) 0 R", body).group(1))

    def leaves(number: int) -> list[int]:
        body = objects[number]
        if re.search(rb"/Type\s*/Pages", body):
            kids = re.search(rb"/Kids\s*\[([^\]]*)\]", body).group(1)
            return [leaf for kid in re.findall(rb"(\d+) 0 R", kids) for leaf in leaves(int(kid))]
        return [number]

    pages = leaves(ref(catalog, b"Pages"))
    links = []
    for page in pages:
        annots = re.search(rb"/Annots\s*\[([^\]]*)\]", objects[page])
        refs = [int(r) for r in re.findall(rb"(\d+) 0 R", annots.group(1))] if annots else []
        links.append([m.group(1).decode() for r in refs if (m := re.search(rb"/Dest\s*/([^\s/>\[]+)", objects[r]))])
    dests = {name.decode(): pages.index(int(page)) for name, page in re.findall(
        rb"/([^\s/\[<>]+)\s*\[(\d+) 0 R /XYZ", objects[ref(catalog, b"Dests")])}
    return links, dests


def test_the_pdf_opens_with_the_first_pages(written):
    """The PDF (Chromium's print of the page) opens with the first page of kk, ru and en, one page
    each, every KPI's row there linking to its card in the appendix after them."""
    root, _, pdf = written
    assert pdf is not None and pdf.read_bytes().startswith(b"%PDF")
    data = pdf.read_bytes()
    links, dests = _pdf_outline(data)
    kpis = sorted(_first_page_rows(root))
    print(f"scorecard.pdf: {len(links)} pages")
    assert len(links) > 3
    for i, lang in enumerate(LANGS):
        assert dests[f"first-{lang}"] == i, (lang, dests[f"first-{lang}"])
        assert set(links[i]) == {f"{lang}-{k}" for k in kpis}, (i, links[i])  # a wrapped link: a rectangle a line
        assert all(dests[f"{lang}-{k}"] >= 3 for k in kpis), "the cards come after the three first pages"


def test_the_pdf_text_of_the_first_pages(written):
    """The words of the PDF's first three pages, where pypdf is there to read them."""
    root, _, pdf = written
    pypdf = pytest.importorskip(
        "pypdf", reason="pypdf is not installed: the PDF's text is not read (test_the_pdf_opens_with_the_first_pages "
                        "reads its pages, links and places)")
    reader = pypdf.PdfReader(str(pdf))
    kpis = sorted(_first_page_rows(root))
    for i, lang in enumerate(LANGS):
        text = reader.pages[i].extract_text()
        assert scorecard.LABELS["title"][i] in text, (lang, text[:300])
        assert all(kpi in text for kpi in kpis), (lang, text)
        assert scorecard.LABELS["appendix"][i] not in text
