"""Models of the configuration files ops edit: ``config/tiers.yaml``, ``config/delivery.yaml``,
``config/work_calendar.yaml``, ``config/queues.yaml`` and ``config/review.yaml``."""

from __future__ import annotations

import itertools
import re
from datetime import date, timedelta
from typing import Annotated, Any, Literal, get_args

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from engine.language.faults import Fault, raise_faults
from engine.language.journey_model import (
    Cap,
    ChannelName,
    ClockTime,
    Identifier,
    Journey,
    PositiveDuration,
    Switch,
    one_of,
)
from store.clock import known_zone
from store.models import CHANNELS, PRODUCT_LINES, TIERS

DIMENSIONS = ("ltv", "activity", "risk", "social", "basic")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TierReview(_Strict):
    window: PositiveDuration = "90d"
    churn_threshold: float = Field(default=0.15, gt=0, lt=1)


class ExtraResources(_Strict):
    """What dynamic adjustment switches on for a tier whose churn crosses the threshold."""

    journeys: list[Identifier] = Field(default_factory=list)
    notify_queue: Identifier = "ops"


class TierConfig(_Strict):
    weights: dict[str, Annotated[float, Field(ge=0, le=1)]]
    thresholds: dict[str, Annotated[float, Field(ge=0, le=100)]]
    review: TierReview = TierReview()
    extra_resources: dict[str, ExtraResources] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _consistent(self) -> TierConfig:
        faults: list[Fault] = []
        missing = [d for d in DIMENSIONS if d not in self.weights]
        if missing:
            faults.append((("weights",), f"weights must name every dimension ({', '.join(DIMENSIONS)}); "
                                         f"missing {', '.join(missing)}"))
        faults += [(("weights", d), f"unknown dimension {d!r}: dimensions are {', '.join(DIMENSIONS)}")
                   for d in self.weights if d not in DIMENSIONS]
        total = sum(self.weights.values())
        if not faults and abs(total - 1) > 1e-6:
            faults.append((("weights",), f"weights must add up to 1, not {total:g}"))
        for section, names in (("thresholds", self.thresholds), ("extra_resources", self.extra_resources)):
            faults += [((section, t), f"unknown tier {t!r}: tiers are {', '.join(TIERS)}")
                       for t in names if t not in TIERS]
        absent = [t for t in TIERS if t not in self.thresholds]
        if absent:
            faults.append((("thresholds",), f"thresholds must give every tier: {', '.join(TIERS)}; "
                                            f"missing {', '.join(absent)}"))
        given = [t for t in TIERS if t in self.thresholds]
        for higher, lower in itertools.pairwise(given):
            if self.thresholds[lower] >= self.thresholds[higher]:
                faults.append((("thresholds", lower), f"thresholds must fall strictly from diamond to potential: "
                               f"{lower} ({self.thresholds[lower]:g}) is not below {higher} "
                               f"({self.thresholds[higher]:g})"))
        raise_faults(faults)
        return self

    def tier_for(self, score: float) -> str:
        for tier in TIERS:
            if score >= self.thresholds[tier]:
                return tier
        return TIERS[-1]


class QuietHours(_Strict):
    start: ClockTime = "21:00"
    end: ClockTime = "08:00"


class Expiry(_Strict):
    """How late a touch of each category may still go out; past it the touch is dropped, not sent.

    A service that was down (a deploy, a failover, a weekend) comes back to touches that were due
    hours or days ago: a marketing push is noise a day late, a service notice keeps its use longer.
    A journey may set its own (``expire_after`` in the journey file, e.g. a birthday greeting)."""

    marketing: PositiveDuration = "1d"
    service: PositiveDuration = "3d"


class EngagementRules(_Strict):
    """Where the engagement levels start (``engine.language.engagement``)."""

    active_activity: float = Field(default=50, ge=0, le=100)  # activity score from which a customer is active
    at_risk_churn: float = Field(default=0.5, gt=0, le=1)  # churn risk from which they are at risk


def _default_engagement_channels() -> dict[Literal["basic", "active", "at_risk"], list[str]]:
    return {"basic": ["sms", "wechat"], "active": ["push", "sms"], "at_risk": ["sms", "wechat"]}


def _keyword(word: str) -> str:
    if not word.strip():
        raise ValueError("an opt-out keyword is blank: a reply is a word, and a blank one is no reply at all")
    return word


