"""`make demo` end to end: the real `python -m asha_lab demo` as a subprocess,
run as the Makefile runs it. Every step passes and the table has the three
outages as numbers; nothing of its lab is left (namespaces, files, processes:
the demo runs under a child subreaper, so a process it left behind becomes
the subreaper's child and is seen); a second run at once passes too; Ctrl-C
and SIGTERM clean up; a step that fails is one line and exit 1."""

import json
import os
import re
import select
import signal
import subprocess
import sys
import time

import pytest

from asha_lab import REPO, VENV_PYTHON, lab_namespaces, labs

pytestmark = pytest.mark.lab

SCENARIOS = ("A's Asterisk killed (soft failover to B)",
             "manual failback to A (asha-hb takeover)",
             "A loses power (hard failover to B)")

# Runs argv as a child subreaper, passing SIGINT on only through the process
# group (as a terminal does); then writes the demo's pid and the live processes
# it left to us (its orphans) to the report file, and kills those.
SUBREAPER = r"""
import ctypes, json, os, signal, subprocess, sys, time
ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)       # PR_SET_CHILD_SUBREAPER
signal.signal(signal.SIGINT, signal.SIG_IGN)
report, argv = sys.argv[1], sys.argv[2:]
p = subprocess.Popen(argv, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
rc = p.wait()
time.sleep(0.3)

def children():
    out = []
    for task in os.listdir("/proc/self/task"):
        with open(f"/proc/self/task/{task}/children") as f:
            out += [int(x) for x in f.read().split()]
    return out

left = []
for pid in children():
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
        with open(f"/proc/{pid}/cmdline") as f:
            cmd = f.read().replace("\0", " ").strip()
    except OSError:
        continue
    if stat.rsplit(")", 1)[1].split()[0] == "Z":
        os.waitpid(pid, 0)
        continue
    left.append(f"{pid} {cmd}")
    os.kill(pid, signal.SIGKILL)
for pid in children():
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass
with open(report, "w") as f:
    json.dump({"pid": p.pid, "left": left}, f)
sys.exit(rc)
"""


def start_demo(tmp_path, env=None):
    report = tmp_path / f"report-{time.monotonic_ns()}.json"
    full_env = dict(os.environ, PYTHONPATH="lib:lab", **(env or {}))
    proc = subprocess.Popen([sys.executable, "-c", SUBREAPER, str(report),
                             VENV_PYTHON, "-m", "asha_lab", "demo"],
                            cwd=REPO, env=full_env, text=True, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    return proc, report


def finish(proc, report, timeout=300):
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"the demo took over {timeout} s\n{out}\n{err}")
    with open(report) as f:
        rep = json.load(f)
    return out, err, rep


def assert_nothing_left(out, rep):
    m = re.search(r"^  lab (asl-\d+-[0-9a-f]{4}), its files in (\S+)$", out, re.M)
    assert m, out
    prefix, lab_dir = m.groups()
    assert prefix.startswith(f"asl-{rep['pid']}-"), (prefix, rep)
    assert rep["left"] == [], f"processes left behind: {rep['left']}"
    assert not [ns for ns in lab_namespaces() if ns.startswith(prefix + "-")]
    assert prefix not in labs()
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert prefix not in netns, netns
    assert not os.path.exists(lab_dir)


def outages(out):
    table = out[out.index("] Summary"):]
    rows = {}
    for scenario in SCENARIOS:
        m = re.search(rf"^  {re.escape(scenario)} +(\d+) ms$", table, re.M)
        assert m, f"no row for {scenario!r} in\n{table}"
        rows[scenario] = int(m.group(1))
    return rows


def check_run(tmp_path):
    t0 = time.monotonic()
    proc, report = start_demo(tmp_path)
    out, err, rep = finish(proc, report)
    took = time.monotonic() - t0
    assert proc.returncode == 0, f"exit {proc.returncode}\n{out}\n{err}"
    assert err == "", err
    rows = outages(out)
    for scenario, outage in rows.items():
        # C asks every 20 ms: an outage is at least one interval; at asha's defaults
        # each of these is well under two seconds, even on a busy machine.
        assert 10 <= outage < 3000, (scenario, outage, out)
    for line in ("  make install DESTDIR=", "the nodes run /opt/asha/sbin/asha-*",
                 "asha-hb status on A:", "(A answers: C has A's MAC for that address)",
                 "pulled from asha-a (198.51.100.1)",
                 "pulled from asha-b (198.51.100.2)", "B has the message", "A has the message",
                 "now: A is standby, B is active", "now: A is active, B is standby",
                 "now: B is active, and it sees its peer asha-a as dead"):
        assert line in out, f"{line!r} not in\n{out}"
    assert out.rstrip().splitlines()[-1].startswith("asha demo: every step did what it should"), out
    assert_nothing_left(out, rep)
    return took, rows


def test_demo_passes_twice_in_a_row_and_leaves_nothing(tmp_path):
    took, _ = check_run(tmp_path)
    assert took < 180, f"the demo took {took:.0f} s"
    check_run(tmp_path)                 # at once: nothing of the first run is in the way


@pytest.mark.parametrize("how", ["ctrl-c", "sigterm"])
def test_interrupted_demo_cleans_up(tmp_path, how):
    proc, report = start_demo(tmp_path)
    seen = ""
    end = time.monotonic() + 120
    try:
        while "] 3. Asterisk on A dies" not in seen:
            assert time.monotonic() < end and proc.poll() is None, seen + proc.stderr.read()
            ready, _, _ = select.select([proc.stdout], [], [], 1)
            if ready:
                seen += proc.stdout.readline()
        time.sleep(1.5)                          # in the middle of the soft failover's watch
        if how == "ctrl-c":
            os.killpg(proc.pid, signal.SIGINT)   # what a terminal's Ctrl-C sends: the whole group
        else:
            demo_pid = int(re.search(r"^  lab asl-(\d+)-", seen, re.M).group(1))
            os.kill(demo_pid, signal.SIGTERM)    # the demo alone, as kill(1) would
    except BaseException:
        os.killpg(proc.pid, signal.SIGKILL)
        raise
    out, err, rep = finish(proc, report, timeout=60)
    assert proc.returncode == 130, f"exit {proc.returncode}\n{seen}{out}\n{err}"
    assert err.strip().splitlines()[-1] == "asha demo: interrupted; the lab is closed", err
    assert_nothing_left(seen + out, rep)


def test_a_step_that_fails_is_one_line_exit_1_with_the_logs(tmp_path):
    # The stand-in Asterisk that asha-hb starts inherits this: it never answers SIP,
    # so C's question in the steady state goes unanswered.
    proc, report = start_demo(tmp_path, env={"ASTERISK_STANDIN_NO_SIP": "1"})
    out, err, rep = finish(proc, report)
    assert proc.returncode == 1, f"exit {proc.returncode}\n{out}\n{err}"
    assert err.strip().splitlines() == [
        "asha demo: failed: C's SIP OPTIONS to the cluster address 198.51.100.100 got no answer "
        "(expected A to answer)"], err
    assert "----- the last lines of A's log" in out and "takeover complete" in out, out
    assert "] Summary" not in out
    assert_nothing_left(out, rep)
