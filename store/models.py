"""The store's tables.

Conventions every module relies on:
- Every datetime column holds an aware UTC datetime (sqlmodel's UTCDateTime;
  ``store.clock.utcnow()``); a customer's local time is derived from
  ``Customer.timezone`` when it matters (quiet hours, schedules), never stored.
- Customers, policies, claims and events carry the id of the system they came
  from (``external_id``); imports upsert on it.
- PII lives only in the columns named here (phone, email, id number, name);
  anything that prints them goes through ``store.masking``.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Column, Index, LargeBinary, UniqueConstraint, func, text
from sqlmodel import Field, SQLModel

TIERS: tuple[str, ...] = ("diamond", "platinum", "gold", "silver", "potential")
CHANNELS: tuple[str, ...] = ("sms", "wechat", "email", "push")
# Not a customer channel: a journey's outbound call to another system (a ``webhook`` step) is
# planned and dispatched as a touch on it, so it gets the same once-only key, retries and record.
WEBHOOK_CHANNEL = "webhook"
# Why a customer is contacted (PIPL Art. 24 / 个人信息保护法: consent is given per purpose):
# ``consent_<channel>`` covers service messages; marketing needs ``consent_<channel>_marketing`` too.
PURPOSES: tuple[str, ...] = ("service", "marketing")
PRODUCT_LINES: tuple[str, ...] = ("motor", "health", "life", "property", "accident")
ROLES: tuple[str, ...] = ("agent", "supervisor", "ops", "admin", "compliance")
# The roles that work agent tasks, so the only ones a customer's dedicated advisor may have (the
# diamond customer's tasks go to the advisor alone: anyone else would leave them with nobody).
TASK_ROLES: tuple[str, ...] = ("agent", "supervisor")


class TouchStatus:
    """Life of a touch: planned → sending → sent → delivered | failed; or cancelled, or dropped
    (a delivery rule, e.g. the marketing cap, kept it from being sent; ``error_reason`` says which)."""

    PLANNED = "planned"
    SENDING = "sending"
    SENT = "sent"
    DELIVERED = "delivered"
    FAILED = "failed"
    CANCELLED = "cancelled"
    DROPPED = "dropped"


class TaskStatus:
    OPEN = "open"
    CLAIMED = "claimed"
    DONE = "done"
    CANCELLED = "cancelled"


class Customer(SQLModel, table=True):
    __tablename__ = "customer"
    __table_args__ = (
        Index("ix_customer_tier_birth_md", "tier", "birth_md"),
        Index("ix_customer_branch_tier", "branch", "tier"),
        # Birthdays due whatever the tier, and the book's zones one probe each (migration 0011).
        Index("ix_customer_birth_md", "birth_md"),
        Index("ix_customer_timezone", "timezone"),
    )

    id: int | None = Field(default=None, primary_key=True)
    external_id: str = Field(max_length=64, unique=True, index=True)
    name: str = Field(max_length=128)
    phone: str | None = Field(default=None, max_length=20, index=True)  # E.164
    email: str | None = Field(default=None, max_length=254)
    wechat_openid: str | None = Field(default=None, max_length=64, index=True)
    # AES-GCM ciphertext (nonce || ciphertext); never the plain ID number.
    id_number_enc: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    birthday: date | None = None
    # month*100 + day, so SQL can select "birthday on this calendar day" with an index.
    birth_md: int | None = Field(default=None)
    timezone: str = Field(default="Asia/Shanghai", max_length=64)
    locale: str = Field(default="zh-CN", max_length=10)
    branch: str = Field(default="", max_length=64)
    tier: str | None = Field(default=None, max_length=16, index=True)
    tier_score: float | None = None
    tier_updated_at: datetime | None = None
    advisor_id: int | None = Field(default=None, foreign_key="app_user.id", index=True)

    consent_sms: bool = False
    consent_sms_source: str | None = Field(default=None, max_length=64)
    consent_sms_at: datetime | None = None
    consent_wechat: bool = False
    consent_wechat_source: str | None = Field(default=None, max_length=64)
    consent_wechat_at: datetime | None = None
    consent_email: bool = False
    consent_email_source: str | None = Field(default=None, max_length=64)
    consent_email_at: datetime | None = None
    # App push (migration 0009): the JPush registration id of the customer's app install.
    push_registration_id: str | None = Field(default=None, max_length=64)
    consent_push: bool = False
    consent_push_source: str | None = Field(default=None, max_length=64)
    consent_push_at: datetime | None = None
    # Marketing consent per channel (migration 0009), beside the service consent above: a
    # marketing touch needs both, so withdrawing marketing leaves renewal and claim messages.
    # Empty (None): never given apart, the channel's consent covers marketing too, as one consent
    # did before purposes were separated; False once withdrawn (an opt-out from a marketing message).
    consent_sms_marketing: bool | None = None
    consent_sms_marketing_source: str | None = Field(default=None, max_length=64)
    consent_sms_marketing_at: datetime | None = None
    consent_wechat_marketing: bool | None = None
    consent_wechat_marketing_source: str | None = Field(default=None, max_length=64)
    consent_wechat_marketing_at: datetime | None = None
    consent_email_marketing: bool | None = None
    consent_email_marketing_source: str | None = Field(default=None, max_length=64)
    consent_email_marketing_at: datetime | None = None
    consent_push_marketing: bool | None = None
    consent_push_marketing_source: str | None = Field(default=None, max_length=64)
    consent_push_marketing_at: datetime | None = None

    preferred_channels: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    # Scoring inputs and free attributes journeys may read (customer.attributes.<name>).
    attributes: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    last_active_at: datetime | None = None
    created_at: datetime
    updated_at: datetime
    anonymised_at: datetime | None = None


class Policy(SQLModel, table=True):
    __tablename__ = "policy"
    __table_args__ = (Index("ix_policy_expiry_status", "expiry_date", "status"),)

    id: int | None = Field(default=None, primary_key=True)
    external_id: str = Field(max_length=64, unique=True, index=True)
    customer_id: int = Field(foreign_key="customer.id", index=True)
    product_line: str = Field(max_length=16)
    annual_premium: float
    start_date: date
    expiry_date: date
    status: str = Field(default="active", max_length=16)  # active | lapsed | renewed | cancelled
    # Dates journeys may anchor on (migration 0010); optional in the import.
    premium_due_date: date | None = None
    grace_period_end: date | None = None


class Claim(SQLModel, table=True):
    __tablename__ = "claim"

    id: int | None = Field(default=None, primary_key=True)
    external_id: str = Field(max_length=64, unique=True, index=True)
    customer_id: int = Field(foreign_key="customer.id", index=True)
    policy_id: int | None = Field(default=None, foreign_key="policy.id")
    # The claim's own product line (migration 0006); when empty, journeys read its policy's.
    product_line: str | None = Field(default=None, max_length=16)
    filed_at: datetime
    settled_at: datetime | None = Field(default=None, index=True)
    amount: float
    status: str = Field(default="filed", max_length=16)  # filed | settled | rejected


def claim_product_line() -> Any:
    """The product line a claim has for journeys, in a query that outer-joins its policy: the
    claim's own, else its policy's (``claim.product_line`` in conditions)."""
    return func.coalesce(Claim.product_line, Policy.product_line).label("product_line")


class Event(SQLModel, table=True):
    """Something that happened to a customer; journeys with an event entry react to it."""

    __tablename__ = "event"
    __table_args__ = (Index("ix_event_customer_type_time", "customer_id", "type", "occurred_at"),)

    id: int | None = Field(default=None, primary_key=True)
    external_id: str = Field(max_length=128, unique=True)
    type: str = Field(max_length=64, index=True)
    customer_id: int = Field(foreign_key="customer.id")
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    occurred_at: datetime
    received_at: datetime
    processed_at: datetime | None = Field(default=None, index=True)


class TierChange(SQLModel, table=True):
    __tablename__ = "tier_change"
    # A customer's changes in time order: the tier at a moment, for reports by tier (migration 0013).
    __table_args__ = (Index("ix_tier_change_customer_time", "customer_id", "changed_at", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    customer_id: int = Field(foreign_key="customer.id", index=True)
    from_tier: str | None = Field(default=None, max_length=16)
    to_tier: str = Field(max_length=16)
    score: float
    dimensions: dict[str, float] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    reason: str = Field(default="retier", max_length=64)
    changed_at: datetime = Field(index=True)


class JourneyVersion(SQLModel, table=True):
    """A published (valid) journey file; which approved row is in force: engine.language.journey_review."""

    __tablename__ = "journey_version"
    __table_args__ = (
        UniqueConstraint("journey_id", "version"),
        Index("ix_journey_version_review", "journey_id", "review_state"),
    )

    id: int | None = Field(default=None, primary_key=True)
    journey_id: str = Field(max_length=64, index=True)
    version: str = Field(max_length=64)  # content hash
    path: str = Field(max_length=255)
    source: str
    published_at: datetime
    # Review before going live (engine.language.journey_review): pending | approved | rejected.
    review_state: str = Field(default="approved", max_length=16, sa_column_kwargs={"server_default": "approved"})
    submitted_by: str | None = Field(default=None, max_length=64)
    reviewed_by: str | None = Field(default=None, max_length=64)
    reviewed_at: datetime | None = None
    review_comment: str | None = None
    # When this version was last put in force (approval or rollback); the approved row with the
    # latest one (published_at for rows older than review) is the journey's version in force.
    in_force_at: datetime | None = None
    # journey | template | setting: templates and settings are reviewed the same way (migration 0012).
    kind: str = Field(default="journey", max_length=16, sa_column_kwargs={"server_default": "journey"})


# The states of an enrollment still in its journey, written out: a partial index on them serves a query only
# when the query states them literally (console.ops_journeys), not as bound parameters.
IN_JOURNEY_SQL = "state IN ('active', 'waiting')"
# The same for a task still to work (console.supervision's backlog).
ACTIVE_TASK_SQL = "status IN ('open', 'claimed')"


class Enrollment(SQLModel, table=True):
    """A customer's passage through one occurrence of a journey (for waits, branches, exits)."""

    __tablename__ = "enrollment"
    __table_args__ = (
        UniqueConstraint("customer_id", "journey_id", "occurrence"),
        # The planner looks up waiting enrollments per chunk of customers (migration 0002).
        Index("ix_enrollment_waiting", "customer_id", "next_at", sqlite_where=text("state = 'waiting'"),
              postgresql_where=text("state = 'waiting'")),
        # The plan run's probe for what is due, over the whole book (migration 0011).
        Index("ix_enrollment_waiting_next", "next_at", "customer_id", sqlite_where=text("state = 'waiting'"),
              postgresql_where=text("state = 'waiting'")),
        # Schedule and date entries have no event: the index leaves them out (migration 0014).
        Index("ix_enrollment_event_id", "event_id", sqlite_where=text("event_id IS NOT NULL"),
              postgresql_where=text("event_id IS NOT NULL")),
        # A journey's enrollments of a period and those still in it, which its ops page counts (migration 0016).
        # Partial on a condition every row meets: only a query ranging over entered_at may take it (0016).
        Index("ix_enrollment_journey_entered", "journey_id", "entered_at", sqlite_where=text("entered_at IS NOT NULL"),
              postgresql_where=text("entered_at IS NOT NULL")),
        Index("ix_enrollment_journey_exited", "journey_id", "exited_at", sqlite_where=text("exited_at IS NOT NULL"),
              postgresql_where=text("exited_at IS NOT NULL")),
        Index("ix_enrollment_journey_open", "journey_id", "step_id", sqlite_where=text(IN_JOURNEY_SQL),
              postgresql_where=text(IN_JOURNEY_SQL)),
    )

    id: int | None = Field(default=None, primary_key=True)
    customer_id: int = Field(foreign_key="customer.id")
    journey_id: str = Field(max_length=64)  # searched with customer_id: the unique index serves
    journey_version: str = Field(max_length=64)
    occurrence: str = Field(max_length=64)  # e.g. 2026-W48, 2026-11-22, event external id
    step_id: str | None = Field(default=None, max_length=64)
    state: str = Field(default="active", max_length=16)  # active | waiting | done | exited
    next_at: datetime | None = None  # when the planner looks at a waiting enrollment again
    # When a waiting enrollment arrived at ``step_id``: the start of the wait or wait_for it is in,
    # or the moment of the step that waits for its time (migration 0004; empty on older rows).
    step_started_at: datetime | None = None
    # The event its last wait_for ended on: the steps after it read that event's fields.
    scope_event_id: int | None = None
    split_branch: str | None = Field(default=None, max_length=64)
    entered_at: datetime
    exited_at: datetime | None = None
    exit_reason: str | None = Field(default=None, max_length=64)
    entry_rule: str | None = Field(default=None, max_length=255)
    # The event an event-entry enrollment answers (``occurrence`` names it too, as text): the key
    # the metrics join on (migration 0005). Empty for schedule and date entries.
    event_id: int | None = Field(default=None, foreign_key="event.id")