class DeliveryConfig(_Strict):
    default_timezone: str = "Asia/Shanghai"
    quiet_hours: QuietHours = QuietHours()
    # Per channel, instead of ``quiet_hours`` (e.g. a push at 07:30 wakes people, an e-mail does not).
    channel_quiet_hours: dict[ChannelName, QuietHours] = Field(default_factory=dict)
    marketing_cap: int = Field(default=2, ge=0)
    marketing_cap_window: PositiveDuration = "7d"
    # Marketing touches per customer on one channel in a rolling window, beside ``marketing_cap``.
    channel_caps: dict[ChannelName, Cap] = Field(default_factory=dict)
    engagement: EngagementRules = EngagementRules()
    engagement_channels: dict[Literal["basic", "active", "at_risk"],
                              Annotated[list[ChannelName], Field(min_length=1)]] = Field(
        default_factory=_default_engagement_channels)
    # At least one, none blank: with none a customer's "TD" withdrew nothing, whatever the footer says.
    opt_out_keywords: Annotated[list[Annotated[str, AfterValidator(_keyword)]], Field(min_length=1)] = Field(
        default_factory=lambda: ["TD", "退订", "STOP", "unsubscribe"])
    marketing_sms_footer: str = "回复TD退订"
    rate_limits: dict[str, Annotated[float, Field(gt=0)]] = Field(
        default_factory=lambda: {"sms": 2000.0, "wechat": 2000.0, "email": 500.0, "push": 2000.0}
    )
    max_attempts: int = Field(default=5, ge=1)
    # Past these a touch not yet sent is dropped with the reason ``expired: …`` (engine.sending.expiry).
    expire_after: Expiry = Expiry()

    @model_validator(mode="after")
    def _known_channels(self) -> DeliveryConfig:
        faults: list[Fault] = []
        missing_levels = [lvl for lvl in ("basic", "active", "at_risk") if lvl not in self.engagement_channels]
        if missing_levels:
            faults.append((("engagement_channels",), "engagement_channels must give every level; "
                                                     f"missing {', '.join(missing_levels)}"))
        faults += [(("rate_limits", c), f"unknown channel {c!r} in rate_limits: channels are {', '.join(CHANNELS)}")
                   for c in self.rate_limits if c not in CHANNELS]
        if not known_zone(self.default_timezone):
            faults.append((("default_timezone",), f"unknown time zone {self.default_timezone!r}"))
        raise_faults(faults)
        return self


# --- config/work_calendar.yaml: the official holiday schedule, year by year ------------------------

MAX_HOLIDAY_DAYS = 31  # the longest run ever given (Spring Festival 2020, extended) was 10 days


def _a_date(value: Any) -> Any:
    # pydantic would read a bare number as a Unix timestamp; a date in this file is always written out.
    if isinstance(value, bool | int | float):
        raise ValueError(f"write a date as YYYY-MM-DD, not {value!r}")
    return value


def _weekend(day: date) -> date:
    if day.weekday() < 5:
        raise ValueError(f"{day.isoformat()} is a {day:%A}: a make-up working day (调休上班) is a Saturday or Sunday; "
                         "weekdays are working days anyway")
    return day


Day = Annotated[date, BeforeValidator(_a_date)]
MakeUpDay = Annotated[date, BeforeValidator(_a_date), AfterValidator(_weekend)]


class HolidayRange(_Strict):
    """Days off in a row, both ends included: ``{name: spring_festival, from: 2026-02-15, to: 2026-02-23}``."""

    name: str = Field(min_length=1, max_length=64)
    first: Day = Field(alias="from")
    last: Day = Field(alias="to")

    @model_validator(mode="after")
    def _ordered(self) -> HolidayRange:
        if self.last < self.first:
            raise_faults([(("to",), f"'to' ({self.last.isoformat()}) is before 'from' ({self.first.isoformat()})")])
        if self.last - self.first >= timedelta(days=MAX_HOLIDAY_DAYS):
            raise_faults([(("to",), f"{self.name}: more than {MAX_HOLIDAY_DAYS} days off in a row; check the dates")])
        return self

    def days(self) -> list[date]:
        return [self.first + timedelta(days=i) for i in range((self.last - self.first).days + 1)]


class WorkYear(_Strict):
    """One year's State Council notice: its holidays (days off) and its make-up working days."""

    holidays: list[HolidayRange] = Field(default_factory=list)
    working_days: list[MakeUpDay] = Field(default_factory=list)


class WorkCalendarConfig(_Strict):
    """Years listed here replace what the ``chinese-calendar`` package says for them."""

    # 2000-2100, checked by engine.language.work_calendar so that the error points at the year's key.
    years: dict[int, WorkYear] = Field(default_factory=dict)


# --- config/queues.yaml: the agent desk's queues (read by the console) -----------------------------

# The outcome codes an agent records on a task (SPEC §8); each queue offers some of them.
OUTCOME_CODES: tuple[str, ...] = (
    "reached", "no_answer", "wrong_number", "call_back", "complaint_raised", "resolved", "renewal_yes", "renewal_no",
)
# Outcomes that leave nothing to do on the task: the desk asks the agent to confirm them.
CLOSING_OUTCOMES: frozenset[str] = frozenset(
    {"reached", "wrong_number", "complaint_raised", "resolved", "renewal_yes", "renewal_no"})
