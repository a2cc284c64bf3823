"""The grammar of ``Touch.error_reason``: the stored English read back as a code and parameters.

The store keeps a touch's reason as the text its writer gave (an audit record people read
with SQL), but a page shows it in the reader's language, so every shape a writer uses is
listed here once and a page words it from ``(code, params)``. Writers: the delivery rules
(``<rule>: <why>``, engine.planning.delivery_rules and engine.sending.cap_check), dispatch's
checks before a send (engine.sending.sendable), the consent reroute (channels.routing, from
dispatch and from an opt-out), retention's anonymisation (store.retention), a webhook step's call
(channels.webhook), a channel stopped by the account's refusal (engine.sending.channel_stop). Anything else is a
provider's own message (already masked when it was stored) and parses as ``provider``.
tests/store/test_touch_reasons.py holds every shape to the text its writer produces.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

ANONYMISED = "customer anonymised (retention)"  # store.retention cancels a planned touch with it
# A delivery rule's reason after its ``<rule>: `` prefix, keyed by the rule's code.
RULE_SHAPES: dict[str, re.Pattern[str]] = {
    "no_channel": re.compile(r"no consented, reachable channel among (?P<channels>.+)"),
    "quiet_hours": re.compile(r"quiet hours (?P<start>\d{1,2}:\d{2})-(?P<end>\d{1,2}:\d{2}) \((?P<zone>[^)]*)\): "
                              r"moved from (?P<moved_from>\d{4}-\d{2}-\d{2} \d{2}:\d{2})"),
    "marketing_cap": re.compile(r"marketing cap (?P<count>\d+) per (?P<window>\S+) reached(?P<sending> when sending)?"),
    "channel_cap": re.compile(r"(?P<channel>\S+) cap (?P<count>\d+) per (?P<window>\S+) reached"
                              r"(?P<sending> when sending)?"),
    "journey_cap": re.compile(r"journey (?P<journey>\S+) cap (?P<count>\d+) per (?P<window>\S+) reached"
                              r"(?P<sending> when sending)?"),
    "pre_empted": re.compile(r"pre-empted by (?P<journey>\S+)"),
    # engine.sending.expiry: claimed later after its due time than its journey's or category's limit.
    "expired": re.compile(r"due (?P<due>\d{4}-\d{2}-\d{2} \d{2}:\d{2}) UTC, (?P<late>\S+) late; "
                          r"(?:journey (?P<journey>\S+)|(?P<category>[a-z_]+)) touches expire after (?P<limit>\S+)"),
}
# Why a channel cannot be used (dispatch's consent check, an opt-out): the start of a reroute.
_LOST = re.compile(r"(?:(?P<opted_out>opted out of)|no (?P<marketing_consent>marketing )?consent for) "
                   r"(?P<marketing>marketing on )?(?P<lost_channel>[a-z_]+)")
# Whole reasons of one shape each, tried in order; the first that matches names the reason.
SHAPES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("no_customer", re.compile(r"customer removed")),
    ("anonymised", re.compile(re.escape(ANONYMISED))),
    ("journey_off", re.compile(r"journey (?P<journey>\S+) switched off")),
    ("journey_gone", re.compile(r"journey (?P<journey>\S+) no longer in force")),
    # engine.language.journey_edits.edited_reason: a touch taken back after an edit of its journey.
    ("journey_edited", re.compile(r"journey (?P<journey>\S+) edited: planned again under the version in force")),
    ("no_target", re.compile(r"no webhook step (?P<step>\S+) in journey (?P<journey>\S+) in force")),
    ("unknown_channel", re.compile(r"unknown channel (?P<channel>\S+)")),
    ("no_address", re.compile(r"no (?P<channel>[a-z_]+) address")),
    ("not_moved", re.compile(_LOST.pattern + r": a (?P<category>[a-z_]+) touch is not moved to another channel")),
    ("no_other_channel",
     re.compile(_LOST.pattern + r": no other consented, reachable channel \((?P<channels>[^)]*)\)")),
    ("moved", re.compile(_LOST.pattern + r": moved to (?P<channel>[a-z_]+)")),
    ("lost_channel", _LOST),
    ("render", re.compile(r"render: (?P<detail>.*)", re.DOTALL)),
    ("delivery_unknown", re.compile(r"delivery unknown: (?P<detail>.*)", re.DOTALL)),
    # Dispatch, a send the provider did not confirm, while reconciling asks it (engine.sending.dispatch).
    ("unconfirmed", re.compile(r"unconfirmed, to be looked up: (?P<detail>.*)", re.DOTALL)),
    # A webhook step's call to another system (channels.webhook), named by its target in config/webhooks.yaml.
    ("system_unconfigured", re.compile(r"webhook target '(?P<target>[^']*)' has no URL and secret here")),
    ("system_status", re.compile(r"(?P<target>[a-z0-9_]+) answered HTTP (?P<status>\d{3})")),
    ("system_unreachable", re.compile(r"(?P<target>[a-z0-9_]+): (?P<error>[A-Z][A-Za-z]*)")),
    # A channel stopped for every touch by a refusal about the account (engine.sending.channel_stop), and a
    # touch that went on the next channel of its list instead of waiting.
    ("stopped_moved", re.compile(r"(?P<channel>[a-z_]+) stopped until \d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC: "
                                 r"[A-Za-z ]+ \(errcode (?P<errcode>\d+)\); sent on (?P<to>[a-z_]+) instead")),
    *((code, re.compile(r"(?P<channel>[a-z_]+) stopped until (?P<until>\d{4}-\d{2}-\d{2} \d{2}:\d{2}) UTC: "
                        + re.escape(cause) + r" \(errcode (?P<errcode>\d+)\)"))
      for code, cause in (("stopped_quota", "daily quota reached"), ("stopped_ip", "IP not whitelisted"),
                          ("stopped_unauthorized", "API unauthorized"))),
)


@dataclass(frozen=True)
class Reason:
    """A stored reason as a code and the parameters a page words it with; ``code`` is ``provider``
    (``params["text"]`` the stored text) when no writer of this product made it."""

    code: str
    params: dict[str, Any] = field(default_factory=dict)


def _params(match: re.Match[str]) -> dict[str, Any]:
    params: dict[str, Any] = {k: v for k, v in match.groupdict().items() if v is not None}
    if "channels" in params:
        listed = params["channels"]
        params["channels"] = [] if listed == "none listed" else [c.strip() for c in listed.split(",") if c.strip()]
    if "count" in params:
        params["count"] = int(params["count"])
    for switch in ("sending", "opted_out", "marketing", "marketing_consent"):
        if switch in params:
            params[switch] = True
    return params


def rule_reason(rule: str | None, why: str) -> tuple[str | None, dict[str, Any]]:
    """A delivery rule's reason as (code, params), or (None, {}) when ``why`` is not that rule's
    shape; ``why`` may carry its ``<rule>: `` prefix, as the store keeps it, or not, as a dry run gives it."""
    if rule is None or rule not in RULE_SHAPES:
        return None, {}
    text = why[len(rule) + 2:] if why.startswith(f"{rule}: ") else why
    match = RULE_SHAPES[rule].fullmatch(text)
    return (rule, _params(match)) if match is not None else (None, {})


def parse(text: str | None) -> Reason | None:
    """The code and parameters of a stored ``error_reason``; None for no reason."""
    if not text:
        return None
    rule = text.split(": ", 1)[0]
    code, params = rule_reason(rule, text)
    if code is not None:
        return Reason(code, params)
    for code, shape in SHAPES:
        match = shape.fullmatch(text)
        if match is not None:
            return Reason(code, _params(match))
    return Reason("provider", {"text": text})
