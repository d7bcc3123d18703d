"""A real `assistant serve` for tests: started on a free loopback port, stopped by its own PID."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest

from chroma_server import free_port, stop


@contextmanager
def serving(docs: Path, index: Path, log_dir: Path, ports: range, args: tuple[str, ...] = ()):
    """`assistant serve` on a free port over `docs` and `index` (with more `args`, e.g. `--users FILE`);
    yields its URL, stops it by its PID."""
    port = free_port(ports)
    env = {**os.environ, "ASSISTANT_INDEX_DIR": str(index), "ASSISTANT_DOCS_DIR": str(docs)}
    log = open(log_dir / f"serve-{port}.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "assistant.serve.cli", "serve", "--host", "127.0.0.1", "--port", str(port), *args],
                            env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 240
        while True:
            try:
                urllib.request.urlopen(url, timeout=2)
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"assistant serve did not start; see {log.name}")
                time.sleep(0.5)
        yield url
    finally:
        stop(proc)
        log.close()
