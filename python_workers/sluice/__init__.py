"""Sluice: Python worker runtime and SLUICE/1 codec (see schemas/PROTOCOL.md)."""
