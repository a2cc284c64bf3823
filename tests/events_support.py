"""Event-entry journeys shared by the event tests (planner, console bridge, API burst).

One text per journey keeps the tests that compare event handling across layers talking about
the same journey; ``reentering`` gives the variant a burst needs, where one customer's repeated
events must each act.
"""

from __future__ import annotations

from tests.journey_support import journey


def task_journey(journey_id: str, name: str, event_type: str, queue: str, due_within: str, *,
                 reentry: bool = True, step: str = "respond") -> str:
    """A journey entered on ``event_type`` whose one step opens a task."""
    return journey(journey_id, name, f"{{event: {{type: {event_type}}}}}", f"""\
  - id: {step}
    task: {{queue: {queue}, due_within: {due_within}}}
""", reentry=reentry)


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
    task: {queue: claims_fast_track, due_within: 2h, priority: high}
"""


def missed_call_journey(journey_id: str, entry: str, *, channels: str = "[sms]", template: str = "msg") -> str:
    """The shipped gold callback, short: a callback task, then a wait for its outcome, where a missed
    call (``no_answer``) is answered by a message. ``entry``: the journey's entry, as YAML flow."""
    return f"""
id: {journey_id}
name: Callback {journey_id}
category: service
entry: {entry}
reentry: {{allowed: true}}
steps:
  - id: call
    task: {{queue: gold_callback, due_within: 7d}}
  - id: await_outcome
    wait_for:
      event: task.completed
      when: {{field: event.data.outcome, op: eq, value: no_answer}}
      timeout: 8d
      on_event: missed_call
      on_timeout: done
  - id: missed_call
    send: {{channels: {channels}, template: {template}}}
  - id: done
    exit: {{reason: callback_done}}
"""


def crm_case_journey(journey_id: str, name: str, category: str, *, target: str, channels: str, template: str,
                     urgent: bool = False) -> str:
    """Issue 19's claim journey: a filed claim opens a case in a CRM by webhook (once in 30 days),
    and once the call has succeeded the customer is told. ``channels``: a YAML list or ``by_engagement``."""
    urgent_line = "urgent: true\n" if urgent else ""
    return f"""\
id: {journey_id}
name: {name}
category: {category}
{urgent_line}entry:
  event: {{type: claim.filed}}
cap: {{count: 1, window: 30d}}
steps:
  - id: open_case
    webhook: {{target: {target}, template: crm_case_opened}}
  - id: wait_case
    wait_for: {{event: webhook.crm.succeeded, timeout: 1h, on_event: tell, on_timeout: exit}}
  - id: tell
    send: {{channels: {channels}, template: {template}}}
"""
