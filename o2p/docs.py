"""`o2p docs` (issue #14): dbt's documentation of the models — every mart's description and
columns, the lineage from the Kafka topics to the payout files, the exposures (payout files, the
BI copy, the monthly report) — as one static page under `$O2P_HOME/docs/index.html`, or served on
127.0.0.1.

It never opens the pipeline's DuckDB file: the column types of the catalog come from a private
copy of the BI copy (`bi/o2p_bi.duckdb`, replaced whole by each refresh, so copying it is safe);
before the first run there is no copy and the page has the descriptions and lineage without
the catalog. dbt's anonymous usage tracking is off, so the page loads nothing from the network.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from o2p import layout
from o2p.config import Config
from o2p.errors import O2PError
from o2p.fsio import write_bytes_atomic

DBT = str(Path(sys.executable).parent / "dbt")


def build(cfg: Config, log=print) -> Path:
    """Generate the static docs page; returns its path."""
    out = layout.docs_root(cfg.home_path) / "index.html"
    bi = layout.bi_duckdb_file(cfg.home_path)
    with tempfile.TemporaryDirectory(prefix="o2p-docs-") as tmp:
        tmp_path = Path(tmp)
        db = tmp_path / "o2p.duckdb"    # the warehouse's name: the catalog matches the manifest's database
        args = [DBT, "--quiet", "--no-send-anonymous-usage-stats", "docs", "generate", "--static", "--no-compile",
                "--project-dir", str(layout.DBT_PROJECT), "--profiles-dir", str(layout.DBT_PROJECT),
                "--target-path", str(tmp_path / "target"), "--log-path", str(tmp_path / "logs")]
        manifest = layout.DBT_PROJECT / "target" / "manifest.json"
        if not manifest.exists():
            raise O2PError(f"the dbt manifest {manifest} does not exist: run ./dev (it prepares it), or "
                           "python -m pipelines.lib.dbt_manifest")
        (tmp_path / "target").mkdir()
        shutil.copyfile(manifest, tmp_path / "target" / "manifest.json")   # docs of the parsed project, not compiled again
        if bi.exists():
            shutil.copyfile(bi, db)
        else:
            log(f"o2p docs: no BI copy yet ({bi}): descriptions and lineage only, no column types from the data")
            args.append("--empty-catalog")
        env = {**os.environ, "O2P_DUCKDB_PATH": str(db), "O2P_DBT_TARGET": cfg.environment,
               "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
        proc = subprocess.run(args, capture_output=True, text=True, env=env, cwd=tmp_path)
        page = tmp_path / "target" / "static_index.html"
        if proc.returncode != 0 or not page.exists():
            raise O2PError(f"dbt docs generate failed (exit {proc.returncode}): "
                           f"{(proc.stdout + proc.stderr).strip()[-2000:]}")
        write_bytes_atomic(out, page.read_bytes())
    return out


def serve(folder: Path, host: str = "127.0.0.1", port: int = 8580, log=print) -> None:
    """Serve `folder` over HTTP until interrupted (the standard library's server, read-only files)."""
    import functools
    import http.server

    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    with http.server.ThreadingHTTPServer((host, port), handler) as httpd:
        log(f"o2p docs: serving {folder} at http://{host}:{httpd.server_address[1]}/ (Ctrl-C stops)", flush=True)
        try:
            httpd.serve_forever()
        except KeyboardInterrupt:
            pass
