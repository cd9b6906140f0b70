"""Record the values every chapter glued in its last default-size run, for the claim tests.

``make book`` executes each chapter at its default parameters and keeps the executed
notebook in ``_cache/executed/<chapter>/``. This script copies the glued values of the
newest default run of each chapter into ``tests/default_run/<chapter>.json``, with the
chapter's parameters cell (the defaults the values belong to) and the date::

    make book && python scripts/record_defaults.py [--chapters 01_evaluating_explanations ...]

``tests/test_default_run.py`` then checks the claims each chapter's prose makes at the
size a reader sees, against this record, and checks that the record still belongs to the
chapter: the same parameters cell, and the same glued names as a fresh (SMOKE) run.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "default_run"
sys.path.insert(0, str(ROOT))


def parameters_cell(notebook: Path) -> str:
    """The source of the notebook's cell tagged ``parameters``."""
    nb = json.loads(notebook.read_text(encoding="utf-8"))
    for cell in nb["cells"]:
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            src = cell["source"]
            return "".join(src) if isinstance(src, list) else src
    raise ValueError(f"{notebook} has no cell tagged 'parameters'")


def newest_default_runs(cache: Path) -> dict[str, tuple[dict, Path]]:
    """Chapter stem -> (the build record, the executed notebook) of its newest default run."""
    newest: dict[str, tuple[dict, Path]] = {}
    for path in sorted(cache.glob("*/default-*.json")):
        rec = json.loads(path.read_text())
        nb = path.with_suffix(".ipynb")
        if nb.exists() and (rec["chapter"] not in newest or rec["date"] > newest[rec["chapter"]][0]["date"]):
            newest[rec["chapter"]] = (rec, nb)
    return newest


def record(stem: str, rec: dict, executed: Path, out: Path = OUT) -> Path:
    """Write ``out/<stem>.json`` from one executed default run."""
    from xaihelpers.results import read_glued

    out.mkdir(parents=True, exist_ok=True)
    target = out / f"{stem}.json"
    payload = {
        "chapter": stem,
        "date": rec["date"],
        "seconds": rec.get("seconds"),
        "parameters_cell": parameters_cell(executed),
        "glued": read_glued(executed),
    }
    target.write_text(json.dumps(payload, indent=1, sort_keys=True, ensure_ascii=False, default=str) + "\n",
                      encoding="utf-8")
    return target


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--chapters", nargs="*", help="chapter stems (default: every chapter with a default run)")
    ap.add_argument("--cache", type=Path, default=ROOT / "_cache" / "executed")
    args = ap.parse_args(argv)
    runs = newest_default_runs(args.cache)
    if not runs:
        ap.error(f"no default run in {args.cache}: run make book first")
    for stem, (rec, nb) in sorted(runs.items()):
        if args.chapters and stem not in args.chapters:
            continue
        source = ROOT / "notebooks" / f"{stem}.ipynb"
        if not source.exists():
            continue
        path = record(stem, rec, nb)
        print(f"{stem}: {len(json.loads(path.read_text())['glued'])} glued values from {nb.name} -> {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
