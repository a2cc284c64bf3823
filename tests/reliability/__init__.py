"""Reliability: fault injection against the real stand-ins, lock contention, bad journey edits."""
