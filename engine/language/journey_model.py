"""The journey file language: pydantic models of what a file in ``journeys/`` may say.

Checks that need nothing but the file itself (types, durations, cron syntax,
channel names, step graph) live here; checks against the rest of the project
(templates, tiers, field catalogue, duplicate ids) live in ``engine.language.validation``.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from croniter import CroniterBadDateError, croniter
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)

from engine.language.bilingual import LABEL_MAX, checked_label
from engine.language.durations import parse_duration
from engine.language.faults import Fault, raise_faults
from engine.language.journey_bounds import (
    AttributeValue,
    CapCount,
    CapWindow,
    HoldoutPercent,
    Priority,
    TaskDue,
    VariantPercent,
)
from store.models import CHANNELS

OPERATORS = (
    "eq",
    "ne",
    "lt",
    "le",
    "gt",
    "ge",
    "in",
    "not_in",
    "contains",
    "exists",
    "missing",
    # Date/datetime fields against "now" (or the planned moment): value is a duration.
    "within_last",
    "older_than",
    "within_next",
)
VALUELESS_OPERATORS = ("exists", "missing")
DURATION_OPERATORS = ("within_last", "older_than", "within_next")


def _check_duration(text: str) -> str:
    parse_duration(text)
    return text


def _check_positive_duration(text: str) -> str:
    if parse_duration(text) <= timedelta(0):
        raise ValueError(f"duration {text!r} must be positive")
    return text


def one_of(kind: str, words: tuple[str, ...]) -> AfterValidator:
    """A check that a value is one of ``words``; ``kind`` names them in the message ("channel")."""

    def check(value: str) -> str:
        if value not in words:
            plural = kind[:-1] + "ies" if kind.endswith("y") else kind + "s"
            raise ValueError(f"unknown {kind} {value!r}: {plural} are {', '.join(words)}")
        return value

    return AfterValidator(check)


def _check_clock(text: str) -> str:
    parts = text.split(":")
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        raise ValueError(f"bad time of day {text!r}: write HH:MM, e.g. 10:00"
                         + ("; for the next working day write until: next_working_day" if "work" in text else ""))
    hour, minute = int(parts[0]), int(parts[1])
    if not (0 <= hour < 24 and 0 <= minute < 60):
        raise ValueError(f"bad time of day {text!r}: hours 00-23, minutes 00-59")
    return text


# A file's switches are taken as written: lax parsing would read ``urgent: 1`` as true, which is never
# what the author meant (numbers likewise, in engine.language.journey_bounds).
Switch = Annotated[bool, Field(strict=True)]
Duration = Annotated[str, AfterValidator(_check_duration)]
PositiveDuration = Annotated[str, AfterValidator(_check_positive_duration)]
ChannelName = Annotated[str, one_of("channel", CHANNELS)]
ClockTime = Annotated[str, AfterValidator(_check_clock)]
IDENTIFIER_PATTERN = r"^[a-z0-9][a-z0-9_-]*$"
Identifier = Annotated[str, Field(pattern=IDENTIFIER_PATTERN, max_length=64)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class Condition(Strict):
    """One of: ``{field, op, value}``, ``{all: [...]}``, ``{any: [...]}``, ``{not: {...}}``."""

    field: str | None = None
    op: str | None = None
    value: Any = None
    all: list[Condition] | None = None
    any: list[Condition] | None = None
    not_: Condition | None = Field(default=None, alias="not")

    @model_validator(mode="after")
    def _one_form(self) -> Condition:
        forms = [self.field is not None, self.all is not None, self.any is not None, self.not_ is not None]
        if sum(forms) != 1:
            raise ValueError("a condition is exactly one of {field, op, value}, {all: [...]}, {any: [...]}, {not: ...}")
        if self.field is not None:
            if self.op is None:
                raise ValueError(f"condition on {self.field!r} has no op (one of {', '.join(OPERATORS)})")
            if self.op not in OPERATORS:
                raise ValueError(f"unknown operator {self.op!r}: use one of {', '.join(OPERATORS)}")
            if self.op in DURATION_OPERATORS:
                if not isinstance(self.value, str):
                    raise ValueError(f"operator {self.op} takes a duration value, e.g. 30d")
                parse_duration(self.value)
            elif self.op in ("in", "not_in") and not isinstance(self.value, list):
                raise ValueError(f"operator {self.op} takes a list value")
            elif self.op not in VALUELESS_OPERATORS and self.value is None and "value" not in self.model_fields_set:
                raise ValueError(f"condition on {self.field!r} with op {self.op} needs a value")
        elif self.all is not None and not self.all:
            raise ValueError("'all' needs at least one condition")
        elif self.any is not None and not self.any:
            raise ValueError("'any' needs at least one condition")
        return self

    def fields(self) -> list[str]:
        """Every field path this condition reads."""
        if self.field is not None:
            return [self.field]
        out: list[str] = []
        for child in self.all or self.any or ([self.not_] if self.not_ else []):
            out.extend(child.fields())
        return out

    def describe(self) -> str:
        """Human-readable form, used by explain and in attribution."""
        if self.field is not None:
            return f"{self.field} {self.op}" + ("" if self.op in VALUELESS_OPERATORS else f" {self.value!r}")
        if self.all is not None:
            return "(" + " and ".join(c.describe() for c in self.all) + ")"
        if self.any is not None:
            return "(" + " or ".join(c.describe() for c in self.any) + ")"
        assert self.not_ is not None
        return f"not {self.not_.describe()}"


class Audience(Strict):
    tiers: list[str] | None = None
    when: Condition | None = None


class ScheduleEntry(Strict):
    """A cadence in the customer's local time, as a 5-field cron (``0 10 * * MON``), at most daily."""

    cron: str

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, value: str) -> str:
        if len(value.split()) != 5 or not croniter.is_valid(value):
            raise ValueError(f"bad cron {value!r}: write 5 fields, minute hour day month weekday, e.g. '0 10 * * MON'")
        try:
            # From a leap year's first day, so that 29 February is found; croniter gives up after
            # decades without a match, as it does for a date no month has (31 February, 31 April).
            croniter(value, datetime(2028, 1, 1)).get_next(datetime)
        except CroniterBadDateError:
            raise ValueError(f"cron {value!r} never fires: no month has that day") from None
        minutes, hours = croniter(value).expanded[:2]
        # A cadence is daily at most: every firing enrols the audience anew and the planner plans each
        # one ahead, so a cron every minute would cost a day's planning 1,440 times over.
        if len(minutes) != 1 or len(hours) != 1 or "*" in (minutes[0], hours[0]):
            raise ValueError(f"cron {value!r} fires more than once a day: a cadence names one minute and one "
                             "hour, e.g. '0 10 * * *' daily or '0 10 * * MON' weekly")
        return value


