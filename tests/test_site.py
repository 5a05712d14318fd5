"""The course website (``make site``, site/): it builds with warnings as errors, and a real
headless Chromium opens every page of it.

The browser checks need Chromium and ChromeDriver (Debian: ``apt-get install chromium
chromium-driver``; ``.ci/run`` installs them). Where neither can be found they are skipped
with that message; the build checks always run.
"""
from __future__ import annotations

import functools
import importlib.util
import json
import re
import shutil
import sys
import threading
from html import unescape
from html.parser import HTMLParser
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted(p.stem for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))

pytestmark = [
    pytest.mark.skipif(
        any(importlib.util.find_spec(m) is None for m in ("sphinx", "myst_nb", "sphinx_book_theme", "selenium")),
        reason="the site's packages are not installed: pip install -e '.[site]' (make install does it)"),
    # Sphinx 9 announces its own API changes to the extensions (myst, the theme) a thousand times a build
    pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::PendingDeprecationWarning"),
]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """Build the site once (warnings are errors) into site/_build/html, as ``make site`` does."""
    sys.path.insert(0, str(ROOT / "site"))
    try:
        from build import DEFAULT_OUT, build
    finally:
        sys.path.remove(str(ROOT / "site"))
    seconds, pages = build(DEFAULT_OUT)
    print(f"site built in {seconds:.0f} s, {pages} pages")
    return DEFAULT_OUT


def test_every_notebook_has_a_page_with_a_run_it_yourself_box(site):
    for name in NOTEBOOKS:
        page = (site / "notebooks" / f"{name}.html").read_text()
        text = _text(page)
        assert "run-it-yourself" in page, f"{name}: no 'Run it yourself' box"
        assert f"make reproduce ONLY={name[:2]}" in text and f"jupyter lab notebooks/{name}.ipynb" in text, name
        assert "Learning objectives" in text, f"{name}: the learning objectives are missing"
    for page in ("README", "docs/course", "docs/reproduction_report", "papers", "docs/api"):
        assert (site / f"{page}.html").exists(), page
    assert "README.html" in (site / "index.html").read_text(), "index.html leads to the landing page"


def test_the_parameters_table_lists_every_parameter(site):
    sys.path.insert(0, str(ROOT / "site" / "_ext"))
    try:
        from msgnn_site import parameters
    finally:
        sys.path.remove(str(ROOT / "site" / "_ext"))
    rows = parameters('profile = "default"\nlrs = [0.01, 0.05]  # a grid # with a hash\nx: int = 3\n'
                      '# the graph, said above\ndataset = "Cora"\nseeds = list(range(3))\n')
    assert rows == [("profile", '"default"', ""), ("lrs", "[0.01, 0.05]", "a grid # with a hash"),
                    ("dataset", '"Cora"', "the graph, said above"), ("seeds", "list(range(3))", "")]
    nb = json.loads((ROOT / "notebooks" / f"{NOTEBOOKS[0]}.ipynb").read_text())
    cell = next("".join(c["source"]) for c in nb["cells"] if "parameters" in c["metadata"].get("tags", []))
    page = (site / "notebooks" / f"{NOTEBOOKS[0]}.html").read_text()
    box = page[page.index("run-it-yourself"):]
    box = _text(box[:box.index("</table>")])
    for name, default, _ in parameters(cell):
        assert name in box and default in box, (name, default)


def _text(html: str) -> str:
    """The text of an HTML fragment, tags removed (highlighting splits code into spans)."""
    return unescape(re.sub(r"<[^>]+>", "", html))


