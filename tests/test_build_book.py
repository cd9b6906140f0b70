"""scripts/build_book.py: the cache key follows what a chapter computes from, and a cached chapter is reused."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest

from conftest import ROOT, script


def _load():
    return script("build_book")


bb = _load()


def _notebook(cells: list[dict]) -> dict:
    return {"nbformat": 4, "nbformat_minor": 5, "cells": cells,
            "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
                         "language_info": {"name": "python"}}}


def _code(source: str, tags: list[str] | None = None, **extra) -> dict:
    cell = {"cell_type": "code", "id": "c1", "source": source, "metadata": {"tags": tags} if tags else {},
            "outputs": [], "execution_count": None}
    cell.update(extra)
    return cell


@pytest.fixture
def tree(tmp_path) -> Path:
    """A miniature repository: one chapter, a helper package with a module, a manifest and a CSV, pyproject."""
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "xaihelpers" / "checkpoints").mkdir(parents=True)
    (tmp_path / "xaihelpers" / "__init__.py").write_text("X = 1\n")
    (tmp_path / "xaihelpers" / "checkpoints" / "manifest.json").write_text('{"a": 1}\n')
    (tmp_path / "xaihelpers" / "run_times.csv").write_text("chapter,mode,seconds\n")
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n')
    cells = [{"cell_type": "markdown", "id": "m1", "metadata": {}, "source": ["# Title\n", "Text."]},
             _code("SMOKE = False\nN = 8", tags=["parameters"]),
             _code("print(N)")]
    (tmp_path / "notebooks" / "ch.ipynb").write_text(json.dumps(_notebook(cells)))
    return tmp_path


def _key(root: Path, parameters: dict | None = None) -> str:
    return bb.chapter_key(root / "notebooks" / "ch.ipynb", parameters or {}, bb.helpers_digest(root))


def _edit(root: Path, change) -> None:
    path = root / "notebooks" / "ch.ipynb"
    nb = json.loads(path.read_text())
    change(nb)
    path.write_text(json.dumps(nb, indent=2))


def test_key_is_stable(tree):
    assert _key(tree) == _key(tree)
    assert len(_key(tree)) == 64


@pytest.mark.parametrize("change", [
    lambda nb: nb["cells"][2].update(source="print(N + 1)"),                    # a code cell
    lambda nb: nb["cells"][0].update(source="# Another title\n"),               # a markdown cell
    lambda nb: nb["cells"][1].update(source="SMOKE = False\nN = 16"),           # the parameters
    lambda nb: nb["cells"][2]["metadata"].update(tags=["hide-input"]),          # a tag the site reads
    lambda nb: nb["cells"].append(_code("1 + 1")),                              # a new cell
    lambda nb: nb["metadata"]["kernelspec"].update(name="other"),               # the kernel
], ids=["code", "markdown", "parameters", "tag", "new-cell", "kernel"])
def test_key_changes_with_the_chapter(tree, change):
    before = _key(tree)
    _edit(tree, change)
    assert _key(tree) != before


@pytest.mark.parametrize("change", [
    lambda nb: nb["cells"][2].update(execution_count=7, outputs=[
        {"output_type": "stream", "name": "stdout", "text": "8\n"}]),            # outputs
    lambda nb: nb["cells"][2]["metadata"].update(
        execution={"iopub.execute_input": "2026-01-01T00:00:00Z"}, ExecuteTime={"end_time": "now"}),  # timestamps
    lambda nb: nb["cells"][2]["metadata"].update(papermill={"duration": 1.5}, scrolled=True),
    lambda nb: nb["metadata"].update(language_info={"name": "python", "version": "3.12.1"},
                                     papermill={"start_time": "now"}),          # what a run writes
    lambda nb: nb["cells"][1].update(source=["SMOKE = False\n", "N = 8"]),      # the same text as lines
], ids=["outputs", "timestamps", "papermill-cell", "run-metadata", "source-as-lines"])
def test_key_ignores_outputs_and_timestamps(tree, change):
    before = _key(tree)
    _edit(tree, change)
    assert _key(tree) == before


@pytest.mark.parametrize("path", ["xaihelpers/__init__.py", "xaihelpers/checkpoints/manifest.json",
                                  "xaihelpers/run_times.csv", "pyproject.toml"])
def test_key_changes_with_the_helper_package_and_pyproject(tree, path):
    before = _key(tree)
    with (tree / path).open("a") as fh:
        fh.write("\n# changed\n")
    assert _key(tree) != before


def test_key_changes_with_a_new_module_but_not_with_bytecode(tree):
    before = _key(tree)
    (tree / "xaihelpers" / "__pycache__").mkdir()
    (tree / "xaihelpers" / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"\0\1")
    assert _key(tree) == before
    (tree / "xaihelpers" / "new.py").write_text("")
    assert _key(tree) != before


def test_key_changes_with_the_parameters(tree):
    assert _key(tree, {"SMOKE": True}) != _key(tree)


def test_key_ignores_file_times(tree):
    before = _key(tree)
    later = time.time() + 3600
    for path in [tree / "notebooks" / "ch.ipynb", *tree.joinpath("xaihelpers").rglob("*"), tree / "pyproject.toml"]:
        os.utime(path, (later, later))
    assert _key(tree) == before


def test_toc_lists_the_chapters_in_order():
    """Chapter by chapter, a method's lesson before its lab."""
    stems = [p.stem for p in bb.toc_chapters(ROOT)]
    key = lambda s: (s[:2], not s.endswith("_lesson"))  # noqa: E731
    assert stems == sorted((p.stem for p in (ROOT / "notebooks").glob("*.ipynb")), key=key)


