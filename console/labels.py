"""Words for the codes the desk shows: queues, steps, product lines, statuses, events and their fields.

Each value is a msgid of the console catalogues (``console/locales``), so a page shows it in the
reader's language; ``tests/console/test_i18n.py`` checks that both catalogues translate every one
of them, and that every queue and task step of the shipped journeys and ``config/queues.yaml`` has
one here. A code missing from these tables (a queue ops added yesterday) is shown as written,
with its underscores as spaces, rather than not at all.
"""

from __future__ import annotations

QUEUE_NAMES: dict[str, str] = {
    "claims_fast_track": "Small-claim fast track",
    "complaints": "Complaints",
    "complaints_supervisor": "Complaint escalations",
    "diamond_advisor": "Diamond advisors",
    "events": "Events and lectures",
    "gold_callback": "Gold monthly callbacks",
    "health_booking": "Health consultation bookings",
    "platinum_callback": "Platinum quarterly callbacks",
    "policy_review": "Annual policy reviews",
    "renewal": "Renewal callbacks",
    "retention": "Retention",
    "service_recovery": "Negative-feedback callbacks",
    "supervisor": "Escalations to supervisors",
    "ops": "Operations",
    "callbacks": "Callbacks",
}

# Teams (``teams:`` in config/queues.yaml): most are named after the queue they work.
TEAM_NAMES: dict[str, str] = {**QUEUE_NAMES, "claims": "Claims", "advisors": "Advisors"}

# Ids of the task steps in the shipped journeys (steps have no name of their own).
STEP_NAMES: dict[str, str] = {
    "advisor_call": "Advisor's call",
    "advisor_callback": "Advisor's callback",
    "advisor_checkin": "Advisor's check-in",
    "advisor_contact": "Advisor's contact",
    "advisor_intro": "Advisor introduction",
    "agent_callback": "Agent's callback",
    "book": "Booking",
    "call": "Call",
    "callback": "Callback",
    "confirm_place": "Confirm the place",
    "confirm_seat": "Confirm the seat",
    "escalate": "Escalation",
    "fast_track": "Fast-track contact",
    "follow_up": "Follow-up",
    "handle": "Handle the complaint",
    "plan_with_advisor": "Plan with the advisor",
    "retention_call": "Retention call",
    "retention_callback": "Retention callback",
    "walk_through": "Policy walk-through",
    "dynamic-adjustment": "Tier churn alert",
}

PRODUCT_LINES: dict[str, str] = {
    "motor": "Motor",
    "health": "Health",
    "life": "Life",
    "property": "Property",
    "accident": "Accident",
}

TIERS: dict[str, str] = {
    "diamond": "Diamond",
    "platinum": "Platinum",
    "gold": "Gold",
    "silver": "Silver",
    "potential": "Potential",
}

OUTCOMES: dict[str, str] = {
    "reached": "Reached",
    "no_answer": "No answer",
    "wrong_number": "Wrong number",
    "call_back": "Call back at a time",
    "complaint_raised": "Complaint raised",
    "resolved": "Resolved",
    "renewal_yes": "Renewal intent: yes",
    "renewal_no": "Renewal intent: no",
}

PRIORITIES: dict[str, str] = {"1": "High", "2": "Normal", "3": "Low"}

# "agent" is the channel the report groups an agent's tasks under (engine.loop.service_metrics, attribution).
CHANNELS: dict[str, str] = {"sms": "SMS", "wechat": "WeChat", "email": "Email", "push": "App push",
                            "webhook": "System call", "task": "Agent task", "agent": "Agent task"}

# Task, touch, policy and claim statuses.
STATUSES: dict[str, str] = {
    "open": "To do",
    "claimed": "Claimed",
    "done": "Done",
    "planned": "Planned",
    "sending": "Sending",
    "sent": "Sent",
    "delivered": "Delivered",
    "failed": "Failed",
    "replied": "Replied",
    "clicked": "Clicked",
    "opted_out": "Opted out",
    "active": "In force",
    "lapsed": "Lapsed",
    "renewed": "Renewed",
    "cancelled": "Cancelled",
    "filed": "Filed",
    "settled": "Settled",
    "rejected": "Rejected",
    "dropped": "Not sent (rule)",
    "unknown": "Delivery unknown",
}

