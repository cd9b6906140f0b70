"""Write the Colab edition of the chapters: notebooks that read well in Colab, which renders no MyST.

Run: ``python scripts/colab_edition.py [--out _build/colab] [--executed DIR] [--ref TAG]``. For
each chapter in ``notebooks/`` it writes a notebook with the same code cells in which

* ``{glue:text}`name:fmt``` roles become the formatted values of the book's own run
  of the chapter at its default parameters, marked with a dagger (†), and the first cell
  says so: the values recorded from ``make book``'s executed chapters in
  ``tests/default_run/<chapter>.json`` (``scripts/record_defaults.py``), or with
  ``--executed DIR`` those of a folder of executed chapters (same file names). On Colab
  ``xaihelpers.results.glue`` shows nothing (without myst-nb), since the reader's own
  numbers are in the tables and figures the cells show. A name with no recorded value
  stays a bold name (``**`name`**``), which the tests reject;
* ``{cite}`` roles become author-year text from ``book/references.bib``, and a
  References cell at the end lists the works cited;
* exercise directives (sphinx-exercise) become numbered headings and their solutions
  collapsed ``<details>`` blocks (code cells between ``solution-start`` and
  ``solution-end`` are hidden, ``jupyter.source_hidden``, behind a note);
* other directives become quotes, other roles their text, MyST targets are dropped;
* the notebook asks Colab for a GPU runtime and keeps the install cell, whose
  repository URL is the one in ``_config.yml`` (``repository.url``), the book's one place
  for it (``--ref TAG`` pins the install to that tag, ``git+URL@TAG``); the Colab badge
  goes (the reader is in Colab already).

Next to each chapter it writes ``<chapter>_student.ipynb``, the Colab edition of the
chapter's student edition (``scripts/student_notebooks.py``: no solutions, check cells
kept), which the student badges on the site and the teachers' page open
(``--no-student`` leaves them out).

The output folder is under ``_build/`` and git-ignored; ``tests/test_colab.py`` checks
that no markup is left and runs the edition in an environment like Colab's.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "_build" / "colab"
BIB = ROOT / "book" / "references.bib"
RECORD = ROOT / "tests" / "default_run"
MARK = "†"

# A MyST role: {name}`content` (names like glue:text, cite:t, ref).
ROLE = re.compile(r"\{(?P<role>[A-Za-z][\w:.-]*)\}`(?P<content>[^`]*)`")
# A directive fence: 3+ backticks or colons, {name}, an argument, up to the same fence alone on a line.
DIRECTIVE = re.compile(
    r"^(?P<fence>`{3,}|:{3,})[ \t]*\{(?P<name>[\w:.-]+)\}[ \t]*(?P<arg>[^\n]*)\n(?P<body>.*?)^(?P=fence)[ \t]*$\n?",
    re.S | re.M,
)
# A directive's options at the start of its body (":label: ex00-relu").
OPTION = re.compile(r"^:(?P<key>[\w-]+):[ \t]*(?P<value>[^\n]*)\n?", re.M)
# A MyST target line, "(sec-intro)=".
TARGET = re.compile(r"^\([\w:.-]+\)=[ \t]*\n", re.M)
COLAB_BADGE = re.compile(r"^\[!\[Open In Colab\]\([^)]*\)\]\([^)]*\)[ \t]*\n?", re.M)
INSTALL_URL = re.compile(r"git\+https://github\.com/[\w.-]+/[\w.-]+")
GLUE_NOTE = (
    "*The numbers in this text marked {mark} are those of the book's own run of this notebook with "
    "its default parameters ({when}); your run's numbers are in the tables and figures its cells show.*"
)


def recorded_values(stem: str, record: Path = RECORD) -> tuple[dict | None, str]:
    """The glued values of the book's default run of chapter ``stem`` and their date, from
    ``tests/default_run/<stem>.json``; ``(None, "")`` where the chapter has no record."""
    path = record / f"{stem}.json"
    if not path.is_file():
        return None, ""
    data = json.loads(path.read_text(encoding="utf-8"))
    return data.get("glued", {}), str(data.get("date", ""))


def repository_url(config: Path = ROOT / "_config.yml") -> str:
    """The repository URL set once in ``_config.yml`` (``repository: url:``)."""
    text = config.read_text(encoding="utf-8")
    block = re.search(r"^repository:[ \t]*\n((?:[ \t]+.*\n?)*)", text, re.M)
    url = block and re.search(r"^[ \t]+url:[ \t]*(\S+)", block.group(1), re.M)
    if not url:
        raise ValueError(f"{config}: expected a 'repository: url:' entry")
    return url.group(1).strip("'\"").rstrip("/")


# ----------------------------------------------------------------------------- citations


def _strip_tex(text: str) -> str:
    text = re.sub(r"\\[a-zA-Z]+\s*", "", text)  # commands such as \emph, \&
    text = re.sub(r"\\(.)", r"\1", text)  # accents such as \"u keep the letter
    return re.sub(r"\s+", " ", text.replace("{", "").replace("}", "")).strip()


def read_bib(path: Path = BIB) -> dict[str, dict[str, str]]:
    """The entries of a BibTeX file: key to its fields (lower-case names, braces kept)."""
    entries = {}
    text = path.read_text(encoding="utf-8")
    for head in re.finditer(r"@(\w+)\s*\{\s*([^,\s]+)\s*,", text):
        fields, i = {"type": head.group(1).lower()}, head.end()
        while True:
            m = re.compile(r"\s*(\w+)\s*=\s*").match(text, i)
            if not m:
                break
            i = m.end()
            if text[i] == "{":
                depth, j = 0, i
                while True:
                    depth += {"{": 1, "}": -1}.get(text[j], 0)
                    if depth == 0:
                        break
                    j += 1
                value, i = text[i + 1:j], j + 1
            elif text[i] == '"':
                j = text.index('"', i + 1)
                value, i = text[i + 1:j], j + 1
            else:
                m2 = re.compile(r"[^,}\s]+").match(text, i)
                value, i = m2.group(0), m2.end()
            fields[m.group(1).lower()] = value
            m = re.compile(r"\s*,").match(text, i)
            if not m:
                break
            i = m.end()
        entries[head.group(2)] = fields
    return entries


def _surnames(authors: str) -> list[str]:
    names = [n.strip() for n in re.split(r"\s+and\s+", authors) if n.strip()]
    return [_strip_tex(n.split(",")[0] if "," in n else n.split()[-1]) for n in names]


def author_text(entry: dict[str, str]) -> str:
    """"Du et al.", "Suhail and Sethi" or "Simonyan": the authors as the book's author-year style cites them."""
    names = _surnames(entry.get("author", entry.get("editor", "Anonymous")))
    if len(names) == 1:
        return names[0]
    if len(names) == 2:
        return f"{names[0]} and {names[1]}"
    return f"{names[0]} et al."


