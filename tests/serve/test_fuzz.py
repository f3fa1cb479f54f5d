"""Property-based fuzz of the live server, generated from its own OpenAPI schema.

Schemathesis reads /schema/openapi.json from a real `ablate serve` on 127.0.0.1 and,
for every operation, sends the schema's examples plus Hypothesis-generated requests,
schema-valid and schema-violating, to the real model name and version (so bodies
reach the parsers) and to random ones (404s). Every answer must be a documented
non-5xx status whose body matches the documented schema. Generation is derandomized
with no example database, so CI sends the same requests every time and cannot flake.
"""

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

EXAMPLES = 30  # per operation and strategy: bounded, a few seconds per operation

# positive_data_acceptance is left out: the schema cannot say that data must hold
# N*784 values in range, so schema-valid random requests are rightly refused (400).
EXCLUDED = [schemathesis.checks.positive_data_acceptance]


@pytest.fixture(scope="module")
def api_schema(live_server: str) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(f"{live_server}/schema/openapi.json")


def strategies(api_schema: schemathesis.BaseSchema, op: schemathesis.APIOperation,
               real: dict[str, str]) -> list[st.SearchStrategy]:
    fixed = {k: v for k, v in real.items() if k in op.path_parameters}
    out = [*api_schema.get_strategies_from_examples(op),
           op.as_strategy(generation_mode=GenerationMode.POSITIVE, path_parameters=fixed)]
    if len(op.body):  # a body can break the schema (a path parameter, any string, cannot)
        out.append(op.as_strategy(generation_mode=GenerationMode.NEGATIVE,
                                  path_parameters=fixed))
    if fixed:  # and with random names and versions: all 404
        out.append(op.as_strategy(generation_mode=GenerationMode.POSITIVE))
    return out


def test_api_from_its_own_schema(api_schema: schemathesis.BaseSchema, live_server: str
                                 ) -> None:
    version = httpx.get(f"{live_server}/v2/models/mnist").json()["versions"][0]
    real = {"model": "mnist", "model_version": version}
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 12
    statuses: dict[str, set[int]] = {}
    for op in operations:
        for strategy in strategies(api_schema, op, real):

            @given(case=strategy)
            @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                      suppress_health_check=list(HealthCheck))
            def check(case: schemathesis.Case) -> None:
                response = case.call_and_validate(excluded_checks=EXCLUDED)
                statuses.setdefault(case.operation.label, set()).add(response.status_code)

            check()
    # The fuzz reached the parsers and the model, not only the 404 path.
    infer = statuses["POST /v2/models/{model}/infer"]
    assert {200, 400, 404} <= infer, infer
    assert {200, 400} <= statuses["POST /v1/predict"]
