"""State files: KEY=value lines replaced atomically. The test that matters runs a
real writer process that rewrites a large file thousands of times while this
process reads it: every read must be one whole version, never a mixture."""

import os
import stat
import subprocess
import sys
import time

import pytest

from asha import config, state

MINIMAL = "HACLUSTERIP=192.168.1.100/24\nHAPRINODE=pbx1\nHASECNODE=pbx2\n"


@pytest.fixture
def cfg(tmp_path):
    return config.loads(MINIMAL + f"ASHARUNDIR={tmp_path}/run\n")


def test_write_then_read(tmp_path):
    path = str(tmp_path / "x.state")
    values = {"ROLE": "active", "PEER": "pbx2", "SINCE": 1700000000, "FAILOVERS": "1 2 3",
              "NOTE": "it's \"quoted\" $x `y`\nsecond line", "EMPTY": ""}
    state.write(path, values)
    assert state.read(path) == {k: str(v) for k, v in values.items()}
    with open(path) as f:
        assert f.read().startswith("ROLE=active\nPEER=pbx2\nSINCE=1700000000\nFAILOVERS='1 2 3'\n")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644
    assert os.listdir(tmp_path) == ["x.state"]           # no temporary file left behind


def test_state_file_is_readable_by_the_config_parser(tmp_path):
    path = str(tmp_path / "x.state")
    state.write(path, {"HASYNCH": "LOOSE", "HACLUSTERIP": "192.168.1.100/24",
                       "HAPRINODE": "pbx1", "HASECNODE": "pbx2"})
    assert config.load(path).HASYNCH == "LOOSE"


def test_write_makes_the_directory_and_replaces(tmp_path):
    path = str(tmp_path / "run" / "asha" / "x.state")
    state.write(path, {"A": "1", "B": "2"})
    state.write(path, {"A": "3"})
    assert state.read(path) == {"A": "3"}


def test_read_missing_file_is_empty(tmp_path):
    assert state.read(str(tmp_path / "none.state")) == {}


def test_read_broken_file_raises_with_file_and_line(tmp_path):
    path = tmp_path / "x.state"
    path.write_text("A=1\nB='unterminated\n")
    with pytest.raises(ValueError) as e:
        state.read(str(path))
    assert str(e.value) == f"{path}:2: B: unterminated ' quote"


@pytest.mark.parametrize("bad", ["", "1A", "A-B", "A B", "A=B", None])
def test_write_refuses_what_is_not_a_key_name(tmp_path, bad):
    path = str(tmp_path / "x.state")
    with pytest.raises(ValueError) as e:
        state.write(path, {"GOOD": "1", bad: "2"})
    assert str(e.value) == f"{path}: {bad!r} is not a KEY name"
    assert not os.path.exists(path)


def test_path_names(cfg, tmp_path):
    assert state.path(cfg, state.HB_STATE) == f"{tmp_path}/run/hb.state"
    assert state.path(cfg, state.HB_CONTROL) == f"{tmp_path}/run/hb.ctl"
    names = [state.HB_STATE, state.HB_PID, state.HB_CONTROL, state.SYNC_STATE, state.SYNC_LOCK,
             state.WATCHDOG_STATE, state.RHINO_STATE]
    assert len(set(names)) == len(names)


def test_pid_alive():
    assert state.pid_alive(os.getpid()) and state.pid_alive(str(os.getpid()))
    p = subprocess.Popen(["true"])
    p.wait()
    assert not state.pid_alive(p.pid)
    for nothing in (0, "0", -1, "", "x", None):
        assert not state.pid_alive(nothing), nothing


def test_read_hb(cfg):
    assert state.read_hb(cfg) == {"ROLE": "down"}                 # no file: asha-hb not running
    path = state.path(cfg, state.HB_STATE)
    state.write(path, {"NODE": "pbx1", "PID": os.getpid(), "ROLE": "active"})
    assert state.read_hb(cfg) == {"NODE": "pbx1", "PID": str(os.getpid()), "ROLE": "active"}
    p = subprocess.Popen(["true"])
    p.wait()
    state.write(path, {"NODE": "pbx1", "PID": p.pid, "ROLE": "active"})
    assert state.read_hb(cfg)["ROLE"] == "down"                    # its asha-hb is gone
    state.write(path, {"NODE": "pbx1", "ROLE": "active"})
    assert state.read_hb(cfg)["ROLE"] == "down"                    # no PID: nothing to trust


WRITER = """
import sys, time
from asha import state
path, n, limit = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
versions = [{f"K{i:03d}": c * 900 + f" {i}" for i in range(120)} for c in "ab"]
state.write(path, versions[0])
print("ready", flush=True)
deadline = time.monotonic() + limit
for i in range(n):
    if time.monotonic() > deadline:
        break
    state.write(path, versions[i % 2])
print(i + 1, flush=True)
"""


def test_never_torn_under_a_concurrent_reader(tmp_path):
    path = str(tmp_path / "big.state")
    versions = [{f"K{i:03d}": c * 900 + f" {i}" for i in range(120)} for c in "ab"]
    assert len("".join(f"{k}={config.quote(v)}\n" for k, v in versions[0].items())) > 100_000
    w = subprocess.Popen([sys.executable, "-c", WRITER, path, "2000", "20"],
                         stdout=subprocess.PIPE, text=True)
    try:
        assert w.stdout.readline() == "ready\n"
        seen = [0, 0]
        deadline = time.monotonic() + 30
        while w.poll() is None and time.monotonic() < deadline:
            got = state.read(path)                 # raises if a read is not one whole file
            if got not in versions:
                pytest.fail(f"torn read after {sum(seen)} good reads: {len(got)} keys, "
                            f"values starting {sorted({v[:1] for v in got.values()})}")
            seen[versions.index(got)] += 1
        assert w.wait(timeout=10) == 0
        writes = int(w.stdout.read())
    finally:
        if w.poll() is None:
            w.kill()
            w.wait()
        w.stdout.close()
    assert writes >= 1000, writes
    assert seen[0] > 0 and seen[1] > 0, seen     # the reader really saw the file change
