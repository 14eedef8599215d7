"""asha.asterisk against the lab's stand-in Asterisk run on this host: finding
the process (pid file, then the process list), start and stop as idempotent,
verified actions, the CLI and SIP checks and their non-blocking probes.

The stand-in runs from a copy that calls itself by a unique process name, with
its run directory and SIP port (on loopback) private to the test, so that the
stand-ins other tests run in lab nodes (visible in this host's process list)
are never mistaken for it."""

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from asha import asterisk, config

REPO = Path(__file__).resolve().parents[2]
STANDIN = REPO / "lab" / "bin" / "asterisk"


class Log:
    """A logger that keeps (level, message) pairs."""

    def __init__(self):
        self.lines = []

    def _add(self, level, fmt, *args):
        self.lines.append((level, fmt % args if args else fmt))

    def debug(self, *a):
        self._add("debug", *a)

    def info(self, *a):
        self._add("info", *a)

    def warning(self, *a):
        self._add("warning", *a)

    def error(self, *a):
        self._add("error", *a)

    def critical(self, *a):
        self._add("critical", *a)

    def exception(self, *a):
        self._add("error", *a)

    def isEnabledFor(self, level):
        return False

    def text(self):
        return "\n".join(f"{lvl}: {m}" for lvl, m in self.lines)


def free_udp_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_until(what, timeout=5.0, message="condition"):
    end = time.monotonic() + timeout
    while not what():
        assert time.monotonic() < end, f"{message}: not within {timeout} s"
        time.sleep(0.01)


class StandIn:
    """The stand-in Asterisk in a temporary directory: `cli` runs it with the
    private asterisk.conf (what ASTBIN, ASTSTART and ASTSTOP name), `name` is
    its process name, `cfg(**keys)` an asha configuration that points at it."""

    def __init__(self, tmp_path):
        self.dir = tmp_path
        self.name = "ast" + os.urandom(4).hex()
        self.port = free_udp_port()
        self.rundir = tmp_path / "astrun"
        self.pidfile = self.rundir / "asterisk.pid"
        code = STANDIN.read_text().replace('b"asterisk"', repr(self.name.encode()))
        assert repr(self.name.encode()) in code, "the stand-in no longer names itself with prctl"
        self.script = tmp_path / "standin.py"
        self.script.write_text(code)
        conf = tmp_path / "asterisk.conf"
        conf.write_text(f"[directories]\nastrundir => {self.rundir}\nastlogdir => {tmp_path}/astlog\n")
        self.cli = tmp_path / "astcli"
        self.cli.write_text(f"#!/bin/sh\nASTERISK_STANDIN_SIP_PORT={self.port} "
                            f"exec {sys.executable} {self.script} -C {conf} \"$@\"\n")
        self.cli.chmod(0o755)
        self.rundir_asha = tmp_path / "run"

    def cfg(self, **keys):
        values = {
            "HACLUSTERIP": "192.0.2.100/24", "HAPRINODE": os.uname().nodename,
            "HASECNODE": "asha-test-peer", "ASHARUNDIR": str(self.rundir_asha),
            "ASTPROC": self.name, "ASTPIDFILE": str(self.pidfile), "ASTBIN": str(self.cli),
            "ASTSTART": str(self.cli), "ASTSTOP": f"{self.cli} -rx 'core stop now'",
            "ASTSTOPTIMEOUT": "3", "WDSIPURI": f"sip:ping@127.0.0.1:{self.port}",
        }
        values.update({k: str(v) for k, v in keys.items()})
        return config.loads("", "test.conf", overrides=values)

    def start(self, env=None):
        """Start it as an init script would; return its pid."""
        subprocess.run([str(self.cli)], check=True, timeout=10,
                       env=dict(os.environ, **(env or {})))
        wait_until(lambda: self.pid() is not None, message="stand-in pid file")
        wait_until(lambda: (self.rundir / "asterisk.ctl").exists(), message="stand-in socket")
        return self.pid()

    def pid(self):
        try:
            pid = int(self.pidfile.read_text())
        except (OSError, ValueError):
            return None
        return pid if alive(pid) else None

    def kill_all(self):
        for p in psutil.process_iter(["name"]):
            if p.info["name"] == self.name:
                try:
                    p.send_signal(signal.SIGCONT)
                    p.kill()
                except psutil.NoSuchProcess:
                    pass


