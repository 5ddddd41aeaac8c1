"""Kept for streaming/consumer.py until a parallel split lands: the layout lives in o2p/layout.py."""

from o2p.fsio import fsync_dir, write_json_atomic  # noqa: F401
from o2p.layout import (  # noqa: F401
    COMMON,
    LINE,
    META,
    SCHEMAS,
    TABLES,
    ensure_schema_files,
    file_name,
    landed_dates,
    landed_days,
    read_states,
)
