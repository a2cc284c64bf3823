"""What a console user name may be: short, plain and unique whatever its case.

A name is shown in the audit log, on task pages and in ``X-Acting-User`` headers, and typed at the
login form. Lower-case letters, digits and ``. _ -`` (starting with a letter or digit) keep it
free of markup and spaces; uniqueness is checked ignoring case, so ``ADMIN1`` is refused while
``admin1`` exists, including names created before this rule (which may have capitals). The console
form, ``journeys users add`` and the demo all create users through ``console.auth.create_user``,
which applies this rule. The login
looks names up exactly as stored, which stays unambiguous because no two differ only in case.
"""

from __future__ import annotations

import re

from sqlalchemy import func
from sqlmodel import Session, select

from store.models import AppUser

MAX_LENGTH = 32
PATTERN = re.compile(rf"[a-z0-9][a-z0-9._-]{{1,{MAX_LENGTH - 1}}}")
# For the form's input element (HTML ``pattern`` takes the same expression, anchored).
HTML_PATTERN = PATTERN.pattern


def problem(session: Session, name: str) -> str | None:
    """The msgid saying why ``name`` cannot be a new user's name, or None when it can."""
    if not PATTERN.fullmatch(name):
        return ("A username has 2 to %(max)s characters: lower-case letters, digits, dots, hyphens and "
                "underscores, starting with a letter or digit.")
    taken = session.exec(select(AppUser.id).where(func.lower(AppUser.username) == name.lower())).first()
    if taken is not None:
        return "The username %(name)s is taken (names are compared ignoring case)."
    return None