def alive(pid):
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.fixture
def standin(tmp_path):
    s = StandIn(tmp_path)
    yield s
    s.kill_all()


# ---------------------------------------------------------------- finding it

def test_nothing_running(standin):
    cfg = standin.cfg()
    assert asterisk.find_pid(cfg) is None
    assert not asterisk.is_running(cfg)


def test_found_by_pid_file_then_by_name(standin):
    cfg = standin.cfg()
    pid = standin.start()
    assert asterisk.find_pid(cfg) == pid
    # A pid file naming another live process (this one) is not believed.
    standin.pidfile.write_text(f"{os.getpid()}\n")
    assert asterisk.find_pid(cfg) == pid
    standin.pidfile.write_text("garbage\n")
    assert asterisk.find_pid(cfg) == pid
    standin.pidfile.unlink()
    assert asterisk.find_pid(cfg) == pid
    assert asterisk.started_at(pid) == pytest.approx(psutil.Process(pid).create_time())


def fake_process(tmp_path, name, *args, fork=False):
    """A process whose name is `name` (a script of that name), with args."""
    script = tmp_path / name
    script.write_text(f"#!{sys.executable}\nimport os, time\n" +
                      ("os.fork()\n" if fork else "") + "time.sleep(30)\n")
    script.chmod(0o755)
    p = subprocess.Popen([str(script), *args])
    # The kernel names the process before it sets up its argv: wait for both.
    wait_until(lambda: psutil.Process(p.pid).name() == name and psutil.Process(p.pid).cmdline(),
               message="fake process name and argv")
    return p


def test_remote_console_clients_are_not_the_pbx(standin, tmp_path):
    cfg = standin.cfg()
    procs = [fake_process(tmp_path, standin.name, *a) for a in (["-rx", "core show uptime"],
                                                                ["-r"], ["-rvvv"], ["-x", "x"])]
    try:
        assert asterisk.find_pid(cfg) is None
        server = fake_process(tmp_path, standin.name, "-f", "-U", "asterisk")
        procs.append(server)
        assert asterisk.find_pid(cfg) == server.pid
    finally:
        for p in procs:
            p.kill()
            p.wait()


def test_a_server_with_workers_is_found_by_its_top_process(standin, tmp_path):
    cfg = standin.cfg()
    server = fake_process(tmp_path, standin.name, "-DD", fork=True)
    try:
        wait_until(lambda: len(psutil.Process(server.pid).children()) == 1, message="worker")
        assert asterisk.find_pid(cfg) == server.pid
        worker = psutil.Process(server.pid).children()[0]
        asterisk.kill(server.pid, Log(), "test")
        server.wait()
        wait_until(lambda: not alive(worker.pid), message="the worker killed with its parent")
    finally:
        server.kill()
        server.wait()


def test_a_zombie_is_not_running(standin, tmp_path):
    cfg = standin.cfg()
    server = fake_process(tmp_path, standin.name, "-f")
    server.kill()
    wait_until(lambda: psutil.Process(server.pid).status() == psutil.STATUS_ZOMBIE, message="zombie")
    try:
        assert asterisk.find_pid(cfg) is None
        assert asterisk.wait_gone(server.pid, 0.5)
    finally:
        server.wait()


