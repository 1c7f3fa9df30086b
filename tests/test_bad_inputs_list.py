"""tests/bad_inputs.md names a test for every bad input it lists: each named test must exist."""
import re
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def test_every_test_the_bad_inputs_list_names_exists():
    text = (TESTS / "bad_inputs.md").read_text()
    named = re.findall(r"(test_\w+\.py)::(test_\w+)", text)
    assert len(named) >= 40
    missing = [f"{f}::{t}" for f, t in named if not re.search(rf"^def {t}\(", (TESTS / f).read_text(), re.M)]
    assert not missing, f"bad_inputs.md names tests that do not exist: {missing}"
    entries = [line for line in text.splitlines() if line.startswith("- ")]
    assert all(re.search(r"\(test_\w+\.py::", line) for line in entries), "every entry names its test"
