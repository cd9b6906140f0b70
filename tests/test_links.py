"""Every link to the repository derives from the one URL in _config.yml (scripts/links.py)."""

from __future__ import annotations

import re

from conftest import NOTEBOOKS, ROOT, script


def _links():
    return script("links")


def test_links_are_derived_from_the_config():
    links = _links()
    assert links.main(["--check"]) == 0


def test_moving_the_repository_moves_every_link():
    """No link to the configured repository survives a rewrite for another one: nothing is exempt."""
    links = _links()
    slug, branch = links.config()
    fork = "a-course/its-copy"
    for path in links.files():
        text = links._rewrite_file(path, fork, "spring-2027")
        assert slug not in text, f"{path.name} keeps a link to {slug} that _config.yml does not control"
    readme = links._rewrite_file(ROOT / "README.md", fork, "spring-2027")
    for nb in NOTEBOOKS:
        assert f"colab.research.google.com/github/{fork}/blob/{links.COLAB_BRANCH}/notebooks/{nb.name}" in readme
    chapter = links._rewrite_file(NOTEBOOKS[0], fork, "spring-2027")
    assert f"github.com/{fork}/blob/spring-2027/notebooks/{NOTEBOOKS[0].name}" in chapter
    assert re.search(rf"git\+https://github\.com/{fork}\b", chapter)


def test_every_chapter_links_its_colab_edition_and_installs_from_the_repository():
    links = _links()
    slug, _ = links.config()
    for nb in NOTEBOOKS:
        text = nb.read_text()
        assert f"colab.research.google.com/github/{slug}/blob/{links.COLAB_BRANCH}/notebooks/{nb.name}" in text
        assert f"git+https://github.com/{slug}" in text


def test_licences_and_citation_agree_with_the_package():
    import tomllib

    import yaml

    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert {"cff-version", "message", "title", "authors"} <= set(cff)
    assert str(cff["version"]) == project["version"] and cff["license"] == project["license"]["text"] == "MIT"
    assert "MIT License" in (ROOT / "LICENSE").read_text()
    assert "creativecommons.org/licenses/by/4.0" in (ROOT / "LICENSE-CONTENT.md").read_text()


def test_the_colab_branch_the_badges_open_is_published():
    """The publishing workflow writes the Colab edition into the branch the badges point at."""
    import yaml

    jobs = yaml.safe_load((ROOT / ".github" / "workflows" / "pages.yml").read_text())["jobs"]
    steps = [s for job in jobs.values() for s in job["steps"]]
    writes = [s for s in steps if "scripts/colab_edition.py" in s.get("run", "")]
    assert writes and "--out _build/colab-branch/notebooks" in writes[0]["run"]
    publish = [s for s in steps if s.get("with", {}).get("publish_branch")]
    assert publish and publish[0]["with"]["publish_branch"] == _links().COLAB_BRANCH
    assert publish[0]["with"]["publish_dir"] == "_build/colab-branch"
