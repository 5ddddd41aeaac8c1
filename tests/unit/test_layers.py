"""The layers run one way (issue #13; `.importlinter`): the CLI on top, Dagster below it, capture
and the quality suites below that, the core (`o2p`) at the bottom, and the pure rules (money,
tax, time, settlement, gates) importing no storage. CI runs import-linter through this test; a
second test plants a wrong-way import in a copy of the code and shows the contract catches it."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("o2p", "pipelines", "streaming", "expectations")


def _lint(root: Path) -> subprocess.CompletedProcess:
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")
    assert exe, "import-linter is a dev dependency: ./dev installs it"
    # the packages of `root` first (the editable install would otherwise find the repository's)
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([exe, "--no-cache", "--config", str(root / ".importlinter")], cwd=root, env=env,
                          capture_output=True, text=True, timeout=300)


def test_the_layering_contracts_are_kept():
    proc = _lint(REPO)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "0 broken" in proc.stdout, proc.stdout[-2000:]


def test_a_wrong_way_import_breaks_the_contracts(tmp_path):
    for pkg in PACKAGES:
        shutil.copytree(REPO / pkg, tmp_path / pkg, ignore=shutil.ignore_patterns("__pycache__", "target"))
    shutil.copy(REPO / ".importlinter", tmp_path / ".importlinter")
    money = tmp_path / "o2p" / "money.py"
    money.write_text(money.read_text() + "\n\ndef _wrong_way():\n    from pipelines.jobs import JOBS  # noqa\n")
    tax = tmp_path / "o2p" / "tax.py"
    tax.write_text(tax.read_text() + "\n\ndef _storage():\n    from o2p.registry import Registry  # noqa\n")
    proc = _lint(tmp_path)
    assert proc.returncode == 1, proc.stdout[-4000:]
    assert "o2p.money -> pipelines.jobs" in proc.stdout, proc.stdout[-4000:]
    assert "o2p.tax -> o2p.registry" in proc.stdout, proc.stdout[-4000:]
