"""asha-hb, the heartbeat daemon: proto (messages), paths (UDP and serial),
daemon (who is active, and the resource chain)."""
