"""asha: high availability for an Asterisk PBX on two Linux nodes.

The package holds what the asha-* executables share (configuration, logging,
locks, state, exit statuses) and one module per tool."""

__version__ = "0.1.0"
