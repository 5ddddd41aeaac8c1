"""A failing gate posts an alert (issue #17): the real attribution job fails its landing gate on a
click older than quality.max_event_age_days, and the run-failure sensor posts a message naming
the job, the day, the check and the failing row to a webhook on loopback (WeCom's shape)."""

import json
import threading
from datetime import date, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from o2p.config import load_config
from streaming.capture.sink import Rec, Sink
from streaming.producer import encode

pytestmark = pytest.mark.integration


class Hook(BaseHTTPRequestHandler):
    received: list = []

    def do_POST(self):   # noqa: N802 - http.server's name
        Hook.received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b'{"errcode": 0}')

    def log_message(self, *args):
        pass


def test_a_failing_gate_posts_an_alert_naming_the_check(spark_cfg, tmp_path, monkeypatch):
    from dagster import DagsterInstance, build_run_status_sensor_context

    from pipelines.definitions import defs
    from pipelines.lib.alerts import alert_on_failure
    from pipelines.lib.partitions import START
    from pipelines.resources import O2PConfig

    shared, _ = spark_cfg   # the session's Spark settings, so its Spark session is reused
    cfg_file = tmp_path / "o2p.yaml"
    cfg_file.write_text('spark:\n  conf:\n    spark.sql.shuffle.partitions: "2"\nalerts:\n  format: wecom\n')
    cfg = load_config(cfg_file, home=tmp_path / "home")
    assert cfg.spark == shared.spark
    day = START   # far more than max_event_age_days (400) before today: the landing gate refuses it
    assert date.fromisoformat(day) < date.today() - timedelta(days=cfg.quality.max_event_age_days)
    sink = Sink(cfg)
    sink.acquire(cfg.kafka.topics.clicks, 0)
    sink.recover(cfg.kafka.topics.clicks, 0)
    click = {"event_id": "old-click-1", "event_type": "click", "occurred_at": f"{day}T10:00:00+08:00",
             "source": "bot", "schema_version": 1, "promoter_id": "P", "share_id": "S", "buyer_id": "B",
             "device_id": "D", "sku_id": "SKU1", "channel": "group"}
    sink.land(cfg.kafka.topics.clicks, 0, [Rec(0, None, encode(click), 0)])
    sink.close()

    server = HTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("O2P_ALERT_WEBHOOK", f"http://127.0.0.1:{server.server_port}/robot/send?key=t")
    resources = {"o2p": O2PConfig(config_path=str(cfg_file), home=str(cfg.home_path))}
    instance = DagsterInstance.ephemeral()
    try:
        result = defs.resolve_job_def("attribution_job").execute_in_process(
            instance=instance, partition_key=day, raise_on_error=False, resources=resources)
        assert not result.success
        context = build_run_status_sensor_context(
            sensor_name="alert_on_failure", dagster_event=result.get_run_failure_event(),
            dagster_instance=instance, dagster_run=result.dagster_run, resources=resources).for_run_failure()
        alert_on_failure(context)
    finally:
        server.shutdown()
    [body] = Hook.received
    assert body["msgtype"] == "text"
    text = body["text"]["content"]
    assert text.startswith(f"o2p: attribution_job failed for {day}"), text
    assert "check attribution/clicks_validated:gx_landing failed: landing: FAILED" in text, text
    assert "old-click-1" in text, text   # the failing row, named by its id
