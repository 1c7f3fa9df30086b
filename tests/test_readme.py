"""The README: short, the two set-up commands first (the test one is what CI runs), its examples run as written,
and every number it quotes links to the docs page that holds the number and the command that made it.

The worked examples that used to live here are in the docs now; tests/test_docs.py runs them."""
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from maskgit.cli import main

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
TEXT = README.read_text()
FENCES = re.findall(r"^```(\w*)\n(.*?)^```", TEXT, flags=re.S | re.M)
PYTHON = [body for lang, body in FENCES if lang == "python"]
SHELL = [body for lang, body in FENCES if lang == "bash"]
PROSE = re.sub(r"^```.*?^```", "", TEXT, flags=re.S | re.M)
NUMBER = re.compile(r"(?<![\w.-])\d+(?:,\d{3})*(?:\.\d+)?(?:x\b|%)|(?<![\w.-])\d+\.\d+(?![\w.])")
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)\s]*)?\)")


def test_readme_is_short():
    assert len(TEXT.splitlines()) <= 130


def test_the_two_commands_come_first_and_ci_runs_the_test_one():
    first_lang, first = FENCES[0]
    assert TEXT.index("```") < TEXT.index("\n## ")  # before any section
    commands = [shlex.split(line, comments=True) for line in first.splitlines()]
    assert first_lang == "bash" and commands == [["make", "demo"], ["make", "test"]]
    ci = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if line and not line.startswith("#")]
    assert ci[-1].strip() == "make test"


def test_readme_has_examples():
    assert len(PYTHON) == 1 and len(PYTHON[0].strip().splitlines()) <= 10
    assert len(SHELL) == 2 and len(SHELL[1].strip().splitlines()) <= 5


def test_readme_python_example_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    exec(compile(PYTHON[0], "README.md python example", "exec"), {})


def test_readme_command_line_example_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for line in SHELL[1].replace("\\\n", " ").splitlines():
        argv = shlex.split(line, comments=True)
        if argv[0] == "maskgit":
            assert main(argv[1:]) == 0, line
        else:
            assert argv[0] == "python", line
            subprocess.run([sys.executable, *argv[1:]], check=True)
    assert (tmp_path / "edits" / "0000_shirt_edit.png").is_file()


def test_readme_links_resolve():
    for target in LINK.findall(TEXT):
        if "://" not in target:
            assert (ROOT / target).exists(), target


@pytest.mark.parametrize("line", [line for line in PROSE.splitlines() if NUMBER.search(line)])
def test_every_number_links_to_the_docs_page_that_has_it(line):
    pages = [ROOT / target for target in LINK.findall(line) if target.startswith("docs/") and target.endswith(".md")]
    assert pages, f"a README line with numbers links no docs page: {line}"
    text = "\n".join(page_text(page) for page in pages)
    missing = [n for n in NUMBER.findall(line) if n.rstrip("x%") not in text]
    assert not missing, f"{missing} not on {[p.name for p in pages]}: {line}"


def page_text(page: Path) -> str:
    """A docs page with the files it includes (pymdownx.snippets) in place."""
    return re.sub(r'^--8<-- "([^"]+)"$', lambda m: (ROOT / m[1]).read_text(), page.read_text(), flags=re.M)
