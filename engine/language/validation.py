"""Validation of journey files, the templates they use and the configuration files.

Every problem is reported as ``path:line:col: message`` pointing at the YAML node
at fault. A file with any problem is rejected whole; ``engine.language.journey_registry``
then keeps its last good version in force. A *warning* (``Report.warnings``, same form, the
message starting ``warning:``) rejects nothing: it points at an audience or entry condition
that tests a field the record may lack (``catalogue.OPTIONAL_FIELDS``) without saying, with
``exists`` or ``missing``, what should happen then. Reading a file into its model is
``engine.language.problems``; checking the templates is ``engine.language.template_check``.
"""

from __future__ import annotations

import difflib
import functools
import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from channels.template_files import available_templates, missing_files
from channels.webhook_targets import WebhookConfigError
from engine.language import catalogue
from engine.language.authoring_checks import (
    business_due_note,
    loop_problems,
    nearest,
    silent_timeout,
    unknown_queue,
    wait_anchor_problem,
)
from engine.language.condition_values import condition_problems, leaves, uncoded_values
from engine.language.event_types import load_event_types
from engine.language.journey_model import Condition, Journey
from engine.language.paths import (
    config_dir,
    delivery_config_path,
    journey_files,
    journeys_dir,
    templates_dir,
    tiers_config_path,
)
from engine.language.problems import Problem, display_path, load_config, load_document, parse_model
from engine.language.salvage import salvage
from engine.language.settings_checks import settings_file, unknown_task_types
from engine.language.settings_model import DeliveryConfig, QueuesConfig, ReviewConfig, TierConfig
from engine.language.task_script_check import check_task_scripts
from engine.language.template_check import check_templates, template_problems_by_name
from engine.language.template_scope import check_template_scopes, event_types_at
from engine.language.webhook_config import load_webhooks, webhook_problems
from engine.language.work_calendar import load_work_calendar
from engine.language.yaml_lines import LocatedDocument, Path_, Position, load_located
from store.models import TIERS


@dataclass
class LoadedJourney:
    journey: Journey
    path: str
    source: str
    version: str
    warnings: list[Problem] = field(default_factory=list)

    @functools.cached_property
    def id(self) -> str:  # asked for per entrant and decision: millions of times in a big plan
        return self.journey.id


@dataclass
class Report:
    journeys: list[LoadedJourney] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)  # reject nothing (see the module doc)
    tiers: TierConfig | None = None
    delivery: DeliveryConfig | None = None
    rejected_files: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def content_version(source: str) -> str:
    return hashlib.sha256(source.encode("utf-8")).hexdigest()[:16]


# --- checks of one journey against the rest of the project ---------------------------------------


@dataclass
class _Context:
    path: str
    doc: LocatedDocument
    templates_root: Path
    problems: list[Problem]
    known_tiers: tuple[str, ...] = TIERS
    warnings: list[Problem] = field(default_factory=list)
    known_queues: tuple[str, ...] | None = None  # config/queues.yaml's; None: not checked
    desk: QueuesConfig | None = None  # config/queues.yaml, for the queues' clocks; None: not checked

    def add(self, data_path: Path_, message: str, prefer_key: bool = False) -> None:
        pos: Position = self.doc.position(data_path, prefer_key=prefer_key)
        self.problems.append(Problem(self.path, pos.line, pos.column, message))

    def warn(self, data_path: Path_, message: str) -> None:
        pos: Position = self.doc.position(data_path)
        self.warnings.append(Problem(self.path, pos.line, pos.column, f"warning: {message}"))


def _check_condition(ctx: _Context, cond: Condition | None, path: Path_, scopes: set[str], events: set[str]) -> None:
    for where, message in condition_problems(cond, path, scopes, events, ctx.known_tiers):
        ctx.add(where, message)
    for where, message in uncoded_values(cond, path, events):
        ctx.warn(where, message)