def cite_text(role: str, keys: str, bib: dict) -> str:
    """The author-year text of a ``{cite}`` role (``cite``/``cite:p`` in parentheses, ``cite:t`` in the sentence)."""
    works = []
    for key in (k.strip() for k in keys.split(",")):
        if key not in bib:
            raise KeyError(f"citation {key!r} is not in {BIB.relative_to(ROOT)}")
        works.append((author_text(bib[key]), bib[key].get("year", "n.d.")))
    kind = role.split(":", 1)[1] if ":" in role else "p"
    if kind.startswith("t"):
        return "; ".join(f"{a} ({y})" for a, y in works)
    if kind == "author":
        return "; ".join(a for a, _ in works)
    if kind == "year":
        return "; ".join(y for _, y in works)
    return "(" + "; ".join(f"{a}, {y}" for a, y in works) + ")"


def reference_entry(entry: dict[str, str]) -> str:
    """One line of the References cell: authors (year). Title. Venue."""
    names = []
    for name in re.split(r"\s+and\s+", entry.get("author", "").strip()):
        last, _, first = name.partition(",")  # "Du, Mengnan" reads "Mengnan Du"
        names.append(_strip_tex(f"{first} {last}" if first else last))
    venue = entry.get("booktitle") or entry.get("journal") or entry.get("publisher") or entry.get("howpublished", "")
    names = ", ".join(names[:-1]) + f" and {names[-1]}" if len(names) > 1 else "".join(names)
    text = f"{names} ({entry.get('year', 'n.d.')}). {_strip_tex(entry.get('title', ''))}."
    return text + (f" *{_strip_tex(venue)}*." if venue else "")


# ----------------------------------------------------------------------------- markdown


