"""The PRI line follows the PBX: switch the Rhino failover card (or a relay in
its place) between IN-NO, the PRI to the node the card is attached to, and
IN-NC, the PRI to the other node, where the relay also falls when the card
loses power.

asha-hb's resource chain calls acquire() and release(); they never raise and
never hold up a takeover for more than about a second: a card that does not
answer is tried again within that second, then logged as critical, reported
through ALERTCMD, and the chain goes on. What was last commanded is recorded
in ASHARUNDIR/rhino.state."""

import os
import subprocess
import sys
import threading
import time

from . import config, exits, state
from .relay import CONTACT, PRIMARY, STANDBY, DeviceError, Timer, UnknownPosition, open_driver

BUDGET = 1.0        # seconds all the tries of one switch may take together
PAUSE = 0.1         # seconds between two tries
GRACE = 0.2         # a call stuck past the budget by this much is given up
ALERT_TIMEOUT = 60  # seconds ALERTCMD may run before it is killed


def card_node(cfg):
    """The node the card is attached to (and powered from): RHINONODE, else the primary."""
    return cfg.RHINONODE or cfg.HAPRINODE


def card_node_text(cfg):
    return f"{card_node(cfg)} (RHINONODE)" if cfg.RHINONODE else \
        f"{card_node(cfg)} (the primary; RHINONODE is empty)"


class Result:
    """How a switch went: position, verified (read back), already, tries, seconds."""

    def __init__(self, position, verified, already, tries, seconds, how):
        self.position, self.verified, self.already = position, verified, already
        self.tries, self.seconds, self.how = tries, seconds, how

    def __str__(self):
        where = f"{self.position} ({CONTACT[self.position]})"
        took = f"in {self.seconds * 1000:.0f} ms" + (f", {self.tries} tries" if self.tries > 1 else "")
        if self.already:
            return f"PRI card already at {where}, read back from the card"
        return f"PRI card switched to {where} {took}, {self.how}"


# ---------------------------------------------------------------------------
# Trying within the budget.

def _bounded(fn, seconds):
    """fn() in a thread, given up after seconds: a USB or serial call stuck in
    the kernel must not hold asha-hb's takeover."""
    box = {}

    def run():
        try:
            box["value"] = fn()
        except BaseException as e:           # handed to the caller's thread
            box["error"] = e

    t = threading.Thread(target=run, name="asha-rhino-card", daemon=True)
    t.start()
    t.join(max(seconds, 0) + GRACE)
    if t.is_alive():
        raise DeviceError("a call to the device is stuck (it ignores its timeout)", retry=False)
    if "error" in box:
        raise box["error"]
    return box["value"]


def _retrying(cfg, log, driver, attempt, what, budget=BUDGET, clock=time.monotonic):
    """attempt(timer) until it returns, within budget seconds; (value, tries, seconds).

    Raises DeviceError, the last one, when no try worked."""
    start = clock()
    deadline = start + budget
    tries, said = 0, None
    while True:
        tries += 1
        timer = Timer(cfg.RHINOTIMEOUT, deadline, clock)
        try:
            value = _bounded(lambda: attempt(timer), deadline - clock())
            return value, tries, clock() - start
        except DeviceError as e:
            last = e
        if not last.retry or clock() + PAUSE + 0.01 >= deadline:
            break
        if str(last) != said:                # once per kind of failure, not once per try
            log.warning("%s, try %d: %s; trying again", what, tries, last)
            said = str(last)
        time.sleep(PAUSE)
    if tries > 1:
        last = DeviceError(f"{last} ({tries} tries in {clock() - start:.2f} s)", last.retry)
    raise last


# ---------------------------------------------------------------------------
# Switching and reading.

def switch(cfg, position, log, budget=BUDGET, by=None):
    """Move the card to position (PRIMARY or STANDBY), verify it where the card
    can be read back, record it in rhino.state; return a Result.

    Raises exits.AshaError (status 1) when the card cannot be switched within
    budget seconds, config.ConfigError when the configuration does not fit."""
    if position not in CONTACT:
        raise ValueError(position)
    driver = open_driver(cfg)

    def attempt(timer):
        if driver.readable:
            try:
                if driver.read(timer) == position:
                    return True                       # already there: nothing to move
            except UnknownPosition:
                pass                                  # neither: switching sets it right
        driver.set(position, timer)
        if driver.readable:
            got = driver.read(timer)
            if got != position:
                raise DeviceError(f"{driver.describe()}: still reads {got} after the switch "
                                  f"to {position}")
        return False

    record = {"POSITION": position, "DRIVER": cfg.RHINODRIVER, "DEVICE": driver.describe(),
              "BY": by or f"pid {os.getpid()}"}
    try:
        already, tries, seconds = _retrying(cfg, log, driver, attempt,
                                            f"PRI card to {position}", budget)
    except DeviceError as e:
        _record(cfg, log, dict(record, RESULT="failed", VERIFIED="no", AT=f"{time.time():.3f}",
                               ERROR=str(e)))
        raise exits.AshaError(str(e)) from None
    how = "read back from the card" if driver.readable else f"not read back ({driver.why_unreadable})"
    _record(cfg, log, dict(record, RESULT="ok", VERIFIED="yes" if driver.readable else "no",
                           AT=f"{time.time():.3f}", ERROR=""))
    return Result(position, driver.readable, already, tries, seconds, how)


