"""The JSON Schema of a journey file, for editors: ``journeys schema > journey.schema.json``.

The model's own schema knows types only. Here every field gets a description and an example,
names from a closed list get an enum (tiers, channels, operators, event types from
``config/events.yaml``, queues from ``config/queues.yaml``, date anchors), and durations and
times of day a pattern, so that an editor with the YAML language server flags most mistakes as
they are typed. ``journeys validate`` stays the judge: the schema cannot see templates, step
targets or scopes.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from engine.language import journey_model
from engine.language.event_types import current as current_event_types
from engine.language.journey_model import ATTRIBUTE_ANCHOR, DATE_ANCHORS, OPERATORS, Journey
from engine.language.paths import config_dir
from store.models import CHANNELS, TIERS

DURATION_PATTERN = r"^-?(\d+[wdhm])+$"
POSITIVE_DURATION_PATTERN = r"^(\d+[wdhm])+$"
TIME_PATTERN = r"^([01]\d|2[0-3]):[0-5]\d$"

# "Model.field" → (description, example). A test checks that every field of the model has one.
FIELD_DOCS: dict[str, tuple[str, Any]] = {
    "Journey.id": ("Unique id: lowercase letters, digits, - and _.", "silver-weekly-push"),
    "Journey.name": ("Name shown to ops, zh and en.", "白银每周专属推送 / Silver weekly push"),
    "Journey.description": ("What the journey does and why.", "Every Monday at 10:00 a content push."),
    "Journey.category": ("service (renewal, claim, complaint) or marketing (caps and opt-outs apply).", "marketing"),
    "Journey.priority": ("0-100; higher wins when journeys compete for the same customer and day.", 40),
    "Journey.urgent": ("Service only: its sends may go out in quiet hours.", False),
    "Journey.enabled": ("false: loaded and validated, but nobody enters.", True),
    "Journey.audience": ("Who may enter (leave out: everybody).", {"tiers": ["silver"]}),
    "Journey.entry": ("When customers enter: exactly one of schedule, date or event.",
                      {"schedule": {"cron": "0 10 * * MON"}}),
    "Journey.reentry": ("Whether and when a customer may enter again.", {"allowed": True, "after": "6d"}),
    "Journey.goal": ("Leave at once when this event happens.", {"event": "policy.renewed"}),
    "Journey.cap": ("At most this many of this journey's touches per customer in a rolling window.",
                    {"count": 1, "window": "30d"}),
    "Journey.expire_after": ("How late its touches may still go out (after an outage); later ones are dropped. "
                             "Default: its category's expire_after in config/delivery.yaml.", "1d"),
    "Journey.steps": ("The steps, run top to bottom.", [{"id": "push", "send": {"channels": ["wechat", "sms"],
                                                                                "template": "silver_weekly_push"}}]),
    "Audience.tiers": ("Tiers that may enter.", ["gold", "platinum"]),
    "Audience.when": ("A condition the customer must meet at entry.",
                      {"field": "customer.logins_90d", "op": "ge", "value": 1}),
    "Entry.schedule": ("A cadence in the customer's local time.", {"cron": "0 10 1 * *"}),
    "Entry.date": ("A date relative to a date the customer has.",
                   {"anchor": "policy.expiry_date", "offset": "-30d", "at": "10:00"}),
    "Entry.event": ("Enter when another system reports the event.",
                    {"type": "survey.answered", "when": {"field": "event.data.nps", "op": "le", "value": 6}}),
    "ScheduleEntry.cron": ("5-field cron: minute hour day month weekday, customer's local time; at most daily.",
                           "0 10 * * MON"),
    "DateEntry.anchor": ("The date the entry is relative to.", "policy.start_date"),
    "DateEntry.offset": ("Before (-) or after the anchor date.", "-15d"),
    "DateEntry.at": ("Local time of day, HH:MM.", "10:00"),
    "DateEntry.every": ("year: every anniversary of the anchor date (29 Feb: 28 Feb in other years).", "year"),
    "DateEntry.holidays": ("For anchor holiday: which holidays.", ["spring_festival", "mid_autumn"]),
    "DateEntry.on_non_working_day": ("next_working_day / previous_working_day: a fire on a day off moves to the "
                                     "next working day, or to the last one before it.", "next_working_day"),
    "EventEntry.type": ("An event type of config/events.yaml.", "vehicle.inspection_due"),
    "EventEntry.when": ("A condition the event must meet.", {"field": "event.data.days_left", "op": "le", "value": 15}),
    "Reentry.allowed": ("false: once ever.", True),
    "Reentry.after": ("At least this long since the last entry.", "30d"),
    "Reentry.per": ("occurrence: once per occurrence of the entry.", "occurrence"),
    "Goal.event": ("The event that ends the journey.", "policy.renewed"),
    "Goal.when": ("A condition the goal event must meet.", {"field": "event.data.policy_id", "op": "exists"}),
    "Cap.count": ("How many touches at most.", 1),
    "Cap.window": ("The rolling window.", "30d"),
    "Condition.field": ("The field tested: customer.*, policy.*, claim.* or event.*.", "customer.tier"),
    "Condition.op": ("The operator.", "in"),
    "Condition.value": ("The value compared with (a list for in/not_in, a duration for within_*).", ["gold"]),
    "Condition.all": ("Every condition holds.", [{"field": "customer.age", "op": "ge", "value": 60}]),
    "Condition.any": ("At least one condition holds.", [{"field": "customer.tier", "op": "eq", "value": "gold"}]),
    "Condition.not": ("The condition does not hold.", {"field": "customer.consent_sms", "op": "eq", "value": True}),
    "Step.id": ("The step's id, unique in the journey; gotos name it.", "send_reminder"),
    "Step.next": ("The step to go on to (default: the one below); a step id, next or exit.", "done"),
    "Step.send": ("Send one message on the first channel the customer can be reached on.",
                  {"channels": ["wechat", "sms"], "template": "renewal_reminder"}),
    "Step.wait": ("Pause: a duration, or until a local time, a working day or a date.", "3d"),
    "Step.wait_for": ("Wait for an event, or the timeout.",
                      {"event": "policy.renewed", "timeout": "10d", "on_event": "done", "on_timeout": "call"}),
    "Step.branch": ("The first case whose condition holds wins.",
                    {"cases": [{"when": {"field": "customer.tier", "op": "eq", "value": "gold"}, "goto": "call"}],
                     "otherwise": "next"}),
    "Step.split": ("Random split with an optional holdout.",
                   {"variants": [{"name": "short_copy", "percent": 50, "label": "短文案 / Short text"},
                                 {"name": "long_copy", "percent": 40, "label": "长文案 / Long text"}], "holdout": 10}),
    "Step.task": ("An agent task in a desk queue.", {"queue": "renewal", "priority": "high", "due_within": "2d"}),
    "Step.update": ("Set a customer attribute.", {"field": "customer.attributes.care_pack_sent", "value": True}),
    "Step.exit": ("Leave the journey.", {"reason": "renewed", "label": "已续保 / Renewed"}),
    "Step.webhook": ("A signed call to another system (config/webhooks.yaml).",
                     {"target": "crm", "template": "crm_case_opened"}),
    "Send.channels": ("Channels in order of preference, or by_engagement.", ["wechat", "sms"]),
    "Send.template": ("A template folder under templates/.", "renewal_reminder"),
    "Send.urgent": ("Service only: may go out in quiet hours.", True),
    "Webhook.target": ("A target of config/webhooks.yaml.", "crm"),
    "Webhook.template": ("The template of the JSON body.", "crm_case_opened"),
    "WaitUntil.until": ("A local time HH:MM, next_working_day, or {anchor, offset, at}.", "10:00"),
    "WaitUntil.at": ("With until: next_working_day, the local time on that day.", "10:00"),
    "AnchoredMoment.anchor": ("The date field in scope the wait runs until.", "policy.expiry_date"),
    "AnchoredMoment.offset": ("Before (-) or after the date.", "-3d"),
    "AnchoredMoment.at": ("Local time of day, HH:MM.", "10:00"),
    "AnchoredMoment.on_non_working_day": ("previous_working_day / next_working_day: a moment on a day off moves "
                                          "to the last working day before it, or the next one.",
                                          "previous_working_day"),
    "WaitFor.event": ("The event waited for.", "policy.renewed"),
    "WaitFor.when": ("A condition the event must meet.", {"field": "event.data.nps", "op": "le", "value": 6}),
    "WaitFor.timeout": ("How long to wait at most.", "10d"),
    "WaitFor.on_event": ("Where to go when the event happens.", "done"),
    "WaitFor.on_timeout": ("Where to go when the timeout passes.", "call"),
    "BranchCase.when": ("The case's condition.", {"field": "customer.tier", "op": "eq", "value": "gold"}),
    "BranchCase.goto": ("Where the case goes: a step id, next or exit.", "call"),
    "Branch.cases": ("Cases, tried in order.", [{"when": {"field": "customer.age", "op": "ge", "value": 60},
                                                 "goto": "senior"}]),
    "Branch.otherwise": ("Where to go when no case holds.", "next"),
    "SplitVariant.name": ("The variant's name, in reports.", "short_copy"),
    "SplitVariant.percent": ("Share of entrants, in percent.", 45),
    "SplitVariant.goto": ("Where the variant goes.", "send_short"),
    "SplitVariant.label": ("What the variant is, in words for the console, 中文 / English like the name; one line, "
                           "at most 60 characters.", "短文案 / Short text"),
    "Split.variants": ("The variants.", [{"name": "short_copy", "percent": 45, "goto": "send_short",
                                          "label": "短文案 / Short text"}]),
    "Split.holdout": ("Percent leaving at once as the control group.", 10),
    "Task.queue": ("A queue of config/queues.yaml.", "renewal"),
    "Task.priority": ("high, normal or low.", "high"),
    "Task.due_within": ("How soon the task is due.", "2d"),
    "Task.script": ("The call script template.", "renewal_callback"),
    "Task.assign": ("queue, or advisor: the customer's dedicated advisor (diamond only).", "queue"),
    "Update.field": ("customer.attributes.<name>.", "customer.attributes.care_pack_sent"),
    "Update.value": ("The value set.", True),
    "Exit.reason": ("Why the customer left: the code reports count by.", "renewed"),
    "Exit.label": ("The reason in words for the console, 中文 / English like the name; one line, at most 60 "
                   "characters.", "已续保 / Renewed"),
}

DURATION_FIELDS = {"DateEntry.offset", "AnchoredMoment.offset"}
POSITIVE_DURATION_FIELDS = {"Reentry.after", "WaitFor.timeout", "Task.due_within", "Cap.window", "Step.wait"}
TIME_FIELDS = {"DateEntry.at", "AnchoredMoment.at", "WaitUntil.at", "WaitUntil.until"}


def _queues() -> list[str]:
    from engine.language.problems import load_config
    from engine.language.settings_model import QueuesConfig

    path = config_dir() / "queues.yaml"
    config, _ = load_config(QueuesConfig, path) if path.is_file() else (None, [])
    return sorted(config.queues) if config is not None else []


def _strings(schema: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The plain string schemas inside a property (through anyOf and array items)."""
    if schema.get("type") == "string" and "enum" not in schema and "const" not in schema:
        yield schema
    for option in schema.get("anyOf", []) + schema.get("oneOf", []):
        yield from _strings(option)
    if isinstance(schema.get("items"), dict):
        yield from _strings(schema["items"])


