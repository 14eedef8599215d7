"""asha-watchdog without the lab: the stand-in Asterisk on this host under a
private name, asha-hb played by a state file and a control socket in a temp
directory, clocks the test moves. Each decision of the watchdog's table is
driven here (watch, fail over, restart, budget, flapping, manual stop, the
standby, roles in motion, respawns); the real executable runs for the loop:
pidfd, hang rounds, signals, the lock, --once and a bad configuration."""

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

from asha import asterisk, exits, state, watchdog

from .test_asterisk import Log, StandIn, alive, wait_until

REPO = Path(__file__).resolve().parents[2]
NODE = os.uname().nodename
PEER = "asha-test-peer"


class FakeHb:
    """asha-hb as the watchdog sees it: hb.state, and a control socket that
    records requests and, like asha-hb, goes 'releasing' on a failover."""

    def __init__(self, cfg, answer="OK handing over to asha-test-peer"):
        self.cfg, self.answer, self.requests = cfg, answer, []
        self.values = {}
        os.makedirs(cfg.rundir, exist_ok=True)
        self.path = state.path(cfg, state.HB_CONTROL)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(self.path)
        self.sock.listen(4)
        self.sock.settimeout(0.1)
        self.running = True
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def set(self, **values):
        base = {"NODE": NODE, "PID": os.getpid(), "PEER": PEER, "PEERSTATE": "standby",
                "ROLE": "active", "FAILOVERS": ""}
        self.values = {**base, **self.values, **values}
        state.write(state.path(self.cfg, state.HB_STATE), self.values)

    def serve(self):
        while self.running:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            with conn:
                data = b""
                while not data.endswith(b"\n"):
                    chunk = conn.recv(1024)
                    if not chunk:
                        break
                    data += chunk
                line = data.decode().strip()
                self.requests.append(line)
                if line.startswith("failover") and self.answer.startswith("OK"):
                    self.set(ROLE="releasing")
                conn.sendall(self.answer.encode() + b"\n")

    def close(self):
        self.running = False
        self.thread.join(2)
        self.sock.close()
        try:
            os.unlink(self.path)
        except OSError:
            pass


class Clock:
    def __init__(self, t):
        self.t = t

    def __call__(self):
        return self.t


@pytest.fixture
def standin(tmp_path):
    s = StandIn(tmp_path)
    yield s
    s.kill_all()


@pytest.fixture
def hb(standin):
    h = FakeHb(standin.cfg())
    yield h
    h.close()


def make(standin, log=None, act=True, wall=None, clock=None, **keys):
    cfg = standin.cfg(**keys)
    return watchdog.Watchdog(cfg, log or Log(), act=act, clock=clock or time.monotonic,
                             wall=wall or time.time)


def kill9(pid):
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not alive(pid), message="killed")


# ---------------------------------------------------------------- the active node

def test_active_and_running_is_watched(standin, hb):
    hb.set(ROLE="active")
    pid = standin.start()
    wd = make(standin)
    assert wd.check(time.monotonic()) == watchdog.OK
    assert wd.pid == pid and wd.pidfd is not None
    assert hb.requests == []
    assert f"watching Asterisk (pid {pid})" in wd.log.text()
    saved = state.read(state.path(wd.cfg, state.WATCHDOG_STATE))
    assert (saved["ROLE"], saved["ASTERISK"], saved["STATUS"]) == ("active", str(pid), "ok")


def test_crash_fails_over_at_once(standin, hb):
    hb.set(ROLE="active", PEERSTATE="standby")
    pid = standin.start()
    wd = make(standin)
    wd.check(time.monotonic())
    kill9(pid)
    assert wd.gone(time.monotonic()) == watchdog.DEAD
    assert hb.requests == [f"failover Asterisk died on {NODE}"]
    text = wd.log.text()
    assert f"warning: Asterisk (pid {pid}) has exited" in text
    assert f"error: Asterisk died (its pid file is left behind) on {NODE}, the active node" in text
    assert f"asked asha-hb to fail over to {PEER}: handing over to {PEER}" in text
    assert not asterisk.is_running(wd.cfg)
    # asha-hb now releases: the next looks touch nothing.
    assert wd.check(time.monotonic()) == watchdog.OK
    assert len(hb.requests) == 1


