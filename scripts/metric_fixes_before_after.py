"""Before and after the second round of measurement fixes: one row per number of each finding.

The review of the second round (twelve findings: unpaired uncertainty, absolute-only
sanity checks, invalid insertion/deletion, the localisation threshold chosen on the test
images, SmoothGrad's shared noise, GFI's free mask, credits, Activation Matching's
necessity controls, ConvAD's text, claim tests that could not fail, FULL switches, the
pointing game's memory) named a number for most of them. This script imports the package
as it was before the fixes (commit ``BEFORE``, extracted from git into a temporary
folder) beside the current one, runs each finding's measurement with both on the same
images and settings, and prints one table::

    python scripts/metric_fixes_before_after.py [--out table.md] [--only A C]

Each part lives in ``scripts/metric_fixes/<part>.py`` and exposes ``rows(old, new)``,
returning dicts with the keys ``finding``, ``quantity``, ``before`` and ``after``. It needs
the repository's git history (a clone, not an archive) and takes a few minutes on two
CPU cores. ``scripts/metric_fixes/round1.py`` is the first round's script.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PARTS = ROOT / "scripts" / "metric_fixes"
BEFORE = "c6de3ec"  # main before the second round of fixes
sys.path.insert(0, str(ROOT))


def parts() -> dict[str, Path]:
    """Part name -> file of every ``rows`` provider (all files of scripts/metric_fixes but round1)."""
    return {p.stem: p for p in sorted(PARTS.glob("*.py")) if p.stem != "round1" and not p.stem.startswith("_")}


def load(path: Path):
    spec = importlib.util.spec_from_file_location(f"metric_fixes_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    if not callable(getattr(module, "rows", None)):
        raise TypeError(f"{path} must define rows(old, new)")
    return module


def old_package(commit: str, folder: Path):
    """``xaihelpers`` as it was at ``commit``, imported as ``xaihelpers_before``."""
    round1 = load_round1()
    return round1.old_package(commit, folder)


def load_round1():
    spec = importlib.util.spec_from_file_location("metric_fixes_round1", PARTS / "round1.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def table(rows: list[dict]) -> str:
    """The rows as a Markdown table sorted by finding number."""
    def key(r):
        head = str(r["finding"]).split()[0]
        return (int(head) if head.isdigit() else 99, str(r["finding"]))

    lines = ["| finding | quantity | before | after |", "|---|---|---|---|"]
    for r in sorted(rows, key=key):
        lines.append(f"| {r['finding']} | {r['quantity']} | {_fmt(r['before'])} | {_fmt(r['after'])} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, help="also write the table (Markdown) here")
    ap.add_argument("--only", nargs="*", help="parts to run (file stems of scripts/metric_fixes)")
    ap.add_argument("--before", default=BEFORE, help=f"the commit before the fixes (default {BEFORE})")
    args = ap.parse_args()

    import torch

    import xaihelpers as new

    torch.set_num_threads(max(1, torch.get_num_threads()))
    chosen = parts()
    if args.only:
        missing = sorted(set(args.only) - set(chosen))
        if missing:
            raise SystemExit(f"unknown parts {missing}; expected some of {sorted(chosen)}")
        chosen = {k: chosen[k] for k in args.only}
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        old = old_package(args.before, Path(tmp))
        for name, path in chosen.items():
            print(f"running {name} ...", file=sys.stderr, flush=True)
            for r in load(path).rows(old, new):
                missing = {"finding", "quantity", "before", "after"} - set(r)
                if missing:
                    raise ValueError(f"{path.name}: a row lacks {sorted(missing)}")
                rows.append(r)
    text = table(rows)
    print(text)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