# Date fields a policy has (``store.models.Policy``); each may anchor a date entry or a wait.
POLICY_DATE_FIELDS = ("start_date", "expiry_date", "premium_due_date", "grace_period_end")
NonWorkingDayRule = Literal["keep", "next_working_day", "previous_working_day"]
DATE_ANCHORS = ("customer.birthday", *(f"policy.{f}" for f in POLICY_DATE_FIELDS), "claim.settled_at", "holiday")
ATTRIBUTE_ANCHOR = r"^customer\.attributes\.[a-z0-9_]+$"
ATTRIBUTES = "customer.attributes."


def attribute_name_problem(path: str) -> str | None:
    """Why ``customer.attributes.<name>`` names no attribute a customer can have, or None. The import reads a
    column ``attr.VIP`` as the attribute ``vip`` and the API takes lower-case names only, so a condition,
    anchor or update on ``VIP`` would never meet a customer's attribute."""
    name = path[len(ATTRIBUTES):] if path.startswith(ATTRIBUTES) else ""
    if name != name.lower():
        return (f"attribute names are lower case (the import reads a column attr.{name} as {name.lower()!r}): "
                f"write {ATTRIBUTES}{name.lower()}")
    return None


def _check_anchor(text: str) -> str:
    if text in DATE_ANCHORS or re.match(ATTRIBUTE_ANCHOR, text):
        return text
    if problem := attribute_name_problem(text):
        raise ValueError(problem)
    hint = difflib.get_close_matches(text, DATE_ANCHORS, n=1)
    raise ValueError(f"unknown anchor {text!r}" + (f" (did you mean {hint[0]!r}?)" if hint else "")
                     + f": anchors are {', '.join(DATE_ANCHORS)} or customer.attributes.<name>")


DateAnchor = Annotated[str, AfterValidator(_check_anchor)]


