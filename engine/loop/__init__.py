"""The closed loop: what comes back (events, receipts, replies, opt-outs) and what it adds up to.

Owns event intake, provider webhooks, metrics and reports, monitoring, re-tiering and the tier
model. Imports ``engine.planning``, ``engine.sending``, ``engine.language``, ``channels``, ``store``.
"""
