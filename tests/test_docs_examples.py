"""Every shell and Python example in ``docs/**/*.md`` and ``README.md`` runs as written.

Convention (also in docs/index.md, "Examples in these pages are tested"):

* fenced ```` ```sh ````/```` ```bash ```` blocks run in ``bash -e -o pipefail``, ```` ```python ````
  blocks in the interpreter running pytest; ```` ```text ````, ```` ```console ```` and unlabelled
  blocks are not run;
* all runnable blocks of one page run in order, in one fresh temporary folder that holds
  symlinks to the repository's top-level folders (so ``data/...`` reads as from the repository
  root), with the interpreter's ``bin`` folder first on ``PATH`` (``cosim`` is the installed
  command) and the repository first on ``PYTHONPATH``;
* ``<!-- docs-test: skip REASON -->`` on the line before a block keeps it from running;
  ``<!-- docs-test: file NAME -->`` before a block writes its text to ``NAME`` in that folder.

A failure names the page, the block's number and first line, and shows the block's output.
A page must not write into the repository through the symlinks (checked after each page).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
LINKED = ("data", "netlists", "templates", "veriloga", "docs", "tests", "scripts", "benchmarks")
RUN_LANGS = {"sh": "sh", "bash": "sh", "shell": "sh", "python": "python", "py": "python"}
BLOCK_TIMEOUT_S = 600
_FENCE = re.compile(r"^(`{3,}|~{3,})\s*([\w+-]*)")
_MARKER = re.compile(r"^<!--\s*docs-test:\s*(skip|file)\b\s*(.*?)\s*-->\s*$")


@dataclass(frozen=True)
class Block:
    """One fenced block of a page: language, text, 1-based line of its fence, marker."""

    lang: str
    text: str
    line: int
    action: str  # "run", "skip", "file" or "show"
    arg: str = ""


def parse_blocks(markdown: str) -> list[Block]:
    """Fenced blocks of a Markdown text, in order, with the marker on the line before each."""
    lines = markdown.splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        fence, lang = m.group(1), m.group(2).lower()
        start = i
        body: list[str] = []
        i += 1
        while i < len(lines) and not lines[i].startswith(fence[0] * len(fence)):
            body.append(lines[i])
            i += 1
        i += 1
        prev = next((lines[k].strip() for k in range(start - 1, -1, -1) if lines[k].strip()), "")
        mk = _MARKER.match(prev)
        if mk:
            action, arg = mk.group(1), mk.group(2)
        else:
            action, arg = ("run" if lang in RUN_LANGS else "show"), ""
        blocks.append(Block(lang, "\n".join(body) + "\n", start + 1, action, arg))
    return blocks


def example_pages() -> list[Path]:
    """README.md and every docs page that has at least one block to run or write."""
    pages = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
    return [p for p in pages if any(b.action in ("run", "file") for b in parse_blocks(p.read_text()))]


def make_workdir(path: Path) -> None:
    """Fill ``path`` with symlinks to the repository's top-level folders."""
    for name in LINKED:
        if (REPO / name).exists():
            (path / name).symlink_to(REPO / name, target_is_directory=True)


