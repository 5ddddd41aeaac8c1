"""Capture health with the broker down answers at once (issue #17: the health sensor took 30 s of
its 60 s interval when the broker was down)."""

import time

from o2p.config import load_config
from streaming.broker import free_port_pair
from streaming.health import capture_health, log_offsets


def test_a_stopped_broker_is_reported_unreachable_in_well_under_a_second(tmp_path):
    cfg_file = tmp_path / "o2p.yaml"
    cfg_file.write_text(f'kafka:\n  bootstrap_servers: "127.0.0.1:{free_port_pair()}"\n')   # nobody listens
    cfg = load_config(cfg_file, home=tmp_path)
    started = time.monotonic()
    assert log_offsets(cfg) is None
    assert time.monotonic() - started < 1.5
    assert capture_health(cfg, None) == []
