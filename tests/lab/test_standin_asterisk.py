"""The stand-in Asterisk (lab/bin/asterisk) honours the contract asha relies on:
daemon, pid file, control socket and -rx, process name, SIP OPTIONS answered
from the asked address, silence when frozen, clean stops and the test hooks."""

import os
import re
import signal
import subprocess
import sys
import time

import pytest

from asha_lab import STANDIN_ASTERISK as AST, sip_options

pytestmark = pytest.mark.lab

PIDFILE = "/var/run/asterisk/asterisk.pid"
CTL = "/var/run/asterisk/asterisk.ctl"
NOT_RUNNING = "Unable to connect to remote asterisk (does /var/run/asterisk/asterisk.ctl exist?)\n"
UPTIME = re.compile(r"System uptime: (\d+ seconds? )\nLast reload: (\d+ seconds? )\n")


def wait_until(what, timeout=5.0, message="condition"):
    end = time.monotonic() + timeout
    while not what():
        assert time.monotonic() < end, f"{message}: not within {timeout} s"
        time.sleep(0.02)


def start(node, env=None, args=()):
    """Start the stand-in as an init script would (it forks away); return its pid in node."""
    p = node.run([AST, *args], env=env, timeout=5)
    assert p.returncode == 0 and p.stdout == "", p
    wait_until(lambda: node.exists(PIDFILE) and node.exists(CTL), message="pid file and socket")
    return int(node.read_file(PIDFILE))


def log_starts(node):
    """How many starts the node's /var/log/asterisk/messages records."""
    try:
        log = node.read_file("/var/log/asterisk/messages")
    except FileNotFoundError:
        return 0
    return len(re.findall(r"NOTICE\[\d+\] asterisk\.c: .* ready", log))


def cli(node, command, **kw):
    return node.run([AST, "-rx", command], check=False, **kw)


def sip_request(node, addr, method, port=5060, timeout=1.0):
    """Send one SIP request from node; return the answer's text or None."""
    code = f"""
import socket, sys
s = socket.socket(socket.AF_INET6 if ':' in {addr!r} else socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout({timeout})
s.sendto(('{method} sip:ping@x SIP/2.0\\r\\nVia: SIP/2.0/UDP 10.9.9.9:5999;branch=z9hG4bKx1\\r\\n'
          'From: <sip:t@x>;tag=f1\\r\\nTo: <sip:ping@x>\\r\\nCall-ID: cid-{method}@lab\\r\\n'
          'CSeq: 7 {method}\\r\\nMax-Forwards: 70\\r\\nContent-Length: 0\\r\\n\\r\\n').encode(),
         ({addr!r}, {port}))
try:
    sys.stdout.write(s.recv(65535).hex())
except socket.timeout:
    sys.exit(1)
"""
    p = node.run([sys.executable, "-c", code], check=False, timeout=timeout + 10)
    return bytes.fromhex(p.stdout).decode() if p.returncode == 0 else None


def test_cli_not_running_then_running_then_stopped(lab):
    down = cli(lab.a, "core show uptime")
    assert (down.returncode, down.stdout, down.stderr) == (1, "", NOT_RUNNING)
    starts = log_starts(lab.a)
    pid = start(lab.a, args=["-U", "asterisk", "-G", "asterisk", "-g", "-vvv"])
    up = cli(lab.a, "core show uptime")
    assert up.returncode == 0 and UPTIME.fullmatch(up.stdout), up.stdout
    secs = cli(lab.a, "core show uptime seconds").stdout
    assert re.fullmatch(r"System uptime: \d+\nLast reload: \d+\n", secs), secs
    version = cli(lab.a, "core show version")
    assert version.stdout.startswith("Asterisk 20.") and version.returncode == 0
    bad = cli(lab.a, "core bogus")
    assert (bad.returncode, bad.stdout) == (
        0, "No such command 'core bogus' (type 'core show help core bogus' "
           "for other possible commands)\n")
    assert cli(lab.a, "x").stdout.startswith("No such command 'x' (type 'core show help x' ")
    # a second start finds the first
    again = lab.a.run([AST], check=False)
    assert again.returncode == 1
    assert again.stderr == ("Asterisk already running on /var/run/asterisk/asterisk.ctl.  "
                            "Use 'asterisk -r' to connect.\n")
    assert int(lab.a.read_file(PIDFILE)) == pid
    # core stop now: pid file and socket go, the process too
    stop = cli(lab.a, "core stop now")
    assert (stop.returncode, stop.stdout) == (0, "")
    wait_until(lambda: not lab.a.exists(PIDFILE) and not lab.a.exists(CTL), message="cleanup")
    wait_until(lambda: lab.a.run(["pgrep", "-x", "asterisk"], check=False).returncode == 1,
               message="process gone")
    assert cli(lab.a, "core show uptime").stderr == NOT_RUNNING
    # one log line per start, on the node's disk
    assert log_starts(lab.a) == starts + 1
    # core stop gracefully works too
    start(lab.a)
    assert cli(lab.a, "core stop gracefully").returncode == 0
    wait_until(lambda: not lab.a.exists(PIDFILE), message="graceful stop")