def journey_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a journey file, from the files in force."""
    schema = Journey.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Service Journeys journey file"
    schema["description"] = "A journey: who enters, when, and the steps they go through (journeys/README.md)."
    enums: dict[str, list[Any]] = {
        "Audience.tiers": list(TIERS), "Send.channels": list(CHANNELS), "Condition.op": list(OPERATORS),
        "EventEntry.type": sorted(current_event_types()), "Goal.event": sorted(current_event_types()),
        "WaitFor.event": sorted(current_event_types()), "Task.queue": _queues(),
    }
    models = {name: model for name, model in vars(journey_model).items()
              if isinstance(model, type) and name in schema.get("$defs", {}) | {"Journey": schema}}
    for name in models:
        target = schema if name == "Journey" else schema["$defs"][name]
        for prop_name, prop in target.get("properties", {}).items():
            key = f"{name}.{prop_name}"
            description, example = FIELD_DOCS.get(key, ("", None))
            if description:
                prop["description"] = description
                prop["examples"] = [example]
            for leaf in _strings(prop):
                if enums.get(key):
                    leaf["enum"] = enums[key]
                elif key in DURATION_FIELDS:
                    leaf["pattern"] = DURATION_PATTERN
                elif key in POSITIVE_DURATION_FIELDS:
                    leaf["pattern"] = POSITIVE_DURATION_PATTERN
                elif key in TIME_FIELDS:
                    leaf["pattern"] = TIME_PATTERN
                elif key in ("DateEntry.anchor", "AnchoredMoment.anchor"):
                    leaf["anyOf"] = [{"enum": list(DATE_ANCHORS)}, {"pattern": ATTRIBUTE_ANCHOR}]
    return schema