def test_the_proc_scan_sees_what_psutil_sees(tmp_path):
    """Name, zombie state, parent and argv of every process on this host, as
    asha.asterisk reads /proc and as psutil does (processes that come and go
    while both look are left out)."""
    odd = fake_process(tmp_path, "x (y) z)", "-a b", "")
    zombie = fake_process(tmp_path, "z" + os.urandom(4).hex())
    zombie.kill()
    wait_until(lambda: psutil.Process(zombie.pid).status() == psutil.STATUS_ZOMBIE, message="zombie")
    try:
        compared = 0
        for p in psutil.process_iter():
            try:
                with p.oneshot():
                    want = (p.name(), p.status() == psutil.STATUS_ZOMBIE, p.ppid())
                    argv = p.cmdline() if not want[1] else None
            except (psutil.NoSuchProcess, psutil.ZombieProcess):
                continue
            st = asterisk._stat(p.pid)
            if st is None or not psutil.pid_exists(p.pid):
                continue
            assert (asterisk._name(p.pid, st[0]), st[1] == "Z", st[2]) == want, p
            if argv is not None:
                assert asterisk._cmdline(p.pid) == argv, p
            compared += 1
        assert compared > 3
        assert asterisk._name(odd.pid, asterisk._stat(odd.pid)[0]) == "x (y) z)"
        assert asterisk._cmdline(odd.pid)[2:] == ["-a b", ""]
        assert asterisk._stat(zombie.pid)[1] == "Z"
    finally:
        odd.kill()
        odd.wait()
        zombie.wait()


# ---------------------------------------------------------------- start and stop

def test_start_stop_idempotent(standin):
    cfg, log = standin.cfg(), Log()
    assert asterisk.start(cfg, log, timeout=10)
    pid = standin.pid()
    assert pid and asterisk.find_pid(cfg) == pid
    assert f"Asterisk started (pid {pid})" in log.text()
    assert asterisk.start(cfg, log, timeout=10)
    assert f"Asterisk already running (pid {pid})" in log.text()
    assert standin.pid() == pid
    assert asterisk.stop(cfg, log)
    assert not alive(pid) and asterisk.find_pid(cfg) is None
    assert "Asterisk stopped in" in log.text() and "killed" not in log.text()
    assert asterisk.stop(cfg, log)
    assert "Asterisk not running, nothing to stop" in log.text()


def test_start_returns_while_the_daemon_keeps_the_output_open(standin):
    # `-f` keeps the stand-in in the foreground with the command's stdout and
    # stderr: start() must not wait for them to close.
    cfg, log = standin.cfg(ASTSTART=f"{standin.cli} -f &"), Log()
    assert asterisk.start(cfg, log, timeout=5), log.text()
    assert "Asterisk started" in log.text()


def test_start_failures(standin):
    log = Log()
    assert not asterisk.start(standin.cfg(ASTSTART="echo no licence >&2; exit 3"), log, timeout=2)
    assert "error: ASTSTART (echo no licence >&2; exit 3) failed: exit 3: no licence" in log.text()
    log = Log()
    assert not asterisk.start(standin.cfg(ASTSTART="true"), log, timeout=0.3)
    assert f"ASTSTART (true) returned but no {standin.name} process appeared within 0.3 s" in log.text()
    log = Log()
    assert not asterisk.start(standin.cfg(ASTSTART="sleep 5"), log, timeout=0.3)
    assert "ASTSTART (sleep 5) failed: did not return within 0.3 s" in log.text()


def test_stop_kills_a_hung_asterisk(standin):
    cfg, log = standin.cfg(ASTSTOPTIMEOUT="0.5"), Log()
    pid = standin.start()
    os.kill(pid, signal.SIGSTOP)
    assert asterisk.stop(cfg, log)
    assert not alive(pid)
    assert f"warning: Asterisk (pid {pid}) killed: still there 0.5 s after ASTSTOP" in log.text()


def test_stop_with_a_failing_aststop_still_stops(standin):
    cfg, log = standin.cfg(ASTSTOP="exit 2", ASTSTOPTIMEOUT="0.3"), Log()
    pid = standin.start()
    assert asterisk.stop(cfg, log)
    assert "warning: ASTSTOP (exit 2): exit 2: " in log.text()
    assert f"Asterisk (pid {pid}) killed" in log.text()


# ---------------------------------------------------------------- checks