class _Ids(HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids = set()

    def handle_starttag(self, tag, attrs):
        for key, value in attrs:
            if key in ("id", "name") and value:
                self.ids.add(value)


@functools.lru_cache(maxsize=None)
def _ids(path: Path) -> frozenset:
    parser = _Ids()
    parser.feed(path.read_text(errors="replace"))
    return frozenset(parser.ids)


def _browser_or_skip():
    chromium = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
    driver = shutil.which("chromedriver")
    if not (chromium and driver):
        pytest.skip("no headless browser here: install Chromium and ChromeDriver "
                    "(Debian: apt-get install chromium chromium-driver; .ci/run does it)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1366,900"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(executable_path=driver), options=options)


@pytest.fixture(scope="module")
def browser(site, tmp_path_factory):
    """(driver, base url, build folder): Chromium on the site served from a local port."""
    server = ThreadingHTTPServer(("127.0.0.1", 0),
                                 functools.partial(_QuietHandler, directory=str(site)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    driver = _browser_or_skip()
    driver.set_page_load_timeout(60)
    try:
        yield driver, f"http://127.0.0.1:{server.server_address[1]}/", site
    finally:
        driver.quit()
        server.shutdown()


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep the test log to failures
        pass


def _wait(driver, script: str, timeout: float = 20.0):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.1).until(lambda d: d.execute_script(script))


def _severe(driver) -> list[str]:
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def test_every_page_loads_cleanly_with_its_images_and_links(browser):
    driver, base, site = browser
    pages = sorted(p.relative_to(site).as_posix() for p in site.rglob("*.html")
                   if not p.relative_to(site).as_posix().startswith(("_static/", "_sources/")))
    problems = []
    for page in pages:
        driver.get(base + page)
        _wait(driver, "return document.readyState === 'complete'")
        errors = _severe(driver)
        if errors:
            problems.append(f"{page}: console errors {errors[:3]}")
        broken = driver.execute_script(
            "return Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0))"
            ".map(i => i.currentSrc || i.src)")
        if broken:
            problems.append(f"{page}: images that did not load {broken[:3]}")
        for href in driver.execute_script("return Array.from(document.querySelectorAll('a[href]')).map(a => a.href)"):
            if not href.startswith(base):
                continue
            parts = urlsplit(href)
            target = site / unquote(parts.path[len(urlsplit(base).path):])
            if parts.path.endswith("/"):
                target = target / "index.html"
            if not target.is_file():
                problems.append(f"{page}: link to a missing page {href}")
            elif parts.fragment and target.suffix == ".html" and unquote(parts.fragment) not in _ids(target):
                problems.append(f"{page}: link to a missing anchor {href}")
    assert not problems, f"{len(problems)} problem(s) over {len(pages)} pages:\n" + "\n".join(problems[:40])
    assert len(pages) > len(NOTEBOOKS)


def test_search_finds_graphsaint(browser):
    driver, base, _ = browser
    driver.get(base + "search.html?q=GraphSAINT")
    found = _wait(driver, "const r = document.querySelectorAll('#search-results li a');"
                          "return r.length ? Array.from(r).map(a => a.textContent) : null", timeout=30)
    assert any("GraphSAINT" in t or "graphsaint" in t.lower() for t in found), found[:10]
    assert not _severe(driver)


def test_index_sidebar_lists_the_notebooks_in_course_order_and_screenshots(browser):
    driver, base, site = browser
    driver.get(base + "index.html")  # the redirect to the landing page
    driver.execute_script("sessionStorage.clear()")  # as a new reader: no sidebar scroll kept from other pages
    driver.get(base + "index.html")
    _wait(driver, "return location.pathname.endsWith('README.html') && document.readyState === 'complete'")
    hrefs = driver.execute_script(
        "return Array.from(document.querySelectorAll('nav.bd-docs-nav a.reference')).map(a => a.href)")
    listed = [Path(urlsplit(h).path).stem for h in hrefs if "/notebooks/" in h]
    assert listed == NOTEBOOKS, listed
    shots = site.parent / "screenshots"
    shots.mkdir(exist_ok=True)
    assert driver.save_screenshot(str(shots / "index.png"))
    driver.get(base + f"notebooks/{NOTEBOOKS[2]}.html")
    _wait(driver, "return document.readyState === 'complete'")
    assert driver.save_screenshot(str(shots / f"{NOTEBOOKS[2]}.png"))
    assert (shots / "index.png").stat().st_size > 10_000


def test_math_renders_offline(browser):
    driver, base, _ = browser
    page = next(n for n in NOTEBOOKS if "$" in (ROOT / "notebooks" / f"{n}.ipynb").read_text())
    driver.get(base + f"notebooks/{page}.html")
    rendered = _wait(driver, "return document.querySelectorAll('mjx-container').length", timeout=30)
    assert rendered > 0, page
    assert not _severe(driver)


def test_verdicts_are_visually_distinct(browser):
    driver, base, _ = browser
    driver.get(base + "docs/reproduction_report.html")
    _wait(driver, "return document.readyState === 'complete'")
    colours = driver.execute_script(
        "const out = {}; for (const td of document.querySelectorAll('td.verdict')) {"
        "  const kind = Array.from(td.classList).find(c => c.startsWith('verdict-'));"
        "  out[kind] = getComputedStyle(td).backgroundColor; } return out;")
    assert {"verdict-reproduced", "verdict-not-reproduced", "verdict-partly"} <= set(colours), colours
    assert len({colours[k] for k in ("verdict-reproduced", "verdict-not-reproduced", "verdict-partly")}) == 3


def test_every_notebook_page_shows_its_figures(browser):
    """The plots are where the reader looks: each notebook's stored outputs hold an inline image for
    every figure it saves (``savefig`` shows what it saves), and its page shows them all, loaded."""
    driver, base, site = browser
    problems, shown = [], {}
    for stem in NOTEBOOKS:
        nb = json.loads((ROOT / "notebooks" / f"{stem}.ipynb").read_text())
        stored = sum("image/png" in o.get("data", {}) for c in nb["cells"] for o in c.get("outputs", []))
        saves = sum("".join(c["source"]).count("savefig(") for c in nb["cells"] if c["cell_type"] == "code")
        if saves and not stored:
            problems.append(f"{stem}: saves {saves} figure(s) but its stored outputs show none")
        driver.get(base + f"notebooks/{stem}.html")
        _wait(driver, "return document.readyState === 'complete'")
        loaded = driver.execute_script(
            "return Array.from(document.querySelectorAll('article img'))"
            ".filter(i => i.complete && i.naturalWidth > 0).length")
        shown[stem] = (stored, loaded)
        if loaded < stored:
            problems.append(f"{stem}: its page shows {loaded} loaded image(s) of the {stored} in its outputs")
    print("inline figures per notebook (stored, loaded on its page):", shown)
    assert not problems, "\n".join(problems)