def test_process_is_called_asterisk(lab):
    pid = start(lab.a)
    assert lab.a.run(["pgrep", "-x", "asterisk"]).stdout.split() == [str(pid)]
    assert lab.a.run(["ps", "-o", "comm=", "-p", str(pid)]).stdout.strip() == "asterisk"
    name = lab.a.run([sys.executable, "-c",
                      f"import psutil; print(psutil.Process({pid}).name())"]).stdout.strip()
    assert name == "asterisk"
    # it forked away from the shell that started it: its parent is the node's init
    assert lab.a.run(["ps", "-o", "ppid=", "-p", str(pid)]).stdout.strip() == "1"
    assert lab.b.run(["pgrep", "-x", "asterisk"], check=False).returncode == 1


def test_sip_options_answered_from_the_asked_address(lab):
    start(lab.a)
    lab.a.run(["ip", "addr", "add", f"{lab.cluster_ip}/24", "dev", "eth0"])
    lab.a.run(["ip", "addr", "add", f"{lab.cluster_ip6}/64", "dev", "eth0", "nodad"])
    for addr in (lab.a.addr, lab.cluster_ip, lab.a.addr6, lab.cluster_ip6):
        answer = sip_options(lab.c, addr)
        assert answer is not None, addr
        assert answer[:2] == ("SIP/2.0 200 OK", addr)
    reply = sip_request(lab.c, lab.cluster_ip, "OPTIONS")
    head = reply.split("\r\n")
    assert head[0] == "SIP/2.0 200 OK"
    for line in ("Via: SIP/2.0/UDP 10.9.9.9:5999;branch=z9hG4bKx1", "From: <sip:t@x>;tag=f1",
                 "Call-ID: cid-OPTIONS@lab", "CSeq: 7 OPTIONS", "Content-Length: 0"):
        assert line in head, (line, reply)
    assert [h for h in head if re.fullmatch(r"To: <sip:ping@x>;tag=\S+", h)], reply
    assert reply.endswith("\r\n\r\n")
    assert sip_request(lab.c, lab.a.addr, "INVITE").startswith("SIP/2.0 501 Not Implemented\r\n")
    assert sip_request(lab.c, lab.a.addr, "ACK", timeout=0.3) is None
    assert sip_options(lab.c, lab.b.addr, timeout=0.3) is None          # only where it runs


def test_silent_under_sigstop_and_back_after_sigcont(lab):
    pid = start(lab.a)
    assert sip_options(lab.c, lab.a.addr) is not None
    lab.a.run(["kill", "-STOP", str(pid)])
    try:
        assert sip_options(lab.c, lab.a.addr, timeout=0.5) is None
        with pytest.raises(subprocess.TimeoutExpired):
            cli(lab.a, "core show uptime", timeout=1)
    finally:
        lab.a.run(["kill", "-CONT", str(pid)])
    assert sip_options(lab.c, lab.a.addr) is not None
    assert UPTIME.fullmatch(cli(lab.a, "core show uptime").stdout)


def test_sigterm_cleans_up_and_sighup_reloads(lab):
    pid = start(lab.a)
    time.sleep(1.1)
    lab.a.run(["kill", "-HUP", str(pid)])
    time.sleep(0.1)
    out = cli(lab.a, "core show uptime seconds").stdout
    system, reload_ = (int(n) for n in re.findall(r": (\d+)", out))
    assert system >= 1 and reload_ == 0, out
    lab.a.run(["kill", "-TERM", str(pid)])
    wait_until(lambda: not lab.a.exists(PIDFILE) and not lab.a.exists(CTL), message="cleanup")
    assert sip_options(lab.c, lab.a.addr, timeout=0.3) is None
    assert lab.a.run(["pgrep", "-x", "asterisk"], check=False).returncode == 1


