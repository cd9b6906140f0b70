"""Execute the chapters (in parallel, cached) and build the site into ``_build/html``.

``make book`` runs this script. Every chapter listed in ``_toc.yml`` is executed with
papermill, with its default parameters (``--smoke``: ``SMOKE=True``), several chapters at
a time with one thread each, the longest first (times from ``xaihelpers/run_times.csv``).
Each executed notebook is kept in ``_cache/executed/<chapter>/``, under a key that hashes

- the chapter's source: every cell's type, text and tags/metadata (not its outputs,
  execution counts or timestamps), and the notebook's kernel;
- every file of ``xaihelpers/`` (modules, checkpoints and their manifest, run_times.csv)
  and ``pyproject.toml``: every chapter imports the package;
- the papermill parameters (default run or ``SMOKE=True``).

An unchanged chapter is reused; a change in ``xaihelpers/`` re-executes every chapter.
The site is then built by jupyter-book, with execution off, from a staging copy
(``_build/staging``: book/, _config.yml, _toc.yml and the executed notebooks) into
``_build/html`` (``-W -n --keep-going``). Staged files that did not change keep their
times, so Sphinx rereads only the pages that changed.

The student edition of every chapter (``scripts/student_notebooks.py``: no solutions,
check cells kept) is published with the site as ``_build/html/student/<chapter>.ipynb``,
and each staged chapter gets two badges under its Colab badge: the student edition on
Colab (``<chapter>_student.ipynb`` of the Colab edition) and the download.

Examples, from the repository root::

    python scripts/build_book.py                  # the whole book, default parameters
    python scripts/build_book.py --smoke          # quick build: every chapter with SMOKE=True
    python scripts/build_book.py --only 02 --force --no-site
    python scripts/build_book.py --jobs 1 --threads 2

``make clean`` removes ``_build`` and keeps the cache; ``make clean-cache`` removes ``_cache``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import filecmp
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]

CACHE_FORMAT = 1
"""Bump when the way chapters are executed changes: every cached chapter runs again."""

KEEP = 2
"""Executed notebooks kept per chapter and mode (the current one and the one before)."""

# Notebook and cell metadata that editors and kernels write and that changes nothing in
# what a chapter computes or how the site shows it.
_VOLATILE_NB_META = {"language_info", "widgets", "papermill", "vscode", "toc", "varInspector", "execution"}
_VOLATILE_CELL_META = {"execution", "ExecuteTime", "papermill", "collapsed", "scrolled", "jupyter", "trusted"}
_THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS",
                "VECLIB_MAXIMUM_THREADS")
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_print_lock = threading.Lock()


def say(*parts: object) -> None:
    with _print_lock:
        print(*parts, flush=True)


def duration(seconds: float) -> str:
    """``"8 s"``, ``"3 min 05 s"``, ``"1 h 02 min"``."""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


# ----------------------------------------------------------------------------------
# The cache key
# ----------------------------------------------------------------------------------


def notebook_source(path: Path) -> dict:
    """What of a notebook the key covers: cells' type, text and metadata, not outputs or timestamps."""
    nb = json.loads(Path(path).read_text(encoding="utf-8"))
    cells = []
    for cell in nb.get("cells", []):
        src = cell.get("source", "")
        meta = {k: v for k, v in cell.get("metadata", {}).items() if k not in _VOLATILE_CELL_META}
        entry = {"type": cell.get("cell_type"), "source": "".join(src) if isinstance(src, list) else src,
                 "metadata": meta}
        if cell.get("attachments"):
            entry["attachments"] = cell["attachments"]
        cells.append(entry)
    meta = {k: v for k, v in nb.get("metadata", {}).items() if k not in _VOLATILE_NB_META}
    return {"metadata": meta, "cells": cells}


def _helper_files(root: Path) -> list[Path]:
    """Every file of xaihelpers/ (bytecode, editor and hidden files aside)."""
    out = []
    for path in sorted((root / "xaihelpers").rglob("*")):
        rel = path.relative_to(root)
        if not path.is_file() or any(part.startswith(".") or part == "__pycache__" for part in rel.parts):
            continue
        if path.suffix in (".pyc", ".pyo") or path.name.endswith("~"):
            continue
        out.append(path)
    return out


