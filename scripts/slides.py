"""Lecture slides of every chapter, made from the chapter's own cells (reveal.js, via nbconvert).

Run: ``python scripts/slides.py [--out _build/slides] [--only 02] [--source]`` (or
``make slides``). Each chapter becomes ``_build/slides/<chapter>.slides.html``; open it in a
browser, press ``F`` for full screen, ``S`` for the speaker view, the arrows to move (right:
next slide, down: next subslide). The reveal.js script and the math renderer are loaded from
their CDNs when the page opens; building needs no network.

Which notebook: the chapter executed by ``make book`` when ``_cache/executed/`` holds it for
the chapter as it is now (same cache key as ``scripts/build_book.py``: the default run,
else the ``SMOKE`` run), so that the slides show its figures, tables and cited numbers;
otherwise the chapter's source, whose slides show the code without outputs and cited
numbers by name. ``--source`` always takes the source; ``--executed DIR`` takes the
chapters executed in ``DIR`` (same file names, e.g. your own papermill runs).

How cells become slides, from the chapter's structure:

* every ``#`` or ``##`` heading starts a slide and every ``###`` heading a subslide (a
  markdown cell with several headings is split at them; text under a heading stays on
  its slide);
* a code cell that draws a figure or shows a table (in the executed chapter: an image or
  HTML output; in the source: a cell that calls matplotlib or ``xh.viz``) gets a subslide
  of its own: in the executed chapter its output alone, in the source its code; other
  code cells appear as fragments, one press each, under the text they follow;
* skipped: the Colab install cell, the ``parameters`` cell, the check cells
  (``xh.exercises.check``), code cells under the Exercises heading, and every solution
  (the slides are made from the student edition, ``scripts/student_notebooks.py``);
* the exercises form the last slide: from the ``Exercises`` heading on, nothing starts a
  new slide, and an exercise stated earlier in the chapter moves there;
* MyST markup becomes plain markdown as in the Colab edition (``scripts/colab_edition.py``):
  citations in author-year form, cited numbers as the executed chapter glued them.

A cell tag overrides the structure: ``slide``, ``subslide``, ``fragment`` or
``skip-slide`` (leave the cell out of the slides); ``notes`` puts the cell into the
speaker notes.
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "_build" / "slides"
CACHE = ROOT / "_cache"

TAGS = {"slide": "slide", "subslide": "subslide", "fragment": "fragment", "skip-slide": "skip", "notes": "notes"}
"""Cell tags and the reveal.js slide type each one sets."""

HEADING = re.compile(r"^(?P<hashes>#{1,6})[ \t]+(?P<title>.+?)[ \t#]*$")
FENCE = re.compile(r"^[ \t]*(?P<fence>`{3,}|~{3,}|:{3,})(?P<info>.*)$")
EXERCISES = re.compile(r"^(exercises?|problems|homework)\b", re.I)
EXERCISE_DIRECTIVE = re.compile(r"^(`{3,}|:{3,})[ \t]*\{exercise(-start)?\}", re.M)
DRAWS = re.compile(r"\bplt\.|\bfig\b|\baxes?\b|\.plot\(|\bimshow\(|\bxh\.viz\.|\bplot_\w+\(|\bdisplay\(")
CHECK = re.compile(r"\bexercises\.check\(")
RECORD = "application/papermill.record/"
WIDGET = "application/vnd.jupyter.widget-view+json"


def _script(name: str):
    """A sibling script (``scripts/<name>.py``) as a module."""
    spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name(f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def source(cell: dict) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


# ----------------------------------------------------------------------------- structure


def split_at_headings(text: str) -> list[str]:
    """Markdown cut before each heading that is not inside a code fence or directive."""
    pieces, current, fences = [], [], []
    for line in text.splitlines(keepends=True):
        fence = FENCE.match(line)
        if fence:
            mark = fence.group("fence")
            top = fences[-1] if fences else None
            if top and mark[0] == top[0] and len(mark) >= len(top) and not fence.group("info").strip():
                fences.pop()
            elif not (top and top[0] == "`" and mark[0] != "`"):  # nothing opens inside a code block
                fences.append(mark)
        elif not fences and HEADING.match(line.rstrip("\n")) and "".join(current).strip():
            pieces.append("".join(current))
            current = []
        current.append(line)
    if "".join(current).strip():
        pieces.append("".join(current))
    return pieces


def heading(text: str) -> tuple[int, str] | None:
    """The level and title of the heading that opens ``text`` (MyST targets before it aside)."""
    for line in text.lstrip("\n").splitlines():
        if re.match(r"^\([\w:.-]+\)=[ \t]*$", line) or not line.strip():
            continue
        m = HEADING.match(line)
        return (len(m.group("hashes")), m.group("title").strip()) if m else None
    return None


def _is_install(cell: dict) -> bool:
    return cell["cell_type"] == "code" and "google.colab" in source(cell) and "pip install" in source(cell)


def _shows_result(cell: dict, executed: bool) -> bool:
    """Whether a code cell draws a figure or shows a table."""
    if executed:
        return any(k.startswith("image/") or k == "text/html" for o in cell.get("outputs", [])
                   for k in o.get("data", {}))
    return bool(DRAWS.search(source(cell)))


def _slide_outputs(outputs: list[dict]) -> list[dict]:
    """The outputs a slide shows.

    Left out: glued records (the text cites them), stderr (warnings, progress bars) and
    widgets (progress bars and sliders, which need a live kernel).
    """
    kept = []
    for out in outputs:
        if out.get("output_type") == "stream" and out.get("name") == "stderr":
            continue
        if WIDGET in out.get("data", {}):
            continue
        data = out.get("data")
        if data is not None:
            data = {k: v for k, v in data.items() if not k.startswith(RECORD)}
            if not data:
                continue
            out = {**out, "data": data}
        kept.append(out)
    return kept


def slide_notebook(nb: dict, executed: bool, bib: dict | None = None, values: dict | None = None) -> dict:
    """The chapter as a slide deck: cells split at headings, slide types set, MyST made plain.

    Parameters
    ----------
    nb : dict
        The chapter's student edition (no solutions), executed or not.
    executed : bool
        Whether ``nb`` carries outputs (figures then replace the code that draws them).
    bib : dict, optional
        The bibliography (``colab_edition.read_bib``) for citations; read when ``None``.
    values : dict, optional
        Glued values of the executed chapter, to put into the text.

    Returns
    -------
    dict
        A new notebook whose cells carry ``metadata.slideshow.slide_type``.
    """
    colab = _script("colab_edition")
    conv = colab._Converter(colab.read_bib() if bib is None else bib, values, mark="")
    cells, late, in_exercises = [], [], False

    def add(cell: dict, kind: str, into: list | None = None) -> None:
        cell.setdefault("metadata", {})["slideshow"] = {"slide_type": kind}
        (cells if into is None else into).append(cell)

    for original in nb["cells"]:
        cell = copy.deepcopy(original)
        tags = set(cell.get("metadata", {}).get("tags", []))
        explicit = next((TAGS[t] for t in TAGS if t in tags), None)
        if cell["cell_type"] == "markdown":
            pieces = split_at_headings(source(cell))
            for i, piece in enumerate(pieces):
                head = heading(piece)
                if head and head[0] <= 2 and EXERCISES.match(head[1]):
                    in_exercises = True
                    kind = "slide"
                elif head and not in_exercises:
                    kind = "slide" if head[0] <= 2 else "subslide" if head[0] == 3 else "-"
                else:
                    kind = "-"
                if explicit and i == 0:
                    kind = explicit
                text = conv.text(colab.COLAB_BADGE.sub("", piece)).strip("\n")
                if not text.strip():
                    continue
                new = {"cell_type": "markdown", "id": f"{str(cell.get('id') or 'md')[:56]}-{i}",
                       "metadata": {k: v for k, v in cell.get("metadata", {}).items() if k != "slideshow"},
                       "source": text}
                if not in_exercises and EXERCISE_DIRECTIVE.search(piece) and not explicit:
                    add(new, "-", late)  # an exercise stated mid-chapter joins the final slide
                else:
                    add(new, kind)
            continue
        if cell["cell_type"] != "code":
            continue
        outputs = _slide_outputs(cell.get("outputs", [])) if executed else []
        cell["outputs"], cell["execution_count"] = outputs, None
        if explicit:
            add(cell, explicit)
        elif (_is_install(cell) or "parameters" in tags or CHECK.search(source(cell)) or in_exercises
              or not source(cell).strip()):
            add(cell, "skip")
        elif _shows_result(cell, executed):
            if executed:  # the figure or table is the slide; its code is in the notebook
                cell["metadata"]["tags"] = sorted(tags | {"remove-input"})
            add(cell, "subslide")
        else:
            add(cell, "fragment")
    if late:
        if not in_exercises:
            add({"cell_type": "markdown", "id": "exercises", "metadata": {}, "source": "## Exercises"}, "slide")
        cells.extend(late)
    out = {k: v for k, v in nb.items() if k != "cells"}
    out["cells"] = [c for c in cells if c["metadata"]["slideshow"]["slide_type"] != "skip"]
    meta = out.setdefault("metadata", {})
    meta.pop("widgets", None)  # no widget state: the HTML shows none
    title = next((heading(source(c)) for c in out["cells"] if c["cell_type"] == "markdown" and heading(source(c))), None)
    if title:
        meta["title"] = re.sub(r"[*_`]", "", title[1])
    return out


# ----------------------------------------------------------------------------- input and output


def executed_chapter(path: Path, cache: Path = CACHE) -> Path | None:
    """The executed chapter in ``cache`` for the chapter as it is now (default run, else SMOKE), or ``None``."""
    bb = _script("build_book")
    helpers = bb.helpers_digest(ROOT)
    for mode, parameters in (("default", {}), ("smoke", {"SMOKE": True})):
        key = bb.chapter_key(path, parameters, helpers)
        found = cache / "executed" / path.stem / f"{mode}-{key[:20]}.ipynb"
        if found.is_file():
            return found
    return None


def export(nb: dict) -> str:
    """The reveal.js HTML of a slide notebook."""
    import nbformat
    from nbconvert import SlidesExporter
    from nbconvert.preprocessors import TagRemovePreprocessor
    from traitlets.config import Config

    config = Config()
    config.SlidesExporter.reveal_scroll = True  # a long slide scrolls instead of being cut off
    config.SlidesExporter.reveal_number = "c/t"
    config.SlidesExporter.reveal_transition = "none"
    config.SlidesExporter.exclude_input_prompt = True
    config.SlidesExporter.exclude_output_prompt = True
    config.TagRemovePreprocessor.remove_input_tags = {"remove-input", "hide-input"}
    config.TagRemovePreprocessor.remove_all_outputs_tags = {"remove-output", "hide-output"}
    config.TagRemovePreprocessor.remove_cell_tags = {"remove-cell"}
    config.TagRemovePreprocessor.enabled = True
    exporter = SlidesExporter(config=config)
    exporter.register_preprocessor(TagRemovePreprocessor(config=config), enabled=True)
    body, _ = exporter.from_notebook_node(nbformat.reads(json.dumps(nb), as_version=4))
    return body


def build(path: Path, out: Path, use_cache: bool = True, cache: Path = CACHE,
          executed: Path | None = None) -> tuple[Path, str]:
    """Write the slides of one chapter into ``out``; return the file and what they were made from.

    Parameters
    ----------
    path : Path
        The chapter's source notebook.
    out : Path
        The output folder; the slides are ``<chapter>.slides.html`` there.
    use_cache : bool
        Look for the executed chapter in ``cache`` (:func:`executed_chapter`).
    executed : Path, optional
        An executed copy of the chapter to use instead (e.g. a papermill run of your own).
    """
    student = _script("student_notebooks")
    done = executed or (executed_chapter(path, cache) if use_cache else None)
    nb = json.loads((done or path).read_text(encoding="utf-8"))
    values = None
    if done is not None:
        from xaihelpers.results import read_glued

        values = read_glued(done)
    nb = student.student_version(nb)
    for cell in nb["cells"]:  # the note that tells a reader of the notebook what it is has no place on a slide
        if cell["cell_type"] == "markdown" and student.NOTE in source(cell):
            cell["source"] = source(cell).replace(student.NOTE + "\n\n", "").replace(student.NOTE, "")
    deck = slide_notebook(nb, executed=done is not None, values=values)
    out.mkdir(parents=True, exist_ok=True)
    target = out / f"{path.stem}.slides.html"
    target.write_text(export(deck), encoding="utf-8")
    if done is None:
        return target, "source, unexecuted"
    return target, f"executed chapter {done}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=OUT, help="output folder (default: _build/slides)")
    ap.add_argument("--only", action="append", metavar="CHAPTER",
                    help="only this chapter (stem or unique prefix, e.g. 02; repeatable)")
    ap.add_argument("--source", action="store_true", help="build from the chapters' sources, not the executed cache")
    ap.add_argument("--cache", type=Path, default=CACHE, help="the build cache (default: _cache)")
    ap.add_argument("--executed", type=Path, default=None,
                    help="a folder of executed chapters (same file names, e.g. papermill runs) to use instead")
    args = ap.parse_args(argv)
    chapters = sorted((ROOT / "notebooks").glob("*.ipynb"))
    if args.only:
        chosen = []
        for item in (part for arg in args.only for part in arg.split(",") if part):
            hits = [p for p in chapters if p.stem == Path(item).stem or p.stem.startswith(Path(item).stem)]
            if len(hits) != 1:
                ap.error(f"--only {item}: expected one of {', '.join(p.stem for p in chapters)} "
                         f"(or a unique prefix), got {len(hits)} matches")
            chosen += hits
        chapters = chosen
    for path in chapters:
        executed = None
        if args.executed is not None:
            executed = args.executed / path.name
            if not executed.is_file():
                ap.error(f"--executed {args.executed}: no executed {path.name} there")
        target, origin = build(path, args.out, use_cache=not args.source, cache=args.cache, executed=executed)
        print(f"{path.stem}: {target} (from the {origin})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
