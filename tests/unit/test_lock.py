"""Lock files: one holder at a time, the holder's pid inside, and a holder that
dies however it dies (SIGKILL here, in a real child process) lets go."""

import os
import signal
import subprocess
import sys

import pytest

from asha import lock
from asha.lock import Lock, LockBusy

HOLDER = """
import sys, time
from asha.lock import Lock
l = Lock(sys.argv[1]).acquire()
print("locked", flush=True)
time.sleep(60)
"""

BARE_FLOCK = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
fcntl.flock(fd, fcntl.LOCK_EX)
print("locked", flush=True)
time.sleep(60)
"""


@pytest.fixture
def child():
    """Start a python child that takes a lock and says so; kill it at the end."""
    procs = []

    def start(code, path):
        p = subprocess.Popen([sys.executable, "-c", code, path], stdout=subprocess.PIPE, text=True)
        procs.append(p)
        assert p.stdout.readline() == "locked\n"
        return p

    yield start
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.wait(timeout=10)
        p.stdout.close()


def test_lock_writes_the_pid_and_release_empties_it(tmp_path):
    path = str(tmp_path / "sync.lock")
    assert not lock.is_held(path) and lock.holder(path) is None
    with Lock(path) as held:
        assert held.path == path
        assert lock.is_held(path)
        assert lock.holder(path) == os.getpid()
        with open(path) as f:
            assert f.read() == f"{os.getpid()}\n"
    assert not lock.is_held(path)
    assert lock.holder(path) is None
    assert os.path.getsize(path) == 0


def test_lock_makes_its_directory(tmp_path):
    path = str(tmp_path / "run" / "asha" / "x.lock")
    with Lock(path):
        assert lock.is_held(path)


def test_second_lock_in_the_same_process_is_busy(tmp_path):
    path = str(tmp_path / "x.lock")
    with Lock(path):
        with pytest.raises(LockBusy) as e:
            Lock(path).acquire()
        assert (e.value.path, e.value.pid) == (path, os.getpid())
        assert str(e.value) == f"lock {path} held by pid {os.getpid()}"
    with Lock(path):                       # free again once released
        pass


def test_lock_held_by_another_process_names_its_pid(tmp_path, child):
    path = str(tmp_path / "x.lock")
    p = child(HOLDER, path)
    assert lock.is_held(path)
    assert lock.holder(path) == p.pid
    with pytest.raises(LockBusy) as e:
        Lock(path).acquire()
    assert str(e.value) == f"lock {path} held by pid {p.pid}"
    assert e.value.pid == p.pid


def test_holder_killed_with_sigkill_releases_the_lock(tmp_path, child):
    path = str(tmp_path / "x.lock")
    p = child(HOLDER, path)
    with pytest.raises(LockBusy):
        Lock(path).acquire()
    os.kill(p.pid, signal.SIGKILL)
    assert p.wait(timeout=10) == -signal.SIGKILL
    # the dead holder's pid is still written in the file, but nobody holds the lock
    assert lock.holder(path) == p.pid
    assert not lock.is_held(path)
    with Lock(path):
        assert lock.holder(path) == os.getpid()
        assert lock.is_held(path)


def test_lock_without_a_pid_inside(tmp_path, child):
    path = str(tmp_path / "x.lock")
    child(BARE_FLOCK, path)
    with pytest.raises(LockBusy) as e:
        Lock(path).acquire()
    assert e.value.pid is None
    assert str(e.value) == f"lock {path} held by another process"


def test_lock_is_not_inherited_by_programs_the_holder_runs(tmp_path):
    # A holder that runs a long command (rsync, ASTSTART) must not lend it the lock.
    path = str(tmp_path / "x.lock")
    with Lock(path) as held:
        p = subprocess.run(["ls", "-l", "/proc/self/fd/"], capture_output=True, text=True, check=True)
        assert path not in p.stdout
        assert held.fd is not None
