"""Time every chapter under papermill and record it in xaihelpers/run_times.csv.

Each chapter opens with these times (``xh.results.glue_run_times``). Run, from the
repository root::

    python scripts/run_times.py --mode smoke                # every chapter, SMOKE=True
    python scripts/run_times.py --mode default 06_comparison
    python scripts/run_times.py --mode full --threads 1 02_guided_feature_inversion

``--mode full`` runs a chapter with ``FULL=True`` (the papers' sizes).

``--from-cache`` records the times of the chapters that the last ``make book`` executed
(``scripts/build_book.py`` writes one record per executed chapter into
``_cache/executed/<chapter>/``: its mode, seconds and threads), without running anything::

    make book && python scripts/run_times.py --from-cache

A row per (chapter, mode, device) is replaced by the new measurement; ``--device`` says
what ran it (default: the CUDA device's name, else "CPU, <n> cores"). After each run,
and with ``--render`` alone, the run-time tables of README.md and
book/for_teachers.md (between ``<!-- run-times:start -->`` and ``<!-- run-times:end -->``)
are rewritten from the CSV.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CSV = ROOT / "xaihelpers" / "run_times.csv"


MODES = ("smoke", "default", "full")
PARAMETERS = {"smoke": {"SMOKE": True}, "default": {"SMOKE": False}, "full": {"SMOKE": False, "FULL": True}}


def _device() -> str:
    import torch

    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return f"CPU, {os.cpu_count()} cores"


def main(argv: list[str] | None = None) -> int:
    import papermill as pm

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("chapters", nargs="*", help="notebook stems (default: every chapter)")
    ap.add_argument("--mode", choices=MODES)
    ap.add_argument("--threads", type=int, default=None, help="OMP_NUM_THREADS of the kernel (default: PyTorch's)")
    ap.add_argument("--render", action="store_true", help="only rewrite the tables from the CSV")
    ap.add_argument("--from-cache", action="store_true",
                    help="record the times of the chapters the last make book executed (_cache/executed)")
    ap.add_argument("--device", default=None, help="what ran it, for the record")
    ap.add_argument("--source", default="scripts/run_times.py (papermill)")
    ap.add_argument("--keep", default=None, help="folder to keep the executed notebooks in")
    args = ap.parse_args(argv)
    if args.render:
        render()
        return 0
    if args.from_cache:
        rows = cached_times(ROOT / "_cache" / "executed", args.chapters, args.device or _device())
        if not rows:
            ap.error("no executed chapter in _cache/executed: run make book first")
        for row in rows:
            record(row)
            print(f"{row['chapter']} ({row['mode']}): {row['seconds']:.0f} s, from {row['source']}", flush=True)
        render()
        return 0
    if args.mode is None:
        ap.error("--mode is required unless --render")
    stems = args.chapters or sorted(p.stem for p in (ROOT / "notebooks").glob("*.ipynb"))
    for stem in stems:
        nb = ROOT / "notebooks" / f"{stem}.ipynb"
        if not nb.exists():
            ap.error(f"no chapter {nb}")
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(args.keep or tmp) / nb.name
            out.parent.mkdir(parents=True, exist_ok=True)
            start = time.perf_counter()
            if args.threads:
                os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(args.threads)
            pm.execute_notebook(str(nb), str(out), parameters=PARAMETERS[args.mode],
                                cwd=str(nb.parent), progress_bar=False)
            seconds = time.perf_counter() - start
        record({"chapter": stem, "mode": args.mode, "seconds": round(seconds, 1), "device": args.device or _device(),
                "date": dt.date.today().isoformat(), "source": args.source})
        print(f"{stem} ({args.mode}): {seconds:.0f} s", flush=True)
        render()
    return 0


def record(row: dict, csv: Path = CSV) -> None:
    """Replace the CSV's row of ``row``'s (chapter, mode, device) by ``row``."""
    import pandas as pd

    old = pd.read_csv(csv) if csv.exists() else pd.DataFrame(columns=list(row))
    old = old[~((old["chapter"] == row["chapter"]) & (old["mode"] == row["mode"]) & (old["device"] == row["device"]))]
    pd.concat([old, pd.DataFrame([row])]).sort_values(["chapter", "mode"]).to_csv(csv, index=False)


def cached_times(cache: Path, chapters: list[str] | None, device: str) -> list[dict]:
    """One row per chapter and mode: the newest record ``scripts/build_book.py`` left in ``cache``."""
    import json

    newest: dict[tuple[str, str], dict] = {}
    for path in sorted(cache.glob("*/*.json")):
        rec = json.loads(path.read_text())
        if chapters and rec["chapter"] not in chapters:
            continue
        key = (rec["chapter"], rec["mode"])
        if key not in newest or rec["date"] > newest[key]["date"]:
            newest[key] = rec
    return [{"chapter": c, "mode": m, "seconds": float(r["seconds"]), "device": device, "date": r["date"][:10],
             "source": f"scripts/build_book.py (make book, papermill), {r['threads']} thread(s) per chapter, "
                       "chapters in parallel"}
            for (c, m), r in sorted(newest.items())]


def table() -> str:
    """The markdown table of run times: one row per chapter, CPU and GPU columns."""
    import pandas as pd

    from xaihelpers.results import duration

    df = pd.read_csv(CSV)
    gpu = ~df["device"].str.startswith("CPU")
    lines = ["| Chapter | SMOKE, CPU | default, CPU | FULL, CPU | default, GPU | FULL, GPU |", "|---|---|---|---|---|---|"]
    for stem in sorted(p.stem for p in (ROOT / "notebooks").glob("*.ipynb")):
        cells = []
        has_full = "FULL = False" in (ROOT / "notebooks" / f"{stem}.ipynb").read_text()
        for mode, on_gpu in (("smoke", False), ("default", False), ("full", False), ("default", True), ("full", True)):
            if mode == "full" and not has_full:
                cells.append("no FULL switch")
                continue
            rows = df[(df["chapter"] == stem) & (df["mode"] == mode) & (gpu == on_gpu)]
            cells.append(f"{duration(rows['seconds'].iloc[-1])} ({rows['device'].iloc[-1]})" if on_gpu and len(rows)
                         else duration(rows["seconds"].iloc[-1]) if len(rows) else "not measured yet")
        lines.append(f"| {stem} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def render() -> None:
    """Rewrite the run-time tables of README.md and book/for_teachers.md from the CSV."""
    start, end = "<!-- run-times:start -->", "<!-- run-times:end -->"
    for path in (ROOT / "README.md", ROOT / "book" / "for_teachers.md"):
        text = path.read_text()
        if start not in text or end not in text:
            raise SystemExit(f"{path} has no {start} ... {end} block")
        head, rest = text.split(start, 1)
        path.write_text(head + start + "\n" + table() + "\n" + end + rest.split(end, 1)[1])


if __name__ == "__main__":
    sys.exit(main())
