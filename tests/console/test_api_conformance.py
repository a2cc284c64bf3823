"""The REST API against its own OpenAPI, under a real uvicorn.

schemathesis reads /api/openapi.json and generates requests from it as three callers: a system
key (with whatever ``X-Acting-User`` the generator makes up, mostly refused), a desk key acting
for agent ann, and ann's own key; and invalid requests (wrong types, missing fields, bodies
that are not JSON) with the system key, since input is checked the same whoever sends it. Every
answer must be one the schema documents: a listed status code, its content type and a body
matching its schema, and never a 5xx. The generator is derandomized and bounded, so a run makes
the same requests every time.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode, openapi
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.result import Ok
from schemathesis.generation.case import Case

from tests.console.conftest import API_KEY, Seed

DESK_KEY = "conformance-desk-key-0123456789"
ANN_KEY = "conformance-ann-key-0123456789"
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
CALLERS = {
    "system key": {"X-API-Key": API_KEY},
    "desk key acting for ann": {"X-API-Key": DESK_KEY, "X-Acting-User": "ann"},
    "ann's own key": {"X-API-Key": ANN_KEY},
}
API_OPERATIONS = 10
# Per operation and run: 10 × 4 × 12 = 480 requests. Generating the invalid ones costs the most.
EXAMPLES = 12
RUNS = [("system key", GenerationMode.POSITIVE), ("desk key acting for ann", GenerationMode.POSITIVE),
        ("ann's own key", GenerationMode.POSITIVE), ("system key", GenerationMode.NEGATIVE)]


@pytest.fixture
def console_env(console_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOURNEYS_API_KEYS", f"{API_KEY}, phones:desk=a:{DESK_KEY}, ann:agent:{ANN_KEY}")


@pytest.mark.parametrize(("caller", "mode"), RUNS, ids=[f"{caller}, {mode.value}" for caller, mode in RUNS])
def test_every_answer_is_one_the_openapi_documents(server: str, seed: Seed, caller: str,
                                                     mode: GenerationMode) -> None:
    schema = openapi.from_url(f"{server}/api/openapi.json").include(path_regex=r"^/api/")
    results = list(schema.get_all_operations())
    assert all(isinstance(result, Ok) for result in results), results  # the schema itself is sound
    operations = [result.ok() for result in results if isinstance(result, Ok)]
    assert len(operations) == API_OPERATIONS, [op.label for op in operations]
    statuses: set[int] = set()
    for operation in operations:

        @settings(max_examples=EXAMPLES, derandomize=True, database=None, deadline=None,
                  suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy(generation_mode=mode, headers=CALLERS[caller]))
        def answers_as_documented(case: Case) -> None:
            statuses.add(case.call_and_validate(checks=CHECKS).status_code)

        answers_as_documented()
    # The key let every request in, so what was checked is the API's behaviour, not a wall of 401s.
    assert 401 not in statuses
    if mode == GenerationMode.POSITIVE:
        assert any(200 <= status < 300 for status in statuses), statuses
