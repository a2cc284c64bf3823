"""A journey names customer attributes as the store holds them: in lower case. The import reads a column
``attr.VIP`` as the attribute ``vip`` and the API takes lower-case names only, so a condition, a date
anchor or an update on ``customer.attributes.VIP`` was accepted and never met a customer's attribute."""

from __future__ import annotations

from pathlib import Path

from engine.language.validation import validate_journey_file

ROOT = Path(__file__).resolve().parents[2]

INSPECTION = """\
id: inspection
name: 年检 / Inspection
category: service
audience:
  when: {field: customer.attributes.vip, op: eq, value: true}
entry:
  date: {anchor: customer.attributes.inspection_due, offset: -15d, at: "10:00"}
steps:
  - id: remind
    send: {channels: [sms], template: silver_weekly_push}
  - id: note
    update: {field: customer.attributes.last_reminded, value: "inspection"}
"""


def _problems(tmp_path: Path, text: str) -> list[tuple[int, str]]:
    path = tmp_path / "inspection.yaml"
    path.write_text(text, encoding="utf-8")
    loaded, problems = validate_journey_file(path, ROOT / "templates")
    assert (loaded is None) == bool(problems)
    return [(p.line, p.message) for p in problems]


def test_lower_case_attribute_names_are_valid(tmp_path: Path) -> None:
    assert _problems(tmp_path, INSPECTION) == []


def test_an_upper_case_attribute_name_is_refused_where_it_stands(tmp_path: Path) -> None:
    text = (INSPECTION.replace("attributes.vip", "attributes.VIP")
            .replace("attributes.inspection_due", "attributes.InspectionDue")
            .replace("attributes.last_reminded", "attributes.LastReminded"))
    assert _problems(tmp_path, text) == [
        (5, "attribute names are lower case (the import reads a column attr.VIP as 'vip'): "
            "write customer.attributes.vip"),
        (7, "attribute names are lower case (the import reads a column attr.InspectionDue as 'inspectiondue'): "
            "write customer.attributes.inspectiondue"),
        (12, "attribute names are lower case (the import reads a column attr.LastReminded as 'lastreminded'): "
             "write customer.attributes.lastreminded"),
    ]
