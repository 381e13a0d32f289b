# SPDX-License-Identifier: Apache-2.0
"""pytest fixtures: real sealpostd processes ($SEALPOSTD) on loopback ports,
each with its own data directory under pytest's tmp_path."""
import os
import signal
import socket
import subprocess
import time

import pytest

READY_BOUND_S = 10


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    """One sealpostd: .addr "127.0.0.1:PORT", .server_pub (bytes), .data_dir."""

    def __init__(self, data_dir, port=None, extra=()):
        self.bin = os.environ.get("SEALPOSTD")
        if not self.bin:
            pytest.fail("SEALPOSTD is not set: run through ctest, or point it at build/bin/sealpostd")
        self.data_dir = str(data_dir)
        self.extra = list(extra)
        self.proc = None
        self.start(port)

    def start(self, port=None):
        for _ in range(5):
            self.port = port or _free_port()
            self.addr = "127.0.0.1:%d" % self.port
            log_path = os.path.join(self.data_dir, "sealpostd.log")
            os.makedirs(self.data_dir, exist_ok=True)
            started = _count(log_path, 'msg="sealpostd started"')
            log = open(log_path, "ab")
            self.proc = subprocess.Popen(
                [self.bin, "--listen", self.addr, "--data-dir", self.data_dir,
                 "--metrics-listen", "off", "--log-level", "info"] + self.extra,
                stdin=subprocess.DEVNULL, stdout=log, stderr=log)
            log.close()
            deadline = time.monotonic() + READY_BOUND_S
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    break
                if _count(log_path, 'msg="sealpostd started"') > started and _connects(self.port):
                    with open(os.path.join(self.data_dir, "server.pub")) as f:
                        self.server_pub_hex = f.read().strip()
                    self.server_pub = bytes.fromhex(self.server_pub_hex)
                    return
                time.sleep(0.02)
            self.kill()
            if port:
                break
        with open(os.path.join(self.data_dir, "sealpostd.log"), errors="replace") as f:
            pytest.fail("sealpostd did not start:\n" + f.read()[-4000:])

    def stop(self):
        """SIGTERM (graceful: GoAway shutdown to every client) and wait."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def restart(self):
        """Stop, then start on the same port and data (same key)."""
        self.stop()
        self.start(self.port)


def _count(path, needle):
    try:
        with open(path, errors="replace") as f:
            return sum(needle in line for line in f)
    except FileNotFoundError:
        return 0


def _connects(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture
def broker(tmp_path):
    b = Broker(tmp_path / "broker")
    yield b
    b.stop()
    assert b.proc.returncode == 0, "sealpostd exited %r" % b.proc.returncode


@pytest.fixture
def make_broker(tmp_path):
    """Factory for more brokers (another key, or a fixed port)."""
    made = []

    def make(name, port=None, extra=()):
        b = Broker(tmp_path / name, port, extra)
        made.append(b)
        return b
    yield make
    for b in made:
        b.stop()
