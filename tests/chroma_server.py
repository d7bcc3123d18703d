"""A real `chroma run` server for tests: started on a free loopback port, stopped by its own PID."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

PORTS = range(8200, 8220)  # this suite's own range, so parallel helpers' servers never collide


def chroma_executable() -> str:
    exe = Path(sys.executable).parent / "chroma"
    if not exe.exists():
        raise RuntimeError(f"{exe} not found: the `chroma` command ships with the chromadb package; reinstall it")
    return str(exe)


def free_port(ports: range = PORTS) -> int:
    """The first port of `ports` nothing listens on (each server kind has its own range)."""
    for port in ports:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {ports.start}-{ports.stop - 1} for a test server")


@contextmanager
def chroma_server(path: Path, timeout: float = 60.0):
    """Yield the port of a Chroma server persisting into `path`."""
    port = free_port()
    log = open(path.parent / f"chroma-{port}.log", "wb")
    proc = subprocess.Popen(
        [chroma_executable(), "run", "--path", str(path), "--host", "127.0.0.1", "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"chroma run exited with {proc.returncode}; see {log.name}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/heartbeat", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"chroma run did not answer on port {port} within {timeout:.0f} s") from None
                time.sleep(0.2)
        yield port
    finally:
        stop(proc, 10)
        log.close()


def stop(proc: subprocess.Popen, grace: float = 15) -> None:
    """Stop a server started for a test by its own PID: terminate, then kill after `grace` seconds."""
    proc.terminate()
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