class Touch(SQLModel, table=True):
    """One customer-facing message. ``key`` makes it happen at most once."""

    __tablename__ = "touch"
    __table_args__ = (
        Index("ix_touch_status_due", "status", "due_at"),
        Index("ix_touch_customer_due", "customer_id", "due_at"),
        # A journey's touches of a period, which the ops journey pages count (migration 0015): without it
        # they read every touch ever planned, so the pages slowed with the book's history.
        Index("ix_touch_journey_planned", "journey_id", "planned_for"),
        # An enrollment's touches (its customer, journey and occurrence) with what the report's first touch
        # reads of them, from the index alone: by the customer alone it read all they ever got (migration 0020).
        Index("ix_touch_enrollment_sent", "customer_id", "journey_id", "occurrence", "sent_at", "channel"),
        # Only sent touches have a provider id (migration 0002).
        Index("ix_touch_provider_message_id", "provider_message_id",
              sqlite_where=text("provider_message_id IS NOT NULL"),
              postgresql_where=text("provider_message_id IS NOT NULL")),
    )

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(max_length=255, unique=True)  # customer:journey:step:occurrence
    customer_id: int = Field(foreign_key="customer.id")
    enrollment_id: int | None = Field(default=None, foreign_key="enrollment.id")
    journey_id: str = Field(max_length=64)
    journey_version: str = Field(max_length=64)
    step_id: str = Field(max_length=64)
    occurrence: str = Field(max_length=64)
    category: str = Field(max_length=16)  # service | marketing
    urgent: bool = False
    channel: str = Field(max_length=16)
    # Channels still to try after a permanent failure on ``channel``.
    fallback_channels: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    template: str = Field(max_length=64)
    split_branch: str | None = Field(default=None, max_length=64)
    entry_rule: str | None = Field(default=None, max_length=255)
    planned_for: datetime  # due time before delivery rules moved it
    due_at: datetime
    status: str = Field(default=TouchStatus.PLANNED, max_length=16)
    attempts: int = 0
    next_attempt_at: datetime | None = None
    provider_message_id: str | None = Field(default=None, max_length=128)
    error_class: str | None = Field(default=None, max_length=16)  # retryable | permanent
    error_reason: str | None = Field(default=None, max_length=255)
    created_at: datetime
    sent_at: datetime | None = None
    delivered_at: datetime | None = None
    claimed_by: str | None = Field(default=None, max_length=64)
    claimed_at: datetime | None = None