class DateEntry(Strict):
    """A date relative to a date the customer has: birthday, any policy date (start, expiry, premium
    due, grace period end), claim settlement, a date attribute, or a holiday; once or every year."""

    anchor: DateAnchor
    offset: Duration = "0d"
    at: ClockTime = "10:00"
    # ``year``: every anniversary of the anchor date (a policy's start: its anniversaries).
    every: Literal["year"] | None = None
    holidays: list[str] | None = None
    # A day that is not a working day in the PRC work calendar (weekend or official holiday; a make-up
    # working day counts as working) moves to the next working day, or the one before (a reminder due before a date).
    on_non_working_day: NonWorkingDayRule = "keep"

    @model_validator(mode="after")
    def _holidays_only_for_holiday(self) -> DateEntry:
        if self.anchor == "holiday" and not self.holidays:
            raise ValueError("anchor 'holiday' needs a list of holidays, e.g. [spring_festival, mid_autumn]")
        if self.anchor != "holiday" and self.holidays:
            raise ValueError("'holidays' is only for anchor 'holiday'")
        if self.every is not None and self.anchor in ("holiday", "customer.birthday", "claim.settled_at"):
            raise ValueError(f"'every' is for policy and attribute dates; anchor {self.anchor!r} "
                             + ("recurs every year by itself" if self.anchor != "claim.settled_at" else "is one-off"))
        return self


class AnchoredMoment(Strict):
    """A moment relative to a date field in scope: ``{anchor: policy.expiry_date, offset: -3d, at: "10:00"}``."""

    anchor: DateAnchor
    offset: Duration = "0d"
    at: ClockTime = "10:00"
    on_non_working_day: NonWorkingDayRule = "keep"  # as a date entry's

    @field_validator("anchor")
    @classmethod
    def _not_holiday(cls, value: str) -> str:
        if value == "holiday":
            raise ValueError("a wait cannot run until a holiday; use a date entry with anchor 'holiday'")
        return value


def _until_form(value: Any) -> str:
    if not isinstance(value, str):
        return "until-anchor"
    return "until-day" if value == "next_working_day" else "until-time"


class WaitUntil(Strict):
    """``{until: "10:00"}`` (the next such local time), ``{until: {anchor, offset, at}}`` or
    ``{until: next_working_day, at: "10:00"}`` (PRC work calendar)."""

    until: Annotated[
        Annotated[Literal["next_working_day"], Tag("until-day")] | Annotated[ClockTime, Tag("until-time")]
        | Annotated[AnchoredMoment, Tag("until-anchor")],
        Discriminator(_until_form),
    ]
    at: ClockTime | None = None

    @model_validator(mode="after")
    def _at_for_working_day(self) -> WaitUntil:
        if self.at is not None and self.until != "next_working_day":
            raise ValueError("'at' goes with 'until: next_working_day'; a time or an anchor carries its own")
        return self


def _wait_form(value: Any) -> str:
    return "wait-duration" if isinstance(value, str) else "wait-until"


# ``wait: 3d`` or ``wait: {until: ...}``; the form is chosen first so that an error speaks of one.
WaitSpec = Annotated[
    Annotated[PositiveDuration, Tag("wait-duration")] | Annotated[WaitUntil, Tag("wait-until")],
    Discriminator(_wait_form),
]


class EventEntry(Strict):
    type: str
    when: Condition | None = None


class Entry(Strict):
    schedule: ScheduleEntry | None = None
    date: DateEntry | None = None
    event: EventEntry | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Entry:
        if sum(x is not None for x in (self.schedule, self.date, self.event)) != 1:
            raise ValueError("entry is exactly one of schedule, date or event")
        return self

    @property
    def kind(self) -> str:
        return "schedule" if self.schedule else "date" if self.date else "event"


class Reentry(Strict):
    """May a customer enter again, and when.

    ``allowed: false``: once ever. ``allowed: true`` with ``per: occurrence`` (the meaning when
    neither ``per`` nor ``after`` is given): once per occurrence of the entry (a cron firing, a
    birthday's year, each holiday in each year, a policy expiry, an event), however close two
    occurrences fall; Mid-Autumn and National Day on the same day are two. ``after``: besides,
    at least that long since the last entry, for cadences that must not crowd each other.
    """

    allowed: Switch = True
    after: PositiveDuration | None = None
    per: Literal["occurrence"] | None = None

    @model_validator(mode="after")
    def _one_rule(self) -> Reentry:
        if not self.allowed and (self.after is not None or self.per is not None):
            raise ValueError("'allowed: false' means once ever; 'after' and 'per' only go with 'allowed: true'")
        if self.after is not None and self.per is not None:
            raise ValueError("give either 'after' (a time between two entries) or 'per: occurrence', not both")
        return self


