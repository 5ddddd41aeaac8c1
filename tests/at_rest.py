"""What a folder holds at rest, every byte of it: for tests that personal data is not there."""

from pathlib import Path


def _cells(value) -> list[bytes]:
    if value is None:
        return []
    if isinstance(value, bytes):
        return [value]
    if isinstance(value, str):
        return [value.encode("utf-8", "surrogatepass")]
    if isinstance(value, dict):
        return [c for v in value.values() for c in _cells(v)]
    if isinstance(value, list | tuple):
        return [c for v in value for c in _cells(v)]
    return [str(value).encode()]


def files_holding(root: Path, needles: list[bytes], skip=lambda path: False) -> list[str]:
    """Every file under `root` (Parquet files decoded, every cell; others as bytes) that holds one
    of `needles`, as 'path: needle'. `skip(path)` leaves a file out (say which, and why)."""
    import pyarrow.parquet as pq

    found = []
    for path in sorted(p for p in Path(root).rglob("*") if p.is_file() and not p.is_symlink()):
        if skip(path):
            continue
        data = path.read_bytes()
        blobs = [data]
        if data[:4] == b"PAR1":
            blobs += [c for row in pq.read_table(path).to_pylist() for c in _cells(row)]
        for needle in needles:
            if any(needle in b for b in blobs):
                found.append(f"{path}: {needle!r}")
    return found
