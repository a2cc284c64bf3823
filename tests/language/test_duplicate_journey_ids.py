"""Two files that claim one journey id: the one whose journey is in force keeps it and the other
is rejected at its id line, whatever the files are called; with neither in force, both are rejected.
Before, the file that sorted first won: ``aa-copy.yaml`` took the id from the established file."""

from __future__ import annotations

from pathlib import Path

from sqlmodel import Session

from engine.language.journey_registry import load_in_force
from engine.language.validation import validate
from store.db import get_engine
from tests.language.test_journey_registry import SHIPPED

ROOT = Path(__file__).resolve().parents[2]
# A service journey: a new version goes in force at once, so a newcomer that won would show.
ESTABLISHED = SHIPPED.replace("category: marketing", "category: service").replace("silver-weekly-push", "weekly-push")
COPY = ESTABLISHED.replace("0 10 * * MON", "0 10 * * TUE")


def _folder(tmp_path: Path, files: dict[str, str]) -> Path:
    folder = tmp_path / "journeys"
    folder.mkdir(exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


def test_the_file_in_force_keeps_its_id_and_the_newcomer_is_rejected(db_url: str, tmp_path: Path) -> None:
    folder = _folder(tmp_path, {"weekly-push.yaml": ESTABLISHED})
    with Session(get_engine(db_url)) as session:
        first = load_in_force(session, folder)
        session.commit()
        assert first.journeys["weekly-push"].journey.entry.schedule is not None

        # The copy sorts first; it must not take the id over, and the established file's own edits still land.
        _folder(tmp_path, {"aa-copy.yaml": COPY})
        for name in ("Silver weekly push", "Silver push"):
            (folder / "weekly-push.yaml").write_text(ESTABLISHED.replace("Silver weekly push", name),
                                                     encoding="utf-8")
            second = load_in_force(session, folder)
            session.commit()
            kept = second.journeys["weekly-push"]
            assert Path(kept.path).name == "weekly-push.yaml" and kept.journey.name == name
            assert kept.journey.entry.schedule is not None and kept.journey.entry.schedule.cron == "0 10 * * MON"
            assert [(Path(p.path).name, p.line) for p in second.problems] == [("aa-copy.yaml", 1)], second.problems
            assert "duplicate journey id 'weekly-push', also in" in second.problems[0].message
            assert "weekly-push.yaml:1" in second.problems[0].message


def test_with_none_in_force_both_files_are_rejected_each_at_its_line(db_url: str, tmp_path: Path) -> None:
    folder = _folder(tmp_path, {"a.yaml": ESTABLISHED, "b.yaml": "# a copy\n" + COPY})
    report = validate([folder], templates_root=ROOT / "templates")
    assert report.journeys == []
    assert sorted((Path(p.path).name, p.line) for p in report.problems) == [("a.yaml", 1), ("b.yaml", 2)]
    assert sorted(Path(p).name for p in report.rejected_files) == ["a.yaml", "b.yaml"]
    messages = {Path(p.path).name: p.message for p in report.problems}
    assert "b.yaml:2" in messages["a.yaml"] and "a.yaml:1" in messages["b.yaml"]
    with Session(get_engine(db_url)) as session:
        result = load_in_force(session, folder)
    assert result.journeys == {} and len(result.problems) == 2
