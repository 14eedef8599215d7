"""asha-hb's commands: run, start, stop, status, standby, takeover, check, genkey."""

import json
import os
import sys
import time

from .. import cli, config, control, exits, lock, state
from . import proto


def run(args):
    cfg = cli.load_config(args, "asha-hb")
    path = args["--config"]
    if args["genkey"]:
        target = args["FILE"] or cfg.HBAUTHKEY
        if os.path.exists(target) and not args["--force"]:
            raise exits.AshaError(f"{target} exists; --force replaces it (then copy it to the peer)")
        try:
            proto.make_key(target)
        except OSError as e:
            raise exits.AshaError(f"{target}: cannot write the key: {e.strerror}") from None
        print(f"{target}: new heartbeat key; copy it to the peer (mode 0600) before starting asha-hb")
        return exits.OK
    if args["check"]:
        return check(cfg)
    if args["run"]:
        return _run_here(cfg, path, foreground=True, verbose=args["--verbose"])
    if args["start"]:
        return start(cfg, path, args["--verbose"])
    if args["stop"]:
        return stop(cfg)
    if args["status"]:
        return status(cfg, args["--json"])
    if args["standby"]:
        return switch(cfg, "standby", args["--wait"])
    if args["takeover"]:
        return switch(cfg, "takeover", args["--wait"])
    raise exits.UsageError("no command")


def check(cfg):
    """Everything asha-hb needs before it starts; 0 or 78, one line per problem
    (all of them in one run)."""
    problems = []
    try:
        cfg.node_role()
    except config.ConfigError as e:
        problems += e.errors
    else:
        try:
            cfg.node_addr(cfg.peer_node())
        except config.ConfigError as e:
            problems += e.errors
    try:
        proto.load_key(cfg.HBAUTHKEY)
    except exits.AshaError as e:
        problems.append(str(e))
    for dev in cfg.HBSERIAL:
        why = _serial_problem(dev)
        if why:
            line = cfg.line_of("HBSERIAL")
            problems.append(f"{cfg.path}{f':{line}' if line else ''}: HBSERIAL {dev}: {why}")
    from .. import vip
    try:
        vip.resolve(cfg)
    except config.ConfigError as e:
        problems += e.errors
    except exits.AshaError as e:
        problems.append(str(e))
    for line in problems:
        print(line, file=sys.stderr)
    if problems:
        return exits.CONFIG
    print(f"{cfg.path}: configuration OK for {cfg.local_node()} ({cfg.node_role()})")
    return exits.OK