def read(cfg, log, budget=BUDGET):
    """(position, source, note) of the card: source "card" when read back from it,
    "last commanded" when the driver cannot read it back; position None when it
    cannot be known (note says why). Raises exits.AshaError when the card does
    not answer, config.ConfigError when the configuration does not fit."""
    driver = open_driver(cfg)
    last = last_commanded(cfg)
    if driver.readable:
        try:
            position, _, _ = _retrying(cfg, log, driver, driver.read, "PRI card status", budget)
        except UnknownPosition as e:
            return None, "card", str(e)
        except DeviceError as e:
            raise exits.AshaError(str(e)) from None
        note = ""
        if last.get("RESULT") == "ok" and last.get("POSITION") != position:
            note = (f"the card is at {position}, but the last command was {last['POSITION']} "
                    f"at {_when(last.get('AT'))}: something else moved it, or it lost power")
        return position, "card", note
    if not last:
        return None, "last commanded", (f"{driver.why_unreadable}, and nothing was commanded "
                                        f"since {state.path(cfg, state.RHINO_STATE)} was last "
                                        f"cleared (a reboot empties it)")
    when = _when(last.get("AT"))
    if last.get("RESULT") != "ok":
        return None, "last commanded", (f"the last command, {last.get('POSITION')} at {when}, "
                                        f"failed: {last.get('ERROR')}")
    return last["POSITION"], "last commanded", \
        f"as last commanded at {when} by {last.get('BY', '?')}; {driver.why_unreadable}"


def last_commanded(cfg):
    """rhino.state as a mapping ({} when nothing was recorded)."""
    try:
        return state.read(state.path(cfg, state.RHINO_STATE))
    except (OSError, ValueError):
        return {}


def _record(cfg, log, values):
    try:
        state.write(state.path(cfg, state.RHINO_STATE), values)
    except OSError as e:
        log.warning("cannot record the PRI card's position in %s: %s",
                    state.path(cfg, state.RHINO_STATE), e.strerror)


def _when(at):
    try:
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(at)))
    except (TypeError, ValueError):
        return "an unknown time"


# ---------------------------------------------------------------------------
# asha-hb's resource chain.

def acquire(cfg, log):
    """Takeover: the PRI to this node (`primary`) when the card is attached here.

    Returns True when the card is at primary, False when it could not be
    switched (logged CRITICAL, ALERTCMD run), None when there is nothing to do
    here. Never raises; returns within about a second."""
    return _chain_step(cfg, log, PRIMARY, "acquire")


def release(cfg, log):
    """Release: the PRI to the other node (`standby`) when the card is attached here.
    Same contract as acquire()."""
    return _chain_step(cfg, log, STANDBY, "release")


def _chain_step(cfg, log, position, step):
    try:
        if not cfg.RHINOSPF:
            log.debug("RHINOSPF=NO: no PRI card to %s", step)
            return None
        here = cfg.local_node()
        if here != card_node(cfg):
            # The card is powered from its own node: from here nothing can move it.
            # It follows when that node releases it or loses power.
            log.info("PRI card: attached to %s, not to this node %s; nothing to %s here",
                     card_node_text(cfg), here, step)
            return None
        result = switch(cfg, position, log, by=f"{log.name} {step} (pid {os.getpid()})")
        log.info("%s", result)
        return True
    except Exception as e:                  # whatever it is, the takeover goes on
        if isinstance(e, config.ConfigError):
            text = "; ".join(e.errors)
        elif isinstance(e, (exits.AshaError, DeviceError)):
            text = str(e)
        else:
            text = f"{type(e).__name__}: {e}"
        reason = f"PRI card not switched to {position} ({CONTACT[position]}): {text}"
        log.critical("%s; going on without it", reason)
        alert(cfg, log, f"asha on {os.uname().nodename}: {reason}")
        return False


def alert(cfg, log, reason):
    """Run ALERTCMD with the one-line reason as its argument, without waiting for it."""
    if not cfg.ALERTCMD:
        return
    reason = " ".join(reason.split())
    try:
        p = subprocess.Popen(["/bin/sh", "-c", cfg.ALERTCMD + ' "$1"', "asha-alert", reason],
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True)
    except OSError as e:
        log.error("ALERTCMD could not be run: %s", e.strerror)
        return

    def reap():
        try:
            p.wait(ALERT_TIMEOUT)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            log.error("ALERTCMD ran for %d s and was killed", ALERT_TIMEOUT)
            return
        if p.returncode != 0:
            log.error("ALERTCMD exited with status %d", p.returncode)

    threading.Thread(target=reap, name="asha-alert", daemon=True).start()


# ---------------------------------------------------------------------------
# The command line.

def run(args, log_setup):
    """asha-rhino's commands; returns the exit status."""
    from . import cli
    cfg = cli.load_config(args, "asha-rhino")
    log = log_setup(cfg)
    here = cfg.local_node()
    if here != card_node(cfg):
        raise exits.AshaError(f"the PRI card is attached to {card_node_text(cfg)}, not to this "
                              f"node {here}; run asha-rhino there")
    if args["status"]:
        position, source, note = read(cfg, log)
        if position is None:
            print("unknown")
            print(f"asha-rhino: {note}", file=sys.stderr)
            return exits.LSB_UNKNOWN
        print(position)
        if note:
            print(f"asha-rhino: {note}", file=sys.stderr)
        return exits.OK
    position = PRIMARY if args["primary"] else STANDBY
    result = switch(cfg, position, log, by=f"asha-rhino {position} (pid {os.getpid()})")
    log.info("%s", result)
    return exits.OK
