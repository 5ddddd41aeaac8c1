"""Great Expectations 1.x suites, one per pipeline stage, as code, and the thin runner that
turns a validation into a check result that *always* exists (an exception is a failed check)."""