def test_checks_of_a_running_frozen_and_stopped_asterisk(standin):
    cfg = standin.cfg()
    pid = standin.start()
    assert asterisk.cli_check(cfg, 2)
    assert asterisk.sip_check(cfg, 1)
    os.kill(pid, signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        assert not asterisk.sip_check(cfg, 0.3)
        assert not asterisk.cli_check(cfg, 0.3)
        assert time.monotonic() - t0 < 3           # bounded (the -rx child is killed, not waited for)
    finally:
        os.kill(pid, signal.SIGCONT)
    assert asterisk.sip_check(cfg, 1)
    assert asterisk.stop(cfg, Log())
    probe = asterisk.SipProbe(cfg)
    assert not asterisk.wait_probe(probe, 1)
    assert "Connection refused" in probe.why
    probe = asterisk.CliProbe(cfg)
    assert not asterisk.wait_probe(probe, 2)
    assert probe.why.startswith("exit 1: Unable to connect to remote asterisk")


def test_cli_probe_missing_binary(standin):
    probe = asterisk.CliProbe(standin.cfg(ASTBIN="/nonexistent/asterisk"))
    assert probe.result is False and probe.why == "/nonexistent/asterisk: No such file or directory"
    probe.close()


class FakeSip:
    """A UDP server on loopback that answers each request as told."""

    def __init__(self, answer):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.answer = answer
        self.requests = []
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        self.sock.settimeout(5)
        try:
            data, peer = self.sock.recvfrom(65535)
        except OSError:
            return
        self.requests.append(data.decode())
        callid = [ln for ln in data.decode().split("\r\n") if ln.startswith("Call-ID:")][0]
        for text in self.answer(callid):
            self.sock.sendto(text.encode(), peer)

    def close(self):
        self.thread.join(6)
        self.sock.close()


@pytest.mark.parametrize("answers, ok", [
    (lambda cid: [f"SIP/2.0 200 OK\r\n{cid}\r\n\r\n"], True),
    (lambda cid: [f"SIP/2.0 503 Service Unavailable\r\n{cid}\r\n\r\n"], True),
    (lambda cid: ["SIP/2.0 200 OK\r\nCall-ID: someone-else\r\n\r\n",
                  f"SIP/2.0 404 Not Found\r\n{cid}\r\n\r\n"], True),
    (lambda cid: ["SIP/2.0 200 OK\r\nCall-ID: someone-else\r\n\r\n"], False),
    (lambda cid: [f"OPTIONS sip:x SIP/2.0\r\n{cid}\r\n\r\n"], False),
    (lambda cid: [], False),
])
def test_sip_any_answer_to_our_request(standin, answers, ok):
    server = FakeSip(answers)
    try:
        cfg = standin.cfg(WDSIPURI=f"sip:127.0.0.1:{server.port}")
        assert asterisk.sip_check(cfg, 0.5) is ok
    finally:
        server.close()
    request = server.requests[0]
    assert request.startswith(f"OPTIONS sip:asha@127.0.0.1:{server.port} SIP/2.0\r\n")
    for header in ("Via: SIP/2.0/UDP 127.0.0.1:", "Call-ID: ", "CSeq: 1 OPTIONS", "Max-Forwards: 70"):
        assert header in request


def test_each_sip_request_has_its_own_call_id_and_branch(standin):
    ids = set()
    for _ in range(3):
        server = FakeSip(lambda cid: [])
        asterisk.sip_check(standin.cfg(WDSIPURI=f"127.0.0.1:{server.port}"), 0.05)
        server.close()
        lines = server.requests[0].split("\r\n")
        ids.add(tuple(ln for ln in lines if ln.startswith(("Call-ID:", "Via:"))))
    assert len(ids) == 3


@pytest.mark.parametrize("uri, target", [
    ("", ("192.0.2.100", 5060)),
    ("sip:ping@192.0.2.7:5070", ("192.0.2.7", 5070)),
    ("sip:192.0.2.7", ("192.0.2.7", 5060)),
    ("192.0.2.7:5080", ("192.0.2.7", 5080)),
    ("sip:ping@[2001:db8::7]:5062;transport=udp", ("2001:db8::7", 5062)),
    ("sips:[2001:db8::7]", ("2001:db8::7", 5060)),
])
def test_sip_target(standin, uri, target):
    assert asterisk.sip_target(standin.cfg(WDSIPURI=uri)) == target
