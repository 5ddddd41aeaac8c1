"""The dbt project and its manifest, prepared at install and before a run, never at import
(issue #17: loading the code location has no side effects).

`./dev` prepares it after installing (`python -m pipelines.lib.dbt_manifest`); `o2p run`,
`o2p payouts release` and `o2p serve` prepare it again when a model, macro, test or the
project file is newer than it. dbt is called by its path beside this interpreter (the project's
virtualenv), so nothing edits PATH.
"""

from __future__ import annotations

import sys
from pathlib import Path

from dagster_dbt import DbtCliResource, DbtProject

DBT_DIR = Path(__file__).resolve().parents[2] / "dbt_project"
DBT_EXECUTABLE = str(Path(sys.executable).parent / "dbt")
dbt_project = DbtProject(project_dir=DBT_DIR, profiles_dir=DBT_DIR)


def is_stale() -> bool:
    """No manifest yet (a fresh clone), or a model, macro, test or the project file is newer."""
    if not dbt_project.manifest_path.exists():
        return True
    built = dbt_project.manifest_path.stat().st_mtime
    sources = [DBT_DIR / "dbt_project.yml", *(f for d in ("models", "macros", "tests")
                                              for f in (DBT_DIR / d).rglob("*") if f.is_file())]
    return any(f.stat().st_mtime > built for f in sources)


def prepare(force: bool = False) -> bool:
    """`dbt parse` (no warehouse needed) when the manifest is stale; True when it ran."""
    if not force and not is_stale():
        return False
    DbtCliResource(project_dir=dbt_project, profiles_dir=str(DBT_DIR), dbt_executable=DBT_EXECUTABLE) \
        .cli(["--quiet", "parse"], target_path=dbt_project.target_path).wait()
    return True


def manifest_path() -> Path:
    """The manifest the definitions load; a clear error when nobody prepared it."""
    if not dbt_project.manifest_path.exists():
        raise RuntimeError(f"the dbt manifest {dbt_project.manifest_path} does not exist: run ./dev (it prepares "
                           "it), or python -m pipelines.lib.dbt_manifest")
    return dbt_project.manifest_path


if __name__ == "__main__":
    print("dbt manifest: " + ("prepared" if prepare() else "up to date") + f" ({dbt_project.manifest_path})")