def test_sigkill_leaves_pid_file_and_socket_and_a_new_start_copes(lab):
    pid = start(lab.a)
    lab.a.run(["kill", "-KILL", str(pid)])
    wait_until(lambda: lab.a.run(["pgrep", "-x", "asterisk"], check=False).returncode == 1,
               message="killed")
    assert lab.a.exists(PIDFILE) and lab.a.exists(CTL)
    assert cli(lab.a, "core show uptime").stderr == NOT_RUNNING
    new = start(lab.a)
    assert new != pid and cli(lab.a, "core show uptime").returncode == 0


def test_die_after_hook(lab):
    env = dict(os.environ, ASTERISK_STANDIN_DIE_AFTER="0.5")
    t0 = time.monotonic()
    fg = lab.a.popen([AST, "-f"], env=env, stderr=subprocess.PIPE, text=True)
    assert fg.wait(5) == 1
    assert 0.5 <= time.monotonic() - t0 < 4
    err = fg.stderr.read()
    assert "ready" in err and "ASTERISK_STANDIN_DIE_AFTER" in err, err
    assert not lab.a.exists(PIDFILE)
    # in the background too: it starts, answers, then is gone
    start(lab.a, env=dict(os.environ, ASTERISK_STANDIN_DIE_AFTER="1.5"))
    assert cli(lab.a, "core show uptime").returncode == 0
    wait_until(lambda: lab.a.run(["pgrep", "-x", "asterisk"], check=False).returncode == 1,
               message="died")
    assert not lab.a.exists(PIDFILE)


def test_no_sip_hook(lab):
    start(lab.a, env=dict(os.environ, ASTERISK_STANDIN_NO_SIP="1"))
    assert cli(lab.a, "core show uptime").returncode == 0
    assert sip_options(lab.c, lab.a.addr, timeout=0.3) is None


def test_foreground_with_a_config_file_moving_the_run_directory(tmp_path):
    """Outside the lab (no root needed): -f, -C with astrundir, SIGTERM."""
    conf = tmp_path / "asterisk.conf"
    conf.write_text(f"[directories]\nastetcdir => /etc/asterisk\nastrundir => {tmp_path}/run ; here\n"
                    f"astlogdir => {tmp_path}/log\n[options]\nverbose = 3\n")
    env = dict(os.environ, ASTERISK_STANDIN_SIP_PORT="0")
    p = subprocess.Popen([AST, "-f", "-C", str(conf)], env=env, stderr=subprocess.PIPE)
    try:
        assert b"ready" in p.stderr.readline()
        assert (tmp_path / "run" / "asterisk.pid").read_text() == f"{p.pid}\n"
        out = subprocess.run([AST, "-C", str(conf), "-rx", "core show uptime"],
                             capture_output=True, text=True, timeout=5)
        assert UPTIME.fullmatch(out.stdout), out
        missing = subprocess.run([AST, "-rx", "core show uptime", "-C", str(tmp_path / "none")],
                                 capture_output=True, text=True, timeout=5)
        assert missing.returncode == 1 and missing.stderr.startswith(
            f"Unable to open specified master config file '{tmp_path}/none', using built-in defaults\n")
    finally:
        p.send_signal(signal.SIGTERM)
        assert p.wait(5) == 0
    assert not (tmp_path / "run" / "asterisk.pid").exists()
    assert not (tmp_path / "run" / "asterisk.ctl").exists()
    assert "ready" in (tmp_path / "log" / "messages").read_text()


def test_uptime_format_is_the_real_ones():
    """cli.c's print_uptimestr(): strict '>' per unit, commas, a trailing blank."""
    import importlib.machinery
    import importlib.util
    loader = importlib.machinery.SourceFileLoader("standin_asterisk", AST)
    spec = importlib.util.spec_from_loader("standin_asterisk", loader)
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    cases = {0: "0 seconds ", 1: "1 second ", 60: "60 seconds ", 61: "1 minute, 1 second ",
             125: "2 minutes, 5 seconds ", 3600: "60 minutes ", 3661: "1 hour, 1 minute, 1 second ",
             86400 * 8 + 120: "1 week, 1 day, 2 minutes "}
    for secs, text in cases.items():
        assert mod.uptime_text(secs, "System uptime", False) == f"System uptime: {text}\n"
    assert mod.uptime_text(125, "Last reload", True) == "Last reload: 125\n"
