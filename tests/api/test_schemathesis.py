"""The API as schemathesis sees it: every operation of the served OpenAPI document, fed
generated requests (valid ones and ones that break the document), against a real ``serve``
(hypercorn, the database with the stock FusionPBX schema, the simulated FreeSWITCH). Whatever
it is sent, the server answers with no 5xx, and with a status and a body shape the document
gives for that operation; a request the document forbids is refused, never served.

Skipped where schemathesis is not installed (it is in the ``test`` extra, so ``./dev test`` and
CI have it; under ``CI=true`` its absence fails)."""

from __future__ import annotations

import os
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from callcontrol.api import openapi
from callcontrol.testing.database import add_domain, add_extension
from tests.browser.conftest import TOKEN, Served, served  # noqa: F401 - the fixture

# /api/events is a stream that ends only when the client leaves: schemathesis would wait on it
# forever; tests/api/test_events.py drives it instead. The webhook is checked by its signature
# (tests/api/test_whatsapp_webhook.py), not by the token schemathesis sends.
SKIPPED = {("GET", "/api/events"), ("POST", "/webhooks/whatsapp")}
EXAMPLES = int(os.environ.get("CALLCONTROL_SCHEMATHESIS_EXAMPLES", "25"))


@pytest.fixture
def server_env() -> dict[str, str]:
    # a provider key, so /readyz says ready: its 503 "not ready" is not what is checked here
    return {"OPENAI_API_KEY": "sk-test-not-a-real-key"}


def _schemathesis() -> Any:
    try:
        import schemathesis
    except ImportError:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("schemathesis is missing (CI=true: the install step is missing)")
        pytest.skip("schemathesis is not installed: pip install -e '.[test]'")
    return schemathesis


def test_no_request_makes_the_api_fail_or_stray_from_its_document(served: Served) -> None:  # noqa: F811
    schemathesis = _schemathesis()
    from schemathesis.checks import (
        not_a_server_error,
        response_schema_conformance,
        status_code_conformance,
    )
    from schemathesis.generation import GenerationMode

    domain = served.run(add_domain, served.db, "clinica.example.com")
    served.run(add_extension, served.db, domain, "1001")
    schema = schemathesis.openapi.from_dict(openapi.document())
    checks = [not_a_server_error, status_code_conformance, response_schema_conformance]
    operations = [op.ok() for op in schema.get_all_operations()]
    tried = []
    for operation in operations:
        if (operation.method.upper(), operation.path) in SKIPPED:
            continue
        strategy = st.one_of(operation.as_strategy(generation_mode=GenerationMode.POSITIVE),
                             operation.as_strategy(generation_mode=GenerationMode.NEGATIVE))

        @settings(max_examples=EXAMPLES, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))  # fmt: skip
        @given(case=strategy)
        def exercise(case: Any) -> None:
            case.call_and_validate(base_url=served.url, checks=checks,
                                   headers={"Authorization": f"Bearer {TOKEN}"})  # fmt: skip

        exercise()
        tried.append(f"{operation.method.upper()} {operation.path}")
    assert len(tried) == len(operations) - len(SKIPPED)
