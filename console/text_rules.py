"""What text the console takes from outside, by the kind of field: one rule per kind, for every API
body and every console form.

- **ids** (external ids, event ids, the advisor's and other user names a program sends): printable
  ASCII, no spaces: ``[!-~]{1,n}``. They are keys other systems match byte for byte, so ``１２``
  (full-width digits), ``12 `` or a NUL would be a second customer that nobody can find again.
- **names** (a customer's name, branch, team, display name, …): one line of text someone reads.
  Surrounding white space (the ideographic space too) is dropped; what is left must show at least
  one character (white space and invisible format characters such as U+200B do not count) and hold
  no control character and no line break.
- **free text** (task notes, review comments, the string values and keys of ``data`` and
  ``attributes``): may run over lines (tab, LF, CR) but holds no other control character: a NUL is
  refused by PostgreSQL outright (a 500) and the others are nothing a person types.

Every API body model derives from ``Body``, which holds each of its string values, nested ones
included, to the free-text rule, so a field nobody thought about is still covered; ``Id`` and
``Name`` fields add their own rule. Console forms get the free-text rule on every field through
``check_request``, a dependency of every page router, and each route applies ``blank`` to its name
fields. No query parameter of a page or of the API holds a control character (PostgreSQL refuses a
NUL in a query's parameters). Messages say which character and where, never the value.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated, Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, ValidationInfo, field_validator

ID = re.compile(r"[!-~]+")
# C0, DEL and C1 controls, and the Unicode line and paragraph separators.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_CONTROL_BUT_LINES = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
# Characters that show nothing: white space and format characters (zero-width space, joiners, BOM…).
_INVISIBLE_CATEGORIES = frozenset({"Zs", "Zl", "Zp", "Cf", "Cc"})

ID_MESSAGE = "must be printable ASCII (letters, digits, punctuation) without spaces"


def _control_at(pattern: re.Pattern[str], value: str) -> str | None:
    found = pattern.search(value)
    if found is None:
        return None
    return f"contains a control character (U+{ord(found.group()):04X} at position {found.start() + 1})"


def id_problem(value: str) -> str | None:
    """Why ``value`` cannot be an id, or None."""
    if ID.fullmatch(value):
        return None
    return ID_MESSAGE


def blank(value: str) -> bool:
    """Whether ``value`` shows nothing at all (empty, white space, invisible format characters)."""
    return all(unicodedata.category(c) in _INVISIBLE_CATEGORIES for c in value)


def name_problem(value: str) -> str | None:
    """Why ``value`` (already stripped) cannot be a name, or None."""
    control = _control_at(_CONTROL, value)
    if control:
        return control
    if blank(value):
        return "must not be blank"
    return None


def text_problem(value: str) -> str | None:
    """Why ``value`` cannot be free text, or None."""
    return _control_at(_CONTROL_BUT_LINES, value)


def json_problem(value: Any) -> str | None:
    """The free-text rule over a JSON value: every string in it, dictionary keys included."""
    if isinstance(value, str):
        return text_problem(value)
    if isinstance(value, dict):
        for key, item in value.items():
            wrong = json_problem(key) or json_problem(item)
            if wrong:
                return wrong
    elif isinstance(value, list | tuple):
        for item in value:
            wrong = json_problem(item)
            if wrong:
                return wrong
    return None


def _checked(problem: Any) -> AfterValidator:
    def check(value: str | None) -> str | None:
        if value is not None:
            wrong = problem(value)
            if wrong:
                raise ValueError(wrong)
        return value

    return AfterValidator(check)


def _strip(value: object) -> object:
    return value.strip() if isinstance(value, str) else value


def _one_break(value: object) -> object:
    return value.replace("\r\n", "\n") if isinstance(value, str) else value


Id = Annotated[str, _checked(id_problem)]
# Free text from a form's box (a textarea), given after the field's Form(...): a browser sends each line break as
# CR LF, but the box's maxlength counted it as one character; read as LF before the field's length is checked,
# so what the box took is taken.
ONE_BREAK = BeforeValidator(_one_break)
# Stripped before the length bounds are checked, so "   " is refused as empty (min_length) or blank.
Name = Annotated[str, BeforeValidator(_strip), _checked(name_problem)]
Text = Annotated[str, _checked(text_problem)]


class Body(BaseModel):
    """The base of every API body: unknown fields refused, every string held to the free-text rule."""

    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="after")
    @classmethod
    def _free_text(cls, value: Any, info: ValidationInfo) -> Any:
        wrong = json_problem(value)
        if wrong:
            raise ValueError(wrong)
        return value


# --- query parameters and console forms ----------------------------------------------------------

FORM_MESSAGE_TYPE = "text_control"


def _error(where: str, name: str, wrong: str) -> dict[str, Any]:
    return {"type": FORM_MESSAGE_TYPE, "loc": (where, name), "msg": wrong, "input": None}


def query_problems(request: Request) -> list[dict[str, Any]]:
    """A validation error per query parameter holding a control character (PostgreSQL refuses a NUL
    in a query's parameters: a search for ``customer=%00`` was a 500)."""
    return [_error("query", key, wrong) for key, value in request.query_params.multi_items()
            if (wrong := _control_at(_CONTROL, key) or _control_at(_CONTROL, value))]


async def check_request(request: Request) -> None:
    """Router dependency of the console's pages: no query parameter and no form field holds a control
    character (line breaks aside in a form). Refused as a validation error, so the page says which
    field, in the user's language. The API checks its queries in ``console.api``'s key checks, after
    the key, so that a caller without one learns nothing but 401."""
    errors = query_problems(request)
    content_type = request.headers.get("content-type", "")
    if request.method not in ("GET", "HEAD", "OPTIONS") and content_type.startswith(
            ("application/x-www-form-urlencoded", "multipart/form-data")):
        form = await request.form()  # cached on the request: the route reads the same one
        errors += [_error("body", key, wrong) for key, item in form.multi_items()
                   if isinstance(item, str) and (wrong := _control_at(_CONTROL, key) or text_problem(item))]
    if errors:
        raise RequestValidationError(errors)
