"""Property-based tests of the HTTP API from its own OpenAPI schema (schemathesis): whatever a client sends within the
schema's shapes, the server answers without a 5xx, and every error is JSON with one `error` line.

The budget is small and fixed (derandomized, no example database) so the suite stays fast and repeatable. Jobs are
accepted into the queue but never run: the app's worker is not started here.
"""

from __future__ import annotations

import pytest

schemathesis = pytest.importorskip("schemathesis")

from hypothesis import HealthCheck, settings  # noqa: E402
from schemathesis import checks  # noqa: E402
from schemathesis.generation import GenerationMode  # noqa: E402

from impasto.serve import ServeSettings, create_app  # noqa: E402

APP = create_app(
    ServeSettings(
        allowed_hosts=["*"], max_size=64, default_size=64, max_steps=2, queue_size=2, wait_timeout=0.2, job_timeout=5
    )
)
SCHEMA = schemathesis.openapi.from_asgi("/api/openapi.json", APP)
# Requests that break the schema too (wrong types, missing fields): they must be refused in the same JSON.
SCHEMA.config.generation.update(modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE])


@schemathesis.check
def errors_are_one_json_line(ctx, response, case) -> None:
    """Every 4xx and 5xx answer is {"error": "one line"} (plus the job id where there is one)."""
    if response.status_code < 400:
        return None
    body = response.json()
    if not (isinstance(body, dict) and isinstance(body.get("error"), str) and set(body) <= {"error", "job_id"}):
        raise AssertionError(f"{response.status_code} answered {body!r}, not {{'error': ...}}")
    if "\n" in body["error"]:
        raise AssertionError(f"a multi-line error: {body['error']!r}")
    return None


@SCHEMA.parametrize()
@settings(max_examples=12, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
def test_the_api_never_fails_and_answers_errors_in_json(case):
    response = case.call()
    case.validate_response(response, checks=[checks.not_a_server_error, errors_are_one_json_line])
