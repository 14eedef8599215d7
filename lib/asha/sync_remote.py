"""The part of asha-sync that runs on the active node: a POSIX sh program that
asha-sync passes to rsync as --rsync-path, so that the check, the SQLite
snapshots and the transfer share one ssh session and the peer needs no asha.

program(job) writes the program for one run. On the active node it:
  - drops every tree whose source is missing or empty while the standby's copy
    is not (an unmounted disk must not wipe the standby through --delete);
  - snapshots each SQLite file with SQLite's online backup API (the sqlite3
    shell's .backup, else python3's sqlite3 module) to STAGED_PREFIX + its name
    beside it, with the database's owner, mode and times; unless the standby
    names the identity its copy was taken from and the database still has it
    (then D=same, nothing is sent);
  - reports on standard error, one line `asha-sync-peer: T0=data D0=ok I0=...
    N=... S=...` (trees and databases by index, I the identity each snapshot
    was taken from, N the time before the first identity was read; ERRORS lines
    carry what failed), then runs rsync's sender on the paths kept, and
    removes the snapshots when it ends.

A database's identity is `stat -L -c IDENTITY_FORMAT` of the file and of its
-wal without the ctime (`-` when there is none), joined by a comma: any commit
changes the file's size or times, or the -wal's, unless it falls in the same
timestamp tick as the change before, which is why the standby hands it back
only when its times are older than N by a margin (sync.RACY_MARGIN_NS). Not
the -wal's ctime: SQLite run by root chowns the -wal at every open, so even
the snapshot's own read changes it.

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
IDENTITY_FORMAT = "%d:%i:%s:%.9Y:%.9Z"  # device, inode, size, mtime, ctime (GNU stat)

# Functions of the program; the per-run part calls them with literal paths.
_FUNCTIONS = r"""
r= k=0 t=
NL='
'
state() { # $1: sets s to missing, file, empty or data
  if [ ! -e "$1" ]; then s=missing; return; fi
  if [ ! -d "$1" ]; then s=file; return; fi
  for f in "$1"/* "$1"/.[!.]* "$1"/..?*; do
    if [ -e "$f" ] || [ -L "$f" ]; then s=data; return; fi
  done
  s=empty
}
ident() { # $1 database: sets i to its identity and its -wal's (- when none), ? when unknown
  i='?'
  if [ -L "$1" ]; then return; fi   # SQLite names the -wal after the link's target
  if [ -e "$1-wal" ]; then
    j=$(stat -L -c "$IDF" -- "$1" "$1-wal" 2>/dev/null) && w=${j#*"$NL"} && i="${j%%"$NL"*},${w%:*}"
  else
    j=$(stat -L -c "$IDF" -- "$1" 2>/dev/null) && i="$j,-"
  fi
}
snap() { # $1 database, $2 snapshot, $3 the snapshot's name for .backup, $4 busy ms, $5 index,
         # $6 the identity the standby's copy was taken from, or empty
  if [ ! -e "$1" ]; then s=missing; return; fi
  if [ ! -s "$1" ]; then s=empty; return; fi
  [ -n "$t" ] || t=$(date +%s%N 2>/dev/null)
  ident "$1"
  if [ -n "$6" ] && [ "$i" = "$6" ]; then s=same; return; fi
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
    standby_has_copy, identity or ""], ...], "rsync": program, "busy":
    seconds, "snapshot": bool}; identity: what the standby's copy was taken
    from, to skip the snapshot when the database still has it."""
    q = shlex.quote
    lines = [_FUNCTIONS.strip("\n"),
             f"ERROR={q(ERROR)} IDF={q(IDENTITY_FORMAT)}",
             # "$@" is rsync's server argv: keep it up to its "." and put our paths after.
             'n=$#',
             'for a do set -- "$@" "$a"; [ "$a" = . ] && break; done',
             'shift $n']
    for i, (path, standby_has_data) in enumerate(job["trees"]):
        send_empty = "" if standby_has_data else ' || [ "$s" = empty ]'
        lines += [f"state {q(path)}; r=\"$r T{i}=$s\"",
                  f'if [ "$s" = file ]; then set -- "$@" {q(tree_arg(path, "file"))}; k=$((k+1)); '
                  f'elif [ "$s" = data ]{send_empty}; then set -- "$@" {q(tree_arg(path))}; k=$((k+1)); fi']
    staged = [staged_name(p) for p, *_ in job["dbs"]]
    cleanup = "rm -f -- " + " ".join(q(s) for s in staged) if staged and job["snapshot"] else ":"
    lines.append(f"trap '{cleanup.replace(chr(39), chr(39) + chr(92) + chr(39) + chr(39))}; "
                 f"exit 129' HUP INT TERM PIPE")
    busy = int(job["busy"] * 1000)
    for i, (path, _, *known) in enumerate(job["dbs"]):
        st = staged_name(path)
        if job["snapshot"]:
            lines += [f"snap {q(path)} {q(st)} {q(_backup_arg(st))} {busy} {i} {q(''.join(known))}; "
                      f"r=\"$r D{i}=$s\"",
                      f'if [ "$s" = ok ]; then set -- "$@" {q(st)}; k=$((k+1)); r="$r I{i}=$i"; fi']
        else:
            lines.append(f'if [ -s {q(path)} ]; then r="$r D{i}=ok"; '
                         f'elif [ -e {q(path)} ]; then r="$r D{i}=empty"; else r="$r D{i}=missing"; fi')
    lines += [f"printf '%s%s N=%s S=%s\\n' {q(REPORT)} \"$r\" \"$t\" \"$k\" >&2",
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