def helpers_digest(root: Path = ROOT) -> str:
    """Hash of every file of ``xaihelpers/`` (path and content) and of ``pyproject.toml``."""
    h = hashlib.sha256()
    for path in _helper_files(root) + [root / "pyproject.toml"]:
        h.update(path.relative_to(root).as_posix().encode() + b"\0")
        h.update(hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()


def chapter_key(notebook: Path, parameters: dict, helpers: str) -> str:
    """The cache key of one executed chapter (a sha256 hex digest).

    Parameters
    ----------
    notebook : Path
        The chapter's source notebook.
    parameters : dict
        The papermill parameters it runs with (``{}`` for the defaults).
    helpers : str
        :func:`helpers_digest` of the repository.
    """
    payload = {"format": CACHE_FORMAT, "notebook": notebook_source(notebook),
               "parameters": parameters, "helpers": helpers}
    blob = json.dumps(payload, sort_keys=True, ensure_ascii=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


# ----------------------------------------------------------------------------------
# Chapters and their cache entries
# ----------------------------------------------------------------------------------


@dataclass
class Chapter:
    stem: str
    source: Path
    key: str
    mode: str
    cache_dir: Path
    expected_s: float | None = None
    status: str = "pending"
    seconds: float = 0.0
    error: str = ""
    log: list[str] = field(default_factory=list)

    @property
    def cached(self) -> Path:
        return self.cache_dir / f"{self.mode}-{self.key[:20]}.ipynb"

    @property
    def record(self) -> Path:
        return self.cached.with_suffix(".json")


def toc_chapters(root: Path = ROOT) -> list[Path]:
    """The notebooks that ``_toc.yml`` lists, in its order."""
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    files: list[str] = []

    def walk(node):
        if isinstance(node, dict):
            if isinstance(node.get("file"), str):
                files.append(node["file"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(toc)
    paths = [root / f"{f}.ipynb" if not f.endswith(".ipynb") else root / f for f in files]
    return [p for p in paths if p.suffix == ".ipynb" and p.is_file()]


def expected_seconds(root: Path, mode: str) -> dict[str, float]:
    """The latest recorded CPU time per chapter in this mode (run_times.csv), for the order of execution."""
    import csv

    path = root / "xaihelpers" / "run_times.csv"
    out: dict[str, float] = {}
    if not path.exists():
        return out
    with path.open() as fh:
        for row in csv.DictReader(fh):
            if row.get("mode") == mode and str(row.get("device", "")).startswith("CPU"):
                try:
                    out[row["chapter"]] = float(row["seconds"])
                except (KeyError, ValueError):
                    pass
    return out


def prune(chapter: Chapter) -> None:
    """Keep the newest :data:`KEEP` executed notebooks of this chapter and mode."""
    entries = sorted(chapter.cache_dir.glob(f"{chapter.mode}-*.ipynb"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in entries[KEEP:]:
        old.unlink(missing_ok=True)
        old.with_suffix(".json").unlink(missing_ok=True)


# ----------------------------------------------------------------------------------
# Execution
# ----------------------------------------------------------------------------------


MALLOC = {"MALLOC_MMAP_THRESHOLD_": "1073741824", "MALLOC_TRIM_THRESHOLD_": "1073741824", "MALLOC_TOP_PAD_": "268435456"}
"""glibc settings for the kernels: without them every large freed tensor goes back to the system
and is page-faulted in again, up to 40 % of a CPU run here (see the Makefile)."""


def kernel_env(threads: int) -> dict[str, str]:
    """The environment of a chapter's kernel: ``threads`` threads for every math library."""
    env = dict(os.environ)
    for var in _THREAD_VARS:
        env[var] = str(threads)
    env.pop("MPLBACKEND", None)  # a non-inline backend would drop the figures
    env.pop("XAI_SMOKE", None)   # the parameters decide
    env["PYTHONUNBUFFERED"] = "1"
    for var, value in MALLOC.items():  # as the Makefile: freed tensors stay in the process
        env.setdefault(var, value)
    return env


def error_report(notebook: Path) -> str:
    """The first cell with an error output: its source and traceback."""
    try:
        nb = json.loads(notebook.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return ""
    for cell in nb.get("cells", []):
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                src = "".join(cell.get("source", ""))
                lines = src.splitlines()
                shown = "\n".join("    " + line for line in lines[:25])
                if len(lines) > 25:
                    shown += "\n    ..."
                tb = _ANSI.sub("", "\n".join(out.get("traceback", [])))
                tb_lines = tb.splitlines()
                if len(tb_lines) > 60:
                    tb = "\n".join(tb_lines[:10] + ["    ..."] + tb_lines[-45:])
                last = f"{out.get('ename')}: {out.get('evalue')}"
                if tb.rstrip().splitlines()[-1:] != [last]:
                    tb += "\n" + last
                return f"cell In [{cell.get('execution_count')}]:\n{shown}\n{tb}"
    return ""


def execute(chapter: Chapter, parameters: dict, threads: int, timeout: int | None, cwd: Path, index: str) -> None:
    """Run one chapter with papermill in a fresh process and store it in the cache."""
    chapter.cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = chapter.cache_dir / f".running-{chapter.mode}-{os.getpid()}-{chapter.key[:12]}.ipynb"
    cmd = [sys.executable, "-m", "papermill", str(chapter.source), str(tmp), "--cwd", str(cwd),
           "--kernel", "python3", "--no-progress-bar", "--log-level", "WARNING"]
    if parameters:
        cmd += ["--parameters_yaml", yaml.safe_dump(parameters, default_flow_style=True).strip()]
    if timeout:
        cmd += ["--execution-timeout", str(timeout)]
    expect = f" (last recorded: {duration(chapter.expected_s)})" if chapter.expected_s else ""
    say(f"{index} {chapter.stem}: executing{expect}")
    start = time.perf_counter()
    try:
        proc = subprocess.run(cmd, env=kernel_env(threads), capture_output=True, text=True)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    chapter.seconds = time.perf_counter() - start
    if proc.returncode != 0:
        chapter.status = "failed"
        failed = chapter.cache_dir.parent.parent / "failed" / f"{chapter.stem}.ipynb"
        if tmp.exists():
            failed.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(tmp), failed)
        report = error_report(failed) if failed.exists() else ""
        tail = "\n".join(_ANSI.sub("", proc.stderr).splitlines()[-30:])
        chapter.error = report or tail
        kept = f" (executed notebook kept in {_rel(failed)})" if failed.exists() else ""
        last = chapter.error.strip().splitlines()[-1] if chapter.error.strip() else f"exit status {proc.returncode}"
        say(f"{index} {chapter.stem}: FAILED after {duration(chapter.seconds)}{kept}: {last}")
        return
    tmp.replace(chapter.cached)
    chapter.record.write_text(json.dumps({
        "chapter": chapter.stem, "key": chapter.key, "mode": chapter.mode, "parameters": parameters,
        "seconds": round(chapter.seconds, 1), "threads": threads,
        "date": dt.datetime.now().isoformat(timespec="seconds"), "python": sys.version.split()[0],
    }, indent=1) + "\n")
    prune(chapter)
    chapter.status = "executed"
    say(f"{index} {chapter.stem}: executed in {duration(chapter.seconds)}")


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in text.splitlines())


def _rel(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def auto_jobs(threads: int) -> int:
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    return max(1, cores // max(1, threads))


# ----------------------------------------------------------------------------------
# The site
# ----------------------------------------------------------------------------------


def _sync_file(src: Path, dst: Path) -> bool:
    """Copy ``src`` to ``dst`` unless they are equal already.

    An unchanged file keeps its time; a changed one gets the current time (not the
    source's, which may predate Sphinx's last read of the page).
    """
    if dst.is_file() and filecmp.cmp(src, dst, shallow=False):
        return False
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)
    return True


def _sync_text(text: str, dst: Path) -> bool:
    if dst.is_file() and dst.read_text(encoding="utf-8") == text:
        return False
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_text(text, encoding="utf-8")
    return True


STUDENT_DIR = "student"
"""Folder of the site (``_build/html/student/``) that holds the student editions."""

_COLAB_BADGE_LINE = re.compile(r"^.*colab-badge\.svg.*$", re.M)
_COLAB_URL = re.compile(r"https://colab\.research\.google\.com/github/[^)\s]+?/notebooks/")


def student_badges(nb_text: str, name: str) -> str:
    """A staged chapter with the student edition's badges under its Colab badge.

    ``name`` is the chapter's file name. The Colab badge of the student edition opens
    ``<chapter>_student.ipynb`` next to the chapter's own Colab edition; the download
    badge links ``../student/<name>`` on the site. Text that is not a notebook, or a
    notebook without a markdown cell, comes back unchanged.
    """
    try:
        nb = json.loads(nb_text)
        first = next(c for c in nb["cells"] if c.get("cell_type") == "markdown")
    except (ValueError, KeyError, TypeError, StopIteration, AttributeError):
        return nb_text
    src = "".join(first["source"]) if isinstance(first["source"], list) else first["source"]
    stem = Path(name).stem
    badges = []
    colab = _COLAB_URL.search(src)
    if colab:
        badges.append(f"[![Student edition on Colab](https://img.shields.io/badge/student_edition-open_in_Colab-F9AB00"
                      f"?logo=googlecolab)]({colab.group(0)}{stem}_student.ipynb)")
    badges.append(f'<a href="../{STUDENT_DIR}/{name}" download="{stem}_student.ipynb">'
                  f'<img alt="Student edition: download the notebook" '
                  f'src="https://img.shields.io/badge/student_edition-download-blue"></a>')
    line = _COLAB_BADGE_LINE.search(src)
    if line:
        src = src[:line.end()] + "\n" + "\n".join(badges) + src[line.end():]
    else:
        head, _, rest = src.partition("\n")
        src = f"{head}\n\n" + "\n".join(badges) + "\n" + rest
    first["source"] = src.splitlines(keepends=True)
    return json.dumps(nb, indent=1, ensure_ascii=False) + "\n"


def publish_student(html: Path, chapters: list[Path]) -> list[Path]:
    """Write the student edition of each chapter into ``html/student/``; return the paths."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("student_notebooks", Path(__file__).with_name("student_notebooks.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    folder = html / STUDENT_DIR
    for old in folder.glob("*.ipynb"):
        if old.name not in {p.name for p in chapters}:
            old.unlink()
    return module.write_student(folder, chapters)


def stage(root: Path, staging: Path, notebooks: dict[str, Path]) -> int:
    """Lay out the site's sources in ``staging``; return how many files changed."""
    wanted: dict[Path, Path | str] = {}
    for src in sorted((root / "book").rglob("*")):
        if src.is_file() and "__pycache__" not in src.parts and not src.name.startswith("."):
            wanted[staging / src.relative_to(root)] = src
    wanted[staging / "_toc.yml"] = root / "_toc.yml"
    config = yaml.safe_load((root / "_config.yml").read_text())
    config.setdefault("execute", {})["execute_notebooks"] = "off"
    wanted[staging / "_config.yml"] = ("# Staged by scripts/build_book.py from ../../_config.yml: chapters come "
                                       "executed, so execution is off.\n" + yaml.safe_dump(config, sort_keys=False))
    for rel, src in notebooks.items():  # the executed chapters, with the student edition's badges
        text = Path(src).read_text(encoding="utf-8")
        badged = student_badges(text, Path(rel).name)
        wanted[staging / rel] = src if badged == text else badged
    changed = 0
    for dst, src in wanted.items():
        changed += _sync_text(src, dst) if isinstance(src, str) else _sync_file(src, dst)
    if staging.exists():  # files that are no longer part of the book
        for path in sorted(staging.rglob("*"), reverse=True):
            if path.is_file() and path not in wanted and "_build" not in path.relative_to(staging).parts:
                path.unlink()
                changed += 1
            elif path.is_dir() and not any(path.iterdir()):
                path.rmdir()
    return changed


def build_site(staging: Path, out_root: Path) -> int:
    """jupyter-book on the staged sources into ``out_root/_build/html``; its exit status."""
    jb = Path(sys.executable).with_name("jupyter-book")
    cmd = [str(jb) if jb.exists() else (shutil.which("jupyter-book") or "jupyter-book"),
           "build", str(staging), "--path-output", str(out_root), "-W", "-n", "--keep-going"]
    start = time.perf_counter()
    proc = subprocess.run(cmd)
    say(f"site: jupyter-book took {duration(time.perf_counter() - start)}")
    if proc.returncode != 0:
        # Sphinx keeps the pages it read; without them the next build would skip their warnings.
        shutil.rmtree(out_root / "_build" / ".doctrees", ignore_errors=True)
    return proc.returncode


# ----------------------------------------------------------------------------------
# Main
# ----------------------------------------------------------------------------------


def _select(chapters: list[Path], only: list[str] | None, parser: argparse.ArgumentParser) -> set[str]:
    stems = [p.stem for p in chapters]
    if not only:
        return set(stems)
    chosen = set()
    for item in (part for arg in only for part in arg.split(",") if part):
        name = Path(item).stem
        hits = [s for s in stems if s == name or s.startswith(name)]
        if len(hits) != 1:
            parser.error(f"--only {item}: expected one of {', '.join(stems)} (or a unique prefix), "
                         f"got {len(hits)} matches")
        chosen.add(hits[0])
    return chosen


def main(argv: list[str] | None = None, root: Path = ROOT) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jobs", default="auto",
                    help="chapters executed at a time ('auto': the usable cores divided by --threads)")
    ap.add_argument("--threads", type=int, default=1, help="threads per chapter (OMP/MKL/OpenBLAS; default 1)")
    ap.add_argument("--force", action="store_true", help="execute the chosen chapters even when cached")
    ap.add_argument("--only", action="append", metavar="CHAPTER",
                    help="execute only this chapter (stem or unique prefix, e.g. 02; repeatable); the site is "
                         "built only when every other chapter is cached")
    ap.add_argument("--smoke", action="store_true", help="quick build: every chapter with SMOKE=True")
    ap.add_argument("--no-site", action="store_true", help="execute the chapters, do not build the site")
    ap.add_argument("--cache", type=Path, default=root / "_cache", help="cache folder (default: _cache)")
    ap.add_argument("--output", type=Path, default=root,
                    help="folder that receives _build/ (staging and html; default: the repository root)")
    args = ap.parse_args(argv)
    if args.threads < 1:
        ap.error(f"--threads: expected a positive integer, got {args.threads}")
    if args.jobs == "auto":
        jobs = auto_jobs(args.threads)
    elif args.jobs.isdigit() and int(args.jobs) > 0:
        jobs = int(args.jobs)
    else:
        ap.error(f"--jobs: expected a positive integer or 'auto', got {args.jobs!r}")

    t0 = time.perf_counter()
    paths = toc_chapters(root)
    chosen = _select(paths, args.only, ap)
    mode = "smoke" if args.smoke else "default"
    parameters = {"SMOKE": True} if args.smoke else {}
    helpers = helpers_digest(root)
    times = expected_seconds(root, mode)
    config = yaml.safe_load((root / "_config.yml").read_text())
    timeout = (config.get("execute") or {}).get("timeout")
    chapters = [Chapter(stem=p.stem, source=p, key=chapter_key(p, parameters, helpers), mode=mode,
                        cache_dir=args.cache / "executed" / p.stem, expected_s=times.get(p.stem)) for p in paths]

    todo = []
    for ch in chapters:
        if ch.cached.is_file() and not (args.force and ch.stem in chosen):
            ch.status = "cached"
            try:
                ch.seconds = json.loads(ch.record.read_text())["seconds"]
            except (OSError, ValueError, KeyError):
                pass
            ch.cached.touch()  # most recently used: pruning keeps it
            say(f"{ch.stem}: cached ({mode}, key {ch.key[:12]}, executed in {duration(ch.seconds)})")
        elif ch.stem in chosen:
            todo.append(ch)
        else:
            ch.status = "missing"
    # longest first (unknown times first too): the last chapter to start is a short one
    todo.sort(key=lambda c: -(c.expected_s if c.expected_s is not None else float("inf")))
    if todo:
        say(f"executing {len(todo)} chapter(s) ({mode}), {min(jobs, len(todo))} at a time, "
            f"{args.threads} thread(s) each")
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            futures = [pool.submit(execute, ch, parameters, args.threads, timeout, root / "notebooks",
                                   f"[{i + 1}/{len(todo)}]") for i, ch in enumerate(todo)]
            for f in futures:
                f.result()
    t_exec = time.perf_counter() - t0

    failed = [c for c in chapters if c.status == "failed"]
    if todo:
        say("\nchapter                              status     time    share of the execution")
        total = sum(c.seconds for c in todo) or 1.0
        for c in chapters:
            if c.status in ("executed", "failed"):
                say(f"  {c.stem:34s} {c.status:9s} {duration(c.seconds):>9s}  {100 * c.seconds / total:4.0f} %")
        say(f"execution: {duration(t_exec)} wall for {duration(sum(c.seconds for c in todo))} of chapter time")
    if failed:
        for c in failed:
            say(f"\n{c.stem} failed:\n{_indent(c.error)}")
        say(f"\nbook not built: {len(failed)} chapter(s) failed ({', '.join(c.stem for c in failed)})")
        return 1
    if args.no_site:
        return 0
    missing = [c.stem for c in chapters if c.status == "missing"]
    if missing:
        say(f"site not built: no executed {mode} notebook for {', '.join(missing)} (run without --only)")
        return 0
    staging = args.output / "_build" / "staging"
    changed = stage(root, staging, {c.source.relative_to(root): c.cached for c in chapters})
    say(f"site: {changed} staged file(s) changed in {_rel(staging)}")
    status = build_site(staging, args.output)
    html = args.output / "_build" / "html" / "index.html"
    if status == 0:
        student = publish_student(html.parent, [c.source for c in chapters])
        say(f"site: {len(student)} student edition(s) in {_rel(html.parent / STUDENT_DIR)}")
    say(f"{'book built' if status == 0 else 'site build FAILED'} in {duration(time.perf_counter() - t0)}"
        + (f": open {_rel(html)}" if status == 0 else ""))
    return status


if __name__ == "__main__":
    sys.exit(main())