def test_stopped_by_hand_is_a_manual_failover_even_with_attemptrestart(standin, hb):
    hb.set(ROLE="active")
    standin.start()
    wd = make(standin, ATTEMPTRESTART="YES")
    wd.check(time.monotonic())
    subprocess.run([str(standin.cli), "-rx", "core stop now"], check=True)
    wait_until(lambda: not asterisk.is_running(wd.cfg), message="stopped")
    wd.gone(time.monotonic())
    assert hb.requests == [f"failover Asterisk was stopped on {NODE}"]
    assert "restarting" not in wd.log.text()
    assert not asterisk.is_running(wd.cfg)


def test_attemptrestart_budget_then_failover(standin, hb):
    hb.set(ROLE="active")
    wall = Clock(1_000_000.0)
    wd = make(standin, wall=wall, ATTEMPTRESTART="YES", WDRESTARTS="2", WDRESTARTWINDOW="100")
    pids = [standin.start()]
    wd.check(time.monotonic())
    for n in (1, 2):
        kill9(pids[-1])
        wall.t += 10
        wd.gone(time.monotonic())
        pids.append(wd.pid)
        assert pids[-1] not in (None, pids[-2]) and alive(pids[-1])
        assert f"restarting Asterisk on {NODE}: ATTEMPTRESTART, restart {n} of 2 within 100 s" \
            in wd.log.text()
    assert hb.requests == []
    # A respawned watchdog remembers the two restarts: the next death fails over.
    wd2 = make(standin, wall=wall, ATTEMPTRESTART="YES", WDRESTARTS="2", WDRESTARTWINDOW="100")
    assert wd2.restarts == wd.restarts
    wd2.check(time.monotonic())
    kill9(pids[-1])
    wall.t += 10
    wd2.gone(time.monotonic())
    assert hb.requests == [f"failover Asterisk died on {NODE}"]
    assert "Asterisk restarted 2 times within 100 s (WDRESTARTS): failing over" in wd2.log.text()
    assert not asterisk.is_running(wd2.cfg)
    # Once the window has passed the budget is whole again.
    hb.set(ROLE="active")
    wall.t += 200
    wd2.check(time.monotonic())
    assert asterisk.is_running(wd2.cfg) and len(hb.requests) == 1


def test_flapping_stops_failing_over_alerts_once_and_keeps_restarting(standin, hb, tmp_path):
    alerts = tmp_path / "alerts"
    wall = Clock(2_000_000.0)
    clock = Clock(500.0)
    hb.set(ROLE="active", FAILOVERS=f"{wall.t - 800:.3f} {wall.t - 300:.3f} {wall.t - 100:.3f}")
    keys = dict(ALERTCMD=f"echo >>{alerts}", WDMAXFAILOVERS="3", WDFAILOVERWINDOW="900")
    wd = make(standin, wall=wall, clock=clock, **keys)
    standin.start()
    wd.check(clock())
    kill9(wd.pid)
    wd.gone(clock())
    assert hb.requests == []
    pid = wd.pid
    assert pid and alive(pid)
    wait_until(lambda: alerts.exists(), message="ALERTCMD ran")
    reason = ("Asterisk keeps failing: 3 failovers within 900 s (WDMAXFAILOVERS 3); asha stops "
              f"failing over and keeps restarting it on {NODE}")
    assert alerts.read_text() == reason + "\n"
    assert f"critical: {reason}" in wd.log.text()
    # It fails again at once: the next restart waits a second, then two.
    kill9(pid)
    wd.gone(clock())
    assert wd.pid is None and "restarting" not in wd.log.lines[-1][1]
    clock.t += 1.0
    wd.check(clock())
    assert wd.pid is not None
    kill9(wd.pid)
    wd.gone(clock())
    clock.t += 1.0
    wd.check(clock())
    assert wd.pid is None
    clock.t += 1.0
    wd.check(clock())
    assert wd.pid is not None
    # A respawned watchdog does not alert again; nobody asked asha-hb for anything.
    wd2 = make(standin, wall=wall, clock=clock, **keys)
    kill9(wd.pid)
    wd2.check(clock())
    assert wd2.pid is not None and hb.requests == []
    time.sleep(0.3)
    assert alerts.read_text() == reason + "\n"
    # When the failovers have left the window, failing over is allowed again.
    wall.t += 1000
    kill9(wd2.pid)
    wd2.check(clock())
    assert hb.requests == [f"failover Asterisk died on {NODE}"]