class Goal(Strict):
    event: str
    when: Condition | None = None


# ``channels: by_engagement``: the list comes from ``engagement_channels`` in config/delivery.yaml,
# by the customer's engagement level (basic | active | at_risk; ``engine.language.engagement``).
BY_ENGAGEMENT = "by_engagement"


class Send(Strict):
    channels: list[ChannelName] | Literal["by_engagement"] = Field(min_length=1)
    template: Identifier
    urgent: Switch | None = None

    @property
    def by_engagement(self) -> bool:
        return self.channels == BY_ENGAGEMENT

    @property
    def listed(self) -> list[str]:
        """The channels the step lists itself (none for ``by_engagement``)."""
        return [] if isinstance(self.channels, str) else list(self.channels)


class Webhook(Strict):
    """``webhook: {target: crm, template: crm_case_opened}``: a signed JSON call to a target of
    config/webhooks.yaml; its outcome is the event ``webhook.<target>.succeeded`` or ``.failed``."""

    target: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_]*$", max_length=32)]
    template: Identifier


class Cap(Strict):
    """At most ``count`` touches in any rolling ``window``: ``cap: {count: 1, window: 30d}``."""

    count: CapCount
    window: CapWindow


class WaitFor(Strict):
    event: str
    when: Condition | None = None
    timeout: PositiveDuration
    on_event: str = "next"
    on_timeout: str = "next"


class BranchCase(Strict):
    when: Condition
    goto: str


class Branch(Strict):
    cases: list[BranchCase] = Field(min_length=1)
    otherwise: str = "next"


# An enrollment's variant is stored under its name (reports count by it), and the control group
# under ``holdout``: a variant may not take that name.
HOLDOUT = "holdout"


def _not_holdout(name: str) -> str:
    if name == HOLDOUT:
        raise ValueError(f"{HOLDOUT!r} names the control group (give the split a holdout share); "
                         "choose another variant name")
    return name


def _check_variant_label(text: str) -> str:
    return checked_label(text, "a variant", "短文案 / Short text")


class SplitVariant(Strict):
    name: Annotated[Identifier, AfterValidator(_not_holdout)]
    percent: VariantPercent
    goto: str = "next"
    # What the variant is, for people (the name stays the code reports count by): 中文 / English.
    label: Annotated[str, AfterValidator(_check_variant_label)] | None = None


class Split(Strict):
    """Random split; ``holdout`` percent of entrants leave at once as the control group for lift."""

    variants: list[SplitVariant] = Field(min_length=1)
    holdout: HoldoutPercent = 0

    @model_validator(mode="after")
    def _sums_to_100(self) -> Split:
        total = sum(v.percent for v in self.variants) + self.holdout
        if total != 100:
            raise ValueError(f"split percentages and holdout must add up to 100, not {total}")
        return self


class Task(Strict):
    queue: Identifier
    priority: Literal["high", "normal", "low"] = "normal"
    due_within: TaskDue
    script: Identifier | None = None
    assign: Literal["queue", "advisor"] = "queue"


class Update(Strict):
    field: str
    value: AttributeValue

    @field_validator("field")
    @classmethod
    def _writable(cls, value: str) -> str:
        if not value.startswith("customer.attributes.") or value == "customer.attributes.":
            raise ValueError(f"can only update customer.attributes.<name>, not {value!r}")
        if problem := attribute_name_problem(value):
            raise ValueError(problem)
        return value


# An exit's words fit a diagram's box and a table's cell; the reason stays the code reports count by.
EXIT_LABEL_MAX = LABEL_MAX


def _check_exit_label(text: str) -> str:
    return checked_label(text, "an exit", "已完成回访 / Callback done")


class Exit(Strict):
    # An identifier like every other code a file names: it is stored in a 64-character column and
    # counted by in reports, so a sentence or an over-long reason would fail only when written.
    reason: Identifier = "completed"
    # What the reason means, for people: 中文 / English as the journey's name is written.
    label: Annotated[str, AfterValidator(_check_exit_label)] | None = None


STEP_KINDS = ("send", "wait", "wait_for", "branch", "split", "task", "update", "exit", "webhook")


