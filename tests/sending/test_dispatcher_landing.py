"""Making a dispatcher (every dispatch flow run does) lands the templates in force: with nothing changed
it reads their versions in one query, not once more per template after the landing commits."""

from __future__ import annotations

from sqlalchemy import event

from engine.language.template_review import in_force_folder
from store.db import make_engine


def test_landing_unchanged_templates_reads_their_versions_once(db_url: str) -> None:
    engine = make_engine(db_url)
    first = in_force_folder(engine)  # lands the shipped templates
    reads: list[str] = []
    event.listen(engine, "before_cursor_execute",
                 lambda _c, _k, statement, *_: reads.append(statement) if "FROM journey_version" in statement else None)
    assert in_force_folder(engine) == first
    assert len(reads) == 1, reads
    engine.dispose()
