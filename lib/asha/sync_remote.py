"""The part of asha-sync that runs on the active node: a POSIX sh program that
asha-sync passes to rsync as --rsync-path, so that the check, the SQLite
snapshots and the transfer share one ssh session and the peer needs no asha.

program(job) writes the program for one run. On the active node it:
  - drops every tree whose source is missing or empty while the standby's copy
    is not (an unmounted disk must not wipe the standby through --delete);
  - snapshots each SQLite file with SQLite's online backup API (the sqlite3
    shell's .backup, else python3's sqlite3 module) to STAGED_PREFIX + its name
    beside it, with the database's owner, mode and times;
  - reports on standard error, one line `asha-sync-peer: T0=data D0=ok ...`
    (trees and databases by index; ERRORS lines carry what failed), then runs
    rsync's sender on the paths kept, and removes the snapshots when it ends.

sh rather than Python because a Python start costs as much as rsync's own
work on an unchanged tree. Snapshots sit beside the databases rather than in a
staging tree: rsync --relative with --delay-updates mixes up sources under
different roots (`/stage/./var/...` and `/var/...`) and deletes files it
should keep."""

import os
import shlex

REPORT = "asha-sync-peer: "
ERROR = "asha-sync-peer-error: "
STAGED_PREFIX = ".asha-sync."        # a snapshot's name beside its database

# Functions of the program; the per-run part calls them with literal paths.
_FUNCTIONS = r"""
r= k=0
state() { # $1: sets s to missing, file, empty or data
  if [ ! -e "$1" ]; then s=missing; return; fi
  if [ ! -d "$1" ]; then s=file; return; fi
  for f in "$1"/* "$1"/.[!.]* "$1"/..?*; do
    if [ -e "$f" ] || [ -L "$f" ]; then s=data; return; fi
  done
  s=empty
}
snap() { # $1 database, $2 snapshot, $3 the snapshot's name for .backup, $4 busy ms, $5 index
  if [ ! -e "$1" ]; then s=missing; return; fi
  if [ ! -s "$1" ]; then s=empty; return; fi
  rm -f -- "$2"
  if command -v sqlite3 >/dev/null 2>&1; then
    e=$(sqlite3 -init /dev/null -batch -bail "$1" ".timeout $4" ".backup $3" 2>&1 </dev/null); rc=$?
  else
    e=$(python3 -I -S -c 'import sqlite3, sys, urllib.parse
s = sqlite3.connect("file:" + urllib.parse.quote(sys.argv[1]) + "?mode=rw", uri=True, timeout=int(sys.argv[3]) / 1000)
d = sqlite3.connect(sys.argv[2])
s.backup(d)
d.close()
s.close()' "$1" "$2" "$4" 2>&1 </dev/null); rc=$?
  fi
  if [ $rc -ne 0 ] || [ ! -s "$2" ]; then
    rm -f -- "$2"
    s=error
    printf '%s%s %s\n' "$ERROR" "D$5" "$(printf '%s' "${e:-no snapshot written}" | tail -n 1)" >&2
    return
  fi
  chmod --reference="$1" -- "$2" 2>/dev/null
  chown --reference="$1" -- "$2" 2>/dev/null
  touch -r "$1" -- "$2" 2>/dev/null
  s=ok
}
"""


def staged_name(path):
    d, base = os.path.split(path)
    return os.path.join(d, STAGED_PREFIX + base)


def tree_arg(path, state="data"):
    """How a tree is named to rsync: a directory with a slash (its contents,
    following a symlinked top directory), a file without."""
    return path if state == "file" else path.rstrip("/") + "/"


def tree_state(path):
    """'missing', 'file', 'empty' or 'data' (a directory with entries), as the program sees it."""
    if not os.path.lexists(path) or not os.path.exists(path):
        return "missing"
    if not os.path.isdir(path):
        return "file"
    with os.scandir(path) as it:
        for _ in it:
            return "data"
    return "empty"


def _backup_arg(path):
    """path as one argument of a sqlite3 shell dot-command (C-style "..." quoting)."""
    return '"' + path.replace("\\", "\\\\").replace('"', '\\"') + '"'


def program(job):
    """The remote command for --rsync-path: `sh -c PROGRAM`; rsync appends
    `--server --sender OPTIONS . PATHS` as its arguments.

    job: {"trees": [[path, standby_has_data], ...], "dbs": [[path,
    standby_has_copy], ...], "rsync": program, "busy": seconds, "snapshot": bool}."""
    q = shlex.quote
    lines = [_FUNCTIONS.strip("\n"),
             f"ERROR={q(ERROR)}",
             # "$@" is rsync's server argv: keep it up to its "." and put our paths after.
             'n=$#',
             'for a do set -- "$@" "$a"; [ "$a" = . ] && break; done',
             'shift $n']
    for i, (path, standby_has_data) in enumerate(job["trees"]):
        send_empty = "" if standby_has_data else ' || [ "$s" = empty ]'
        lines += [f"state {q(path)}; r=\"$r T{i}=$s\"",
                  f'if [ "$s" = file ]; then set -- "$@" {q(tree_arg(path, "file"))}; k=$((k+1)); '
                  f'elif [ "$s" = data ]{send_empty}; then set -- "$@" {q(tree_arg(path))}; k=$((k+1)); fi']
    staged = [staged_name(p) for p, _ in job["dbs"]]
    cleanup = "rm -f -- " + " ".join(q(s) for s in staged) if staged and job["snapshot"] else ":"
    lines.append(f"trap '{cleanup.replace(chr(39), chr(39) + chr(92) + chr(39) + chr(39))}; "
                 f"exit 129' HUP INT TERM PIPE")
    busy = int(job["busy"] * 1000)
    for i, (path, _) in enumerate(job["dbs"]):
        st = staged_name(path)
        if job["snapshot"]:
            lines += [f"snap {q(path)} {q(st)} {q(_backup_arg(st))} {busy} {i}; r=\"$r D{i}=$s\"",
                      f'if [ "$s" = ok ]; then set -- "$@" {q(st)}; k=$((k+1)); fi']
        else:
            lines.append(f'if [ -s {q(path)} ]; then r="$r D{i}=ok"; '
                         f'elif [ -e {q(path)} ]; then r="$r D{i}=empty"; else r="$r D{i}=missing"; fi')
    lines += [f"printf '%s%s S=%s\\n' {q(REPORT)} \"$r\" \"$k\" >&2",
              f'if [ "$k" -eq 0 ]; then {cleanup}; exit 0; fi',
              f'{q(job["rsync"])} "$@"',
              "rc=$?",
              cleanup,
              "exit $rc"]
    return "sh -c " + q("\n".join(lines)) + " asha-sync-peer"


def parse_report(line):
    """{'T0': 'data', ..., 'S': '3'} from the report line's text after REPORT."""
    out = {}
    for word in line.split():
        key, _, value = word.partition("=")
        out[key] = value
    return out
