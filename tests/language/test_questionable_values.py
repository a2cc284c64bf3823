"""Values a journey file may not hold though they parse: a switch or number of another type, a
split whose variants share a name or take fractional shares, a cron that never fires or fires more
than once a day. Each is
refused at its own line with a message naming the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.language.validation import validate_journey_file

ROOT = Path(__file__).resolve().parents[2]
SILVER = (ROOT / "journeys" / "silver-weekly-push.yaml").read_text(encoding="utf-8")
GOLD = (ROOT / "journeys" / "gold-value-added-services.yaml").read_text(encoding="utf-8")

# (file, old text, new text, the text on the offending line, words the message must hold)
CASES: dict[str, tuple[str, str, str, str, str]] = {
    "priority true": (SILVER, "priority: 40", "priority: true", "priority: true", "wrong type for 'priority'"),
    "priority as text": (SILVER, "priority: 40", 'priority: "40"', 'priority: "40"', "wrong type for 'priority'"),
    "priority 40.0": (SILVER, "priority: 40", "priority: 40.0", "priority: 40.0", "wrong type for 'priority'"),
    "urgent 1": (SILVER, "category: marketing", "category: service\nurgent: 1", "urgent: 1",
                 "wrong type for 'urgent'"),
    "reentry allowed as text": (SILVER, "allowed: true", 'allowed: "yes"', "allowed:",
                                "wrong type for 'allowed'"),
    "two variants named a": (GOLD, "name: email_first", "name: wechat_first", "goto: send_email_first",
                             "variant name 'wechat_first' is given twice"),
    "a variant named holdout": (GOLD, "name: email_first", "name: holdout", "name: holdout", "control group"),
    "fractional percents": (GOLD, "percent: 45, goto: send_wechat_first", "percent: 45.5, goto: send_wechat_first",
                            "percent: 45.5", "wrong type for 'percent'"),
    "fractional holdout": (GOLD, "holdout: 10", "holdout: 9.5", "holdout: 9.5", "wrong type for 'holdout'"),
    "shares off 100": (GOLD, "holdout: 10", "holdout: 11", "variants:", "add up to 100, not 101"),
    "31 February": (SILVER, '"0 10 * * MON"', '"0 10 31 2 *"', "cron:", "never fires"),
    "31 April and June": (SILVER, '"0 10 * * MON"', '"0 10 31 4,6 *"', "cron:", "never fires"),
}
CAPPED = (ROOT / "journeys" / "claim-crm-case.yaml").read_text(encoding="utf-8")
COMPLAINT = (ROOT / "journeys" / "complaint-response.yaml").read_text(encoding="utf-8")
_CAP = "cap: {count: 1, window: 30d}"
# Numbers and durations outside their bounds (engine.language.journey_bounds): each could only be a mistake.
CASES.update({
    "cap count 0": (CAPPED, _CAP, "cap: {count: 0, window: 30d}", "cap:", "'count'"),
    "cap count negative": (CAPPED, _CAP, "cap: {count: -2, window: 30d}", "cap:", "'count'"),
    "cap count fractional": (CAPPED, _CAP, "cap: {count: 1.5, window: 30d}", "cap:", "wrong type for 'count'"),
    "cap count as text": (CAPPED, _CAP, 'cap: {count: "1", window: 30d}', "cap:", "wrong type for 'count'"),
    "cap count huge": (CAPPED, _CAP, "cap: {count: 100000000000000000000, window: 30d}", "cap:", "'count'"),
    "cap window 0": (CAPPED, _CAP, "cap: {count: 1, window: 0m}", "cap:", "must be positive"),
    "cap window a century": (CAPPED, _CAP, "cap: {count: 1, window: 36500d}", "cap:", "longer than 366d"),
    "task due at once": (COMPLAINT, "due_within: 24h", "due_within: 0h", "due_within: 0h", "must be positive"),
    "task due in years": (COMPLAINT, "due_within: 24h", "due_within: 1000d", "due_within: 1000d",
                          "longer than 90d"),
    "priority over 100": (SILVER, "priority: 40", "priority: 101", "priority: 101", "'priority'"),
    "priority negative": (SILVER, "priority: 40", "priority: -1", "priority: -1", "'priority'"),
    "percent 0": (GOLD, "percent: 45, goto: send_email_first", "percent: 0, goto: send_email_first",
                  "percent: 0", "'percent'"),
    "holdout 100": (GOLD, "holdout: 10", "holdout: 100", "holdout: 100", "'holdout'"),
    "holdout negative": (GOLD, "holdout: 10", "holdout: -10", "holdout: -10", "'holdout'"),
    "wait_for timeout 0": (COMPLAINT, "timeout: 24h", "timeout: 0m", "timeout: 0m", "must be positive"),
})
# Numbers a condition compares with, within what the rules engine reads exactly (10**26 was judged smaller than
# 10**30; inf, 1e16 and 1e-05 stopped the ruleset from being made, failing the whole plan). Any field: an
# attribute's values have no declared type.
for _field, _value, _words in [("customer.age", ".inf", "not a number a field can hold"),
                               ("customer.age", ".nan", "not a number a field can hold"),
                               ("customer.age", "10000000000000000", "larger than a condition compares with"),
                               ("customer.age", "-1.0e+308", "larger than a condition compares with"),
                               ("customer.attributes.score", "0.00001", "closer to 0"),
                               ("customer.attributes.score", "1e400", "not a number a field can hold")]:
    CASES[f"condition on {_field} {_value}"] = (
        SILVER, "  tiers: [silver]", f"  tiers: [silver]\n  when: {{field: {_field}, op: gt, value: {_value}}}",
        "when:", _words)
CASES["condition listing inf"] = (SILVER, "  tiers: [silver]",
                                  "  tiers: [silver]\n  when: {field: customer.age, op: in, value: [30, .inf]}",
                                  "when:", "not a number a field can hold")
# A cadence fires once a day at most, whichever field would make it fire more often.
for _cron in ("* * * * *", "*/5 10 * * MON", "0 * * * *", "0 9,18 * * *", "0 9-10 * * MON", "0,30 10 1 * *"):
    CASES[f"cron {_cron}"] = (SILVER, '"0 10 * * MON"', f'"{_cron}"', "cron:", "more than once a day")


@pytest.mark.parametrize("case", sorted(CASES))
def test_questionable_value_is_refused_at_its_line(case: str, tmp_path: Path) -> None:
    base, old, new, marker, words = CASES[case]
    assert old in base, case
    text = base.replace(old, new, 1)
    path = tmp_path / "journey.yaml"
    path.write_text(text, encoding="utf-8")
    loaded, problems = validate_journey_file(path, ROOT / "templates")
    assert loaded is None, case
    line = next(n for n, row in enumerate(text.splitlines(), start=1) if marker in row)
    assert any(p.line == line and words in p.message for p in problems), (line, problems)


@pytest.mark.parametrize(("cron", "fires"), [("0 10 29 2 *", True), ("0 10 31 */2 *", True),
                                             ("0 10 31 2 MON", True), ("0 10 30 2 *", False),
                                             ("59 23 * * *", True), ("0 10 * * MON-FRI", True)])
def test_a_cron_is_refused_only_when_it_never_fires(cron: str, fires: bool, tmp_path: Path) -> None:
    """29 February fires in leap years; a weekday with a day fires on either (cron's OR)."""
    path = tmp_path / "journey.yaml"
    path.write_text(SILVER.replace('"0 10 * * MON"', f'"{cron}"'), encoding="utf-8")
    loaded, problems = validate_journey_file(path, ROOT / "templates")
    assert (loaded is not None) is fires, problems