def test_peer_not_standby_crash_restarts_here_and_stop_stays(standin, hb):
    hb.set(ROLE="active", PEERSTATE="dead")
    clock = Clock(100.0)
    wd = make(standin, clock=clock)
    pid = standin.start()
    wd.check(clock())
    kill9(pid)
    wd.gone(clock())
    assert hb.requests == []
    assert f"cannot fail over: {PEER} is dead" in wd.log.text()
    assert f"restarting Asterisk on {NODE}: {PEER} cannot take over (dead)" in wd.log.text()
    assert wd.pid and alive(wd.pid)
    # Stopped on purpose with nobody to hand over to: left stopped, said once.
    subprocess.run([str(standin.cli), "-rx", "core stop now"], check=True)
    wait_until(lambda: not asterisk.is_running(wd.cfg), message="stopped")
    wd.gone(clock())
    for _ in range(3):
        clock.t += 100
        wd.check(clock())
    assert not asterisk.is_running(wd.cfg)
    assert wd.log.text().count(f"Asterisk stays stopped on {NODE}; start it with") == 1


def test_failover_refused_by_hb_restarts_a_crashed_asterisk(standin, hb):
    hb.answer = "ERR asha-test-peer is not alive; keeping the resources here"
    hb.set(ROLE="active")
    wd = make(standin)
    pid = standin.start()
    wd.check(time.monotonic())
    kill9(pid)
    wd.gone(time.monotonic())
    assert len(hb.requests) == 1
    assert "asha-hb did not fail over: asha-test-peer is not alive; keeping the resources here" \
        in wd.log.text()
    assert wd.pid and alive(wd.pid)


def test_no_control_socket_asks_by_sigusr1(standin, hb, tmp_path):
    flag = tmp_path / "usr1"
    fake = subprocess.Popen([sys.executable, "-c", f"""
import signal, time
signal.signal(signal.SIGUSR1, lambda *a: open({str(flag)!r}, "w").write("1"))
open({str(flag)!r} + ".ready", "w").close()
time.sleep(30)
"""])
    try:
        wait_until(lambda: Path(str(flag) + ".ready").exists(), message="fake asha-hb ready")
        hb.close()
        hb.set(ROLE="active", PID=fake.pid)
        wd = make(standin)
        pid = standin.start()
        wd.check(time.monotonic())
        kill9(pid)
        wd.gone(time.monotonic())
        wait_until(flag.exists, message="SIGUSR1 received")
        assert f"asked asha-hb (pid {fake.pid}) by SIGUSR1 to fail over to {PEER}" in wd.log.text()
    finally:
        fake.kill()
        fake.wait()


