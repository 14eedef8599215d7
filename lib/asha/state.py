"""State files: KEY=value lines, replaced atomically, read with asha.conf's parser.

A writer makes a temporary file in the same directory, fsyncs it and renames
it over the old one, so a reader sees the old state or the new one, never a
torn mixture. The file names every tool uses are named here."""

import os
import tempfile

from . import config

HB_STATE = "hb.state"          # this node's role and the peer as asha-hb sees them
HB_PID = "hb.pid"
HB_CONTROL = "hb.ctl"          # asha-hb's control socket
SYNC_STATE = "sync.state"      # outcome of the last asha-sync run
SYNC_LOCK = "sync.lock"
WATCHDOG_STATE = "watchdog.state"  # what asha-watchdog sees and the restarts it made
WATCHDOG_PID = "watchdog.pid"      # asha-watchdog's lock: one watchdog per node
RHINO_STATE = "rhino.state"    # what asha-rhino last commanded


def path(cfg, name):
    return os.path.join(cfg.rundir, name)


def write(filename, values):
    """Replace filename with KEY=value lines for the mapping values."""
    directory = os.path.dirname(os.path.abspath(filename))
    os.makedirs(directory, exist_ok=True)
    for k in values:
        if not config.is_key_name(k):
            raise ValueError(f"{filename}: {k!r} is not a KEY name")
    text = "".join(f"{k}={config.quote(v)}\n" for k, v in values.items())
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(filename) + ".", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, filename)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def read(filename):
    """The mapping in filename; {} when there is none. Values are strings."""
    try:
        # newline="": a value holds exactly what was written, \r included.
        with open(filename, encoding="utf-8", newline="") as f:
            text = f.read()
    except FileNotFoundError:
        return {}
    assignments, errors = config.parse_text(text, filename)
    if errors:
        raise ValueError(errors[0])
    return {a.key: a.value for a in assignments}


def pid_alive(pid):
    """True when a process with this pid exists; False for no pid ("", "0")."""
    try:
        pid = int(pid)
    except (TypeError, ValueError):
        return False
    if pid <= 0:
        return False            # kill(0) and kill(-n) would ask about process groups
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_hb(cfg):
    """asha-hb's view of this node, as the other tools should act on it.

    Returns hb.state's mapping; when asha-hb is not running (no file, or its
    PID is gone) ROLE is 'down': the node holds nothing it may trust."""
    values = read(path(cfg, HB_STATE))
    if not values or not pid_alive(values.get("PID", "0")):
        values = dict(values, ROLE="down")
    return values
