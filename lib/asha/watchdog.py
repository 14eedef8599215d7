"""asha-watchdog: Asterisk runs on the active node, works there, and runs nowhere else.

On the node that asha-hb calls active it holds a pidfd on Asterisk, so that a
death is seen the instant it happens, asks Asterisk every WDHANGINTERVAL
whether it works (CLI, SIP or both) and kills it when it is hung; a dead
Asterisk is restarted (ATTEMPTRESTART) or handed to the peer through asha-hb.
On the standby it stops an Asterisk that runs while the peer is active. It acts
only on a role asha-hb has published in hb.state, and keeps what must outlive
it (restarts made, the flapping alert) in watchdog.state, so a watchdog killed
and respawned at any moment carries on where it was and never acts on a guess."""

import os
import select
import signal
import sys
import time

from . import asterisk, cli, config, control, exits, lock, state

START_TIMEOUT = 10.0    # seconds a restart may take before it counts as failed
PACE_MAX = 60.0         # longest pause between restarts that are not in a budget
ERROR_PAUSE_MAX = 60.0  # longest pause after an unexpected error
CONFIG_PAUSE = 15.0     # seconds before exiting 78 on a bad configuration, so that
                        # init's respawn (10 in 2 minutes disables the entry) is not hammered
LOCK_RETRY = 1.0        # seconds between tries for the lock another watchdog holds

# What one look found (check()).
OK = "ok"               # healthy, or nothing for this node to do
DEAD = "dead"           # Asterisk dead (or hung and killed) on the active node
ROGUE = "rogue"         # Asterisk running on the standby while the peer is active


class HangRound:
    """One hang check: a SIP OPTIONS and/or `asterisk -rx "core show uptime"`,
    each with WDHANGTIMEOUT to answer. BOTH fails only when both fail; the CLI
    (a process to start) is asked only once SIP is slow or refused."""

    def __init__(self, cfg, now, mode):
        self.cfg, self.mode, self.timeout = cfg, mode, cfg.WDHANGTIMEOUT
        self.sip = self.cli = None
        self.sip_end = self.cli_end = self.cli_at = None
        if mode in ("SIP", "BOTH"):
            self.sip = asterisk.SipProbe(cfg)
            self.sip_end = now + self.timeout
        if mode == "CLI":
            self._start_cli(now)
        elif mode == "BOTH":
            self.cli_at = now + self.timeout / 4

    def _start_cli(self, now):
        self.cli = asterisk.CliProbe(cfg=self.cfg)
        self.cli_end = now + self.timeout

    def fds(self):
        return [p for p in (self.sip, self.cli) if p is not None and p.result is None]

    def wake_at(self):
        times = [t for p, t in ((self.sip, self.sip_end), (self.cli, self.cli_end))
                 if p is not None and p.result is None]
        if self.cli is None and self.cli_at is not None:
            times.append(self.cli_at)
        return min(times, default=0.0)

    def step(self, now):
        """Read what has come and expire what is late; True, False or None (not yet)."""
        for p, end in ((self.sip, self.sip_end), (self.cli, self.cli_end)):
            if p is not None and p.result is None:
                p.read()
                if p.result is None and now >= end:
                    p.result, p.why = False, f"no answer within {self.timeout:g} s"
        if self.mode == "BOTH" and self.cli is None and self.sip.result is not True \
                and (self.sip.result is False or now >= self.cli_at):
            self._start_cli(now)
        results = [p.result for p in (self.sip, self.cli) if p is not None]
        if self.mode == "BOTH":
            if True in results:
                return True
            return False if len(results) == 2 and results == [False, False] else None
        return results[0]

    def why(self):
        parts = []
        if self.sip is not None and self.sip.result is False:
            parts.append(f"SIP {self.sip.why}")
        if self.cli is not None and self.cli.result is False:
            parts.append(f"CLI {self.cli.why}")
        return "; ".join(parts)

    def close(self):
        for p in (self.sip, self.cli):
            if p is not None:
                p.close()


def failover_times(hb):
    """Epoch seconds of the failovers hb.state lists (FAILOVERS)."""
    out = []
    for word in hb.get("FAILOVERS", "").split():
        try:
            out.append(float(word))
        except ValueError:
            pass
    return out