EVENT_TYPES: dict[str, str] = {
    "app.login": "App login",
    "survey.answered": "Survey answered",
    "complaint.filed": "Complaint filed",
    "complaint.resolved": "Complaint resolved",
    "claim.filed": "Claim filed",
    "claim.settled": "Claim settled",
    "policy.renewed": "Policy renewed",
    "policy.lapsed": "Policy lapsed",
    "churn.warning": "Churn warning",
    "tier.changed": "Tier changed",
    "tier.adjustment": "Tier churn alert",
    "message.replied": "Customer replied",
    "message.opted_out": "Customer opted out",
    "task.completed": "Task completed",
    "task.escalated": "Task escalated",
}

# Labels of event data fields, for the "why this task" panel.
EVENT_FIELDS: dict[str, str] = {
    "category": "Category",
    "severity": "Severity",
    "source": "Source",
    "text": "What the customer said",
    "survey": "Survey",
    "nps": "NPS score",
    "csat": "CSAT score",
    "comment": "Customer's comment",
    "claim_id": "Claim",
    "amount": "Claim amount",
    "product_line": "Product line",
    "policy_id": "Policy",
    "from_tier": "Tier before",
    "to_tier": "Tier now",
    "direction": "Change",
    "score": "Tier score",
    "risk": "Churn risk",
    "days_inactive": "Days inactive",
    "activity_drop": "Drop in activity",
    "platform": "Platform",
    "session_seconds": "Session length (seconds)",
    "channel": "Channel",
    "churn_rate": "Churn rate",
    "tier": "Tier",
    "journey": "Journey",
    "queue": "Queue",
    "outcome": "Outcome",
    "task_id": "Task",
    "claim_status": "Claim status",
    "settled_at": "Settled",
    "expiry_date": "Expires",
    "annual_premium": "Annual premium",
    "policy_status": "Policy status",
}

# An event's data fields whose coded values are words of one of the tables here: config/events.yaml words
# the others (``engine.language.event_types.value_words``).
EVENT_DATA_KINDS: dict[str, str] = {"channel": "channel", "tier": "tier", "from_tier": "tier", "to_tier": "tier",
                                    "product_line": "product_line", "queue": "queue", "outcome": "outcome"}

SKILL_NAMES: dict[str, str] = {
    "lang:zh-CN": "Speaks Chinese",
    "lang:en": "Speaks English",
    "product:motor": "Motor products",
    "product:health": "Health products",
    "product:life": "Life products",
    "product:property": "Property products",
    "product:accident": "Accident products",
    "licence:health": "Licensed for health",
    "licence:life": "Licensed for life",
}

# The delivery rules that drop or move a touch (engine.planning.delivery_rules, engine.sending.cap_check).
RULES: dict[str, str] = {
    "no_channel": "No usable channel",
    "marketing_cap": "Marketing frequency cap",
    "pre_empted": "Pre-empted by a higher-priority journey",
    "quiet_hours": "Held for quiet hours",
    "channel_cap": "Channel frequency cap",
    "journey_cap": "Journey's own frequency cap",
    # engine.sending.expiry: a touch claimed later after its due time than config/delivery.yaml allows.
    "expired": "Too late to send",
}

# Why the engine ended an enrollment (engine.planning.step_machine, store.retention). An exit step's own
# reason is worded by its ``label`` in the journey file (Translator.exit_reason), not here.
EXIT_REASONS: dict[str, str] = {
    "goal": "Goal reached",
    "completed": "Completed the journey",
    "holdout": "Holdout",
    "loop": "Stopped: the steps went round in a loop",
    "anonymised": "The customer was anonymised (retention period over)",
}

