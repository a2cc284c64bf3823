"""The agent and operations web console (server-rendered pages plus a REST API).

Entry points other areas use: ``console.app.create_app()``, ``console.assignment.run_desk(now)``
(every minute or so: new tasks' SLA by their queue's clock, assignment, warnings before a breach,
escalation after it), and its parts ``console.assignment.assign_open_tasks()`` and
``console.assignment.escalate_overdue(now)``. The desk's queues (teams, outcomes, SLA clock,
warning share, required skills) are declared in ``config/queues.yaml`` (``console.queues``).

Configuration (environment only; nothing secret lives in the repository):

- ``JOURNEYS_SECRET_KEY``: signs session cookies. Unset, each process makes a random one
  and logs a warning (sessions then end with the process and workers cannot share them).
- ``JOURNEYS_API_KEYS``: comma-separated API keys for ``X-API-Key`` (or ``sha256:<hex>``
  digests of them).
- ``JOURNEYS_ASSIGNMENT``: ``least_loaded`` (default), ``round_robin`` or ``none``;
  ``JOURNEYS_ASSIGNMENT_MAX_PER_AGENT`` (default 25) caps pushed work per agent.
- ``JOURNEYS_COOKIE_SECURE=1`` when TLS ends at a proxy that does not tell the app (requests
  that arrive as https always get a Secure session cookie and a Strict-Transport-Security header).
  Behind a proxy run uvicorn with ``--proxy-headers --forwarded-allow-ips=<proxy>`` so the app
  sees the scheme and the client's address.
- Sessions: ``JOURNEYS_SESSION_IDLE_MINUTES`` (default 30) without a request ends a session,
  and ``JOURNEYS_SESSION_MAX_HOURS`` (default 12) ends any session; logging out also ends the
  user's other sessions (a copied cookie stops working).
- Login: ``JOURNEYS_LOGIN_MAX_FAILURES`` (default 5) wrong passwords lock an account for
  ``JOURNEYS_LOGIN_LOCKOUT_MINUTES`` (default 15); ``JOURNEYS_LOGIN_IP_MAX_FAILURES`` (default 20)
  failures from one address within 15 minutes block that address as long (counted per process).
  Lockouts are written to the audit log (``login_lockout``, ``login_ip_lockout``).

Run it with ``journeys serve [--host --port]``; add users with
``journeys users add NAME --role agent|supervisor|ops|admin [--password-stdin]``.
"""
