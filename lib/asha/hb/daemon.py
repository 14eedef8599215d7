"""asha-hb's daemon: the two nodes agree who is active, and the active one holds
the resources (the PRI card, the cluster IP, Asterisk).

Each node beats on every path every HBKEEPALIVE seconds, telling its role; the
peer is dead only when every path has been silent for HBDEADTIME. Decisions
are taken in one loop from what the node knows; the resource chain runs in a
worker thread so that the node keeps beating while Asterisk starts or stops."""

import collections
import ctypes
import os
import queue
import select
import signal
import socket
import threading
import time

from .. import asterisk, config, exits, lock, state
from . import detector
from . import paths as hbpaths
from . import ping as hbping
from . import proto

ROLES = ("waiting", "standby", "taking", "active", "releasing", "stopped")
FAILOVER_MEMORY = 3600.0


def _realtime_thread(prio):
    """SCHED_RR at prio for the calling thread, and only for it: with
    SCHED_RESET_ON_FORK what it starts (ASTSTART's Asterisk, rsync, ALERTCMD,
    another thread) begins at normal priority, as an Asterisk started by init
    would. A real-time Asterisk busy with calls could starve the host."""
    os.sched_setscheduler(0, os.SCHED_RR | os.SCHED_RESET_ON_FORK, os.sched_param(prio))


