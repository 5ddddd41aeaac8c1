"""The repository passes ruff (pyproject's [tool.ruff]) and its dbt models pass sqlfluff
(.sqlfluff): CI runs both through this test, so a lint error fails the build like any other defect."""

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_ruff_finds_nothing():
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    assert ruff, "ruff is a dev dependency: ./dev installs it"
    proc = subprocess.run([ruff, "check", "--no-cache", str(REPO)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]


def test_sqlfluff_finds_nothing_in_the_dbt_models():
    sqlfluff = shutil.which("sqlfluff", path=str(Path(sys.executable).parent)) or shutil.which("sqlfluff")
    assert sqlfluff, "sqlfluff is a dev dependency: ./dev installs it"
    dbt = REPO / "dbt_project"
    proc = subprocess.run([sqlfluff, "lint", "--disable-progress-bar",
                           str(dbt / "models"), str(dbt / "tests")],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