def example_env() -> dict[str, str]:
    """Environment of an example: this interpreter's bin first on PATH, repo on PYTHONPATH."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    env.setdefault("MPLBACKEND", "Agg")
    env["COLUMNS"] = "100"
    return env


def run_block(block: Block, workdir: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    """Run one block in ``workdir``; stdout and stderr merged."""
    if RUN_LANGS[block.lang] == "sh":
        cmd = ["bash", "-e", "-o", "pipefail", "-c", block.text]
    else:
        cmd = [sys.executable, "-c", block.text]
    return subprocess.run(
        cmd, cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, timeout=BLOCK_TIMEOUT_S, check=False,
    )


def write_file_block(block: Block, workdir: Path, page: str) -> None:
    """Write a ``docs-test: file NAME`` block below ``workdir`` (no absolute paths, no ``..``)."""
    name = Path(block.arg)
    if not block.arg or name.is_absolute() or ".." in name.parts:
        raise AssertionError(f"{page}:{block.line}: bad docs-test file name {block.arg!r}")
    target = workdir / name
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(block.text)


def run_page(page: Path, workdir: Path, label: str | None = None) -> int:
    """Run every block of ``page`` in order in ``workdir``; raise AssertionError on the first
    failure with page, block and output. Returns the number of blocks run."""
    label = label or str(page.relative_to(REPO) if page.is_relative_to(REPO) else page)
    env = example_env()
    n_run = 0
    for number, block in enumerate(parse_blocks(page.read_text()), start=1):
        if block.action == "file":
            write_file_block(block, workdir, label)
        if block.action != "run":
            continue
        first = block.text.strip().splitlines()[0] if block.text.strip() else ""
        where = f"{label}, block {number} (line {block.line}, {block.lang}: {first!r})"
        try:
            proc = run_block(block, workdir, env)
        except subprocess.TimeoutExpired as exc:
            out = exc.output if isinstance(exc.output, str) else (exc.output or b"").decode(errors="replace")
            raise AssertionError(f"{where} timed out after {BLOCK_TIMEOUT_S} s; output:\n{out[-4000:]}") from None
        if proc.returncode != 0:
            raise AssertionError(
                f"{where} failed with exit status {proc.returncode}\n--- block ---\n{block.text}"
                f"--- output (last 4000 characters) ---\n{proc.stdout[-4000:]}"
            )
        n_run += 1
    return n_run


def _repo_snapshot() -> set[str]:
    """Paths below the linked folders (caches excluded): what a page must not change."""
    seen: set[str] = set()
    for name in LINKED:
        for root, dirs, files in os.walk(REPO / name):
            dirs[:] = [d for d in dirs if d not in ("__pycache__", ".pytest_cache")]
            seen.update(os.path.join(root, f) for f in files if not f.endswith(".pyc"))
    return seen


# --- the harness itself --------------------------------------------------------------------


def test_parser_reads_languages_and_markers() -> None:
    text = (
        "# t\n\n```sh\necho a\n```\n\n<!-- docs-test: skip needs minutes -->\n```sh\nsleep 999\n```\n"
        "<!-- docs-test: file cfg.toml -->\n\n```toml\nx = 1\n```\n```\nplain\n```\n"
        "```console\n$ cosim x\n```\n````python\nprint('```')\n````\n"
    )
    blocks = parse_blocks(text)
    assert [(b.lang, b.action) for b in blocks] == [
        ("sh", "run"), ("sh", "skip"), ("toml", "file"), ("", "show"), ("console", "show"), ("python", "run"),
    ]
    assert blocks[1].arg == "needs minutes" and blocks[2].arg == "cfg.toml"
    assert blocks[2].text == "x = 1\n" and blocks[5].text == "print('```')\n"
    assert blocks[0].line == 3


def test_runner_runs_in_order_and_reports_failures(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    work = tmp_path / "work"
    work.mkdir()
    make_workdir(work)
    page.write_text(
        "<!-- docs-test: file in.txt -->\n```text\nhello\n```\n"
        "```sh\ntest -f data/models/default.json\ncat in.txt > out.txt\n```\n"
        "```python\nfrom pathlib import Path\nassert Path('out.txt').read_text() == 'hello\\n'\n"
        "import cosim\n```\n"
        "<!-- docs-test: skip never -->\n```sh\nexit 1\n```\n"
        "```sh\necho diagnostic-output\nfalse\n```\n"
    )
    with pytest.raises(AssertionError) as info:
        run_page(page, work, label="docs/page.md")
    message = str(info.value)
    assert "docs/page.md, block 5" in message and "exit status 1" in message
    assert "diagnostic-output" in message
    page.write_text(page.read_text().replace("false\n", "true\n"))
    assert run_page(page, work, label="docs/page.md") == 3


def test_cosim_command_is_on_path(tmp_path: Path) -> None:
    proc = run_block(Block("sh", "command -v cosim\ncosim --help >/dev/null\n", 1, "run"), tmp_path, example_env())
    assert proc.returncode == 0, proc.stdout
    assert proc.stdout.startswith(str(Path(sys.executable).parent))


# --- every page ---------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("page", example_pages(), ids=lambda p: str(p.relative_to(REPO)))
def test_docs_examples_run(page: Path, tmp_path: Path) -> None:
    before = _repo_snapshot()
    make_workdir(tmp_path)
    n_run = run_page(page, tmp_path)
    assert n_run + sum(b.action == "file" for b in parse_blocks(page.read_text())) > 0
    written = sorted(_repo_snapshot() - before)
    assert not written, f"{page.relative_to(REPO)} wrote into the repository: {written[:10]}"


def test_every_skip_gives_a_reason_and_every_file_block_a_name() -> None:
    pages = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
    bad = [f"{page.relative_to(REPO)}:{block.line}" for page in pages for block in parse_blocks(page.read_text())
           if block.action in ("skip", "file") and not block.arg.strip()]
    assert not bad, f"docs-test markers without a reason or file name: {bad}"
    skipped = [b for page in pages for b in parse_blocks(page.read_text()) if b.action == "skip"]
    run = [b for page in pages for b in parse_blocks(page.read_text()) if b.action == "run"]
    assert len(run) > 2 * len(skipped)  # most examples run


def test_runnable_examples_write_only_into_their_own_folder() -> None:
    """An example that writes to an absolute /tmp path shares state between runs (a sweep folder
    left by an earlier run made `cosim batch` refuse to resume); examples use relative paths."""
    pages = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
    shared = [f"{page.relative_to(REPO)}:{block.line}" for page in pages
              for block in parse_blocks(page.read_text())
              if block.action == "run" and re.search(r"(?<![\w.])/tmp/", block.text)]
    assert not shared, f"examples that write to /tmp instead of their own folder: {shared}"
