"""Event-entry journeys shared by the event tests (planner, console bridge, API burst).

One text per journey keeps the tests that compare event handling across layers talking about
the same journey; ``reentering`` gives the variant a burst needs, where one customer's repeated
events must each act.
"""

from __future__ import annotations


def task_journey(journey_id: str, name: str, event_type: str, queue: str, due_within: str, *,
                 reentry: bool = True, step: str = "respond") -> str:
    """A journey entered on ``event_type`` whose one step opens a task."""
    return f"""
id: {journey_id}
name: {name}
category: service
entry: {{event: {{type: {event_type}}}}}
reentry: {{allowed: {str(reentry).lower()}}}
steps:
  - id: {step}
    task: {{queue: {queue}, due_within: {due_within}}}
"""


def reentering(source: str) -> str:
    """``source`` with re-entry allowed, so each of a customer's events starts the journey again."""
    head, steps = source.split("\nsteps:\n", 1)
    return f"{head}\nreentry: {{allowed: true}}\nsteps:\n{steps}"


# A complaint opens a task the same day (re-entry allowed: each complaint is its own case).
COMPLAINT_TASK = task_journey("complaint", "Complaint", "complaint.filed", "complaints", "24h")

COMPLAINT = """
id: complaint
name: Complaint
category: service
entry: {event: {type: complaint.filed}}
steps:
  - id: respond
    task: {queue: complaints, due_within: 24h}
  - id: ack
    send: {channels: [sms], template: msg}
"""

SMALL_CLAIM = """
id: small-claim
name: Small claim
category: service
urgent: true
entry:
  event:
    type: claim.filed
    when: {field: event.data.amount, op: lt, value: 5000}
steps:
  - id: ack
    send: {channels: [sms], template: msg}
  - id: task
    task: {queue: claims, due_within: 2h, priority: high}
"""