class Watchdog:
    def __init__(self, cfg, log, act=True, clock=time.monotonic, wall=time.time):
        self.cfg, self.log, self.act = cfg, log, act
        self.clock, self.wall = clock, wall
        self.node = cfg.local_node()
        self.state_file = state.path(cfg, state.WATCHDOG_STATE)
        self.pid = None             # the Asterisk watched (only while this node is active)
        self.pidfd = None
        self.started = None         # its start, epoch seconds
        self.answered = False       # it has passed a hang check
        self.hang_fails = 0
        self.round = None
        self.next_round = 0.0
        self.next_scan = 0.0
        self.seen = None            # (ROLE, PEERSTATE) last logged
        self.status = OK
        self.trouble = False        # dead, hung or rogue seen (--once exits 1)
        self.episode = None         # what was logged about the current death, once
        self.restarts = []          # epoch seconds of restarts made under ATTEMPTRESTART
        self.alerted = 0.0          # epoch seconds the flapping alert went out (0: not)
        self.pace = 0.0             # pause before the next restart outside the budget
        self.pace_next = 0.0
        self.error_pause = 0.0
        self.signals = []
        self.exiting = False
        self.wake_r = self.wake_w = None
        self._saved = None
        self._load()

    # ------------------------------------------------------------------ memory
    def _load(self):
        """Restarts and the alert from before a respawn; a damaged file is ignored."""
        try:
            old = state.read(self.state_file)
        except (OSError, ValueError) as e:
            self.log.warning("%s unreadable (%s); starting with no restarts counted", self.state_file, e)
            return
        for word in old.get("RESTARTS", "").split():
            try:
                self.restarts.append(float(word))
            except ValueError:
                pass
        try:
            self.alerted = float(old.get("ALERTED") or 0)
        except ValueError:
            pass

    def _save(self, role="", peer=""):
        values = {
            "PID": os.getpid(), "NODE": self.node, "ROLE": role or (self.seen or ("", ""))[0],
            "PEERSTATE": peer or (self.seen or ("", ""))[1],
            "ASTERISK": self.pid or "", "STATUS": self.status,
            "RESTARTS": " ".join(f"{t:.3f}" for t in self.restarts),
            "ALERTED": f"{self.alerted:.3f}" if self.alerted else "",
        }
        if values == self._saved or not self.act:
            return
        try:
            state.write(self.state_file, values)
            self._saved = values
        except OSError as e:
            self.log.error("cannot write %s: %s", self.state_file, e.strerror)

    # ------------------------------------------------------------------ one look
    def check(self, now, gone=None):
        """Observe Asterisk, then read asha-hb's state, then act on the two.

        In that order: an Asterisk that asha-hb has just started while taking
        over is then seen together with the role 'taking', never with the
        'standby' read before it."""
        pid = asterisk.find_pid(self.cfg)
        hb = state.read_hb(self.cfg)
        role, peer = hb.get("ROLE", "down"), hb.get("PEERSTATE", "unknown")
        self._note_role(role, peer)
        self._rearm_alert(hb)
        if role == "active":
            if pid is not None:
                self._watch(pid, now)
                self.status, self.episode = OK, None
            else:
                self._unwatch()
                self.status = DEAD
                self._dead(now, hb, "hung" if gone == "hung" else self._how_it_ended(), gone)
        else:
            self._unwatch()
            self.episode = None
            self.status = OK
            if role == "standby" and peer == "active" and pid is not None:
                self.status, self.trouble = ROGUE, True
                self.log.error("Asterisk (pid %d) is running on %s, the standby, while %s is "
                               "active: %s", pid, self.node, hb.get("PEER", "the peer"),
                               "stopping it" if self.act else "it must be stopped")
                if self.act:
                    asterisk.stop(self.cfg, self.log)
        self._save(role, peer)
        return self.status

    def _note_role(self, role, peer):
        if (role, peer) == self.seen:
            return
        self.seen = (role, peer)
        if role == "down":
            self.log.info("asha-hb is not running on %s: watching, touching nothing", self.node)
        elif role == "active":
            self.log.info("%s is active (peer %s): watching Asterisk", self.node, peer)
        elif role == "standby":
            self.log.info("%s is standby (peer %s)%s", self.node, peer,
                          ": Asterisk must not run here" if peer == "active" else "")
        else:
            self.log.info("%s is %s (peer %s): touching nothing until asha-hb settles",
                          self.node, role, peer)

    def _how_it_ended(self):
        # Asterisk removes its pid file when it shuts down in order ("core stop",
        # ASTSTOP, by hand); a crash or a kill -9 leaves it behind.
        return "crashed" if asterisk.pidfile_pid(self.cfg) is not None else "stopped"

    # ------------------------------------------------------------------ Asterisk is dead here
    def _dead(self, now, hb, how, gone_pid=None):
        cfg, wall = self.cfg, self.wall()
        peer_name, peer = hb.get("PEER", "the peer"), hb.get("PEERSTATE", "unknown")
        what = {"crashed": "died (its pid file is left behind)",
                "stopped": "was stopped (it removed its pid file: an orderly shutdown)",
                "hung": "was hung and has been killed"}[how]
        self.trouble = True
        if self.episode is None:
            self.episode = how
            self.log.error("Asterisk %s on %s, the active node", what, self.node)
        if not self.act:
            return
        recent = [t for t in failover_times(hb) if 0 <= wall - t <= cfg.WDFAILOVERWINDOW]
        if len(recent) >= cfg.WDMAXFAILOVERS:
            # Asterisk fails wherever it runs (a bad configuration synced to
            # both nodes): moving it again only adds outages. Stay, retry, tell.
            self._alert_once(f"Asterisk keeps failing: {len(recent)} failovers within "
                             f"{cfg.WDFAILOVERWINDOW:g} s (WDMAXFAILOVERS {cfg.WDMAXFAILOVERS}); "
                             f"asha stops failing over and keeps restarting it on {self.node}")
            self._restart(now, paced=True, why="flapping: no more failovers")
            return
        if how != "stopped" and cfg.ATTEMPTRESTART:
            self.restarts = [t for t in self.restarts if 0 <= wall - t <= cfg.WDRESTARTWINDOW]
            if len(self.restarts) < cfg.WDRESTARTS:
                self.restarts.append(wall)
                self._restart(now, paced=False, why=f"ATTEMPTRESTART, restart {len(self.restarts)} "
                              f"of {cfg.WDRESTARTS} within {cfg.WDRESTARTWINDOW:g} s")
                return
            if self.episode != "budget":
                self.episode = "budget"
                self.log.error("Asterisk restarted %d times within %g s (WDRESTARTS): failing over",
                               len(self.restarts), cfg.WDRESTARTWINDOW)
        if peer == "standby":
            if self._failover(f"Asterisk {what.split(' (')[0]} on {self.node}", hb):
                return
        elif self.episode not in ("nopeer", "nopeer-stopped"):
            self.log.error("cannot fail over: %s is %s", peer_name, peer)
        if how == "stopped":
            # Stopped on purpose, and nobody to hand over to: starting it again
            # would undo what a person did. Say so once and leave it.
            if self.episode != "nopeer-stopped":
                self.episode = "nopeer-stopped"
                self.log.error("Asterisk stays stopped on %s; start it with `%s` when it "
                               "should run", self.node, cfg.ASTSTART)
            return
        if self.episode != "nopeer":
            self.episode = "nopeer"
        self._restart(now, paced=True, why=f"{peer_name} cannot take over ({peer})")

    def _restart(self, now, paced, why):
        if paced and now < self.pace_next:
            return
        self.log.warning("restarting Asterisk on %s: %s", self.node, why)
        self.status = "restarting"
        ok = asterisk.start(self.cfg, self.log, timeout=START_TIMEOUT)
        now = self.clock()
        if paced:
            self.pace = min(PACE_MAX, max(1.0, self.pace * 2))
            self.pace_next = now + self.pace
            if not ok:
                self.log.error("Asterisk did not start on %s; next try in %g s", self.node, self.pace)
        pid = asterisk.find_pid(self.cfg) if ok else None
        if pid is not None:
            self._watch(pid, now)
            self.status = OK
        else:
            self.status = DEAD
        self._save()

    def _failover(self, reason, hb):
        peer = hb.get("PEER", "the peer")
        try:
            answer = control.request(self.cfg, "failover", reason, timeout=2)
        except control.NotRunning:
            try:
                os.kill(int(hb.get("PID", "0")), signal.SIGUSR1)
            except (ValueError, OSError) as e:
                self.log.error("cannot ask asha-hb to fail over: no control socket, and SIGUSR1 "
                               "failed: %s", getattr(e, "strerror", e))
                return False
            self.log.warning("asked asha-hb (pid %s) by SIGUSR1 to fail over to %s", hb.get("PID"), peer)
            return True
        except exits.AshaError as e:
            self.log.error("asha-hb did not fail over: %s", e)
            return False
        self.log.warning("asked asha-hb to fail over to %s: %s", peer, " ".join(answer) or "OK")
        return True

    def _alert_once(self, reason):
        if self.alerted:
            return
        self.alerted = self.wall()
        self.log.critical("%s", reason)
        self._save()
        from .rhino import alert
        alert(self.cfg, self.log, reason)

    def _rearm_alert(self, hb):
        if self.alerted:
            recent = [t for t in failover_times(hb) if 0 <= self.wall() - t <= self.cfg.WDFAILOVERWINDOW]
            if len(recent) < self.cfg.WDMAXFAILOVERS and self.wall() - self.alerted > self.cfg.WDFAILOVERWINDOW:
                self.alerted = 0.0

    # ------------------------------------------------------------------ the watched process
    def _watch(self, pid, now):
        if pid == self.pid:
            if self.pace and self.started is not None and self.wall() - self.started > PACE_MAX:
                self.pace = 0.0          # it has run a good while: a new failure restarts at once
            return
        self._unwatch()
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:
            return                       # gone before we looked: the next scan sees it
        if asterisk.find_pid(self.cfg) != pid:
            os.close(fd)                 # not the process we meant (gone, or pid reused)
            return
        self.pid, self.pidfd = pid, fd
        self.started = asterisk.started_at(pid) or self.wall()
        self.answered = False
        self.hang_fails = 0
        self.next_round = now
        self.log.info("watching Asterisk (pid %d)", pid)

    def _unwatch(self):
        if self.round is not None:
            self.round.close()
            self.round = None
        if self.pidfd is not None:
            os.close(self.pidfd)
        self.pid = self.pidfd = None
        self.hang_fails = 0

    def gone(self, now):
        """The pidfd says the watched process has exited."""
        pid = self.pid
        self.log.warning("Asterisk (pid %d) has exited", pid)
        self._unwatch()
        return self.check(now, gone=pid)

    def hang_result(self, now, ok, why):
        """A hang round has ended; kill a hung Asterisk, then treat it as dead."""
        pid = self.pid
        if ok:
            if self.hang_fails:
                self.log.info("Asterisk (pid %d) answers again after %d failed hang check%s",
                              pid, self.hang_fails, "s" if self.hang_fails > 1 else "")
            self.hang_fails, self.answered = 0, True
            return OK
        if not self.answered and self.wall() - (self.started or 0) < self.cfg.WDSTARTGRACE:
            self.log.debug("Asterisk (pid %d) not answering yet (%s), still within WDSTARTGRACE", pid, why)
            return OK
        self.hang_fails += 1
        self.log.warning("hang check %d of %d failed for Asterisk (pid %d): %s",
                         self.hang_fails, self.cfg.WDHANGCOUNT, pid, why)
        if self.hang_fails < self.cfg.WDHANGCOUNT:
            return OK
        hb = state.read_hb(self.cfg)
        if hb.get("ROLE") != "active" or asterisk.find_pid(self.cfg) != pid:
            self._unwatch()          # asha-hb is moving things, or it is another process now
            return OK
        self.log.error("Asterisk (pid %d) is hung: %d hang checks in a row failed", pid, self.hang_fails)
        self.trouble = True
        if not self.act:
            self.status = "hung"
            return self.status
        asterisk.kill(pid, self.log, "hung")
        asterisk.wait_gone(pid, 2.0)
        self._unwatch()
        return self.check(now, gone="hung")

    # ------------------------------------------------------------------ the daemon
    def _record_signal(self, signum, frame):
        self.signals.append(signum)

    def _signals(self):
        while self.signals:
            sig = self.signals.pop(0)
            if sig in (signal.SIGTERM, signal.SIGINT):
                self.log.info("signal %s: stopping; Asterisk is left as it is",
                              signal.Signals(sig).name)
                self.exiting = True
            elif sig == signal.SIGHUP:
                self.reload()
            elif sig == signal.SIGUSR1:
                self.log.info("status: %s", self.status_line())

    def status_line(self):
        role, peer = self.seen or ("unknown", "unknown")
        what = f"watching Asterisk pid {self.pid}" if self.pid else "no Asterisk watched"
        return (f"{self.node} {role} (peer {peer}), {what}, {self.status}, "
                f"{self.hang_fails} failed hang check(s) in a row, "
                f"{len(self.restarts)} restart(s) remembered, alert {'sent' if self.alerted else 'not sent'}")

    def reload(self):
        try:
            cfg = config.load(self.cfg.path)
            cfg.local_node()
        except config.ConfigError as e:
            for line in e.errors:
                self.log.error("reload: %s", line)
            self.log.error("reload: configuration has errors; keeping the running one")
            return
        self.cfg = cfg
        self._unwatch()                  # timings and the check may have changed
        self.next_scan = 0.0
        self.log.info("reload: configuration %s loaded", cfg.path)

    def _guarded(self, fn, *args):
        """fn(*args), and an unexpected error pauses the loop (growing) instead of
        ending the process, whose respawns init would count and then disable."""
        try:
            result = fn(*args)
            self.error_pause = 0.0
            return result
        except Exception as e:          # noqa: BLE001 - the watchdog must outlive its bugs
            self.error_pause = min(ERROR_PAUSE_MAX, max(1.0, self.error_pause * 2))
            self.log.error("unexpected error: %s: %s; looking again in %g s",
                           type(e).__name__, e, self.error_pause)
            self._unwatch()
            self.next_scan = self.clock() + self.error_pause
            return None

    def run(self):
        self.wake_r, self.wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(self.wake_w)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1):
            signal.signal(sig, self._record_signal)
        cfg = self.cfg
        self.log.info("asha-watchdog starting on %s: hang check %s every %g s (timeout %g s, "
                      "%d in a row), process scan every %g s", self.node, cfg.ASTHANGCHECK,
                      cfg.WDHANGINTERVAL, cfg.WDHANGTIMEOUT, cfg.WDHANGCOUNT, cfg.WDINTERVAL)
        while not self.exiting:
            cfg = self.cfg
            now = self.clock()
            if now >= self.next_scan:
                self.next_scan = now + cfg.WDINTERVAL
                self._guarded(self.check, now)
            now = self.clock()
            hang_on = self.pid is not None and cfg.ASTHANGCHECK != "OFF"
            if hang_on and self.round is None and now >= self.next_round:
                self.next_round = now + cfg.WDHANGINTERVAL
                self.round = self._guarded(HangRound, cfg, now, cfg.ASTHANGCHECK)
            fds = [self.wake_r]
            wake = self.next_scan
            if self.pidfd is not None:
                fds.append(self.pidfd)
            if self.round is not None:
                fds += self.round.fds()
                wake = min(wake, self.round.wake_at())
            elif hang_on:
                wake = min(wake, self.next_round)
            try:
                ready, _, _ = select.select(fds, [], [], max(0.0, wake - self.clock()))
            except InterruptedError:
                ready = []
            now = self.clock()
            if self.wake_r in ready:
                try:
                    os.read(self.wake_r, 512)
                except BlockingIOError:
                    pass
            self._signals()
            if self.exiting:
                break
            if self.pidfd is not None and self.pidfd in ready:
                self.next_scan = now + self.cfg.WDINTERVAL
                self._guarded(self.gone, now)
            elif self.round is not None:
                verdict = self._guarded(self.round.step, now)
                if verdict is not None and self.round is not None:
                    rnd, self.round = self.round, None
                    why = rnd.why()
                    rnd.close()
                    self._guarded(self.hang_result, now, verdict, why)
        self._unwatch()
        self.log.info("asha-watchdog stopped")
        return exits.OK

    def once(self):
        """One look, the hang check included (up to WDHANGCOUNT rounds, stopping at
        the first answer); act on it when self.act. The exit status."""
        cfg = self.cfg
        status = self.check(self.clock())
        if status == OK and self.pid is not None and cfg.ASTHANGCHECK != "OFF":
            self._hang_rounds()
        self._unwatch()
        return exits.FAIL if self.trouble else exits.OK

    def _hang_rounds(self):
        # Without a history a process cannot be known to have answered before:
        # only one older than WDSTARTGRACE can be found hung here.
        for i in range(self.cfg.WDHANGCOUNT):
            now = self.clock()
            rnd = HangRound(self.cfg, now, self.cfg.ASTHANGCHECK)
            try:
                verdict = None
                while verdict is None:
                    wait = max(0.0, rnd.wake_at() - self.clock())
                    select.select(rnd.fds() + ([self.pidfd] if self.pidfd is not None else []),
                                  [], [], wait)
                    if self.pidfd is not None and select.select([self.pidfd], [], [], 0)[0]:
                        self.gone(self.clock())
                        return
                    verdict = rnd.step(self.clock())
                why = rnd.why()
            finally:
                rnd.close()
            self.hang_result(self.clock(), verdict, why)
            if verdict or self.pid is None or self.status == "hung":
                return
            if i + 1 < self.cfg.WDHANGCOUNT:
                time.sleep(max(0.0, now + self.cfg.WDHANGINTERVAL - self.clock()))