class Outcome(SQLModel, table=True):
    """Something that came back: a receipt, a reply, an opt-out, a task outcome."""

    __tablename__ = "outcome"
    __table_args__ = (
        Index("ix_outcome_kind_time", "kind", "occurred_at"),
        # Only the outcomes that name a touch: task outcomes leave touch_id empty, and where they are most,
        # SQLite's statistics made ix_outcome_touch_id look no better than a scan (migration 0019).
        Index("ix_outcome_touch_kind", "touch_id", "kind", sqlite_where=text("touch_id IS NOT NULL"),
              postgresql_where=text("touch_id IS NOT NULL")),
    )

    id: int | None = Field(default=None, primary_key=True)
    # Provider's id for the callback (e.g. MessageSid+status) so a repeated callback changes nothing.
    dedup_key: str | None = Field(default=None, max_length=255, unique=True)
    touch_id: int | None = Field(default=None, foreign_key="touch.id", index=True)
    task_id: int | None = Field(default=None, foreign_key="agent_task.id", index=True)
    customer_id: int | None = Field(default=None, foreign_key="customer.id", index=True)
    channel: str | None = Field(default=None, max_length=16)
    kind: str = Field(max_length=32)  # sent | delivered | failed | replied | clicked | opted_out | task:<code>
    detail: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    occurred_at: datetime