@pytest.mark.parametrize("role", ["taking", "releasing", "waiting", "stopped", "down"])
def test_roles_in_motion_touch_nothing(standin, hb, role):
    hb.set(ROLE=role, PEERSTATE="active")
    if role == "down":
        hb.set(PID=999999999)          # asha-hb's pid gone: read_hb says down
    wd = make(standin, ATTEMPTRESTART="YES")
    assert wd.check(time.monotonic()) == watchdog.OK
    assert not asterisk.is_running(wd.cfg) and hb.requests == []
    pid = standin.start()
    assert wd.check(time.monotonic()) == watchdog.OK
    assert standin.pid() == pid and wd.pid is None
    assert "Asterisk" not in " ".join(m for lvl, m in wd.log.lines if lvl != "info")


def test_standby_stops_an_asterisk_started_by_hand(standin, hb):
    hb.set(ROLE="standby", PEERSTATE="active")
    pid = standin.start()
    wd = make(standin)
    assert wd.check(time.monotonic()) == watchdog.ROGUE
    assert not alive(pid)
    assert f"error: Asterisk (pid {pid}) is running on {NODE}, the standby, while {PEER} is " \
           "active: stopping it" in wd.log.text()
    assert wd.check(time.monotonic()) == watchdog.OK


@pytest.mark.parametrize("peer", ["dead", "unknown", "standby", "taking"])
def test_standby_leaves_asterisk_alone_unless_the_peer_is_active(standin, hb, peer):
    hb.set(ROLE="standby", PEERSTATE=peer)
    pid = standin.start()
    wd = make(standin)
    assert wd.check(time.monotonic()) == watchdog.OK
    assert alive(pid)


def test_looking_only_acts_on_nothing(standin, hb):
    hb.set(ROLE="standby", PEERSTATE="active")
    pid = standin.start()
    wd = make(standin, act=False)
    assert wd.check(time.monotonic()) == watchdog.ROGUE
    assert alive(pid) and "it must be stopped" in wd.log.text()
    hb.set(ROLE="active")
    wd.check(time.monotonic())
    kill9(pid)
    assert wd.gone(time.monotonic()) == watchdog.DEAD
    assert hb.requests == [] and not asterisk.is_running(wd.cfg)
    assert not os.path.exists(state.path(wd.cfg, state.WATCHDOG_STATE))


# ---------------------------------------------------------------- hangs

def test_hang_counts_after_the_first_answer_or_the_grace(standin, hb):
    hb.set(ROLE="active")
    wall = Clock(time.time())
    wd = make(standin, wall=wall, WDHANGCOUNT="3", WDSTARTGRACE="60")
    pid = standin.start()
    wd.check(time.monotonic())
    # Never answered and young: failures do not count.
    for _ in range(5):
        wd.hang_result(time.monotonic(), False, "SIP no answer within 0.3 s")
    assert wd.hang_fails == 0 and alive(pid)
    wd.hang_result(time.monotonic(), True, "")
    wd.hang_result(time.monotonic(), False, "SIP no answer within 0.3 s")
    wd.hang_result(time.monotonic(), True, "")
    assert wd.hang_fails == 0 and "answers again after 1 failed hang check" in wd.log.text()
    wd.hang_result(time.monotonic(), False, "x")
    wd.hang_result(time.monotonic(), False, "x")
    assert alive(pid) and hb.requests == []
    wd.hang_result(time.monotonic(), False, "SIP no answer within 0.3 s; CLI no answer within 0.3 s")
    assert not alive(pid)
    text = wd.log.text()
    assert f"warning: hang check 3 of 3 failed for Asterisk (pid {pid}): SIP no answer within " \
           "0.3 s; CLI no answer within 0.3 s" in text
    assert f"error: Asterisk (pid {pid}) is hung: 3 hang checks in a row failed" in text
    assert f"Asterisk (pid {pid}) killed: hung" in text
    assert hb.requests == [f"failover Asterisk was hung and has been killed on {NODE}"]
    # An old process that never answered counts at once.
    hb.set(ROLE="active")
    pid = standin.start()
    wd.check(time.monotonic())
    wall.t += 61
    for _ in range(3):
        wd.hang_result(time.monotonic(), False, "x")
    assert not alive(pid) and len(hb.requests) == 2