class Daemon:
    def __init__(self, cfg, log, config_path):
        self.cfg, self.log, self.config_path = cfg, log, config_path
        self._timing()
        self.node = cfg.local_node()
        self.peer = cfg.peer_node()
        self.is_primary = cfg.node_role() == "primary"
        self.key = proto.load_key(cfg.HBAUTHKEY)
        self.codec = proto.Codec(self.key, self.node, self.peer)
        self.peer_addr = cfg.node_addr(self.peer)
        self.local_addr = cfg.node_addr(self.node) if cfg.is_set(
            "HAPRIADDR" if self.is_primary else "HASECADDR") else None
        self.paths = []
        self.heard = {}                 # path name -> monotonic time the peer was last heard there
        self.detectors = {}             # path name -> its PathDetector (when silence means dead)
        self.path_silent = {}           # path name -> True once its silence was logged
        self.last_heard = None
        self.peer_fields = {}
        self.peer_alive = False
        self.peerstate = "unknown"
        self.role = "waiting"
        self.role_since = time.time()
        self.active_since = 0.0
        self.started = time.monotonic()
        self.yield_to_peer = False      # hand the resources to the peer (after a failure or `standby`)
        self.want = False               # ask the peer for the resources (`takeover`, failback)
        self.failback_pending = self.is_primary and cfg.HAAUTOFAILBACK
        self.failovers = collections.deque()
        self.worker = None
        self.rt_prio = 0                    # the real-time priority applied (HBRTPRIO), 0: none
        self.peer_newest = (0, 0)           # (generation, sequence) of the peer's fields applied
        self.results = queue.SimpleQueue()
        self.exiting = False
        self.stop_requested = False
        self.signals = []
        self.ping_check_since = None    # when a fresh ping answer was asked for before taking over
        self.logged = set()             # one-shot log lines, by key
        self.next_beat = 0.0
        self._beat_key = self._beat_fields = None
        self.take_backoff = 0.0         # seconds to wait after a failed takeover (doubles)
        self.take_blocked_until = 0.0
        self.take_is_failover = False
        self.control = None
        self.pinger = None

    # ------------------------------------------------------------------ set-up
    def open(self):
        cfg = self.cfg
        os.makedirs(cfg.rundir, exist_ok=True)
        self.paths.append(hbpaths.UDPPath(self.local_addr, self.peer_addr, cfg.HBPORT, self.log))
        for dev in cfg.HBSERIAL:
            self.paths.append(hbpaths.SerialPath(dev, int(cfg.HBBAUD), self.log))
        for p in self.paths:
            self.heard[p.name] = None
            self.detectors[p.name] = detector.PathDetector(cfg.HBKEEPALIVE, cfg.HBDEADTIME,
                                                           cfg.HBDEADTIMEMAX)
        if cfg.HBPINGNODES:
            self.pinger = hbping.Pinger(cfg.HBPINGNODES, self.log)
        ctl = state.path(cfg, state.HB_CONTROL)
        try:
            os.unlink(ctl)
        except FileNotFoundError:
            pass
        self.control = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC)
        self.control.bind(ctl)
        os.chmod(ctl, 0o600)
        self.control.listen(8)
        self.wake_r, self.wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(self.wake_w)
        self.waiter = select.poll()            # what ends the wait between beats
        for fd in (self.control.fileno(), self.wake_r):
            self.waiter.register(fd, select.POLLIN)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1):
            signal.signal(sig, self._record_signal)
        self._realtime()
        self.log.info("asha-hb starting on %s (%s), peer %s at %s, paths: %s", self.node,
                      "primary" if self.is_primary else "standby node", self.peer, self.peer_addr,
                      ", ".join(p.name for p in self.paths))
        self._write_state()

    def _realtime(self):
        prio = self.cfg.HBRTPRIO
        self.rt_prio = 0
        if prio:
            try:
                _realtime_thread(prio)
                self.rt_prio = prio
            except OSError as e:
                self.log.warning("cannot run at real-time priority %d: %s", prio, e.strerror)
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.mlockall(7) != 0:             # MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT
            self.log.warning("cannot lock memory: %s", os.strerror(ctypes.get_errno()))

    def _timing(self):
        # Read on every beat: plain attributes, not the configuration's lookup.
        self.keepalive, self.warntime = self.cfg.HBKEEPALIVE, self.cfg.HBWARNTIME

    def _record_signal(self, signum, frame):
        self.signals.append(signum)

    # ------------------------------------------------------------------ the loop
    def run(self):
        while not self.exiting:
            now = time.monotonic()
            if now >= self.next_beat:
                self._beat()
                self.next_beat = max(self.next_beat + self.keepalive, now + self.keepalive / 2)
            if self.pinger and now >= self.pinger.due():
                self.pinger.send_round(now)
            # Wake once per keepalive and read every path then, rather than once
            # per packet: a third of the wake-ups, at most a keepalive later.
            wake_at = self.next_beat
            if self.pinger:
                wake_at = min(wake_at, self.pinger.due())
            if self.peer_alive:
                wake_at = min(wake_at, self._death_time())
            try:
                # poll's timeout is whole milliseconds, rounded up: a wake-up at most 1 ms late
                ready = [fd for fd, _ in self.waiter.poll(max(0.0, wake_at - time.monotonic()) * 1000)]
            except InterruptedError:
                ready = []
            now = time.monotonic()
            for p in self.paths:
                for data in p.recv():
                    self._receive(data, p, now)
                if isinstance(p, hbpaths.SerialPath):
                    p.poll_reopen(now)
            if self.pinger:
                self.pinger.receive(now)
            if self.control.fileno() in ready:
                self._control()
            if self.wake_r in ready:
                try:
                    os.read(self.wake_r, 512)
                except BlockingIOError:
                    pass
            self._signals()
            self._chain_results()
            self._decide(time.monotonic())
        self._shutdown()

    def _beat(self):
        ping = "-" if not self.pinger else int(self.pinger.ok(time.monotonic()))
        key = (self.role, self.active_since, self.yield_to_peer, self.want, ping)
        if key != self._beat_key:          # they change seldom: formatted only then
            self._beat_key = key
            self._beat_fields = (("role", self.role), ("since", f"{self.active_since:.6f}"),
                                 ("yld", int(self.yield_to_peer)), ("want", int(self.want)),
                                 ("ping", ping))
        msg = self.codec.encode_fields("bye" if self.role == "stopped" else "beat", self._beat_fields)
        for p in self.paths:
            p.send(msg)

    def _receive(self, data, path, now):
        try:
            msg = self.codec.decode(data, path.name)
        except proto.Rejected:
            return                         # counted in codec.counters; shown by `status`
        name = path.name
        path.heard_at = now
        last = self.heard[name]
        if last is not None and now - last > self.warntime:
            self.log.warning("late heartbeat from %s on %s: %.0f ms since the last one there",
                             self.peer, name, (now - last) * 1000)
        if name in self.path_silent and self.path_silent.pop(name):
            self.log.info("path %s carries heartbeats from %s again", name, self.peer)
        self.heard[name] = now
        self.detectors[name].heard(now, msg.gen, msg.seq)
        self.last_heard = now
        # Each message goes out once on every path with one number: a copy that
        # comes after a newer one (the serial line is slower than the LAN) says
        # the peer is alive, but its role is out of date.
        if (msg.gen, msg.seq) <= self.peer_newest:
            return
        self.peer_newest = (msg.gen, msg.seq)
        fields = msg.fields                # read only (shared by messages with the same fields)
        if msg.type == "bye":
            fields = dict(fields, role="stopped")
        if fields.get("role") != self.peer_fields.get("role"):
            self.log.info("peer %s is %s", self.peer, fields.get("role"))
            self.peer_fields = fields
            self._write_state()
        else:
            self.peer_fields = fields

    # ------------------------------------------------------------------ decisions
    def _peer_role(self):
        return self.peer_fields.get("role", "unknown") if self.peer_alive else "dead"

    def _update_liveness(self, now):
        alive, silent = False, []           # silent: paths heard once, silent now
        for name, d in self.detectors.items():
            if d.alive(now):
                alive = True
            elif d.last is not None:
                silent.append((name, d))
        if self.peer_fields.get("role") == "stopped":
            alive = False
        if alive:
            for name, d in silent:
                if not self.path_silent.get(name):
                    self.path_silent[name] = True
                    self.log.warning("path %s silent for %.2f s; %s still heard on another path, "
                                     "no failover", name, now - d.last, self.peer)
        if alive != self.peer_alive:
            self.peer_alive = alive
            if alive:
                self.log.info("peer %s alive, heard on %s", self.peer,
                              ", ".join(n for n, d in self.detectors.items() if d.alive(now)))
            elif self.last_heard is not None:
                why = "said goodbye" if self.peer_fields.get("role") == "stopped" else \
                    f"nothing heard on any path for {now - self.last_heard:.2f} s"
                self.log.warning("peer %s dead: %s", self.peer, why)
        peerstate = self._peer_role()
        if peerstate != self.peerstate:
            self.peerstate = peerstate
            self._write_state()

    def _death_time(self):
        """When the peer will be dead if nothing more is heard: the latest of the paths' deadlines."""
        return max((d.deadline() for d in self.detectors.values() if d.last is not None),
                   default=time.monotonic())

    def _ping_ok(self, now):
        return self.pinger is None or self.pinger.ok(now)

    def _decide(self, now):
        cfg = self.cfg
        self._update_liveness(now)
        if self.worker is not None or self.role == "stopped":
            return
        if self.stop_requested:
            if self.role == "active":
                self._release("asha-hb is stopping", hand_over=True)
            else:
                self._set_role("stopped")
                for _ in range(3):              # a lost goodbye costs the peer HBDEADTIME
                    self._beat()
                self.exiting = True
            return
        peer = self._peer_role()
        pf = self.peer_fields

        if self.role == "waiting":
            if self.peer_alive:
                self._set_role("standby")
                if self.cfg.RHINOSPF and self.peer_fields.get("role") == "active":
                    # A powered card bridges the PRI to the primary by itself; a
                    # node that starts while the peer holds the PBX puts it back.
                    self._run_worker("card", lambda: self._rhino("release"))
                    return
            elif now - self.started >= cfg.HBINITDEAD:
                self._once("initdead", "warning", "%s not heard within HBINITDEAD (%g s) of the "
                           "start", self.peer, cfg.HBINITDEAD)
                self._take_if_ping(now, "the peer did not come up within HBINITDEAD", failover=False)
                return
            else:
                return

        if self.role == "active":
            if self.pinger and not self._ping_ok(now) and now - self.started > hbping.Pinger.WINDOW:
                self._release("no ping node answers: this node is cut off from the LAN",
                              hand_over=True)
            elif peer == "active":
                theirs = float(pf.get("since", "0") or 0)
                # Partition healed with both active: the node that became active
                # first keeps the resources (its phones are registered there);
                # on a tie the primary keeps them. Both nodes reach the same verdict.
                lose = (self.active_since > theirs) or \
                       (self.active_since == theirs and not self.is_primary)
                if lose:
                    self._release(f"both nodes active; {self.peer} has been active longer "
                                  f"(since {time.strftime('%H:%M:%S', time.localtime(theirs))})",
                                  hand_over=False)
            elif peer == "standby" and pf.get("want") == "1":
                self._release(f"{self.peer} asks for the resources", hand_over=True)
            return

        if self.role == "standby":
            if peer == "active":
                self.yield_to_peer = False
                self.ping_check_since = None
                if self.failback_pending:
                    self.failback_pending = False
                    self._failback()
                return
            if peer == "dead":
                self.want = False
                bye = self.peer_fields.get("role") == "stopped"
                self._take_if_ping(now, f"{self.peer} said goodbye" if bye else f"{self.peer} dead",
                                   failover=not bye)
                return
            if peer in ("taking", "releasing", "waiting", "unknown", "stopped"):
                return
            # peer standby
            if pf.get("yld") == "1":
                self._take_if_ping(now, f"{self.peer} hands over the resources", failover=True)
            elif self.yield_to_peer:
                return
            elif self.want or (self.is_primary and pf.get("want") != "1"):
                self._take_if_ping(now, "both nodes standby; the primary takes the resources"
                                   if not self.want else "takeover asked for", failover=False)

    def _take_if_ping(self, now, why, failover):
        if now < self.take_blocked_until:
            return
        if self.pinger is not None:
            # Only a node that reaches the LAN right now may serve the phones:
            # ask for a fresh answer and decide once it comes (or does not).
            if self.ping_check_since is None:
                self.ping_check_since = now
                self.pinger.send_round(now)
                return
            if not self.pinger.ok(now, since=self.ping_check_since):
                if now - self.ping_check_since > 1.0:
                    self._once("noping", "error", "%s, but no ping node answers: not taking "
                               "the resources (this node may be the one cut off)", why)
                    self.ping_check_since = None
                return
            self.ping_check_since = None
            self.logged.discard("noping")
        self._takeover(why, failover)

    def _once(self, key, level, fmt, *args):
        if key not in self.logged:
            self.logged.add(key)
            getattr(self.log, level)(fmt, *args)

    # ------------------------------------------------------------------ roles and the chain
    def _set_role(self, role):
        if role != self.role:
            self.role = role
            self.role_since = time.time()
            self._write_state()
            self.next_beat = 0.0           # tell the peer at once

    def _note_failover(self):
        now = time.time()
        self.failovers.append(now)
        while self.failovers and now - self.failovers[0] > FAILOVER_MEMORY:
            self.failovers.popleft()

    def _takeover(self, why, failover):
        self.log.info("taking the resources: %s", why)
        self.take_is_failover = failover
        self._set_role("taking")
        self._run_worker("takeover", self._chain_take)

    def _release(self, why, hand_over, failover=False):
        self.log.info("releasing the resources: %s", why)
        if failover:
            self._note_failover()
        self.yield_to_peer = hand_over
        self._set_role("releasing")
        self._run_worker("release", self._chain_release)

    def _run_worker(self, name, fn):
        def work():
            if self.rt_prio:                # the new thread started at normal priority
                try:
                    _realtime_thread(self.rt_prio)
                except OSError:
                    pass
            t0 = time.monotonic()
            try:
                ok = fn()
            except Exception as e:          # a bug must not leave the node half active
                self.log.exception("%s: unexpected error: %s", name, e)
                ok = False
            self.results.put((name, ok, time.monotonic() - t0))
            os.write(self.wake_w, b"w")
        self.worker = threading.Thread(target=work, name=name, daemon=True)
        self.worker.start()

    def _chain_results(self):
        while not self.results.empty():
            name, ok, took = self.results.get()
            self.worker = None
            if name == "takeover":
                if ok:
                    self.active_since = time.time()
                    self.want = False
                    self.take_backoff = 0.0
                    if self.take_is_failover:
                        self._note_failover()
                    self._set_role("active")
                    self.log.info("takeover complete in %.0f ms: %s is active", took * 1000, self.node)
                else:
                    # Something here or on the LAN refused (the address held by
                    # another host, Asterisk that will not start): try again later,
                    # not at once, and let the peer have it meanwhile.
                    self.yield_to_peer = True
                    self.take_backoff = min(max(1.0, self.take_backoff * 2), 30.0)
                    self.take_blocked_until = time.monotonic() + self.take_backoff
                    self._set_role("standby")
                    self.log.error("takeover failed after %.0f ms; resources released, handing "
                                   "over to %s; next try in %g s at the earliest", took * 1000,
                                   self.peer, self.take_backoff)
            elif name == "release":
                self.active_since = 0.0
                self._set_role("standby")
                self.log.info("release complete in %.0f ms%s", took * 1000,
                              "" if ok else " (with errors, see above)")
            elif name == "card":
                pass                            # acquire/release log their own outcome
            elif name == "sync":
                if ok:
                    self.log.info("failback: data pulled from %s, asking for the resources", self.peer)
                else:
                    self.log.error("failback: pulling the data from %s failed; asking for the "
                                   "resources anyway would lose what was written there, so not", self.peer)
                self.want = ok

    def _step(self, what, fn):
        t0 = time.monotonic()
        ok = fn()
        self.log.info("%s: %s in %.0f ms", what, "done" if ok else "FAILED", (time.monotonic() - t0) * 1000)
        return ok

    def _rhino(self, action):
        if not self.cfg.RHINOSPF:
            return True
        try:
            from .. import rhino
        except ImportError:
            self.log.critical("RHINOSPF=YES but asha's rhino module is missing; the PRI stays where it is")
            return True
        getattr(rhino, action)(self.cfg, self.log)   # never blocks long, never raises for the card
        return True

    def _vip(self, up):
        from .. import vip
        try:
            if up:
                vip.vip_up(self.cfg, self.log, wait_announce=False)
            else:
                vip.vip_down(self.cfg, self.log)
            return True
        except (exits.AshaError, config.ConfigError) as e:
            self.log.error("cluster IP: %s", e)
            return False

    def _chain_take(self):
        if not self._step("PRI card to this node", lambda: self._rhino("acquire")):
            return False
        if not self._step("cluster IP up", lambda: self._vip(True)):
            self._step("PRI card back", lambda: self._rhino("release"))
            return False
        if not self._step("Asterisk start", lambda: asterisk.start(self.cfg, self.log)):
            self._step("Asterisk stop", lambda: asterisk.stop(self.cfg, self.log))
            self._step("cluster IP down", lambda: self._vip(False))
            self._step("PRI card back", lambda: self._rhino("release"))
            return False
        return True

    def _chain_release(self):
        ok = self._step("Asterisk stop", lambda: asterisk.stop(self.cfg, self.log))
        ok = self._step("cluster IP down", lambda: self._vip(False)) and ok
        ok = self._step("PRI card to the peer", lambda: self._rhino("release")) and ok
        return ok

    def _failback(self):
        """The primary is back with the peer active: pull the data written there, then ask."""
        try:
            from .. import sync
        except ImportError:
            self.log.info("failback: no asha-sync here; asking %s for the resources", self.peer)
            self.want = True
            return
        self.log.info("failback: pulling the data written on %s meanwhile", self.peer)

        def pull():
            return sync.run_now(self.cfg, self.log)
        self._run_worker("sync", pull)

    # ------------------------------------------------------------------ signals and control
    def _signals(self):
        while self.signals:
            sig = self.signals.pop(0)
            if sig in (signal.SIGTERM, signal.SIGINT):
                self.log.info("signal %s: stopping (resources released first)", signal.Signals(sig).name)
                self.stop_requested = True
            elif sig == signal.SIGHUP:
                self._reload()
            elif sig == signal.SIGUSR1:
                self._failover_request("SIGUSR1")

    def _failover_request(self, reason):
        if self.role != "active":
            return f"not active here (role {self.role}); nothing to hand over"
        if not self.peer_alive:
            self.log.error("failover asked (%s), but %s is dead: keeping the resources here", reason, self.peer)
            return f"{self.peer} is not alive; keeping the resources here"
        self._release(f"failover asked: {reason}", hand_over=True, failover=True)
        return None

    def _reload(self):
        try:
            cfg = config.load(self.config_path)
        except config.ConfigError as e:
            for line in e.errors:
                self.log.error("reload: %s", line)
            self.log.error("reload: configuration has errors; keeping the running one")
            return "configuration has errors; keeping the running one"
        if (cfg.HAPRINODE, cfg.HASECNODE, cfg.HBPORT, cfg.HBSERIAL, cfg.HBAUTHKEY,
                cfg.node_addr(self.peer)) != (self.cfg.HAPRINODE, self.cfg.HASECNODE,
                                              self.cfg.HBPORT, self.cfg.HBSERIAL, self.cfg.HBAUTHKEY,
                                              self.peer_addr):
            self.log.warning("reload: node names, port, serial devices and key take effect at "
                             "the next start; the rest is applied now")
            cfg = config.load(self.config_path, overrides={
                k: _as_text(self.cfg[k]) for k in ("HAPRINODE", "HASECNODE", "HBPORT", "HBAUTHKEY",
                                                    "HAPRIADDR", "HASECADDR")})
        self.cfg = cfg
        self._timing()
        self.log.info("reload: configuration %s loaded", self.config_path)
        return None

    def _control(self):
        try:
            conn, _ = self.control.accept()
        except (BlockingIOError, InterruptedError):
            return
        try:
            conn.settimeout(0.2)
            data = b""
            while b"\n" not in data and len(data) < 1024:
                chunk = conn.recv(1024)
                if not chunk:
                    break
                data += chunk
            words = data.decode(errors="replace").split()
            answer = self._command(words)
            conn.sendall(answer.encode())
        except OSError:
            pass
        finally:
            conn.close()

    def _command(self, words):
        cmd = words[0] if words else ""
        if cmd == "status":
            return "OK\n" + "".join(f"{k}={config.quote(v)}\n" for k, v in self.status().items())
        if cmd == "standby":
            if self.role == "standby":
                return "OK already standby\n"
            if self.role != "active":
                return f"ERR {self.node} is {self.role}; try again when it is active or standby\n"
            if not self.peer_alive:
                return f"ERR {self.peer} is not alive; refusing to leave the cluster with no active node\n"
            self._release("standby asked by the administrator", hand_over=True)
            return f"OK releasing the resources to {self.peer}\n"
        if cmd == "takeover":
            if self.role == "active":
                return "OK already active\n"
            if self.role != "standby":
                return f"ERR {self.node} is {self.role}; try again when it is standby\n"
            self.want = True
            self.yield_to_peer = False
            return f"OK asking {self.peer} for the resources\n"
        if cmd == "failover":
            why = " ".join(words[1:]) or "no reason given"
            err = self._failover_request(why)
            return f"ERR {err}\n" if err else f"OK handing over to {self.peer}\n"
        if cmd == "reload":
            err = self._reload()
            return f"ERR {err}\n" if err else "OK reloaded\n"
        return f"ERR unknown request {cmd!r} (status, standby, takeover, failover REASON, reload)\n"

    # ------------------------------------------------------------------ state
    def status(self):
        now = time.monotonic()
        out = {
            "NODE": self.node, "PID": os.getpid(), "ROLE": self.role,
            "SINCE": f"{self.role_since:.3f}", "PEER": self.peer, "PEERSTATE": self.peerstate,
            "PEERADDR": self.peer_addr,
            "FAILOVERS": " ".join(f"{t:.3f}" for t in self.failovers),
            "YIELD": int(self.yield_to_peer), "WANT": int(self.want),
            "PATHS": " ".join(p.name for p in self.paths),
        }
        for i, p in enumerate(self.paths):
            t = self.heard.get(p.name)
            out[f"PATH{i}"] = p.name
            out[f"PATH{i}_HEARD"] = "never" if t is None else f"{now - t:.3f}"
            out[f"PATH{i}_UP"] = int(p.fileno() is not None)
            d = self.detectors[p.name]
            out[f"PATH{i}_DEADTIME"] = f"{d.deadtime:.3f}"
            out[f"PATH{i}_LOSS"] = f"{d.loss:.3f}"
        for reason, n in sorted(self.codec.counters.items()):
            out[f"MSG_{reason.upper().replace('-', '_')}"] = n
        if self.pinger:
            out["PING"] = "ok" if self.pinger.ok(now) else "unreachable"
        return out

    def _write_state(self):
        try:
            st = self.status()
            state.write(state.path(self.cfg, state.HB_STATE),
                        {k: st[k] for k in ("NODE", "PID", "ROLE", "SINCE", "PEER", "PEERSTATE",
                                            "PEERADDR", "FAILOVERS")})
        except OSError as e:
            self._once("statefile", "error", "cannot write the state file: %s", e.strerror)

    def _shutdown(self):
        self._write_state()
        for p in self.paths:
            p.close()
        if self.pinger:
            self.pinger.close()
        try:
            os.unlink(state.path(self.cfg, state.HB_CONTROL))
        except OSError:
            pass
        self.control.close()
        self.log.info("asha-hb stopped")


def _as_text(value):
    if isinstance(value, list):
        return " ".join(value)
    return "" if value is None else str(value)


def run_daemon(cfg, log, config_path):
    """Run asha-hb in this process until it is stopped; exit status."""
    pidlock = lock.Lock(state.path(cfg, state.HB_PID))
    try:
        pidlock.acquire()
    except lock.LockBusy as e:
        raise exits.AshaError(f"already running (pid {e.pid})") from None
    try:
        d = Daemon(cfg, log, config_path)
        d.open()
        d.run()
    finally:
        pidlock.release()
    return exits.OK