class AgentTask(SQLModel, table=True):
    __tablename__ = "agent_task"
    __table_args__ = (
        Index("ix_task_status_due", "status", "due_at"),
        Index("ix_task_assignee_status_due", "assignee_id", "status", "due_at"),
        Index("ix_task_queue_status_due", "queue", "status", "due_at"),
        # A journey's tasks opened and closed in a period, for the ops journey pages as the touches'
        # (migration 0015); only closed tasks have a key in the second, so planning writes none.
        Index("ix_task_journey_created", "journey_id", "created_at"),
        Index("ix_task_journey_completed", "journey_id", "completed_at",
              sqlite_where=text("completed_at IS NOT NULL"), postgresql_where=text("completed_at IS NOT NULL")),
        # Tasks not keyed by event_id, by occurrence: the metrics' fallback for rows written
        # before the planner filled event_id (migration 0005).
        Index("ix_agent_task_unkeyed_occurrence", "occurrence", sqlite_where=text("event_id IS NULL"),
              postgresql_where=text("event_id IS NULL")),
        # A task's follow-ups, which first-contact resolution looks up per task (migration 0005);
        # only follow-ups have a parent.
        Index("ix_agent_task_parent", "parent_task_id", sqlite_where=text("parent_task_id IS NOT NULL"),
              postgresql_where=text("parent_task_id IS NOT NULL")),
        # The desk's SLA passes (migration 0007): tasks whose warning is due, tasks not yet given
        # their SLA (warn_at empty), and the tasks closed on a day (compliance by day).
        Index("ix_task_status_warn", "status", "warn_at"),
        # Only closed tasks, and only tasks that answer an event, have a key here (migration 0014).
        Index("ix_task_completed", "completed_at", sqlite_where=text("completed_at IS NOT NULL"),
              postgresql_where=text("completed_at IS NOT NULL")),
        Index("ix_agent_task_event_id", "event_id", sqlite_where=text("event_id IS NOT NULL"),
              postgresql_where=text("event_id IS NOT NULL")),
        # A queue's claimable pool (open, nobody's) in due order, for the inbox (migration 0007).
        Index("ix_task_pool", "queue", "status", "assignee_id", "due_at", "id"),
        # The desk's backlog per queue: the active tasks only, covering what it sums (migration 0018); status
        # is in the key only because SQLite takes an index as covering only if it holds the condition's column.
        Index("ix_task_active_queue", "queue", "assignee_id", "due_at", "warn_at", "status",
              sqlite_where=text(ACTIVE_TASK_SQL), postgresql_where=text(ACTIVE_TASK_SQL)),
        # A team's tasks closed this week, a range of each agent's rather than all they ever closed (0018).
        Index("ix_task_assignee_status_completed", "assignee_id", "status", "completed_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(max_length=255, unique=True)
    customer_id: int = Field(foreign_key="customer.id", index=True)
    enrollment_id: int | None = Field(default=None, foreign_key="enrollment.id")
    journey_id: str = Field(max_length=64)
    journey_version: str = Field(max_length=64)
    step_id: str = Field(max_length=64)
    occurrence: str = Field(max_length=64)
    queue: str = Field(max_length=32)
    priority: int = 2  # 1 high .. 3 low
    script: str | None = Field(default=None, max_length=64)  # template name of the call script
    assignee_id: int | None = Field(default=None, foreign_key="app_user.id")
    status: str = Field(default=TaskStatus.OPEN, max_length=16)
    due_at: datetime
    created_at: datetime
    claimed_at: datetime | None = None
    completed_at: datetime | None = None
    outcome_code: str | None = Field(default=None, max_length=32)
    notes: str | None = None
    attempt: int = 1
    escalated: bool = False
    parent_task_id: int | None = Field(default=None, foreign_key="agent_task.id")
    # The event the task answers (a complaint, a negative survey answer), as for Enrollment.event_id.
    event_id: int | None = Field(default=None, foreign_key="event.id")
    # When the assignee and the supervisor are warned that the SLA is running out; empty until the
    # desk has set the task's SLA by its queue's clock (console.sla). ``warned_at``: when they were.
    warn_at: datetime | None = None
    warned_at: datetime | None = None


class SurveyAnswer(SQLModel, table=True):
    __tablename__ = "survey_answer"

    id: int | None = Field(default=None, primary_key=True)
    customer_id: int = Field(foreign_key="customer.id", index=True)
    touch_id: int | None = Field(default=None, foreign_key="touch.id")
    kind: str = Field(max_length=8)  # nps | csat
    score: int
    comment: str | None = None
    answered_at: datetime = Field(index=True)


class AppUser(SQLModel, table=True):
    __tablename__ = "app_user"

    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(max_length=64, unique=True)
    display_name: str = Field(default="", max_length=128)
    role: str = Field(max_length=16)
    password_hash: str = Field(max_length=255)
    locale: str = Field(default="zh-CN", max_length=10)
    team: str | None = Field(default=None, max_length=64)
    on_shift: bool = True
    active: bool = True
    failed_logins: int = 0
    locked_until: datetime | None = None
    created_at: datetime
    # What the agent can take on (engine.language.settings_model.SKILLS: lang:en, product:health,
    # licence:life, ...); queues and task types may require them (config/queues.yaml).
    skills: list[str] = Field(default_factory=list,
                              sa_column=Column(JSON, nullable=False, server_default=text("'[]'")))


class AuditLog(SQLModel, table=True):
    __tablename__ = "audit_log"
    # The period's reveal attempts by action and time, with their actor, read from the index alone
    # (console.task_reveal's bursts, migration 0018): grouping by actor read the whole log.
    __table_args__ = (Index("ix_audit_log_action_at", "action", "at", "actor"),)

    id: int | None = Field(default=None, primary_key=True)
    actor: str = Field(max_length=64, index=True)
    action: str = Field(max_length=32)  # reveal | export | login | reassign | ...
    target_type: str = Field(max_length=32)
    target_id: str = Field(max_length=64)
    detail: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    at: datetime = Field(index=True)


class KeyValue(SQLModel, table=True):
    """Small pieces of state the runtime keeps (e.g. where the last plan ended)."""

    __tablename__ = "kv"

    key: str = Field(primary_key=True, max_length=128)
    value: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    updated_at: datetime


class WebhookNonce(SQLModel, table=True):
    """A signed webhook's nonce, kept while its timestamp is still accepted (SPEC §6).

    A provider signature that covers only timestamp and nonce (WeChat's plain mode) could
    otherwise be replayed with another body inside the window; the primary key makes the
    second use fail in the database, so it holds across workers and machines.
    """

    __tablename__ = "webhook_nonce"

    # "<provider>:<timestamp>:<nonce>": the timestamp is in the key because WeChat's nonces
    # are short numbers, and two genuine callbacks may share one in different seconds.
    key: str = Field(primary_key=True, max_length=128)
    # When the timestamp leaves the accepted window: a replay is refused as stale from then
    # on, so the row can go.
    expires_at: datetime = Field(index=True)


class WorkerLease(SQLModel, table=True):
    """Which live dispatcher holds a worker id (``engine.sending.worker_lease``): one at a time.

    A second process given the same ``--worker`` is refused while the holder is seen; a holder whose
    heartbeat is older than the lease (or whose process is gone from the same machine) is taken over.
    """

    __tablename__ = "worker_lease"

    worker_id: str = Field(primary_key=True, max_length=64)
    # A new one each time a process takes the id: its claims carry it (worker_id#instance).
    instance: str = Field(max_length=16)
    host: str = Field(max_length=255)
    pid: int
    # boot/pid-namespace/pid/start time, for telling on the same machine that the holder is gone.
    process: str | None = Field(default=None, max_length=160)
    taken_at: datetime
    seen_at: datetime  # the heartbeat