class Step(Strict):
    id: Identifier
    next: str | None = None
    send: Send | None = None
    wait: WaitSpec | None = None
    wait_for: WaitFor | None = None
    branch: Branch | None = None
    split: Split | None = None
    task: Task | None = None
    update: Update | None = None
    exit: Exit | None = None
    webhook: Webhook | None = None

    @model_validator(mode="before")
    @classmethod
    def _exit_shorthand(cls, data: Any) -> Any:
        # ``exit: {}`` and a bare ``exit:`` both mean "leave the journey".
        if isinstance(data, dict) and "exit" in data and data["exit"] is None:
            data = {**data, "exit": {}}
        return data

    @model_validator(mode="after")
    def _one_action(self) -> Step:
        actions = [k for k in STEP_KINDS if getattr(self, k) is not None]
        if len(actions) != 1:
            found = ", ".join(actions) if actions else "none"
            raise ValueError(f"step {self.id!r} needs exactly one of {', '.join(STEP_KINDS)} (found {found})")
        if self.next is not None and actions[0] in ("branch", "split", "exit", "wait_for"):
            raise ValueError(f"step {self.id!r}: 'next' is not used by a {actions[0]} step; give its targets inside it")
        return self

    @property
    def kind(self) -> str:
        return next(k for k in STEP_KINDS if getattr(self, k) is not None)


def _labels(step: Step, index: int) -> Iterator[tuple[tuple[str, str], str, tuple[str | int, ...]]]:
    """((what, code), label, where) for each code step ``index`` gives words: its exit's reason, its variants."""
    base = ("steps", index)
    if step.exit is not None and step.exit.label is not None:
        yield ("exit reason", step.exit.reason), step.exit.label, (*base, "exit", "label")
    for j, variant in enumerate(step.split.variants if step.split is not None else ()):
        if variant.label is not None:
            yield ("variant", variant.name), variant.label, (*base, "split", "variants", j, "label")


class Journey(Strict):
    id: Identifier
    name: str
    description: str | None = None
    category: Literal["service", "marketing"]
    priority: Priority = 50
    urgent: Switch = False
    enabled: Switch = True
    audience: Audience = Audience()
    entry: Entry
    reentry: Reentry = Reentry()
    goal: Goal | None = None
    # Touches of this journey per customer in any rolling window, beside the global marketing cap.
    cap: Cap | None = None
    # How late its touches may still go out, instead of its category's ``expire_after`` in config/delivery.yaml.
    expire_after: PositiveDuration | None = None
    steps: list[Step] = Field(min_length=1)

    @model_validator(mode="after")
    def _one_label_per_code(self) -> Journey:
        # Reports count exits by reason and entrants by variant name, so a code has one set of words wherever
        # the journey gives it words. A name given twice in one split is refused as such by validation.
        first: dict[tuple[str, str], tuple[str, str]] = {}
        faults: list[Fault] = []
        for i, step in enumerate(self.steps):
            for (what, code), label, loc in _labels(step, i):
                seen = first.setdefault((what, code), (step.id, label))
                if seen[1] != label and seen[0] != step.id:
                    faults.append((loc, f"{what} {code!r} is labelled {seen[1]!r} at step {seen[0]!r}: "
                                        f"one {what.split()[-1]}, one label"))
        raise_faults(faults)
        return self

    def step(self, step_id: str) -> Step:
        return next(s for s in self.steps if s.id == step_id)

    def exit_label(self, reason: str) -> str | None:
        """The words an exit step gives ``reason`` (中文 / English, as written), or None."""
        return next((s.exit.label for s in self.steps if s.exit is not None and s.exit.reason == reason
                     and s.exit.label is not None), None)

    def variant_label(self, name: str) -> str | None:
        """The words a split gives its variant ``name`` (中文 / English, as written), or None."""
        return next((label for i, s in enumerate(self.steps) for (what, code), label, _ in _labels(s, i)
                     if what == "variant" and code == name), None)

    def successors(self, index: int) -> list[str]:
        """Step ids (or 'exit') that step ``index`` can lead to."""
        step = self.steps[index]
        following = self.steps[index + 1].id if index + 1 < len(self.steps) else "exit"

        def resolve(target: str) -> str:
            return following if target == "next" else target

        if step.exit is not None:
            return []
        if step.branch is not None:
            return [resolve(c.goto) for c in step.branch.cases] + [resolve(step.branch.otherwise)]
        if step.split is not None:
            return [resolve(v.goto) for v in step.split.variants]
        if step.wait_for is not None:
            return [resolve(step.wait_for.on_event), resolve(step.wait_for.on_timeout)]
        return [resolve(step.next or "next")]

    def next_step_id(self, index: int) -> str:
        """Where a linear step continues: its ``next`` or the following step, 'exit' at the end."""
        return self.successors(index)[0]