def _glue_text(content: str, values: dict | None) -> str | None:
    """The formatted value of a glue role's ``name:fmt`` where ``values`` has it, else ``None``."""
    name, _, fmt = content.partition(":")
    name = name.strip()
    if values is not None and name in values and isinstance(values[name], (int, float, str)):
        value = values[name]
        try:
            return format(value, fmt) if fmt else str(value)
        except (TypeError, ValueError):
            return str(value)
    return None


def _quote(text: str) -> str:
    return "\n".join("> " + line if line.strip() else ">" for line in text.strip("\n").split("\n"))


class _Converter:
    """Turns one chapter's MyST markdown into plain (Colab) markdown; counts exercises, collects citations."""

    def __init__(self, bib: dict, values: dict | None, mark: str = MARK) -> None:
        self.bib, self.values, self.mark = bib, values, mark
        self.substituted = 0  # glued values written in from the book's run
        self.exercises = 0
        self.cited: list[str] = []
        self.in_solution = False  # between solution-start and solution-end (gated directives)
        self.glue_names = False  # a glued value left as its name

    def role(self, m: re.Match) -> str:
        role, content = m.group("role"), m.group("content")
        if role.startswith("glue"):
            text = _glue_text(content, self.values)
            if text is None:  # no recorded value: the name stays (the tests reject it)
                self.glue_names = True
                return f"**`{content.partition(':')[0].strip()}`**"
            self.substituted += 1
            return text + self.mark
        if role.startswith("cite"):
            self.cited += [k.strip() for k in content.split(",") if k.strip() not in self.cited]
            return cite_text(role, content, self.bib)
        if role == "math":
            return f"${content}$"
        title = re.match(r"(.*?)\s*<[^>]*>$", content)  # {ref}`Title <label>`
        return title.group(1) if title else f"`{content}`" if role in ("eq", "numref", "ref") else content

    def directive(self, m: re.Match) -> str:
        name, arg = m.group("name"), m.group("arg").strip()
        body = m.group("body")
        while (o := OPTION.match(body)):  # :label:, :class: dropdown, ... have no place in Colab
            body = body[o.end():]
        body = self.text(body).strip("\n")
        if name in ("exercise", "exercise-start"):
            self.exercises += 1
            title = f"### Exercise {self.exercises}" + (f": {self.text(arg)}" if arg else "")
            return f"{title}\n\n{body}\n\n" if body else f"{title}\n\n"
        if name == "exercise-end":
            return ""
        if name == "solution":
            return f"<details>\n<summary>Solution</summary>\n\n{body}\n\n</details>\n\n"
        if name == "solution-start":
            self.in_solution = True
            note = "**Solution** (the next code cells are hidden: click them to show the code)"
            return f"{note}\n\n<details>\n<summary>Solution</summary>\n\n{body}\n\n</details>\n\n" if body else note + "\n\n"
        if name == "solution-end":
            self.in_solution = False
            return ""
        if name in ("math", "equation"):
            return f"$$\n{body}\n$$\n\n"
        if name.startswith("glue"):
            return f"*(The {name.split(':')[-1] if ':' in name else 'value'} **`{arg}`** is shown in the output above.)*\n\n"
        if name in ("code-block", "code", "sourcecode"):
            return f"```{arg}\n{body}\n```\n\n"
        title = arg if name == "admonition" and arg else name.replace("-", " ").capitalize()  # note, warning, ...
        return _quote(f"**{self.text(title)}**\n\n{body}") + "\n\n"

    def text(self, text: str) -> str:
        text = TARGET.sub("", text)
        text = DIRECTIVE.sub(self.directive, text)
        return re.sub(r"\n{3,}", "\n\n", ROLE.sub(self.role, text))


