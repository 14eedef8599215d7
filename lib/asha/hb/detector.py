"""When silence on a path means that the peer is dead.

On a clean path that is HBDEADTIME. On a path that loses or delays beats, a
fixed dead time is either slow everywhere or false on the bad path, so each
path measures its own loss (from the sequence numbers) and delay variation
(from arrival times) and waits long enough that a live peer's beats would all
be lost with a chance below one in a billion, but never longer than
HBDEADTIMEMAX. A hard failure on a clean LAN is still seen after HBDEADTIME.

Loss is remembered twice: over half a minute, which keeps the dead time long
through a lossy spell, and over the last two seconds, which sees loss begin:
on a LAN that goes from clean to 30 % loss at once, the long memory alone
takes ten seconds to lengthen the dead time, and the five or six beats of
HBDEADTIME lost in a row in that time were a false failover (after two or
three onsets in a hundred, in simulations at 0.05 s between beats)."""

import math

TARGET = 1e-9          # accepted chance that a live peer looks dead on one path
MEMORY = 30.0          # seconds over which loss and delay variation are remembered
MIN_SAMPLES = 20       # beats before the loss estimate is trusted
RECENT = 2.0           # seconds of the short memory that sees loss begin
RECENT_SAMPLES = 10    # beats the short memory needs before it is trusted


class PathDetector:
    def __init__(self, keepalive, deadtime, deadmax):
        self.keepalive, self.floor, self.cap = keepalive, deadtime, max(deadmax, deadtime)
        self.last = None            # monotonic time the peer was last heard here
        self.gen = None
        self.seq = 0
        self.seq_time = None
        self.expected = 0.0
        self.received = 0.0
        self.jitter = 0.0
        self.recent_expected = 0.0
        self.recent_received = 0.0
        self.deadtime = deadtime

    def heard(self, now, gen, seq):
        self.last = now
        if gen != self.gen:                       # the peer (re)started: new numbering
            self.gen, self.seq, self.seq_time = gen, seq, now
            return
        if seq > self.seq:
            gap = seq - self.seq
            elapsed = now - self.seq_time
            decay = math.exp(-elapsed / MEMORY)
            self.expected = self.expected * decay + gap
            self.received = self.received * decay + 1
            self.jitter = max(self.jitter * decay, abs(elapsed - self.keepalive * gap))
            decay = math.exp(-elapsed / RECENT)
            self.recent_expected = self.recent_expected * decay + gap
            self.recent_received = self.recent_received * decay + 1
            self.seq, self.seq_time = seq, now
        else:                                     # reordered: counted lost before, it came
            self.received += 1
            self.recent_received += 1
        self._update()

    def _update(self):
        loss = 0.0 if self.expected < MIN_SAMPLES else 1.0 - self.received / self.expected
        if self.recent_expected >= RECENT_SAMPLES:
            loss = max(loss, 1.0 - self.recent_received / self.recent_expected)
        loss = min(0.95, loss)
        beats = math.ceil(math.log(TARGET) / math.log(loss)) if loss > 0.001 else 0
        self.deadtime = max(self.floor, min(self.cap, beats * self.keepalive + 2 * self.jitter))

    @property
    def loss(self):
        if self.expected < MIN_SAMPLES:
            return 0.0
        return max(0.0, 1.0 - self.received / self.expected)

    def deadline(self):
        """Monotonic time after which this path says the peer is dead (None: never heard)."""
        return None if self.last is None else self.last + self.deadtime

    def alive(self, now):
        return self.last is not None and now < self.last + self.deadtime