def _warn_optional_fields(ctx: _Context, cond: Condition | None, path: Path_) -> None:
    """Warn where a gate (audience or entry condition) tests a field its record may lack and does
    not say with ``exists``/``missing`` what should happen then."""
    if cond is None:
        return
    tests = list(leaves(cond, path))
    decided = {leaf.field for leaf, _ in tests if leaf.op in ("exists", "missing")}
    for leaf, leaf_path in tests:
        assert leaf.field is not None
        why = catalogue.optional_field(leaf.field)
        if why is None or leaf.field in decided:
            continue
        outcome = "passes" if leaf.op in ("ne", "not_in") else "fails"
        value = leaf.value
        shown = f"[{', '.join(map(str, value))}]" if isinstance(value, list) else str(value)
        ctx.warn((*leaf_path, "field"),
                 f"{leaf.field} may be missing ({why}): a missing field has no value, so "
                 f"'{leaf.op} {shown}' {outcome} then; to choose otherwise, test it with op: exists or op: missing "
                 "in this condition")


def _raw_keys(doc: LocatedDocument, path: Path_) -> set[str]:
    """The keys written at ``path`` of the file (a default the model filled in is not among them)."""
    node: object = doc.data
    for part in path:
        if isinstance(node, dict):
            node = node.get(part)
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        else:
            return set()
    return {str(k) for k in node} if isinstance(node, dict) else set()


def _webhook_targets() -> tuple[str, ...]:
    """The targets config/webhooks.yaml declares (none when it is unreadable: validate reports that)."""
    try:
        return tuple(load_webhooks().targets)
    except WebhookConfigError:
        return ()


def _webhook_event(event_type: str) -> bool:
    """``webhook.<target>.succeeded|failed``: what a webhook step records for the steps after it."""
    parts = event_type.split(".")
    return len(parts) == 3 and parts[0] == "webhook" and parts[2] in ("succeeded", "failed") \
        and parts[1] in _webhook_targets()


def _check_event_type(ctx: _Context, event_type: str, path: Path_) -> None:
    if _webhook_event(event_type):
        return
    if event_type not in catalogue.EVENT_TYPES:
        hint = difflib.get_close_matches(event_type, list(catalogue.EVENT_TYPES), n=1)
        ctx.add(path, f"unknown event type {event_type!r}" + (f" (did you mean {hint[0]!r}?)" if hint else ""))


def _check_journey(ctx: _Context, journey: Journey) -> None:
    entry_scopes = {"customer"}
    entry_events: set[str] = set()
    entry = journey.entry
    if entry.date is not None:
        if entry.date.anchor.startswith("policy."):
            entry_scopes.add("policy")
        if entry.date.anchor.startswith("claim."):
            entry_scopes.add("claim")
        if entry.date.anchor == "holiday" and journey.reentry.after is not None:
            # Holidays fall days apart (National Day and Mid-Autumn) or on one day: a gap drops the later one.
            ctx.warn(("reentry", "after"), f"a holiday entry with 'after: {journey.reentry.after}' skips a holiday "
                     "that falls within that time of the last one entered (Mid-Autumn and National Day can be "
                     "days apart or on one day); write 'per: occurrence' to enter on each")
        for i, name in enumerate(entry.date.holidays or []):
            if name not in catalogue.HOLIDAYS:
                ctx.add(
                    ("entry", "date", "holidays", i),
                    f"unknown holiday {name!r}: holidays are {', '.join(catalogue.HOLIDAYS)}",
                )
    if entry.schedule is not None:
        _, _, day, _, weekday = entry.schedule.cron.split()
        if day != "*" and weekday != "*":
            # Cron's rule, which croniter and so the planner follow: either field's days fire.
            ctx.warn(("entry", "schedule", "cron"), f"cron {entry.schedule.cron!r} fires on the days of the month "
                     f"{day} and, besides, on every weekday {weekday} (when both are given, cron fires on "
                     "either); for the first Monday of a month write '0 10 * * MON#1'")
    if entry.event is not None:
        _check_event_type(ctx, entry.event.type, ("entry", "event", "type"))
        entry_scopes.add("event")
        entry_events.add(entry.event.type)
        if entry.event.type.startswith("claim."):
            entry_scopes.add("claim")
        _check_condition(ctx, entry.event.when, ("entry", "event", "when"), entry_scopes, entry_events)
        _warn_optional_fields(ctx, entry.event.when, ("entry", "event", "when"))

    for i, tier in enumerate(journey.audience.tiers or []):
        if tier not in ctx.known_tiers:
            hint = difflib.get_close_matches(tier, ctx.known_tiers, n=1)
            ctx.add(
                ("audience", "tiers", i),
                f"unknown tier {tier!r}" + (f" (did you mean {hint[0]!r}?)" if hint else "")
                + f": tiers are {', '.join(ctx.known_tiers)}",
            )
    _check_condition(ctx, journey.audience.when, ("audience", "when"), entry_scopes, entry_events)
    _warn_optional_fields(ctx, journey.audience.when, ("audience", "when"))

    if journey.goal is not None:
        _check_event_type(ctx, journey.goal.event, ("goal", "event"))
        _check_condition(ctx, journey.goal.when, ("goal", "when"), {*entry_scopes, "event"}, {journey.goal.event})

    if journey.category == "marketing" and journey.urgent:
        ctx.add(("urgent",), "a marketing journey cannot be urgent: only service touches may bypass quiet hours")

    _check_steps(ctx, journey, entry_scopes, entry_events)