# Customer attributes the shipped journeys test or set (``customer.attributes.<name>``), and the coded values
# they hold; an attribute not named here is shown as "Attribute <name>".
ATTRIBUTES: dict[str, str] = {
    "care_pack_sent": "Care pack sent",
    "service_preference": "Service preference",
}
ATTRIBUTE_VALUES: dict[str, str] = {
    "travel": "Travel",
    "health": "Health",
    "family": "Family",
}

CLOCKS: dict[str, str] = {
    "wall": "Around the clock",
    "business": "Business hours",
}

# Holidays a journey may anchor on (engine.language.catalogue.HOLIDAYS), as explain names them.
HOLIDAYS: dict[str, str] = {
    "new_year": "New Year's Day",
    "spring_festival": "Spring Festival",
    "qingming": "Tomb-Sweeping Day",
    "labour_day": "Labour Day",
    "dragon_boat": "Dragon Boat Festival",
    "mid_autumn": "Mid-Autumn Festival",
    "national_day": "National Day",
}

# The dates a journey's entry or wait may be anchored on (journeys/README.md), as explain names them.
ANCHORS: dict[str, str] = {
    "customer.birthday": "the customer's birthday",
    "policy.start_date": "the policy's start date",
    "policy.expiry_date": "the policy's expiry date",
    "policy.premium_due_date": "the premium due date",
    "policy.grace_period_end": "the end of the grace period",
    "claim.settled_at": "a claim's settlement",
}

# The console's form fields and page parameters, as a refused form names them (console.form_errors).
FORM_FIELDS: dict[str, str] = {
    "username": "Username",
    "password": "Password",  # nosec B105 # a form label, not a password
    "display_name": "Display name",
    "role": "Role",
    "team": "Team",
    "locale": "Language",
    "skill": "Skills",
    "what": "Setting",
    "name": "Name",
    "phone": "Phone",
    "email": "Email",
    "wechat_openid": "WeChat openid",
    "key": "Recipient",
    "template": "Template",
    "channel": "Channel",
    "to_user_id": "Agent",
    "task_ids": "Tasks",
    "outcome": "Outcome",
    "notes": "Notes",
    "callback_at": "Call-back time",
    "confirmed": "Confirmation",
    "comment": "Comment",
    "back": "Return address",
    "next": "Return address",
    "customer": "Customer",
    "actor": "User",
    "csrf_token": "Security token",  # nosec B105 # a form label, not a token
    # The pages' query parameters (filters, paging), named when the address holds a value they cannot use.
    "queue": "Queue",
    "tier": "Tier",
    "agent": "Agent",
    "state": "State",
    "overdue": "Overdue",
    "due_today": "Due today",
    "page": "Page",
    "kind": "Show",
    "hours": "Hours",
    # The parts of a page's address (/tasks/<task_id>, ...), named when one is not a number the page can use.
    "task_id": "Task number",
    "version_id": "Version number",
    "user_id": "User number",
    "index": "Recipient number",
    "sent": "Test send batch",
    "journey_id": "Journey",
    "tool": "Tool",
}

# Keys of audit log details (console.auth.audit callers), as /admin/audit shows them.
AUDIT_KEYS: dict[str, str] = {
    "task_id": "Task",
    "fields": "Fields shown",
    "role": "Role",
    "outcome": "Outcome",
    "before": "Before",
    "after": "After",
    "created": "Created",
    "channel": "Channel",
    "locale": "Language",
    "known": "Known user",
    "until": "Until",
    "failures": "Failures",
    "recipients": "Recipients",
    "sent": "Sent",
    "version": "Version",
    "replaced": "Version replaced",
    "comment": "Comment",
    "submitted_by": "Submitted by",
    "install": "Found at start-up",
    "active": "Active",
    "on_shift": "On shift",
    "reason": "Why",
    # An export's (store.export): its file, rows, whether unmasked, the tier it was cut to and the file's header.
    "file": "File",
    "rows": "Rows",
    "unmasked": "Unmasked",
    "tier": "Tier",
    "columns": "Columns",
}

