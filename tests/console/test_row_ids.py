"""A row id in a page's path or form beyond what the database holds (a signed 64-bit integer), or not
positive, is refused like any bad input, never a 500: SQLite's driver raised OverflowError on it."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from tests.console.conftest import Seed, login

OUT_OF_RANGE = [str(2**63), str(-(2**63) - 1), "99999999999999999999", "0", "-1"]
# (who may use the route, method, path with {} for the id, form fields)
ROUTES = [
    ("ann", "GET", "/tasks/{}", {}),
    ("ann", "POST", "/tasks/{}/claim", {}),
    ("ann", "POST", "/tasks/{}/reveal", {}),
    ("ann", "POST", "/tasks/{}/complete", {"outcome": "reached"}),
    ("sue", "POST", "/tasks/{}/reassign", {"to_user_id": "1", "back": "/supervisor"}),
    ("olga", "GET", "/ops/review/{}", {}),
    ("olga", "POST", "/ops/review/{}/approve", {"comment": "ok"}),
    ("adam", "POST", "/admin/users/{}/toggle", {"what": "active"}),
    ("adam", "POST", "/admin/users/{}/skills", {"skills": "lang:en"}),
    ("adam", "POST", "/admin/users/{}/password", {"password": "another-horse-2"}),
]


@pytest.mark.parametrize(("who", "method", "path", "form"), ROUTES, ids=[f"{m} {p}" for _, m, p, _ in ROUTES])
def test_an_id_the_database_cannot_hold_is_refused_not_a_500(
    client: TestClient, seed: Seed, who: str, method: str, path: str, form: dict[str, str]
) -> None:
    token = login(client, who)
    for row_id in OUT_OF_RANGE:
        answer = client.request(method, path.format(row_id), data={**form, "csrf_token": token} if method == "POST"
                                else None, follow_redirects=False)
        assert answer.status_code in (303, 404, 422), (row_id, answer.status_code, answer.text[:300])


@pytest.mark.parametrize("to_user", [str(2**63), "0"])
def test_a_reassignment_to_a_user_id_out_of_range_is_refused(client: TestClient, seed: Seed, to_user: str) -> None:
    token = login(client, "sue")
    answer = client.post(f"/tasks/{seed.tasks['ann_first']}/reassign", follow_redirects=False,
                         data={"to_user_id": to_user, "back": "/supervisor", "csrf_token": token})
    assert answer.status_code in (303, 422), answer.text[:300]
