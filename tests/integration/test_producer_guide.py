"""The README's producer guide runs: each kcat example (one per event type) is published as written,
with idempotence on, to the topics of a scratch config, and every one lands — none is a dead letter."""

import os
import re
import shutil
import subprocess

import pytest

from tests.conftest import REPO, run_o2p
from tests.integration.test_capture import SALT, landed, make_cfg

pytestmark = pytest.mark.integration


def guide_commands() -> list[str]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    block = text.split("**kcat, one example per event type**", 1)[1].split("```", 2)[1]
    return [c.strip() for c in re.split(r"\n(?=  printf)", block.replace("\\\n", " ")) if "kcat -P" in c]


@pytest.mark.skipif(shutil.which("kcat") is None and not os.environ.get("O2P_REQUIRE_KCAT"),
                    reason="kcat (Debian package kcat) is not installed; ./dev test installs it when it can")
def test_every_kcat_example_of_the_producer_guide_lands(broker, tmp_path):
    cfg, cfg_file = make_cfg(broker, tmp_path, partitions=1)
    commands = guide_commands()
    assert len(commands) == 5
    t = cfg.kafka.topics
    for cmd in commands:
        for name, topic in (("o2p.clicks.v1", t.clicks), ("o2p.orders.v1", t.orders), ("o2p.refunds.v1", t.refunds)):
            cmd = cmd.replace(f"-t {name} ", f"-t {topic} ")
        proc = subprocess.run(["bash", "-c", cmd], env={**os.environ, "B": cfg.kafka.bootstrap_servers},
                              capture_output=True, timeout=60)
        assert proc.returncode == 0, (cmd, proc.stderr)
    run_o2p("--config", str(cfg_file), "--home", str(cfg.home_path), "capture", "--until-idle", env=SALT)
    _, event_ids, reasons = landed(cfg)
    assert reasons == {}
    assert sorted(event_ids) == ["bot-o-0003", "st-c-0001", "st-o-0001", "st-o-0002", "st-r-0001"]