# ---------------------------------------------------------------------------
# The command line.

def _config_or_pause(args, daemon):
    """The configuration; on errors, a daemon waits CONFIG_PAUSE (unless a person
    watches on a terminal, or SIGTERM/SIGINT comes) before exit status 78."""
    try:
        cfg = cli.load_config(args, "asha-watchdog")
        cfg.local_node()
        return cfg
    except config.ConfigError as e:
        if daemon:
            log = cli.setup_log("asha-watchdog", None, stderr=False)
            for line in e.errors:
                log.error("%s", line)
            if not sys.stderr.isatty():
                for line in e.errors:
                    print(line, file=sys.stderr)
                print(f"asha-watchdog: configuration has errors; exiting in {CONFIG_PAUSE:g} s "
                      f"(status 78)", file=sys.stderr, flush=True)
                sigs = {signal.SIGTERM, signal.SIGINT}
                signal.pthread_sigmask(signal.SIG_BLOCK, sigs)
                signal.sigtimedwait(sigs, CONFIG_PAUSE)
                raise config.ConfigError([], e.warnings) from None
        raise


def run(args):
    once = bool(args["--once"])
    cfg = _config_or_pause(args, daemon=not once)
    log = cli.setup_log("asha-watchdog", cfg, stderr=True if once else None,
                        verbose=args["--verbose"])
    if once and not args["--verbose"]:
        # A healthy cron run prints nothing; a problem goes to cron's mail.
        import logging
        for h in log.handlers:
            if isinstance(h, logging.StreamHandler) and getattr(h, "stream", None) is sys.stderr:
                h.setLevel(logging.WARNING)
    pidlock = lock.Lock(state.path(cfg, state.WATCHDOG_PID))
    if once:
        try:
            pidlock.acquire()
            act = True
        except lock.LockBusy as e:
            act = False
            log.info("asha-watchdog (pid %s) is running and acts; this run only looks", e.pid)
        try:
            return Watchdog(cfg, log, act=act).once()
        finally:
            pidlock.release()
    return _daemon(cfg, log, pidlock)


def _daemon(cfg, log, pidlock):
    waited = False
    while True:
        try:
            pidlock.acquire()
            break
        except lock.LockBusy as e:
            # Exiting would make init respawn us at once, again and again.
            if not waited:
                log.warning("another asha-watchdog (pid %s) is running; waiting for it to go", e.pid)
                waited = True
            time.sleep(LOCK_RETRY)
    try:
        return Watchdog(cfg, log).run()
    finally:
        pidlock.release()