def test_staging_keeps_unchanged_files_untouched(tmp_path):
    src = tmp_path / "src"
    shutil.copytree(ROOT / "book", src / "book")
    for name in ("_toc.yml", "_config.yml"):
        shutil.copy(ROOT / name, src / name)
    nb = tmp_path / "executed.ipynb"
    nb.write_text("{}")
    staging = tmp_path / "staging"
    assert bb.stage(src, staging, {Path("notebooks/ch.ipynb"): nb}) > 0
    staged = staging / "_config.yml"
    assert "execute_notebooks: 'off'" in staged.read_text() or "execute_notebooks: off" in staged.read_text()
    mtime = (staging / "book" / "intro.md").stat().st_mtime_ns
    assert bb.stage(src, staging, {Path("notebooks/ch.ipynb"): nb}) == 0
    assert (staging / "book" / "intro.md").stat().st_mtime_ns == mtime
    nb.write_text('{"changed": 1}')
    assert bb.stage(src, staging, {Path("notebooks/ch.ipynb"): nb}) == 1
    (src / "book" / "setup.md").unlink()
    bb.stage(src, staging, {Path("notebooks/ch.ipynb"): nb})
    assert not (staging / "book" / "setup.md").exists()


@pytest.mark.notebook
def test_smoke_build_of_one_chapter_reuses_its_cache(tmp_path, capsys):
    args = ["--smoke", "--only", "00", "--no-site", "--cache", str(tmp_path / "cache")]
    assert bb.main(args) == 0
    first = capsys.readouterr().out
    assert "00_getting_started: executed in" in first
    executed = list((tmp_path / "cache" / "executed" / "00_getting_started").glob("smoke-*.ipynb"))
    assert len(executed) == 1
    cells = json.loads(executed[0].read_text())["cells"]
    assert not [o for c in cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert any(o.get("output_type") == "display_data" for c in cells for o in c.get("outputs", []))

    start = time.perf_counter()
    assert bb.main(args) == 0
    assert time.perf_counter() - start < 10
    second = capsys.readouterr().out
    assert "00_getting_started: cached" in second and "executing" not in second


def test_a_failing_chapter_fails_the_build_and_shows_its_error_cell(tree, capsys):
    (tree / "_toc.yml").write_text("format: jb-book\nroot: intro\nchapters:\n  - file: notebooks/ch\n")
    (tree / "_config.yml").write_text("execute:\n  timeout: 120\n")
    _edit(tree, lambda nb: nb["cells"].append(_code("raise ValueError('the error this chapter raises')")))
    assert bb.main(["--cache", str(tree / "_cache")], root=tree) == 1
    out = capsys.readouterr().out
    assert "ch: FAILED" in out and "book not built" in out
    assert "raise ValueError" in out and "ValueError: the error this chapter raises" in out
    assert not list((tree / "_cache" / "executed" / "ch").glob("*.ipynb"))
    assert (tree / "_cache" / "failed" / "ch.ipynb").is_file()


def test_run_times_are_read_from_the_build_records(tmp_path):
    # scripts/run_times.py --from-cache turns the records that execute() writes into CSV rows:
    # the newest record per chapter and mode, the others left as they were
    rt = script("run_times")
    cache = tmp_path / "executed"
    for stem, mode, seconds, date in [("02_x", "default", 700.0, "2026-12-01T10:00:00"),
                                      ("02_x", "default", 650.5, "2026-12-01T12:00:00"),
                                      ("02_x", "smoke", 60.0, "2026-12-01T09:00:00"),
                                      ("03_y", "default", 900.0, "2026-11-30T08:00:00")]:
        (cache / stem).mkdir(parents=True, exist_ok=True)
        (cache / stem / f"{mode}-{date[11:13]}.json").write_text(json.dumps(
            {"chapter": stem, "mode": mode, "seconds": seconds, "threads": 1, "date": date}))
    rows = rt.cached_times(cache, None, "CPU, 2 cores")
    got = {(r["chapter"], r["mode"]): r["seconds"] for r in rows}
    assert got == {("02_x", "default"): 650.5, ("02_x", "smoke"): 60.0, ("03_y", "default"): 900.0}
    assert [r["chapter"] for r in rt.cached_times(cache, ["03_y"], "CPU, 2 cores")] == ["03_y"]
    csv = tmp_path / "times.csv"
    csv.write_text("chapter,mode,seconds,device,date,source\n03_y,default,1.0,\"CPU, 2 cores\",2026-01-01,old\n"
                   "03_y,smoke,5.0,\"CPU, 2 cores\",2026-01-01,old\n")
    for r in rows:
        rt.record(r, csv)
    import pandas as pd

    df = pd.read_csv(csv).set_index(["chapter", "mode"])
    assert df.loc[("03_y", "default"), "seconds"] == 900.0 and df.loc[("03_y", "smoke"), "source"] == "old"
    assert len(df) == 4
