"""Property-based fuzzing of the wire layer and the job store, generated from botocore's model.

Every operation the engine implements gets random valid requests (members drawn from their
shapes: enums, patterns, lengths, ranges) and random invalid ones (wrong types, missing or
unknown members, values past their limits, garbage bodies, forged NextTokens), all properly
signed; forged signatures get their own property. Whatever arrives, the engine answers in
AWS's error form, never with a 5xx, and never lets more jobs be active than its limit. A state
machine drives the store like racing workers: a job completes at most once. The run is
bounded: FUZZ_EXAMPLES (default 50) examples per property.
"""

from __future__ import annotations

import base64
import json
import os
from collections import Counter
from typing import Any

import pytest
from botocore.model import Shape
from botocore.parsers import create_parser
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule
from wire import URL, active_jobs, call, engine_api, signed_headers

from medscribe.api import method_name
from medscribe.backend import TranscribeBackend
from medscribe.protocol import SERVICE_MODEL
from medscribe.store import JobStore, QueueFull

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "50"))
LIMIT = 3
OPERATIONS = sorted(
    name for name in SERVICE_MODEL.operation_names if hasattr(TranscribeBackend, method_name(name))
)
#: Errors any operation may answer besides its modeled ones: AWS's JSON-protocol errors.
PROTOCOL_ERRORS = {
    "SerializationException",
    "UnknownOperationException",
    "RequestEntityTooLargeException",
}
AUTH_ERRORS = {
    "MissingAuthenticationTokenException",
    "IncompleteSignatureException",
    "InvalidSignatureException",
    "UnrecognizedClientException",
}
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)


def valid(shape: Shape) -> st.SearchStrategy[Any]:
    """Values the model allows for ``shape``: enums, patterns, lengths and ranges."""
    meta = shape.metadata
    if shape.type_name == "structure":
        required = set(shape.required_members)
        members = {name: valid(member) for name, member in shape.members.items()}
        return st.fixed_dictionaries(
            {name: members[name] for name in members if name in required},
            optional={name: members[name] for name in members if name not in required},
        )
    if shape.type_name == "list":
        low = meta.get("min", 0)
        return st.lists(valid(shape.member), min_size=low, max_size=max(low, 3))
    if shape.type_name == "map":
        low = meta.get("min", 0)
        return st.dictionaries(
            valid(shape.key), valid(shape.value), min_size=low, max_size=max(low, 3)
        )
    if shape.type_name == "string":
        if shape.enum:
            return st.sampled_from(shape.enum)
        low, high = meta.get("min", 0), meta.get("max", 100)
        if "pattern" in meta:
            text = st.from_regex(meta["pattern"], fullmatch=True)
            return text.filter(lambda value: low <= len(value) <= high)
        return st.text(min_size=low, max_size=min(high, 100))
    if shape.type_name in ("integer", "long"):
        return st.integers(meta.get("min", -(2**31)), meta.get("max", 2**31 - 1))
    if shape.type_name == "boolean":
        return st.booleans()
    raise NotImplementedError(shape.type_name)


JUNK = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
)


def request_for(operation: str) -> st.SearchStrategy[dict[str, Any]]:
    """Valid requests; half of the job starts are ones the engine would queue."""
    requests = valid(SERVICE_MODEL.operation_model(operation).input_shape)
    if operation != "StartMedicalTranscriptionJob":
        return requests
    queueable = requests.map(
        lambda request: {
            "MedicalTranscriptionJobName": request["MedicalTranscriptionJobName"],
            "LanguageCode": "en-US",
            "Media": {"MediaFileUri": "s3://inbox/note.wav"},
            "OutputBucketName": request["OutputBucketName"],
            "Specialty": request["Specialty"],
            "Type": request["Type"],
        }
    )
    return st.one_of(requests, queueable)


def invalid_body(operation: str) -> st.SearchStrategy[bytes]:
    """Requests the engine must refuse (or tolerate), as raw bodies."""
    shape = SERVICE_MODEL.operation_model(operation).input_shape
    names = sorted(shape.members)
    request = request_for(operation)
    tokens = st.one_of(
        st.text(max_size=40),
        st.integers(min_value=-(2**70), max_value=2**70).map(
            lambda n: base64.urlsafe_b64encode(str(n).encode()).decode()
        ),
        st.binary(max_size=30).map(lambda b: base64.urlsafe_b64encode(b).decode()),
    )
    requests = st.one_of(
        st.tuples(request, st.sampled_from(names), JUNK).map(lambda t: {**t[0], t[1]: t[2]}),
        st.tuples(request, st.sampled_from(names)).map(
            lambda t: {k: v for k, v in t[0].items() if k != t[1]}
        ),
        st.tuples(request, st.sampled_from(names), st.integers(1, 3000)).map(
            lambda t: {**t[0], t[1]: "x" * t[2]}
        ),
        st.tuples(request, st.text(min_size=1, max_size=10), JUNK).map(
            lambda t: {**t[0], t[1]: t[2]}
        ),
        st.tuples(request, tokens).map(lambda t: {**t[0], "NextToken": t[1]}),
        st.tuples(request, JUNK).map(lambda t: {**t[0], "MaxResults": t[1]}),
    )
    return st.one_of(
        requests.map(lambda r: json.dumps(r).encode()),
        st.recursive(JUNK, lambda inner: st.lists(inner, max_size=3), max_leaves=8).map(
            lambda value: json.dumps(value).encode()
        ),
        st.binary(max_size=100),
        st.integers(1, 50_000).map(lambda n: b'{"a":' + b"[" * n + b"]" * n + b"}"),
    )


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    database = f"sqlite:///{tmp_path_factory.mktemp('fuzz') / 'jobs.db'}"
    with engine_api(database, max_active_jobs=LIMIT) as api:
        yield api, JobStore(database)


