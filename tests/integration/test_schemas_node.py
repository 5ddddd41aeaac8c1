"""The topic schemas suffice outside Python (issue #15): ajv, a JSON Schema validator from the npm
registry run by Debian's Node, accepts every valid example message and refuses every dead-letter
example that JSON Schema can detect (`json_schema: true` in streaming/schemas/examples/index.json);
the rest (the paid_fen arithmetic, repeated line ids, events from the future) pass the schema and
are caught by capture, as the schemas' `$comment` says."""

import json
import os
import shutil
import subprocess

import pytest

from streaming.topic_schemas import SCHEMA_DIR, examples
from tests.conftest import REPO

pytestmark = pytest.mark.integration


@pytest.mark.skipif(shutil.which("node") is None and not os.environ.get("CI"),
                    reason="node (Debian package nodejs) is not installed; ./dev test installs it when it can")
def test_ajv_from_npm_judges_the_examples_as_their_index_says():
    from tests.node.ajv import node_modules

    assert shutil.which("node"), "node is required in CI (./dev test installs the Debian package nodejs)"
    proc = subprocess.run(["node", str(REPO / "tests" / "node" / "validate_examples.cjs"), str(SCHEMA_DIR)],
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "NODE_PATH": str(node_modules())})
    assert proc.returncode == 0, proc.stderr
    verdicts = json.loads(proc.stdout)
    assert set(verdicts) == {e["file"] for e in examples()}
    for ex in examples():
        got = verdicts[ex["file"]]
        if ex["expect"] == "valid":
            assert got["valid"], (ex["file"], got["errors"])
        else:
            assert got["valid"] is not ex["json_schema"] or ex["expect"] == "not_json", (ex, got)
            if ex["expect"] == "not_json":
                assert not got["valid"] and got["errors"][0].startswith("not JSON")