def _serial_problem(dev):
    """Why dev cannot carry heartbeats, or None. Opened without taking the line
    (no settings, non-blocking) so that a running asha-hb is not disturbed."""
    try:
        fd = os.open(dev, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return "no such device"
    except OSError as e:
        return f"cannot open: {e.strerror}"
    try:
        if not os.isatty(fd):
            return "not a serial device (not a terminal)"
    finally:
        os.close(fd)
    return None


def _run_here(cfg, path, foreground, verbose=False):
    from .daemon import run_daemon
    # In the foreground, stderr too only when a person watches: under systemd
    # it is the journal, which has the syslog lines already, and under init
    # it is the console.
    log = cli.setup_log("asha-hb", cfg, stderr=None if foreground else False, verbose=verbose)
    for w in cfg.warnings:
        log.warning("%s", w)
    return run_daemon(cfg, log, path)


def start(cfg, path, verbose):
    pidfile = state.path(cfg, state.HB_PID)
    if lock.is_held(pidfile):
        print(f"asha-hb: already running (pid {lock.holder(pidfile)})")
        return exits.OK
    proto.load_key(cfg.HBAUTHKEY)               # refuse before detaching, with the reason on stderr
    cfg.node_role()
    os.makedirs(cfg.rundir, exist_ok=True)
    pid = os.fork()
    if pid == 0:
        os.setsid()
        if os.fork():
            os._exit(0)
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
        try:
            status = _run_here(cfg, path, foreground=False, verbose=verbose)
        except BaseException:
            status = exits.FAIL
        os._exit(status)
    os.waitpid(pid, 0)
    end = time.monotonic() + 10
    while time.monotonic() < end:
        try:
            control.request(cfg, "status", timeout=1)
            print(f"asha-hb: started (pid {lock.holder(pidfile)})")
            return exits.OK
        except exits.AshaError:
            time.sleep(0.05)
    raise exits.AshaError("did not come up within 10 s; see syslog (or ASHALOG)")


def stop(cfg):
    pidfile = state.path(cfg, state.HB_PID)
    pid = lock.holder(pidfile)
    if not lock.is_held(pidfile) or not pid:
        print("asha-hb: not running")
        return exits.OK
    os.kill(pid, 15)
    end = time.monotonic() + cfg.ASTSTOPTIMEOUT + 15
    while time.monotonic() < end:
        if not lock.is_held(pidfile):
            print("asha-hb: stopped, resources released")
            return exits.OK
        time.sleep(0.05)
    raise exits.AshaError(f"pid {pid} still running {cfg.ASTSTOPTIMEOUT + 15:g} s after SIGTERM")


def _ago(text):
    try:
        return f"{float(text):.2f} s ago"
    except ValueError:
        return text


def _number(text):
    return None if text is None else float(text)


def status(cfg, as_json):
    try:
        lines = control.request(cfg, "status", timeout=5)
    except control.NotRunning:
        if as_json:
            print(json.dumps({"running": False}))
        else:
            print("asha-hb: not running")
        return exits.LSB_NOT_RUNNING
    values = {a.key: a.value for a in config.parse_text("\n".join(lines), "asha-hb status")[0]}
    sync = state.read(state.path(cfg, state.SYNC_STATE))
    if as_json:
        out = {"running": True, "node": values["NODE"], "pid": int(values["PID"]),
               "role": values["ROLE"], "since": float(values["SINCE"]), "peer": values["PEER"],
               "peer_state": values["PEERSTATE"], "peer_addr": values["PEERADDR"],
               "failovers": [float(t) for t in values.get("FAILOVERS", "").split()],
               "paths": [], "messages": {}}
        i = 0
        while f"PATH{i}" in values:
            heard = values[f"PATH{i}_HEARD"]
            out["paths"].append({"name": values[f"PATH{i}"], "open": values[f"PATH{i}_UP"] == "1",
                                 "heard_ago": None if heard == "never" else float(heard),
                                 "deadtime": _number(values.get(f"PATH{i}_DEADTIME")),
                                 "loss": _number(values.get(f"PATH{i}_LOSS"))})
            i += 1
        for k, v in values.items():
            if k.startswith("MSG_"):
                out["messages"][k[4:].lower().replace("_", "-")] = int(v)
        if "PING" in values:
            out["ping"] = values["PING"]
        if sync:
            out["last_sync"] = dict(sync, age=round(time.time() - float(sync.get("TIME", "0")), 1))
        print(json.dumps(out, indent=2))
        return exits.OK
    print(f"{values['NODE']}: {values['ROLE']} since "
          f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(float(values['SINCE'])))} "
          f"(pid {values['PID']})")
    print(f"peer {values['PEER']} ({values['PEERADDR']}): {values['PEERSTATE']}")
    i = 0
    while f"PATH{i}" in values:
        up = "" if values[f"PATH{i}_UP"] == "1" else " (device not open)"
        heard = values[f"PATH{i}_HEARD"]
        extra = ""
        if f"PATH{i}_DEADTIME" in values:
            extra = f", dead after {float(values[f'PATH{i}_DEADTIME']):.2f} s silent" \
                    f", {float(values[f'PATH{i}_LOSS']) * 100:.1f}% lost"
        print(f"  {values[f'PATH{i}']}: last heard {_ago(heard) if heard != 'never' else 'never'}"
              f"{extra}{up}")
        i += 1
    rejected = {k[4:].lower(): v for k, v in values.items() if k.startswith("MSG_") and k != "MSG_ACCEPTED"}
    print(f"messages: {values.get('MSG_ACCEPTED', 0)} accepted" +
          "".join(f", {v} {k.replace('_', '-')}" for k, v in sorted(rejected.items())))
    if "PING" in values:
        print(f"ping nodes: {values['PING']}")
    if values.get("FAILOVERS"):
        print(f"failovers in the last hour: {len(values['FAILOVERS'].split())}")
    if sync:
        age = time.time() - float(sync.get("TIME", "0"))
        print(f"last sync: {sync.get('RESULT', '?')} {age:.0f} s ago"
              + (f" ({sync['REASON']})" if sync.get("REASON") else ""))
    return exits.OK


def switch(cfg, what, wait):
    """standby / takeover: ask the daemon, then wait until the move is done."""
    try:
        answer = control.request(cfg, what)
    except control.NotRunning:
        # Nothing can move without the daemon: say so in its words, exit 3.
        raise exits.AshaError(f"not running (no control socket at "
                              f"{state.path(cfg, state.HB_CONTROL)}); start it first",
                              exits.LSB_NOT_RUNNING) from None
    print(f"asha-hb: {' '.join(answer)}")
    if answer and answer[0].startswith("already"):
        return exits.OK
    want = "standby" if what == "standby" else "active"
    end = time.monotonic() + float(wait)
    while time.monotonic() < end:
        hb = state.read_hb(cfg)
        peer_done = hb.get("PEERSTATE") == ("active" if want == "standby" else "standby")
        if hb.get("ROLE") == want and peer_done:
            print(f"asha-hb: {hb['NODE']} is {want}, {hb['PEER']} is {hb['PEERSTATE']}")
            return exits.OK
        time.sleep(0.05)
    hb = state.read_hb(cfg)
    raise exits.AshaError(f"not done within {wait} s: {hb.get('NODE')} is {hb.get('ROLE')}, "
                          f"{hb.get('PEER')} is {hb.get('PEERSTATE')}")
