"""Derive every link to the repository from the one URL in ``_config.yml``.

The README's and the chapters' badges, and the chapters' Colab install cells, all
point to the repository that ``_config.yml`` names under ``repository.url``:

* the Colab badge opens the chapter's **Colab edition** (``scripts/colab_edition.py``),
  which the Pages workflow publishes on the branch :data:`COLAB_BRANCH`;
* the source badge opens the chapter on the branch ``repository.branch``;
* the install cell installs ``xaihelpers`` from the repository, and the set-up
  page clones it.

Run from the repository root::

    python scripts/links.py --write   # rewrite README.md, book/*.md and the notebooks
    python scripts/links.py --check   # exit 1 and list what differs (tests/test_book.py runs it)

Moving the book to another repository (a fork, a course's copy) is then one edit of
``_config.yml`` and one ``--write``.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
COLAB_BRANCH = "colab"

# what a link to this repository looks like, whatever repository it names now
_SLUG = r"[\w.-]+/[\w.-]+"
PATTERNS = {
    "colab": re.compile(rf"https://colab\.research\.google\.com/github/{_SLUG}/blob/[\w.-]+/notebooks/(?P<stem>[\w-]+)\.ipynb"),
    "source": re.compile(rf"https://github\.com/{_SLUG}/blob/[\w.-]+/notebooks/(?P<stem>[\w-]+)\.ipynb"),
    "install": re.compile(rf"git\+https://github\.com/{_SLUG}(?=[\"'\s@]|$)"),
    "clone": re.compile(rf"(?<=git clone )https://github\.com/{_SLUG}"),
    "citation": re.compile(rf"(?<=repository-code: )https://github\.com/{_SLUG}"),
}


def config() -> tuple[str, str]:
    """The repository's slug (``owner/name``) and branch from ``_config.yml``."""
    repo = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]
    url = repo["url"].rstrip("/")
    if not url.startswith("https://github.com/"):
        raise SystemExit(f"expected repository.url in _config.yml to be a https://github.com/owner/name URL, got {url!r}")
    return url.split("github.com/", 1)[1], repo.get("branch", "main")


def links(slug: str, branch: str) -> dict:
    """The replacement of each kind of link, as a function of the match."""
    return {
        "colab": lambda m: f"https://colab.research.google.com/github/{slug}/blob/{COLAB_BRANCH}/notebooks/{m['stem']}.ipynb",
        "source": lambda m: f"https://github.com/{slug}/blob/{branch}/notebooks/{m['stem']}.ipynb",
        "install": lambda m: f"git+https://github.com/{slug}",
        "clone": lambda m: f"https://github.com/{slug}",
        "citation": lambda m: f"https://github.com/{slug}",
    }


def rewrite(text: str, slug: str, branch: str) -> str:
    """``text`` with every repository link derived from ``slug`` and ``branch``."""
    for kind, fn in links(slug, branch).items():
        text = PATTERNS[kind].sub(fn, text)
    return text


def files() -> list[Path]:
    """Every file whose links are derived: README.md, CITATION.cff, book/*.md and the chapters."""
    return [ROOT / "README.md", ROOT / "CITATION.cff", *sorted((ROOT / "book").glob("*.md")),
            *sorted((ROOT / "notebooks").glob("*.ipynb"))]


def _rewrite_file(path: Path, slug: str, branch: str) -> str:
    text = path.read_text(encoding="utf-8")
    if path.suffix != ".ipynb":
        return rewrite(text, slug, branch)
    nb = json.loads(text)
    for cell in nb["cells"]:
        src = "".join(cell["source"])
        new = rewrite(src, slug, branch)
        if new != src:
            lines = new.splitlines(keepends=True)
            cell["source"] = lines
    return json.dumps(nb, indent=1, ensure_ascii=False) + "\n"


def _changed(path: Path, slug: str, branch: str) -> bool:
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".ipynb":
        nb = json.loads(text)
        return any(rewrite("".join(c["source"]), slug, branch) != "".join(c["source"]) for c in nb["cells"])
    return rewrite(text, slug, branch) != text


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    group = ap.add_mutually_exclusive_group(required=True)
    group.add_argument("--write", action="store_true", help="rewrite the links in place")
    group.add_argument("--check", action="store_true", help="list the files whose links differ; exit 1 if any")
    args = ap.parse_args(argv)
    slug, branch = config()
    if args.write:
        for path in files():
            if _changed(path, slug, branch):
                path.write_text(_rewrite_file(path, slug, branch), encoding="utf-8")
                print(f"rewrote {path.relative_to(ROOT)}")
        return 0
    bad = [str(p.relative_to(ROOT)) for p in files() if _changed(p, slug, branch)]
    for name in bad:
        print(f"{name}: links differ from _config.yml's repository; run python scripts/links.py --write")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
