"""Where the repository's checkout and its test data are, for helpers that live in the package."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
"""The repository's checkout: the servers under test run with it as their working directory."""

TESTS = ROOT / "tests"
"""The tests' data (SIPp scenarios, fuzz corpora, recorded model sessions) stays beside the tests."""
