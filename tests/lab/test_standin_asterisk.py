"""The stand-in Asterisk honours the contract asha relies on."""

import os
import signal
import subprocess
import time

import pytest

from asha_lab import STANDIN_ASTERISK as AST, sip_options

pytestmark = pytest.mark.lab

PIDFILE = "/var/run/asterisk/asterisk.pid"


def start(node, env=None):
    node.run([AST], env=env)
    end = time.monotonic() + 5
    while not node.exists(PIDFILE):
        assert time.monotonic() < end, "the stand-in wrote no pid file"
        time.sleep(0.02)
    return int(node.read_file(PIDFILE))


def test_cli_and_process_name(lab):
    down = lab.a.run([AST, "-rx", "core show uptime"], check=False)
    assert down.returncode == 1
    assert down.stdout == ("Unable to connect to remote asterisk "
                           "(does /var/run/asterisk/asterisk.ctl exist?)\n")
    pid = start(lab.a)
    up = lab.a.run([AST, "-rx", "core show uptime"])
    assert up.stdout.startswith("System uptime: ")
    assert "Last reload: " in up.stdout
    assert lab.a.run(["pgrep", "-x", "asterisk"]).stdout.split() == [str(pid)]
    bad = lab.a.run([AST, "-rx", "core bogus"])
    assert bad.stdout.startswith("No such command 'core bogus'")
    assert lab.a.run([AST, "-rx", "core stop now"]).returncode == 0
    end = time.monotonic() + 5
    while lab.a.exists(PIDFILE) or lab.a.exists("/var/run/asterisk/asterisk.ctl"):
        assert time.monotonic() < end
        time.sleep(0.02)
    assert lab.a.run([AST, "-rx", "core show uptime"], check=False).returncode == 1


def test_sip_options_answered_from_the_asked_address(lab):
    start(lab.a)
    lab.a.run(["ip", "addr", "add", f"{lab.cluster_ip}/24", "dev", "eth0"])
    lab.a.run(["ip", "addr", "add", f"{lab.cluster_ip6}/64", "dev", "eth0", "nodad"])
    for addr in (lab.a.addr, lab.cluster_ip, lab.cluster_ip6):
        answer = sip_options(lab.c, addr)
        assert answer is not None, addr
        assert answer[0] == "SIP/2.0 200 OK"
        assert answer[1] == addr


def test_silent_under_sigstop_and_back_after_sigcont(lab):
    pid = start(lab.a)
    assert sip_options(lab.c, lab.a.addr) is not None
    lab.a.run(["kill", "-STOP", str(pid)])
    try:
        assert sip_options(lab.c, lab.a.addr, timeout=0.5) is None
        with pytest.raises(subprocess.TimeoutExpired):
            lab.a.run([AST, "-rx", "core show uptime"], timeout=1)
    finally:
        lab.a.run(["kill", "-CONT", str(pid)])
    assert sip_options(lab.c, lab.a.addr) is not None
    assert lab.a.run([AST, "-rx", "core show uptime"]).returncode == 0


def test_sigterm_cleans_up(lab):
    pid = start(lab.a)
    lab.a.run(["kill", "-TERM", str(pid)])
    end = time.monotonic() + 5
    while lab.a.exists(PIDFILE):
        assert time.monotonic() < end
        time.sleep(0.02)
    assert sip_options(lab.c, lab.a.addr, timeout=0.3) is None


def test_die_after_hook(lab):
    start(lab.a, env=dict(os.environ, ASTERISK_STANDIN_DIE_AFTER="0.3"))
    time.sleep(1)
    assert lab.a.run(["pgrep", "-x", "asterisk"], check=False).stdout.strip() == "" or \
        "Z" in lab.a.run(["ps", "-o", "stat=", "-C", "asterisk"], check=False).stdout
    assert not lab.a.exists(PIDFILE)


def test_no_sip_hook(lab):
    start(lab.a, env=dict(os.environ, ASTERISK_STANDIN_NO_SIP="1"))
    assert lab.a.run([AST, "-rx", "core show uptime"]).returncode == 0
    assert sip_options(lab.c, lab.a.addr, timeout=0.3) is None


def test_config_file_moves_the_run_directory(tmp_path):
    conf = tmp_path / "asterisk.conf"
    conf.write_text(f"[directories]\nastrundir => {tmp_path}\n")
    env = dict(os.environ, ASTERISK_STANDIN_SIP_PORT="25061")
    p = subprocess.Popen([AST, "-f", "-C", str(conf)], env=env, stderr=subprocess.PIPE)
    try:
        assert b"ready" in p.stderr.readline()
        assert (tmp_path / "asterisk.pid").read_text().strip() == str(p.pid)
        out = subprocess.run([AST, "-C", str(conf), "-rx", "core show uptime"],
                             capture_output=True, text=True, timeout=5)
        assert out.stdout.startswith("System uptime:")
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait(5)
    assert not (tmp_path / "asterisk.pid").exists()