def _check_steps(ctx: _Context, journey: Journey, scopes: set[str], events: set[str]) -> None:
    ids: dict[str, int] = {}
    for i, step in enumerate(journey.steps):
        if step.id in ids:
            ctx.add(("steps", i, "id"), f"duplicate step id {step.id!r} (first at step {ids[step.id] + 1})")
        else:
            ids[step.id] = i

    # A branch sees the event its step is reached with: the entry's, and after a wait_for's on_event
    # also the one that wait ended on (the planner lays its fields over the entry's), as templates do.
    reached_with = event_types_at(journey)

    def check_target(target: str, path: Path_) -> None:
        if target not in ("next", "exit") and target not in ids:
            ctx.add(path, f"unknown step {target!r}{nearest(target, ids)}: go to a step id, 'next' or 'exit'")

    for i, step in enumerate(journey.steps):
        base: Path_ = ("steps", i)
        if step.next is not None:
            check_target(step.next, (*base, "next"))
        if step.send is not None:
            if step.send.urgent and journey.category == "marketing":
                ctx.add((*base, "send", "urgent"), "a marketing touch cannot be urgent")
            channels = step.send.listed or _engagement_channels()
            for message in missing_files(ctx.templates_root, step.send.template, channels):
                if message.startswith("unknown template"):
                    message += nearest(step.send.template, available_templates(ctx.templates_root))
                ctx.add((*base, "send", "template"), message)
            for j, channel in enumerate(step.send.listed):
                if step.send.listed.index(channel) != j:
                    ctx.add((*base, "send", "channels", j), f"channel {channel!r} listed twice")
        if step.webhook is not None:
            targets = _webhook_targets()
            if step.webhook.target not in targets:
                hint = difflib.get_close_matches(step.webhook.target, targets, n=1)
                ctx.add((*base, "webhook", "target"), f"unknown webhook target {step.webhook.target!r}"
                        + (f" (did you mean {hint[0]!r}?)" if hint else "")
                        + f": targets are declared in config/webhooks.yaml ({', '.join(targets) or 'none'})")
            for message in missing_files(ctx.templates_root, step.webhook.template, ["webhook"]):
                ctx.add((*base, "webhook", "template"), message)
        if step.task is not None and step.task.script is not None:
            for message in missing_files(ctx.templates_root, step.task.script, ["task"]):
                ctx.add((*base, "task", "script"), message)
        if step.task is not None and (wrong := unknown_queue(step.task.queue, ctx.known_queues)):
            ctx.add((*base, "task", "queue"), wrong)
        if step.task is not None and (note := business_due_note(step.task.queue, step.task.due_within, ctx.desk)):
            ctx.warn((*base, "task", "due_within"), note)
        if wrong := wait_anchor_problem(step, scopes):
            ctx.add((*base, "wait", "until", "anchor"), wrong)
        tiers = journey.audience.tiers
        if step.task is not None and step.task.assign == "advisor" and tiers is not None and "diamond" not in tiers:
            ctx.add((*base, "task", "assign"), "assign: advisor needs the diamond tier in the audience")
        if step.branch is not None:
            step_events = events | {t for t in reached_with[i] if t is not None}
            step_scopes = scopes | {"event"} if step_events else scopes
            for j, case in enumerate(step.branch.cases):
                check_target(case.goto, (*base, "branch", "cases", j, "goto"))
                _check_condition(ctx, case.when, (*base, "branch", "cases", j, "when"), step_scopes, step_events)
            check_target(step.branch.otherwise, (*base, "branch", "otherwise"))
        if step.split is not None:
            names: list[str] = []
            for j, variant in enumerate(step.split.variants):
                check_target(variant.goto, (*base, "split", "variants", j, "goto"))
                if variant.name in names:
                    ctx.add((*base, "split", "variants", j, "name"), f"variant name {variant.name!r} is given "
                            f"twice (first as variant {names.index(variant.name) + 1}): reports count entrants "
                            "by it, so each variant needs its own")
                names.append(variant.name)
        if step.wait_for is not None:
            _check_event_type(ctx, step.wait_for.event, (*base, "wait_for", "event"))
            check_target(step.wait_for.on_event, (*base, "wait_for", "on_event"))
            check_target(step.wait_for.on_timeout, (*base, "wait_for", "on_timeout"))
            if note := silent_timeout(journey, i, _raw_keys(ctx.doc, (*base, "wait_for"))):
                ctx.warn((*base, "wait_for"), note)
            _check_condition(
                ctx, step.wait_for.when, (*base, "wait_for", "when"), {*scopes, "event"}, {step.wait_for.event}
            )

    # Reachability from the first step, following every possible path.
    seen = {0}
    frontier = [0]
    while frontier:
        index = frontier.pop()
        for target in journey.successors(index):
            if target in ids and ids[target] not in seen:
                seen.add(ids[target])
                frontier.append(ids[target])
    for i, step in enumerate(journey.steps):
        if i not in seen and journey.steps.index(step) == i:
            ctx.add(("steps", i, "id"), f"step {step.id!r} is never reached: no path from the first step leads to it")
    for index, message in loop_problems(journey):
        ctx.add(("steps", index, "id"), message)


