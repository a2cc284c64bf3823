"""The runtime: Prefect flows, the embedded service (APScheduler) and the scaled-out deployments.

Composes the stages below it into scheduled runs; imports any of ``engine.loop`` and below,
never ``console`` or ``engine.cli``.
"""
