"""Sending: claiming planned touches, rendering them in batches and handing them to the channels.

Owns dispatch, claiming, reconciliation of ambiguous sends, retries and rate limits. Imports
``engine.language``, ``channels`` and ``store``; never ``engine.planning``.
"""