def _engagement_channels() -> list[str]:
    """Every channel ``channels: by_engagement`` may pick (config/delivery.yaml): its template needs them all."""
    config, _problems = load_config(DeliveryConfig, delivery_config_path())
    mapping = (config or DeliveryConfig()).engagement_channels
    return list(dict.fromkeys(c for level in ("basic", "active", "at_risk") for c in mapping.get(level, [])))


# --- whole-tree validation ----------------------------------------------------------------------


def validate_journey_file(path: Path, templates_root: Path, queues: tuple[str, ...] | None = None,
                          desk: QueuesConfig | None = None) -> tuple[LoadedJourney | None, list[Problem]]:
    shown = display_path(path)
    source, doc, problems = load_document(path)
    if doc is None:
        return None, problems
    journey, problems = parse_model(Journey, doc, shown)
    if journey is None:
        # Every problem in one pass: check what can be checked of the rest (engine.language.salvage).
        salvaged = salvage(doc.data)
        if salvaged is not None:
            ctx = _Context(shown, doc, templates_root, [], known_queues=queues)
            _check_journey(ctx, salvaged.journey)
            # What is found at a value stood in for is the stand-in's doing; the value's own error is reported.
            stood_in = {doc.position(path).line for path in salvaged.stood_in}
            problems = [*problems, *(p for p in ctx.problems
                                     if salvaged.trusts(p.message) and p.line not in stood_in)]
        return None, sorted(set(problems))
    ctx = _Context(shown, doc, templates_root, [], known_queues=queues, desk=desk)
    _check_journey(ctx, journey)
    if ctx.problems:
        return None, sorted(set(ctx.problems))
    return LoadedJourney(journey, shown, source, content_version(source), sorted(set(ctx.warnings))), []


def _unscoped_sends(loaded: LoadedJourney, problems: list[Problem]) -> list[Problem]:
    """Where the journey sends a template that reads what its touches lack: why it is rejected."""
    doc = load_located(loaded.source)
    out = []
    for i, step in enumerate(loaded.journey.steps):
        if step.send is not None and any(f"template {step.send.template!r}" in p.message for p in problems):
            pos = doc.position(("steps", i, "send", "template"))
            out.append(Problem(loaded.path, pos.line, pos.column, f"template {step.send.template!r} reads "
                               "variables this journey's touches do not have (see the template's problems)"))
    return out


