"""A call script tells the agent to record only outcomes the task's queue lets them record.

The shipped scripts told agents on eight queues to record an outcome with no button there: 「已解决」 on
the gold and platinum callbacks and the overdue-premium call, 「续保」 on every retention call, 「客户投诉」
on the health bookings and the lecture seats, 「号码错误」 on the complaint escalations. ``journeys
validate`` renders each task step's script with the outcomes of its queue (config/queues.yaml) only, so
such a script is a problem at its file and line, naming the outcome and the queue.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from engine.language.validation import validate
from tests.journey_support import journeys_folder

ROOT = Path(__file__).resolve().parents[2]
# As platinum-health-lecture calls: on a schedule, the seat confirmed by a call of the probe queue.
PROBE = ('id: probe\nname: Probe\ncategory: service\nentry: {schedule: {cron: "0 10 1 * *"}}\nsteps:\n'
         "  - {id: call, task: {queue: probe_queue, priority: normal, due_within: 2d,\n"
         "                      script: platinum_health_lecture}}\n")
# The script's lines that offer an outcome, zh-CN and en alike: complaint_raised at line 21.
COMPLAINT_LINE = 21


def _problems(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, outcomes: list[str] | None) -> list[str]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    journeys = journeys_folder(tmp_path, monkeypatch)
    (journeys / "probe.yaml").write_text(PROBE, encoding="utf-8")
    queues_file = tmp_path / "config" / "queues.yaml"
    queues = yaml.safe_load(queues_file.read_text(encoding="utf-8"))
    queues["queues"]["probe_queue"] = {"teams": ["events"], **({"outcomes": outcomes} if outcomes else {})}
    queues_file.write_text(yaml.safe_dump(queues, allow_unicode=True), encoding="utf-8")
    report = validate([journeys])
    return sorted(str(p) for p in report.problems if "call script" in p.message)


def test_a_script_naming_an_outcome_its_queue_does_not_offer_is_a_problem_at_its_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    problems = _problems(tmp_path, monkeypatch, ["reached", "no_answer", "wrong_number", "call_back"])
    assert len(problems) == 2, problems
    for problem, locale in zip(problems, ("en", "zh-CN"), strict=True):
        assert problem.startswith(f"templates/platinum_health_lecture/task.{locale}.j2:{COMPLAINT_LINE}:"), problem
        assert ("call script of journey 'probe' step 'call' names outcome 'complaint_raised', which queue "
                "'probe_queue' does not offer; its agents may record reached, no_answer, wrong_number, call_back"
                in problem), problem
    script = (ROOT / "templates/platinum_health_lecture/task.zh-CN.j2").read_text(encoding="utf-8").splitlines()
    assert "outcome.complaint_raised" in script[COMPLAINT_LINE - 1]


def test_the_same_script_on_a_queue_offering_its_outcomes_passes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Differential: the same journey and script, the queue declared with every outcome it names (or
    with the defaults', which the queue takes when it lists none)."""
    assert _problems(tmp_path / "listed", monkeypatch,
                     ["reached", "no_answer", "wrong_number", "call_back", "complaint_raised"]) == []
    assert _problems(tmp_path / "defaults", monkeypatch, None) == []


def test_every_shipped_script_names_only_outcomes_its_queue_offers() -> None:
    report = validate()
    assert [str(p) for p in report.problems if "call script" in p.message] == []
