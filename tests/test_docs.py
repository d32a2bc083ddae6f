"""The documentation: the site builds strictly (a broken link, a missing page or a bad docstring reference fails),
offline, and reads in a real browser with its navigation and search; the study-file reference is the schema's
own output; every shipped study is documented; the README stays a README; studies and code say what, not
history."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from evolora.orchestrator.study.reference import REFERENCE_PAGE, study_reference

from .conftest import ROOT
from .helpers.browser import browser, wait_for, wait_text


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    mkdocs = Path(sys.executable).parent / "mkdocs"
    if not mkdocs.exists():
        pytest.fail(
            f"{mkdocs} is missing: `make setup` installs the docs tools (pip install -e '.[dev]')"
        )
    proc = subprocess.run(
        [str(mkdocs), "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out


def test_the_site_builds_strictly_with_every_page(site):
    for page in (
        "index",
        "getting-started",
        "studies",
        "reference/study-file",
        "strategies",
        "fitness",
        "causal",
        "sweeps",
        "tracking",
        "benchmarks",
        "architecture",
        "api",
        "results/index",
    ):
        assert (site / f"{page}.html").is_file(), page
    api = (site / "api.html").read_text(encoding="utf-8")
    # mkdocstrings rendered the docstrings
    assert "register_reward" in api and "Evolve one adapter" in api


def test_the_built_site_needs_no_network(site):
    """No web fonts, scripts or styles from elsewhere: every page references only the site's own files."""
    for page in site.rglob("*.html"):
        html = page.read_text(encoding="utf-8")
        for ref in re.findall(r'<(?:script|link|img)[^>]+(?:src|href)="([^"]+)"', html):
            assert not re.match(r"^(https?:)?//", ref), (page.name, ref)


def test_the_site_reads_offline_in_a_browser_with_navigation_and_search(site, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    driver = browser(tmp_path / "profile")
    try:
        driver.get((site / "index.html").as_uri())  # from disk: no server, no network
        nav = wait_text(driver, "Sweeps and scale-out")
        for title in (
            "Getting started",
            "Study files",
            "Fitness terms and plug-ins",
            "Results",
            "Python API",
        ):
            assert title in nav
        driver.find_element(By.LINK_TEXT, "Getting started").click()
        wait_text(driver, "What the quickstart leaves")
        box = driver.find_element(By.CSS_SELECTOR, "input[data-md-component='search-query']")
        box.click()
        box.send_keys("speciation")

        def results():
            items = [
                i
                for i in driver.find_elements(By.CSS_SELECTOR, ".md-search-result__item")
                if i.text
            ]
            return items if items else None

        # the index, searched in a worker
        hits = wait_for(driver, results, "search results for 'speciation'")
        assert any("speciation" in h.text.lower() for h in hits)
        driver.save_screenshot(str(tmp_path / "docs-search.png"))
        box.send_keys(Keys.ENTER)  # opens the first result, the term highlighted
        wait_for(driver, lambda: "?h=speciation" in driver.current_url, "the first search result")
        assert "speciation" in driver.find_element(By.TAG_NAME, "article").text.lower()
    finally:
        driver.quit()


def test_the_study_file_reference_page_is_the_schema():
    page = (ROOT / REFERENCE_PAGE).read_text(encoding="utf-8")
    assert page == study_reference(), (
        "docs/reference/study-file.md is not the schema's reference: run "
        "`evolora schema > docs/reference/study-file.md`"
    )
    from evolora.orchestrator.study.sections import StudyConfig

    for section in (
        "model",
        "lora",
        "data",
        "fitness",
        "validation",
        "evolution",
        "mlflow",
        "sweep",
    ):
        model = StudyConfig.model_fields[section].default.__class__
        for key in model.model_fields:
            assert f"| `{key}` |" in page.split(f"## `{section}`", 1)[1], f"{section}.{key}"


def test_each_section_of_the_study_file_reference_says_what_it_is():
    """A section class reused where it means something else gives two sections one description (the watched
    terms were once described as Pareto objectives): every section's description is its own."""
    page = (ROOT / REFERENCE_PAGE).read_text(encoding="utf-8")
    sections = re.findall(r"^## `([^`]+)`\n\n(.*?)\n", page, re.M)
    assert len(sections) > 10
    seen: dict[str, str] = {}
    for path, description in sections:
        assert description not in seen, f"{path} and {seen.get(description)} share: {description}"
        seen[description] = path
    watch = dict(sections)["validation.watch.N"]
    assert "validation" in watch and "Pareto" not in watch


def test_every_shipped_study_is_documented_on_the_studies_page():
    page = (ROOT / "docs" / "studies.md").read_text(encoding="utf-8")
    for study in sorted((ROOT / "studies").glob("*.yaml")) + sorted(
        (ROOT / "examples").glob("*.yaml")
    ):
        assert f"`{study.relative_to(ROOT)}`" in page, study.name


def test_the_readme_is_short_and_links_the_docs():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 250
    for link in re.findall(r"\]\((docs/[^)#]+)", text):
        assert (ROOT / link).is_file(), link
    assert "make run" in text and "make test" in text


def test_studies_and_code_say_what_not_history():
    """No pointers into the README, no dated measurements in shipped studies, docstrings or field descriptions;
    each study opens with two to four lines on what it does and what it costs."""
    date = re.compile(r"\b20\d\d-[01]\d-[0-3]\d\b")
    files = [*(ROOT / "studies").glob("*.yaml"), *(ROOT / "examples").glob("*.yaml")]
    for pkg in ("evolution", "fitness", "orchestrator", "evolora", "benchmarks"):
        files += (ROOT / pkg).rglob("*.py")
    for f in files:
        text = f.read_text(encoding="utf-8")
        assert "README:" not in text and "README," not in text, f
        assert not date.search(text), (f, date.search(text).group())
    for f in [*(ROOT / "studies").glob("*.yaml"), *(ROOT / "examples").glob("*.yaml")]:
        lines = f.read_text(encoding="utf-8").splitlines()
        head = next(i for i, ln in enumerate(lines) if not ln.startswith("#"))
        assert 2 <= head <= 4, (f.name, head)


def test_the_api_page_documents_every_public_name():
    """Every name ``evolora`` exports is on the API page: a member of its ``::: evolora`` block or a
    ``::: dotted.path.Name`` of its own (constants aside)."""
    import evolora

    page = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    members = re.search(r"::: evolora\n\s+options:\n\s+members: \[(.*?)\]", page, re.S)
    listed = {m.strip() for m in members.group(1).split(",")}
    blocks = {line.split(".")[-1] for line in re.findall(r"^::: (\S+)$", page, re.M)}
    constants = {n for n in evolora.__all__ if n.isupper() or n.startswith("__")}
    missing = set(evolora.__all__) - constants - listed - blocks
    assert not missing, f"not on docs/api.md: {sorted(missing)}"