DUPLICATE_ID = "duplicate journey id"


def is_clash(problem: Problem) -> bool:
    """Whether ``problem`` is only that another file claims the same journey id."""
    return problem.message.startswith(DUPLICATE_ID)


def _withhold_clashes(report: Report) -> list[list[LoadedJourney]]:
    """Take out of ``report.journeys`` every file whose journey id another file also claims, and say
    so at each one's id. Validation does not know which of them is in force (the store does), so
    none is accepted here; the registry keeps the one in force, if any, and rejects the others."""
    by_id: dict[str, list[LoadedJourney]] = {}
    for loaded in report.journeys:
        by_id.setdefault(loaded.id, []).append(loaded)
    clashes = [group for group in by_id.values() if len(group) > 1]
    for group in clashes:
        where = {j.path: load_located(j.source).position(("id",)) for j in group}
        for loaded in group:
            others = ", ".join(f"{o.path}:{where[o.path].line}" for o in group if o is not loaded)
            pos = where[loaded.path]
            report.problems.append(Problem(loaded.path, pos.line, pos.column, (
                f"{DUPLICATE_ID} {loaded.id!r}, also in {others}: the file already in force under this id "
                "stays in force and any other is rejected (none is in force: all are); rename or remove one")))
            report.rejected_files.append(loaded.path)
            report.journeys.remove(loaded)
    return clashes


def _check_against_templates(report: Report, journeys: list[LoadedJourney], templates_root: Path,
                             queues: QueuesConfig | None) -> None:
    """Each journey's call scripts with the parts its tasks will have (no event on a schedule) and the
    outcomes their queues offer, and every variable its messages read against what its touches have: a
    miss rejects the journey."""
    report.problems.extend(check_task_scripts(journeys, templates_root, queues))
    unscoped = check_template_scopes(journeys, templates_root)
    for loaded in [j for j in journeys if j.id in unscoped]:
        if loaded in report.journeys:
            report.journeys.remove(loaded)
            report.rejected_files.append(loaded.path)
        report.problems.extend(unscoped[loaded.id])
        report.problems.extend(_unscoped_sends(loaded, unscoped[loaded.id]))


def _sent_templates(loaded: LoadedJourney) -> Iterator[tuple[tuple[str | int, ...], str]]:
    """(Where in the file, template name) of each template the journey sends, calls from or posts."""
    for i, step in enumerate(loaded.journey.steps):
        if step.send is not None:
            yield ("steps", i, "send", "template"), step.send.template
        if step.task is not None and step.task.script:
            yield ("steps", i, "task", "script"), step.task.script
        if step.webhook is not None:
            yield ("steps", i, "webhook", "template"), step.webhook.template


def _reject_broken_sends(report: Report, loaded: LoadedJourney, broken: set[str]) -> bool:
    """Reject ``loaded`` when it uses a template that does not compile, saying so where it names it."""
    uses = [(where, name) for where, name in _sent_templates(loaded) if name in broken]
    if not uses:
        return False
    doc = load_located(loaded.source)
    for where, name in uses:
        pos = doc.position(where)
        report.problems.append(Problem(loaded.path, pos.line, pos.column, f"template {name!r} does not compile "
                                       "(see the template's problems): this journey is rejected"))
    if loaded in report.journeys:
        report.journeys.remove(loaded)
    if loaded.path not in report.rejected_files:
        report.rejected_files.append(loaded.path)
    return True


def journey_steps(journeys: Iterable[LoadedJourney]) -> dict[str, frozenset[str]]:
    """Journey id → its step ids: what a settings file may name of ``journeys``."""
    found: dict[str, set[str]] = {}
    for loaded in journeys:
        found.setdefault(loaded.id, set()).update(s.id for s in loaded.journey.steps)
    return {journey_id: frozenset(steps) for journey_id, steps in found.items()}


