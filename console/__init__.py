"""The agent and operations web console (server-rendered pages plus a REST API).

Entry points other areas use: ``console.app.create_app()``,
``console.assignment.assign_open_tasks()`` and ``console.assignment.escalate_overdue(now)``.
"""
