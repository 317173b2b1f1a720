"""On CI a skipped test fails the run unless tests/allowed_skips.txt lists it with a reason."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import textwrap
from pathlib import Path

HERE = Path(__file__).parent


def _tests_conftest():
    """tests/conftest.py itself (``import conftest`` may find another folder's conftest)."""
    spec = importlib.util.spec_from_file_location("jp_tests_conftest", HERE / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_list_parses_and_gives_every_skip_a_reason():
    for prefix, reason in _tests_conftest().allowed_skips().items():
        assert prefix.startswith("tests/") and reason


def _run(tmp_path, allowed: str, ci: str) -> subprocess.CompletedProcess:
    """pytest on two tests, one skipped, with tests/conftest.py's hooks."""
    (tmp_path / "conftest.py").write_text(textwrap.dedent(f"""
        import importlib.util
        spec = importlib.util.spec_from_file_location("jp_conftest", {str(HERE / 'conftest.py')!r})
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        pytest_runtest_logreport = module.pytest_runtest_logreport
        pytest_sessionfinish = module.pytest_sessionfinish
    """))
    (tmp_path / "test_some.py").write_text(
        "import pytest\n\ndef test_runs():\n    pass\n\n"
        "def test_skips():\n    pytest.skip('no widget here')\n")
    (tmp_path / "allowed.txt").write_text(allowed)
    env = {"CI": ci, "JP_ALLOWED_SKIPS": str(tmp_path / "allowed.txt"),
           "PYTHONPATH": str(HERE.parent), "PATH": "/usr/bin:/bin"}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "-p", "no:randomly", str(tmp_path)], capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=120, check=False)


def test_an_unlisted_skip_fails_the_run_on_ci(tmp_path):
    done = _run(tmp_path, "# nothing allowed\n", ci="true")
    assert done.returncode == 1, done.stdout
    assert "1 test(s) skipped on CI, not listed" in done.stdout
    assert "test_some.py::test_skips: Skipped: no widget here" in done.stdout


def test_a_listed_skip_or_a_run_off_ci_passes(tmp_path):
    done = _run(tmp_path, "test_some.py::test_skips | needs a widget CI lacks\n", ci="true")
    assert done.returncode == 0, done.stdout
    done = _run(tmp_path, "", ci="")
    assert done.returncode == 0, done.stdout