def colab_version(nb: dict, bib: dict, url: str, values: dict | None = None, ref: str | None = None,
                  when: str = "") -> dict:
    """The Colab edition of one chapter (a new notebook dict; ``nb`` is left unchanged).

    Parameters
    ----------
    nb : dict
        The chapter, as read from its ``.ipynb`` file.
    bib : dict
        The bibliography, :func:`read_bib`.
    url : str
        The repository URL the install cell installs from.
    values : dict, optional
        Glued values of the book's run of the chapter (:func:`recorded_values`, or
        ``xaihelpers.results.read_glued`` of an executed chapter), written into the text
        with a dagger; ``None`` leaves bold names.
    ref : str, optional
        A tag, branch or commit the install cell pins (``git+URL@ref``): how a course
        freezes the package version its notebooks install.
    when : str
        The date of that run, for the note under the title.
    """
    out = json.loads(json.dumps(nb))
    conv = _Converter(bib, values)
    cells, installs = [], 0
    for cell in out["cells"]:
        src = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        if cell["cell_type"] == "markdown":
            src = conv.text(COLAB_BADGE.sub("", src))
        elif cell["cell_type"] == "code":
            if "google.colab" in src and INSTALL_URL.search(src):
                src = INSTALL_URL.sub("git+" + url + (f"@{ref}" if ref else ""), src)
                installs += 1
            if conv.in_solution:
                cell.setdefault("metadata", {}).setdefault("jupyter", {})["source_hidden"] = True
            cell["outputs"], cell["execution_count"] = [], None
        cell["source"] = src.splitlines(keepends=True)
        cells.append(cell)
    if installs != 1:
        raise ValueError(f"expected one Colab install cell installing from git+{url}, found {installs}")
    first = next((c for c in cells if c["cell_type"] == "markdown"), None)
    if conv.substituted and first is not None:  # the note goes under the title
        note = GLUE_NOTE.format(mark=conv.mark, when=when or "the recorded run")
        head, _, rest = "".join(first["source"]).partition("\n\n")
        first["source"] = (f"{head}\n\n{note}" + (f"\n\n{rest}" if rest else "")).splitlines(keepends=True)
    if conv.cited:
        refs = "\n".join(f"- {reference_entry(bib[k])}" for k in sorted(conv.cited, key=lambda k: author_text(bib[k])))
        cells.append({"cell_type": "markdown", "id": "references", "metadata": {}, "source": f"## References\n\n{refs}".splitlines(keepends=True)})
    out["cells"] = cells
    meta = out.setdefault("metadata", {})
    meta["accelerator"] = "GPU"
    meta["colab"] = {"gpuType": "T4", "provenance": []}
    meta.setdefault("kernelspec", {"display_name": "Python 3", "language": "python", "name": "python3"})
    return out


def _student_script():
    """``scripts/student_notebooks.py`` as a module."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("student_notebooks", Path(__file__).with_name("student_notebooks.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_edition(out: Path = OUT, executed: Path | None = None, notebooks: list[Path] | None = None,
                  student: bool = True, ref: str | None = None) -> list[Path]:
    """Write the Colab edition of every chapter (or of ``notebooks``) into ``out``; return the paths.

    With ``student`` (the default) each chapter's student edition, without the solutions,
    is written next to it as ``<chapter>_student.ipynb``.
    """
    bib, url = read_bib(), repository_url()
    student_version = _student_script().student_version if student else None
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for path in notebooks or sorted((ROOT / "notebooks").glob("*.ipynb")):
        values, when = recorded_values(path.stem)
        if executed is not None:
            from xaihelpers.results import read_glued

            done = Path(executed) / path.name
            if not done.is_file():
                raise FileNotFoundError(f"--executed {executed}: no executed {path.name} there")
            values, when = read_glued(done), "the executed notebook given"
        source = json.loads(path.read_text(encoding="utf-8"))
        editions = {path.name: source}
        if student_version is not None:
            editions[f"{path.stem}_student.ipynb"] = student_version(source)
        for name, nb in editions.items():
            target = out / name
            text = json.dumps(colab_version(nb, bib, url, values, ref, when), indent=1, ensure_ascii=False) + "\n"
            target.write_text(text, encoding="utf-8")
            written.append(target)
    return written


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(OUT), help="output folder (default _build/colab)")
    ap.add_argument("--executed", default=None,
                    help="folder of executed chapters (same file names) whose glued values go into the text "
                         "(default: the recorded default run, tests/default_run/)")
    ap.add_argument("--no-student", action="store_true", help="leave out the student editions (<chapter>_student.ipynb)")
    ap.add_argument("--ref", default=None, help="tag, branch or commit the install cells pin (a course's version)")
    args = ap.parse_args()
    for path in write_edition(Path(args.out), Path(args.executed) if args.executed else None,
                              student=not args.no_student, ref=args.ref):
        print(path)


if __name__ == "__main__":
    main()
