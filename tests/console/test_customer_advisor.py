"""A customer's dedicated advisor (PUT /api/customers/{id} ``advisor``) is someone who can work the
customer's tasks: for every role, active or not, the API accepts the user exactly when a diamond task of
that customer, assigned by the desk's round, can then be opened by them. Before, an ops or compliance
user was accepted and the customer's tasks reached nobody."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import select
from starlette.testclient import TestClient

from console.assignment import assign_open_tasks
from console.task_rights import TaskError, load_visible
from store.db import session_scope
from store.models import ROLES, AppUser, Customer
from tests.console.conftest import API_KEY, Seed, add_task, add_user, user

KEY = {"X-API-Key": API_KEY}


def _deactivate(url: str, name: str) -> None:
    with session_scope(url) as s:
        row = s.exec(select(AppUser).where(AppUser.username == name)).one()
        row.active = False
        s.add(row)


def _opens_the_task(url: str, name: str, task_id: int) -> bool:
    with session_scope(url) as s:
        try:
            load_visible(user(url, name), s, task_id)
        except TaskError:
            return False
        return True


@pytest.mark.parametrize("active", [True, False])
@pytest.mark.parametrize("role", ROLES)
def test_an_advisor_is_accepted_exactly_when_they_can_work_the_customers_tasks(
        client: TestClient, db_url: str, seed: Seed, monkeypatch: pytest.MonkeyPatch, role: str,
        active: bool) -> None:
    monkeypatch.setenv("JOURNEYS_ASSIGNMENT", "none")  # only the advisor rule assigns
    name = f"new-{role}"
    add_user(db_url, name, "a", role=role)
    if not active:
        _deactivate(db_url, name)
    answer = client.put("/api/customers/C9", headers=KEY, json={"name": "赵六", "tier": "diamond", "advisor": name})

    with session_scope(db_url) as s:
        customer = s.exec(select(Customer).where(Customer.external_id == "C9")).first()
        customer_id = customer.id if customer else None
        task_id = add_task(s, "dia-1", customer_id, now=seed.now, due_in=timedelta(hours=1)) if customer_id else None
    assign_open_tasks(db_url=db_url)
    works_it = task_id is not None and _opens_the_task(db_url, name, task_id)

    assert (answer.status_code == 201) == works_it, answer.text
    if answer.status_code != 201:
        assert answer.status_code == 422
        assert [e["loc"] for e in answer.json()["detail"]] == [["body", "advisor"]]
        assert customer_id is None  # nothing written


def test_a_refused_advisor_leaves_the_customers_advisor_as_it_was(client: TestClient, db_url: str,
                                                                  seed: Seed) -> None:
    answer = client.put("/api/customers/C2", headers=KEY, json={"advisor": "olga"})  # olga: ops
    assert answer.status_code == 422 and "olga" in answer.json()["detail"][0]["msg"]
    with session_scope(db_url) as s:
        c2 = s.get(Customer, seed.customers["C2"])
        assert c2 is not None and c2.advisor_id == seed.users["ann"]
