"""A lazy, process-wide Spark session (style.md §12: loading definitions never starts a JVM)."""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

from o2p.config import Config

_lock = threading.Lock()
_session = None
_key = None


def get_spark(cfg: Config):
    """Return the shared SparkSession for `cfg.spark`, starting it on first use."""
    global _session, _key
    key = (cfg.spark.master, tuple(sorted(cfg.spark.conf.items())))
    with _lock:
        if _session is not None and _key == key:
            return _session
        if _session is not None:
            _session.stop()
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")   # bind to loopback, whatever the hostname says
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
        from pyspark.sql import SparkSession

        builder = (
            SparkSession.builder.appName("o2p")
            .master(cfg.spark.master)
            .config("spark.sql.session.timeZone", "UTC")
            .config("spark.sql.sources.partitionOverwriteMode", "dynamic")
            .config("spark.driver.bindAddress", "127.0.0.1")
            .config("spark.driver.host", "127.0.0.1")
            .config("spark.sql.parquet.compression.codec", "zstd")
            .config("spark.ui.showConsoleProgress", "false")
        )
        if "spark.driver.extraJavaOptions" not in cfg.spark.conf:
            log4j = Path(__file__).with_name("spark-log4j2.properties")
            builder = builder.config("spark.driver.extraJavaOptions", f"-Dlog4j2.configurationFile=file:{log4j}")
        for k, v in cfg.spark.conf.items():
            builder = builder.config(k, v)
        _session = builder.getOrCreate()
        _session.sparkContext.setLogLevel("ERROR")
        _key = key
        return _session