def test_hang_is_not_acted_on_when_the_role_has_moved(standin, hb):
    hb.set(ROLE="active")
    wd = make(standin, WDHANGCOUNT="1", WDSTARTGRACE="0")
    pid = standin.start()
    wd.check(time.monotonic())
    hb.set(ROLE="releasing")
    wd.hang_result(time.monotonic(), False, "x")
    assert alive(pid) and wd.pid is None


def run_round(cfg, mode):
    rnd = watchdog.HangRound(cfg, time.monotonic(), mode)
    try:
        import select
        verdict = None
        end = time.monotonic() + 5
        while verdict is None and time.monotonic() < end:
            select.select(rnd.fds(), [], [], max(0.0, rnd.wake_at() - time.monotonic()))
            verdict = rnd.step(time.monotonic())
        return verdict, rnd.cli is not None, rnd.why()
    finally:
        rnd.close()


def test_hang_rounds(standin):
    cfg = standin.cfg(WDHANGTIMEOUT="0.3", WDHANGINTERVAL="0.4")
    pid = standin.start()
    assert run_round(cfg, "BOTH") == (True, False, "")      # SIP answered: no CLI process
    assert run_round(cfg, "SIP")[0] is True
    assert run_round(cfg, "CLI")[:2] == (True, True)
    os.kill(pid, signal.SIGSTOP)
    try:
        assert run_round(cfg, "BOTH") == (False, True, "SIP no answer within 0.3 s; "
                                                        "CLI no answer within 0.3 s")
        assert run_round(cfg, "SIP") == (False, False, "SIP no answer within 0.3 s")
        assert run_round(cfg, "CLI") == (False, True, "CLI no answer within 0.3 s")
    finally:
        os.kill(pid, signal.SIGCONT)
    kill9(pid)
    # No SIP at all (refused at once), the CLI answers: BOTH is fine, SIP is not.
    standin.start(env={"ASTERISK_STANDIN_NO_SIP": "1"})
    verdict, cli_asked, why = run_round(cfg, "BOTH")
    assert (verdict, cli_asked) == (True, True)
    verdict, _, why = run_round(cfg, "SIP")
    assert verdict is False and why == f"SIP 127.0.0.1 port {standin.port}: Connection refused"


# ---------------------------------------------------------------- the executable

def write_conf(standin, tmp_path, **keys):
    cfg = standin.cfg(**keys)
    lines = [f"{k}={v}" for k, v in {
        "HACLUSTERIP": "192.0.2.100/24", "HAPRINODE": NODE, "HASECNODE": PEER,
        "ASHARUNDIR": cfg.rundir, "ASHALOG": str(tmp_path / "asha.log"),
        "ASTPROC": cfg.ASTPROC, "ASTPIDFILE": cfg.ASTPIDFILE, "ASTBIN": cfg.ASTBIN,
        "ASTSTART": cfg.ASTSTART, "ASTSTOP": f"\"{cfg.ASTSTOP}\"", "ASTSTOPTIMEOUT": "3",
        "WDSIPURI": cfg.WDSIPURI, **{k: v for k, v in keys.items()}}.items()]
    path = tmp_path / "asha.conf"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def wd_cmd(conf, *args):
    return [sys.executable, str(REPO / "bin" / "asha-watchdog"), "-c", conf, *args]


def log_of(tmp_path):
    try:
        return (tmp_path / "asha.log").read_text()
    except FileNotFoundError:
        return ""


@pytest.fixture
def daemon(tmp_path):
    procs = []

    def start(conf, **kw):
        p = subprocess.Popen(wd_cmd(conf), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, **kw)
        procs.append(p)
        return p
    yield start
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.communicate()


