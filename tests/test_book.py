"""The site: it builds from the executed chapters without warnings, and a browser shows their figures."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import NOTEBOOKS, ROOT, script


def _first(*candidates: str | None) -> str | None:
    return next((c for c in candidates if c), None)


# Debian's chromium, Ubuntu's chromium-browser, Google Chrome (CI runners), or CHROME_BIN/CHROMEDRIVER.
CHROMIUM = _first(os.environ.get("CHROME_BIN"),
                  *(shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome",
                                              "google-chrome-stable", "chrome")))
CHROMEDRIVER = _first(os.environ.get("CHROMEDRIVER"), shutil.which("chromedriver"),
                      shutil.which("chromedriver", path=os.environ.get("CHROMEWEBDRIVER", "")))

# What the page's script reports once MathJax has typeset it: every math element of the
# page rendered (an mjx-container inside), and no raw TeX delimiters left in the text
# that readers see (code cells aside).
_MATH_STATE = r"""
const done = arguments[arguments.length - 1];
const report = () => {
    const maths = [...document.querySelectorAll('span.math, div.math')];
    const main = (document.querySelector('article') || document.body).cloneNode(true);
    main.querySelectorAll('pre, code, .highlight, .cell_input, mjx-container, script, style')
        .forEach(e => e.remove());
    const text = main.textContent;
    const script = [...document.scripts].map(s => s.src).find(src => /mathjax/i.test(src)) || null;
    done({n: maths.length,
          rendered: maths.filter(e => e.querySelector('mjx-container')).length,
          containers: document.querySelectorAll('mjx-container').length,
          raw: ['\\(', '\\[', '$$'].filter(d => text.includes(d))
               .concat(text.match(/\\[A-Za-z]{2,}/g) || [])            // a TeX command left as text
               .concat(text.match(/\$[^$\s][^$\n]{0,80}\$/g) || [])  // an inline formula left as text
               .slice(0, 10),
          script: script});
};
if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
    MathJax.startup.promise.then(report, report);
} else {
    report();
}
"""


def _config() -> dict:
    return yaml.safe_load((ROOT / "_config.yml").read_text())


def test_every_chapter_is_in_the_toc():
    toc = (ROOT / "_toc.yml").read_text()
    for nb in NOTEBOOKS:
        assert f"notebooks/{nb.stem}" in toc


def test_links_use_the_one_repository_url():
    url = _config()["repository"]["url"].rstrip("/")
    slug = url.split("github.com/")[1]
    texts = [(ROOT / "README.md").read_text()] + [p.read_text() for p in NOTEBOOKS]
    for text in texts:
        assert "github.com/" + slug in text or "github/" + slug in text
        for other in ("colab.research.google.com/github/", "github.com/"):
            for chunk in text.split(other)[1:]:
                if chunk.startswith(("jacobgil", "xai-book")) or other == "github.com/" and not chunk.startswith("xai"):
                    continue
                assert chunk.startswith(slug), chunk[:80]


@pytest.fixture(scope="module")
def site(executed, tmp_path_factory) -> Path:
    """Build the book from the SMOKE-executed chapters (execution off) into a temporary folder."""
    src = tmp_path_factory.mktemp("book")
    shutil.copytree(ROOT / "book", src / "book")
    shutil.copy(ROOT / "_toc.yml", src / "_toc.yml")
    config = _config()
    config["execute"]["execute_notebooks"] = "off"
    (src / "_config.yml").write_text(yaml.safe_dump(config))
    (src / "notebooks").mkdir()
    for nb in NOTEBOOKS:
        shutil.copy(executed(nb.stem), src / "notebooks" / nb.name)
    jb = Path(sys.executable).with_name("jupyter-book")
    proc = subprocess.run([str(jb), "build", str(src), "-W", "-n", "--keep-going"],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return src / "_build" / "html"


@pytest.mark.site
def test_site_has_every_chapter_page(site):
    for nb in NOTEBOOKS:
        page = site / "notebooks" / f"{nb.stem}.html"
        assert page.is_file()
        html = page.read_text()
        outputs = html.split('<div class="cell_output')[1:]
        assert any("<img" in out.split("</div>")[0] for out in outputs), "no figure among the cell outputs"
        assert "Traceback" not in html


@pytest.mark.site
def test_site_ships_its_math_renderer(site):
    """Equations are typeset by a MathJax copied into the site, not fetched from a CDN."""
    assert (site / "_static" / "mathjax" / "tex-chtml.js").is_file()
    pages = {nb.stem: (site / "notebooks" / f"{nb.stem}.html").read_text() for nb in NOTEBOOKS}
    with_math = [stem for stem, html in pages.items() if 'class="math notranslate' in html]
    assert with_math, "no chapter page has an equation"
    for stem, html in pages.items():
        assert "cdn.jsdelivr.net/npm/mathjax" not in html, stem
        if stem in with_math:
            assert "_static/mathjax/tex-chtml.js" in html, stem


@pytest.mark.site
@pytest.mark.parametrize("nb", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_chapter_page_shows_executed_figures_in_chromium(site, nb, tmp_path):
    if not (CHROMIUM and CHROMEDRIVER):
        reason = ("Chromium or ChromeDriver not found: install the Debian packages chromium and chromium-driver "
                  "(make test does), or set CHROME_BIN and CHROMEDRIVER")
        print(reason)
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                 f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1280,2000"):
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    try:
        driver.set_page_load_timeout(60)
        driver.get((site / "notebooks" / f"{nb.stem}.html").as_uri())
        state = driver.execute_script(
            """
            const imgs = [...document.querySelectorAll('.cell_output img')];
            return {n: imgs.length,
                    loaded: imgs.filter(i => i.complete && i.naturalWidth > 0).length,
                    title: document.title};
            """
        )
        driver.set_script_timeout(60)
        math = driver.execute_async_script(_MATH_STATE)
        shot = tmp_path / f"{nb.stem}.png"
        driver.save_screenshot(str(shot))
    finally:
        driver.quit()
    assert state["n"] >= 1, "no figure from the notebook's outputs on the page"
    assert state["loaded"] == state["n"], state
    assert shot.stat().st_size > 10_000
    # equations rendered offline: the site's own MathJax typeset every one of them
    if math["n"]:
        assert math["script"] and math["script"].startswith("file:"), math
        assert math["rendered"] == math["n"] and math["containers"] >= math["n"], math
    assert not math["raw"], f"raw TeX in the page's text: {math}"


def test_every_chapter_opens_with_badges_and_its_run_times():
    for nb in NOTEBOOKS:
        cells = json.loads(nb.read_text())["cells"]
        opening = "".join(cells[0]["source"])
        assert "colab-badge.svg" in opening and "badge/source" in opening, nb.stem
        # chapter 0 and the lessons have no FULL switch (a lesson's full size is its lab)
        full = nb.stem != NOTEBOOKS[0].stem and not nb.stem.endswith("_lesson")
        keys = ("run_time_smoke", "run_time_default") + (("run_time_full",) if full else ())
        for key in keys:
            assert f"{{glue:text}}`{key}`" in opening, (nb.stem, key)
        code = "".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
        assert f'glue_run_times("{nb.stem}")' in code, nb.stem


def test_run_time_tables_are_those_of_the_recorded_times():
    expected = script("run_times").table()
    for path in (ROOT / "README.md", ROOT / "book" / "for_teachers.md"):
        block = path.read_text().split("<!-- run-times:start -->")[1].split("<!-- run-times:end -->")[0]
        assert block.strip() == expected.strip(), f"{path.name}: run `python scripts/run_times.py --render`"
