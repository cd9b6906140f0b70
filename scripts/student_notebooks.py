"""Write student versions of the chapters: the same notebooks without the exercise solutions.

Run: ``python scripts/student_notebooks.py [--out student]`` (or ``make student``). The
``student/`` folder is not part of the site (only ``_toc.yml``'s files are) and is
git-ignored; hand it to students, keep the book for yourself.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# a solution directive: an opening fence of 3+ backticks with {solution}, up to the same fence alone on a line
SOLUTION = re.compile(r"^(?P<fence>`{3,})\{solution\}.*?^(?P=fence)[ \t]*$\n?", re.S | re.M)


def strip_solutions(text: str) -> str:
    """Markdown without its ``{solution}`` blocks (exercises stay)."""
    return SOLUTION.sub("", text)


def student_version(nb: dict) -> dict:
    out = json.loads(json.dumps(nb))
    for cell in out["cells"]:
        if cell["cell_type"] == "markdown":
            src = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
            cell["source"] = strip_solutions(src)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(ROOT / "student"))
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        nb = student_version(json.loads(path.read_text()))
        (out / path.name).write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
        print(f"{path.name} -> {out / path.name}")


if __name__ == "__main__":
    main()