def test_daemon_sees_a_kill_at_once_without_waiting_for_a_scan(standin, hb, tmp_path, daemon):
    hb.set(ROLE="active")
    conf = write_conf(standin, tmp_path, WDINTERVAL="60")
    pid = standin.start()
    wd = daemon(conf)
    wait_until(lambda: f"watching Asterisk (pid {pid})" in log_of(tmp_path), message=log_of(tmp_path))
    os.kill(pid, signal.SIGKILL)
    # The next scan is a minute away: only the pidfd can tell it this soon.
    wait_until(lambda: hb.requests, timeout=10, message="failover asked\n" + log_of(tmp_path))
    assert hb.requests == [f"failover Asterisk died on {NODE}"]
    assert f"WARNING: Asterisk (pid {pid}) has exited" in log_of(tmp_path)
    wd.send_signal(signal.SIGTERM)
    assert wd.wait(5) == 0
    assert "asha-watchdog stopped" in log_of(tmp_path)


def test_daemon_kills_a_frozen_asterisk_and_fails_over(standin, hb, tmp_path, daemon):
    hb.set(ROLE="active")
    conf = write_conf(standin, tmp_path, ASTHANGCHECK="BOTH")
    pid = standin.start()
    daemon(conf)
    wait_until(lambda: f"watching Asterisk (pid {pid})" in log_of(tmp_path), message=log_of(tmp_path))
    time.sleep(0.5)                            # a hang round or two answered
    os.kill(pid, signal.SIGSTOP)
    wait_until(lambda: hb.requests, timeout=10, message="failover asked\n" + log_of(tmp_path))
    assert not alive(pid)
    log = log_of(tmp_path)
    assert f"Asterisk (pid {pid}) is hung: 3 hang checks in a row failed" in log
    assert hb.requests == [f"failover Asterisk was hung and has been killed on {NODE}"]


def test_daemon_signals_reload_and_status(standin, hb, tmp_path, daemon):
    hb.set(ROLE="standby", PEERSTATE="active")
    conf = write_conf(standin, tmp_path)
    wd = daemon(conf)
    wait_until(lambda: f"{NODE} is standby (peer active)" in log_of(tmp_path), message=log_of(tmp_path))
    wd.send_signal(signal.SIGUSR1)
    wait_until(lambda: f"status: {NODE} standby (peer active), no Asterisk watched, ok" in log_of(tmp_path),
               message=log_of(tmp_path))
    good = Path(conf).read_text()
    Path(conf).write_text(good + "WDHANGCOUNT=zero\n")
    wd.send_signal(signal.SIGHUP)
    wait_until(lambda: "reload: configuration has errors; keeping the running one" in log_of(tmp_path),
               message=log_of(tmp_path))
    assert "WDHANGCOUNT must be a whole number from 1 to 100, not 'zero'" in log_of(tmp_path)
    Path(conf).write_text(good)
    wd.send_signal(signal.SIGHUP)
    wait_until(lambda: f"reload: configuration {conf} loaded" in log_of(tmp_path), message=log_of(tmp_path))
    # Started by hand on the standby: stopped at the next scan.
    pid = standin.start()
    wait_until(lambda: not alive(pid), timeout=10, message=log_of(tmp_path))
    assert f"Asterisk (pid {pid}) is running on {NODE}, the standby" in log_of(tmp_path)
    wd.send_signal(signal.SIGTERM)
    assert wd.wait(5) == 0


def test_second_daemon_waits_for_the_lock(standin, hb, tmp_path, daemon):
    hb.set(ROLE="standby")
    conf = write_conf(standin, tmp_path)
    first = daemon(conf)
    wait_until(lambda: "asha-watchdog starting" in log_of(tmp_path), message=log_of(tmp_path))
    second = daemon(conf)
    wait_until(lambda: f"another asha-watchdog (pid {first.pid}) is running; waiting for it to go"
               in log_of(tmp_path), message=log_of(tmp_path))
    assert second.poll() is None
    first.send_signal(signal.SIGTERM)
    assert first.wait(5) == 0
    wait_until(lambda: log_of(tmp_path).count("asha-watchdog starting") == 2, timeout=10,
               message=log_of(tmp_path))


