"""The README stays true to the tree: short, and every command, flag, target and path it names exists.

A renamed subcommand, a dropped Makefile target or a moved module fails here, not on a newcomer's
first try. The docs/ pages are held to their links and to naming no folder outside the clone.
"""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

from speechrnn import cli

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
PAGES = sorted((ROOT / "docs").glob("*.md"))
MAX_LINES = 250

FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.DOTALL | re.MULTILINE)
INLINE = re.compile(r"`([^`\n]+)`")
SUBCOMMAND = re.compile(r"(?<![\w.-])speechrnn\s+([a-z][a-z_-]*)")
MAKE_TARGET = re.compile(r"(?<![\w.-])make\s+([a-z][a-z-]*)")
# a path inside the clone: one of its top-level folders or files, then anything but a placeholder
REPO_PATH = re.compile(r"(?<![\w./-])((?:speechrnn|pipelines|configs|docs|benchmarks|tests|\.ci)/[\w./-]*\w"
                       r"|Makefile|pyproject\.toml)(?![\w<*{])")
LINK = re.compile(r"\]\(([^)#\s]*)(?:#([^)\s]*))?\)")
OUTSIDE_THE_CLONE = re.compile(r"\.\./shared|/work/")
# a timing says "a 2-core CPU" or "one GPU", not which machine gave it
MACHINE = re.compile(r"\b(?:[AHV]100|H200|Xeon|EPYC|Zen \d)\b")


def read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def code_blocks(text: str) -> list[str]:
    return FENCE.findall(text)


def code(text: str) -> list[str]:
    """Every fenced block and every inline code span, fences taken out first."""
    prose = FENCE.sub("", text)
    return code_blocks(text) + INLINE.findall(prose)


def commands(text: str, pattern: re.Pattern) -> dict[str, list[str]]:
    """Each name ``pattern`` finds in the code of ``text``, with the lines that use it."""
    found: dict[str, list[str]] = {}
    for snippet in code(text):
        for line in snippet.splitlines():
            for name in pattern.findall(line.split("#")[0]):  # not in a shell comment
                found.setdefault(name, []).append(line.strip())
    return found


def makefile_targets() -> set[str]:
    return set(re.findall(r"^([a-z][a-z-]*):", read(ROOT / "Makefile"), re.MULTILINE))


def tool_help(tool: str) -> str:
    """``speechrnn TOOL --help``, run in this process (the imports are shared, so it is quick)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        cli.main([tool, "--help"])
    return out.getvalue()


def test_readme_is_at_most_250_lines():
    lines = read(README).count("\n")
    assert lines <= MAX_LINES, f"README.md has {lines} lines; move detail into docs/"


EVERY_PAGE = pytest.mark.parametrize("page", [README, *PAGES], ids=lambda page: page.name)


@EVERY_PAGE
def test_every_speechrnn_subcommand_named_exists(page):
    known = set(cli.TOOLS) | set(cli.SpeechCLI.subcommands())
    unknown = {name: uses for name, uses in commands(read(page), SUBCOMMAND).items() if name not in known}
    assert not unknown, f"{page.name}: not subcommands of speechrnn/cli.py: {unknown}"


@EVERY_PAGE
def test_every_make_target_named_exists(page):
    targets = makefile_targets()
    unknown = {name: uses for name, uses in commands(read(page), MAKE_TARGET).items() if name not in targets}
    assert not unknown, f"{page.name}: not Makefile targets: {unknown}"


@EVERY_PAGE
def test_every_flag_of_a_speechrnn_tool_is_one_of_its_options(page):
    uses = commands(read(page), SUBCOMMAND)
    wrong = []
    for tool in sorted(set(uses) & set(cli.TOOLS)):
        help_text = tool_help(tool)
        formats = re.search(r"--format \{([^}]*)\}", help_text)
        for line in uses[tool]:
            command = line.split(f"speechrnn {tool}", 1)[1].split("#")[0]
            wrong += [(tool, flag) for flag in re.findall(r"(?<![\w-])--[a-z][\w-]*", command)
                      if flag not in help_text]
            if formats:
                wrong += [(tool, f"--format {value}") for value in re.findall(r"--format\s+(\w+)", command)
                          if value not in formats.group(1).split(",")]
    assert not wrong, f"{page.name}: options the tools do not have: {wrong}"


def test_every_repo_path_the_readme_names_exists():
    text = read(README)
    missing = sorted({path for path in REPO_PATH.findall(text) if not (ROOT / path).exists()})
    assert not missing, f"named in README.md but not in the tree: {missing}"


def layout_paths(text: str) -> list[str]:
    """The paths of the README's layout tree: one name a line, two spaces of indent per level."""
    section = text.split("## Layout", 1)[1]
    tree = code_blocks(section)[0]
    paths, parents = [], []
    for line in tree.splitlines():
        if not line.strip():
            continue
        depth = (len(line) - len(line.lstrip(" "))) // 2
        name = line.split()[0]
        parents[depth:] = [name]
        paths.append("".join(parents))
    return paths


def test_the_layout_tree_lists_only_what_exists():
    paths = layout_paths(read(README))
    assert len(paths) > 10
    missing = [path for path in paths if not (ROOT / path).exists()]
    assert not missing, f"in the README's layout tree but not in the tree: {missing}"


def anchors(page: Path) -> set[str]:
    """GitHub's anchors for the headings of ``page``: lower case, punctuation dropped, spaces as -."""
    headings = re.findall(r"^#+ (.+)$", FENCE.sub("", read(page)), re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-") for heading in headings}


@EVERY_PAGE
def test_every_relative_link_resolves(page):
    broken = []
    for target, anchor in LINK.findall(read(page)):
        if "://" in target:
            continue
        linked = page.parent / target if target else page
        if not linked.exists() or (anchor and linked.suffix == ".md" and anchor not in anchors(linked)):
            broken.append(f"{target}#{anchor}" if anchor else target)
    assert not broken, f"{page.name} links to files or headings that do not exist: {broken}"


@EVERY_PAGE
def test_no_page_names_a_folder_outside_the_clone(page):
    found = sorted(set(OUTSIDE_THE_CLONE.findall(read(page))))
    assert not found, f"{page.name} names {found}: say 'the folder holding fsdd/' and SPEECHRNN_DATA_ROOT"


@EVERY_PAGE
def test_no_page_names_the_machine_a_figure_was_measured_on(page):
    found = sorted(set(MACHINE.findall(read(page))))
    assert not found, f"{page.name} names {found}: say 'a 2-core CPU' or 'one GPU'"


def test_docs_have_an_index_that_links_every_page():
    index = read(ROOT / "docs" / "index.md")
    unlinked = [page.name for page in PAGES if page.name != "index.md" and f"({page.name}" not in index]
    assert not unlinked, f"docs/index.md does not link {unlinked}"
