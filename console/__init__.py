"""The agent and operations web console (server-rendered pages plus a REST API).

Entry points other areas use: ``console.app.create_app()``,
``console.assignment.assign_open_tasks()`` and ``console.assignment.escalate_overdue(now)``.

Configuration (environment only; nothing secret lives in the repository):

- ``JOURNEYS_SECRET_KEY``: signs session cookies. Unset, each process makes a random one
  and logs a warning (sessions then end with the process and workers cannot share them).
- ``JOURNEYS_API_KEYS``: comma-separated API keys for ``X-API-Key`` (or ``sha256:<hex>``
  digests of them).
- ``JOURNEYS_ASSIGNMENT``: ``least_loaded`` (default), ``round_robin`` or ``none``;
  ``JOURNEYS_ASSIGNMENT_MAX_PER_AGENT`` (default 25) caps pushed work per agent.
- ``JOURNEYS_COOKIE_SECURE=1`` behind HTTPS.

Run it with ``journeys serve [--host --port]``; add users with
``journeys users add NAME --role agent|supervisor|ops|admin [--password-stdin]``.
"""