def test_bad_config_waits_before_exiting_78(tmp_path, daemon):
    conf = tmp_path / "bad.conf"
    conf.write_text("HACLUSTERIP=192.0.2.100/24\nHAPRINODE=x\nHASECNODE=y\nWDHANGCOUNT=0\n")
    p = daemon(str(conf))
    time.sleep(1.0)
    assert p.poll() is None                    # not at once: init would respawn it at once
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=5)
    assert p.returncode == exits.CONFIG
    assert f"{conf}:4: WDHANGCOUNT must be a whole number from 1 to 100, not '0'" in err
    assert "configuration has errors; exiting in 15 s (status 78)" in err


def test_bad_config_on_a_terminal_exits_at_once(tmp_path):
    import pty
    conf = tmp_path / "bad.conf"
    conf.write_text("HACLUSTERIP=192.0.2.100/24\nHAPRINODE=x\nHASECNODE=y\n")
    master, slave = pty.openpty()
    try:
        p = subprocess.run(wd_cmd(str(conf)), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=slave, timeout=10)
        assert p.returncode == exits.CONFIG
        err = os.read(master, 4096).decode()
    finally:
        os.close(master)
        os.close(slave)
    assert f"this node is {NODE!r}, neither HAPRINODE ('x') nor HASECNODE ('y')" in err


def test_once(standin, hb, tmp_path):
    hb.set(ROLE="active")
    conf = write_conf(standin, tmp_path)
    standin.start()
    # The stand-in has answered nothing yet in this run: it must be old enough to be judged.
    p = subprocess.run(wd_cmd(conf, "--once"), capture_output=True, text=True, timeout=30)
    assert (p.returncode, p.stdout, p.stderr) == (0, "", "")
    pid = standin.pid()
    os.kill(pid, signal.SIGSTOP)
    try:
        p = subprocess.run(wd_cmd(conf + "x", "--once"), capture_output=True, text=True, timeout=30)
        assert p.returncode == exits.CONFIG
        Path(conf).write_text(Path(conf).read_text() + "WDSTARTGRACE=0\n")
        p = subprocess.run(wd_cmd(conf, "--once"), capture_output=True, text=True, timeout=30)
    finally:
        if alive(pid):
            os.kill(pid, signal.SIGCONT)
    assert p.returncode == exits.FAIL, p.stderr
    assert f"Asterisk (pid {pid}) is hung: 3 hang checks in a row failed" in p.stderr
    assert not alive(pid)
    assert hb.requests == [f"failover Asterisk was hung and has been killed on {NODE}"]
    # Dead, and asha-hb releasing: nothing to do, exit 0.
    p = subprocess.run(wd_cmd(conf, "--once"), capture_output=True, text=True, timeout=30)
    assert (p.returncode, p.stderr) == (0, "")


def test_once_beside_a_running_daemon_only_looks(standin, hb, tmp_path, daemon):
    hb.set(ROLE="standby", PEERSTATE="active")
    conf = write_conf(standin, tmp_path, WDINTERVAL="60")
    wd = daemon(conf)
    wait_until(lambda: "asha-watchdog starting" in log_of(tmp_path), message=log_of(tmp_path))
    pid = standin.start()
    p = subprocess.run(wd_cmd(conf, "--once", "-v"), capture_output=True, text=True, timeout=30)
    assert p.returncode == exits.FAIL
    assert f"asha-watchdog (pid {wd.pid}) is running and acts; this run only looks" in p.stderr
    assert "it must be stopped" in p.stderr
    assert alive(pid)


def test_usage_error():
    p = subprocess.run([sys.executable, str(REPO / "bin" / "asha-watchdog"), "--twice"],
                       capture_output=True, text=True, timeout=10)
    assert p.returncode == exits.USAGE