# Why a sign-in (console.auth.authenticate) or a reveal (console.task_reveal) was refused, as audited.
AUDIT_REASONS: dict[str, str] = {
    "unknown": "No such user",
    "locked": "Account locked",
    "inactive": "Account disabled",
    "password": "Wrong password",  # nosec B105 # the words for a refusal, not a password
    "task_not_found": "No such task",
    "reveal_needs_claim": "Task not claimed by them",
    "reveal_not_working": "Not working this task",
    "forbidden": "Not allowed",
    "other_team": "Another team's task",
    "reveal_limited": "Too many reveals",
}

# Audit actions (console.auth.audit callers), as /admin/audit shows them. A review step is written
# ``<kind>_version_<step>`` (engine.language.journey_review): its kind and step are worded apart (VERSION_STEPS).
AUDIT_ACTIONS: dict[str, str] = {
    "login": "Signed in",
    "login_failed": "Sign-in failed",
    "login_lockout": "Locked after failed sign-ins",
    "reveal": "Contact details revealed",
    "reveal_refused": "Reveal refused",
    "export": "Export",
    "claim": "Task claimed",
    "complete": "Task completed",
    "assign": "Task assigned",
    "reassign": "Task reassigned",
    "customer_upsert": "Customer created or updated",
    "policy_upsert": "Policy created or updated",
    "claim_upsert": "Insurance claim created or updated",
    "seed_list_add": "Added to the test list",
    "seed_list_remove": "Removed from the test list",
    "test_send": "Test send",
    "user_add": "User added",
    "user_skills": "Skills changed",
    "user_active": "Account enabled or disabled",
    "user_on_shift": "Shift changed",
    "user_password": "Password changed",  # nosec B105 # the words for an audited action, not a password
}
VERSION_KINDS: dict[str, str] = {"journey": "Journey", "template": "Template", "setting": "Settings file"}
VERSION_STEPS: dict[str, str] = {
    "submitted": "Version submitted for review",
    "pending": "Version waiting for review",
    "published": "Version published",
    "approved": "Version approved",
    "rejected": "Version rejected",
    "rollback": "Version rolled back",
}
# An audit entry's target type; a ``<kind>_version`` target is the version's row number.
AUDIT_TARGETS: dict[str, str] = {
    "user": "User",
    "task": "Task",
    "customer": "Customer",
    "policy": "Insurance policy",
    "claim": "Insurance claim",
    "template": "Template",
    "seed_list": "Test list",
    "journey_version": "Journey version",
    "template_version": "Template version",
    "setting_version": "Settings file version",
}

# The settings files reviewed before going live (engine.language.settings_review), by what they decide.
SETTING_FILES: dict[str, str] = {
    "delivery.yaml": "Delivery rules: caps, quiet hours, footers",
    "tiers.yaml": "Tier rules",
}

TABLES: dict[str, dict[str, str]] = {
    "tier": TIERS,
    "outcome": OUTCOMES,
    "priority": PRIORITIES,
    "channel": CHANNELS,
    "queue": QUEUE_NAMES,
    "team": TEAM_NAMES,
    "step": STEP_NAMES,
    "product_line": PRODUCT_LINES,
    "status": STATUSES,
    "event": EVENT_TYPES,
    "field": EVENT_FIELDS,
    "skill": SKILL_NAMES,
    "clock": CLOCKS,
    "rule": RULES,
    "exit": EXIT_REASONS,
    "attribute": ATTRIBUTES,
    "attribute_value": ATTRIBUTE_VALUES,
    "form_field": FORM_FIELDS,
    "holiday": HOLIDAYS,
    "anchor": ANCHORS,
    "audit_key": AUDIT_KEYS,
    "audit_action": AUDIT_ACTIONS,
    "audit_reason": AUDIT_REASONS,
    "audit_target": AUDIT_TARGETS,
    "version_kind": VERSION_KINDS,
    "version_step": VERSION_STEPS,
    "setting": SETTING_FILES,
}


def msgid(kind: str, code: str | None) -> str | None:
    """The catalogue msgid for ``code`` of ``kind``, or None when there is none."""
    if code is None:
        return None
    return TABLES[kind].get(code)


def humanised(code: str) -> str:
    return code.replace("_", " ").replace("-", " ")