def check_answer(operation: str, response) -> None:
    """No 5xx; errors in AWS's form and of the operation's types; results in its shape."""
    model = SERVICE_MODEL.operation_model(operation)
    assert response.status_code < 500, response.text
    if response.status_code == 200:
        parsed = create_parser("json").parse(
            {"status_code": 200, "headers": dict(response.headers), "body": response.content},
            model.output_shape,
        )
        assert "Error" not in parsed
        return
    error = response.json()
    allowed = {shape.name for shape in model.error_shapes} | PROTOCOL_ERRORS
    assert error["__type"] in allowed - {"InternalFailureException"}, error
    assert response.headers["x-amzn-ErrorType"] == error["__type"]
    assert isinstance(error["Message"], str)


@pytest.mark.parametrize("kind", ["valid", "invalid"])
@pytest.mark.parametrize("operation", OPERATIONS)
def test_every_request_gets_an_aws_answer(engine, operation, kind):
    api, store = engine
    if kind == "valid":
        bodies = request_for(operation).map(lambda request: json.dumps(request).encode())
    else:
        bodies = invalid_body(operation)

    @FUZZ
    @given(body=bodies)
    def property(body):
        check_answer(operation, call(api, operation, raw=body))
        assert active_jobs(store) <= LIMIT

    property()


def forge(headers: dict[str, str], part: str, value: str) -> dict[str, str]:
    forged = dict(headers)
    authorization = forged["Authorization"]
    if part == "signature":
        forged["Authorization"] = authorization[: -len(value)] + value
    elif part == "authorization":
        forged["Authorization"] = value
    elif part == "credential":
        forged["Authorization"] = authorization.replace("AKIDWIRETEST/", f"{value}/", 1)
    elif part == "scope":
        forged["Authorization"] = authorization.replace("/us-east-1/transcribe/", f"/{value}/")
    elif part == "signed-headers":
        forged["Authorization"] = authorization.replace("SignedHeaders=", f"SignedHeaders={value}")
    elif part == "date":
        forged["X-Amz-Date"] = value
    elif part == "target":
        forged["X-Amz-Target"] = f"Transcribe.{value}"
    return forged


@FUZZ
@given(
    part=st.sampled_from(
        ["signature", "authorization", "credential", "scope", "signed-headers", "date", "target"]
    ),
    value=st.one_of(
        st.text(alphabet="0123456789abcdef", min_size=1, max_size=64),
        st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=80),
        st.sampled_from(OPERATIONS),
        st.datetimes().map(lambda d: d.strftime("%Y%m%dT%H%M%SZ")),
    ),
    tail=st.binary(max_size=8),
)
def test_forged_signatures_never_pass(engine, part, value, tail):
    api, _ = engine
    body = b"{}"
    headers = signed_headers("ListMedicalVocabularies", body)
    forged = forge(headers, part, value)
    sent = body + tail
    if forged == headers and sent == body:
        return  # nothing was changed
    response = api.post(URL, content=sent, headers=forged)
    assert response.status_code in (400, 403), response.text
    if response.status_code == 403:
        assert response.json()["__type"] in AUTH_ERRORS
    else:
        # Only an intact signature over a changed body gets past authentication.
        assert response.json()["__type"] == "SerializationException"


class RacingWorkers(RuleBasedStateMachine):
    """Workers claim, renew and finish jobs on a clock that jumps; clients start and delete."""

    def __init__(self) -> None:
        super().__init__()
        self.store = JobStore("sqlite://")
        self.now = 0.0
        self.started = 0
        self.completions: Counter[str] = Counter()

    def _name(self, pick: int) -> str:
        return f"job-{pick % max(1, self.started)}"

    @rule()
    def start(self) -> None:
        name = f"job-{self.started}"
        try:
            self.store.create_job(name, {"Media": {}}, self.now, max_active=LIMIT)
            self.started += 1
        except QueueFull:
            assert active_jobs(self.store) == LIMIT

    @rule(worker=st.sampled_from("abc"), lease=st.floats(0.5, 10))
    def claim(self, worker: str, lease: float) -> None:
        self.store.claim_job(worker, self.now, lease, max_attempts=3)

    @rule(worker=st.sampled_from("abc"), pick=st.integers(0, 20), lease=st.floats(0.5, 10))
    def renew(self, worker: str, pick: int, lease: float) -> None:
        self.store.renew_lease(self._name(pick), worker, self.now + lease)

    @rule(
        worker=st.sampled_from("abc"),
        pick=st.integers(0, 20),
        status=st.sampled_from(["COMPLETED", "FAILED"]),
    )
    def finish(self, worker: str, pick: int, status: str) -> None:
        name = self._name(pick)
        if self.store.finish_job(name, worker, self.now, status=status):
            self.completions[name] += 1

    @rule(pick=st.integers(0, 20))
    def delete(self, pick: int) -> None:
        self.store.delete_job(self._name(pick))

    @rule(seconds=st.floats(0, 15))
    def tick(self, seconds: float) -> None:
        self.now += seconds

    @invariant()
    def completes_at_most_once(self) -> None:
        assert all(count == 1 for count in self.completions.values())
        for name in self.completions:
            job = self.store.get_job(name)
            assert job is None or job.status in ("COMPLETED", "FAILED")

    @invariant()
    def active_within_limit(self) -> None:
        assert active_jobs(self.store) <= LIMIT


RacingWorkers.TestCase.settings = settings(FUZZ, stateful_step_count=30)
test_store_under_racing_workers = RacingWorkers.TestCase