# What an agent can be good at: the languages customers speak, product lines, and the
# licences health and life advice needs. Agents' skills and queues' requirements use these words.
SKILL_LANGUAGES: tuple[str, ...] = ("zh-CN", "en")
LICENSED_LINES: tuple[str, ...] = ("health", "life")
SKILLS: tuple[str, ...] = (
    *(f"lang:{lang}" for lang in SKILL_LANGUAGES),
    *(f"product:{line}" for line in PRODUCT_LINES),
    *(f"licence:{line}" for line in LICENSED_LINES),
)
CLOCKS = ("wall", "business")
Clock = Literal["wall", "business"]


def _no_repeats(values: list[str]) -> list[str]:
    repeated = sorted({v for v in values if values.count(v) > 1})
    if repeated:
        raise ValueError(f"{', '.join(repeated)} given more than once")
    return values


OutcomeCode = Annotated[str, one_of("outcome", OUTCOME_CODES)]
Skill = Annotated[str, one_of("skill", SKILLS)]
Outcomes = Annotated[list[OutcomeCode], Field(min_length=1), AfterValidator(_no_repeats)]
Skills = Annotated[list[Skill], AfterValidator(_no_repeats)]
WarnShare = Annotated[float, Field(gt=0, lt=1)]


class BusinessHours(_Strict):
    """The service centre's hours on a working day (the PRC calendar of ``config/work_calendar.yaml``)."""

    timezone: str = "Asia/Shanghai"
    start: ClockTime = "09:00"
    end: ClockTime = "18:00"

    @model_validator(mode="after")
    def _window(self) -> BusinessHours:
        faults: list[Fault] = []
        if self.end <= self.start:
            faults.append((("end",), f"end ({self.end}) must come after start ({self.start}) on the same day"))
        if not known_zone(self.timezone):
            faults.append((("timezone",), f"unknown time zone {self.timezone!r}"))
        raise_faults(faults)
        return self


class QueueDefaults(_Strict):
    """What a queue has when its entry (or the file) does not say."""

    outcomes: Outcomes = Field(default_factory=lambda: list(OUTCOME_CODES))
    clock: Clock = "wall"
    warn_at: WarnShare = 0.8
    requires: Skills = Field(default_factory=list)
    match_language: bool = False


class QueueDecl(_Strict):
    """One queue: who works it, what its agents may record, how its SLA clock runs, what it needs."""

    teams: Annotated[list[Identifier], Field(min_length=1), AfterValidator(_no_repeats)] | None = None
    outcomes: Outcomes | None = None
    clock: Clock | None = None
    # Share of the SLA time after which the assignee and the supervisor are warned.
    warn_at: WarnShare | None = None
    requires: Skills | None = None
    # The task needs an agent who speaks the customer's language (``lang:<customer locale>``).
    match_language: bool | None = None


class TaskTypeDecl(_Strict):
    """Skills the tasks of one journey (``journey-id``) or one of its steps (``journey-id/step-id``) need."""

    requires: Skills = Field(default_factory=list)


class QueuesConfig(_Strict):
    business_hours: BusinessHours = BusinessHours()
    defaults: QueueDefaults = QueueDefaults()
    queues: dict[Identifier, QueueDecl] = Field(default_factory=dict)
    task_types: dict[str, TaskTypeDecl] = Field(default_factory=dict)

    def outcomes_of(self, queue: str) -> list[str]:
        """What the agents of ``queue`` may record: its own list, else the defaults'."""
        decl = self.queues.get(queue)
        return list(decl.outcomes if decl is not None and decl.outcomes is not None else self.defaults.outcomes)

    @model_validator(mode="after")
    def _task_type_keys(self) -> QueuesConfig:
        faults: list[Fault] = []
        for key in self.task_types:
            parts = key.split("/")
            if len(parts) > 2 or not all(re.fullmatch(r"[a-z0-9][a-z0-9_-]*", p) for p in parts):
                faults.append((("task_types", key), f"task type {key!r}: write a journey id or journey-id/step-id"))
        raise_faults(faults)
        return self


# --- config/review.yaml: which journey categories need approval before going in force ------------

CATEGORIES: tuple[str, ...] = get_args(Journey.model_fields["category"].annotation)


class ReviewConfig(_Strict):
    """``config/review.yaml``: which journey categories need approval before a change goes in force
    (``engine.language.journey_review``). A category not listed needs it; ``true``/``false`` only, so
    that ``marketing: maybe`` or a misspelt category is an error at its line, not a silent choice."""

    categories: dict[Annotated[str, one_of("journey category", CATEGORIES)], Switch] = Field(
        default_factory=lambda: {"marketing": True, "service": False})

    def required(self, category: str) -> bool:
        return self.categories.get(category, True)