def validate(
    paths: Iterable[Path] | None = None,
    templates_root: Path | None = None,
    tiers_path: Path | None = None,
    delivery_path: Path | None = None,
    work_calendar_path: Path | None = None,
) -> Report:
    """Validate journey files (default: ``journeys/``), their templates and the configuration files."""
    templates_root = templates_root or templates_dir()
    report = Report()
    # The settings files' problems are their landing's (settings_file, below, once the journeys are known).
    report.tiers, _ = load_config(TierConfig, tiers_path or tiers_config_path())
    report.delivery, _ = load_config(DeliveryConfig, delivery_path or delivery_config_path())
    _, problems = load_work_calendar(work_calendar_path)
    report.problems.extend(problems)
    _, problems = load_event_types()
    report.problems.extend(problems)
    # Which categories need review (optional: without the file, marketing does).
    report.problems.extend(load_config(ReviewConfig, config_dir() / "review.yaml", optional=True)[1])
    report.problems.extend(webhook_problems())
    # The desk's queues (optional: without the file every queue has the defaults).
    queues_path = config_dir() / "queues.yaml"
    queues = None
    if queues_path.is_file():
        queues, problems = load_config(QueuesConfig, queues_path)
        report.problems.extend(problems)

    files = journey_files(list(paths) if paths else [journeys_dir()])
    if not files:
        report.problems.append(Problem("journeys", 1, 1, "no journey files found"))
    used_templates: set[str] = set()
    for path in files:
        loaded, problems = validate_journey_file(path, templates_root,
                                                 tuple(queues.queues) if queues is not None else None, queues)
        if loaded is None:
            report.rejected_files.append(display_path(path))
            report.problems.extend(problems)
            continue
        report.journeys.append(loaded)
        for step in loaded.journey.steps:
            if step.send is not None:
                used_templates.add(step.send.template)
            if step.task is not None and step.task.script:
                used_templates.add(step.task.script)
    # Every journey a valid file holds, even one rejected below: other files may name it.
    valid = list(report.journeys)
    clashes = _withhold_clashes(report)
    report.warnings.extend(w for j in report.journeys for w in j.warnings)
    # Every template folder is checked, used or not; one that does not compile rejects each journey
    # sending it (its last good version stays in force), and the other journeys are checked as usual.
    by_name = template_problems_by_name(templates_root, {*available_templates(templates_root), *used_templates})
    report.problems.extend(p for found in by_name.values() for p in found)
    broken = {name for name, found in by_name.items() if found}
    refused = [j for j in valid if _reject_broken_sends(report, j, broken)]
    # Rendering every template with a sample context catches undefined variables and over-long SMS
    # before a customer would see them.
    # With the footer of the delivery file as edited; when that file is invalid (reported above),
    # with the default one, so that its problems are reported rather than stopping the check.
    footer = (report.delivery or DeliveryConfig()).marketing_sms_footer
    report.problems.extend(check_templates(templates_root, set(by_name) - broken, configured_footer=footer))
    # Files that share an id are checked one by one (the checks below go by journey id), so that
    # a clash is their only problem when it is (engine.language.journey_registry keeps the one in force).
    for journeys in [report.journeys, *([j] for clash in clashes for j in clash if j not in refused)]:
        _check_against_templates(report, journeys, templates_root, queues)
    seen_ids = {j.id for j in valid}

    default_files = {p.resolve() for p in journey_files([journeys_dir()])}
    covers_all = bool(default_files) and default_files <= {p.resolve() for p in files}
    # Every check of the settings files that land for review, the very ones their landing makes
    # (engine.language.settings_checks.settings_file), so that the two cannot disagree about a file.
    # The queues as the desk declares them (queue_config.Desk.declared, sorted), as the landing has them.
    declared = tuple(sorted(queues.queues)) if queues is not None else None
    for model, path in ((TierConfig, tiers_path or tiers_config_path()),
                        (DeliveryConfig, delivery_path or delivery_config_path())):
        report.problems.extend(settings_file(model, path, declared, seen_ids if covers_all else None,
                                             templates_root).problems)
    if queues is not None and queues.task_types and covers_all:
        _, doc, _ = load_document(queues_path)
        report.problems.extend(unknown_task_types(queues, doc, display_path(queues_path), journey_steps(valid)))
    report.problems.sort()
    report.warnings.sort()
    return report
