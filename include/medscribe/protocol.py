"""The AWS JSON 1.1 wire format of Amazon Transcribe, driven by botocore's own service model.

Requests are validated against the model (required members, types, lengths, ranges,
patterns, enums) and responses are serialized through it, so the engine cannot drift
from what boto3 and the AWS CLI expect.
"""

from __future__ import annotations

import json
import re
from typing import Any

import botocore.session
from botocore.model import OperationModel, Shape
from botocore.serialize import JSONSerializer
from botocore.validate import ParamValidator

SERVICE_MODEL = botocore.session.get_session().get_service_model("transcribe")
TARGET_PREFIX = SERVICE_MODEL.metadata["targetPrefix"]
CONTENT_TYPE = "application/x-amz-json-1.1"


class ServiceError(Exception):
    """An error the client receives as ``{"__type": code, "Message": message}``."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status

    def body(self) -> dict[str, str]:
        return {"__type": self.code, "Message": self.message}


def bad_request(message: str) -> ServiceError:
    return ServiceError("BadRequestException", message)


def not_found(message: str) -> ServiceError:
    return ServiceError("NotFoundException", message)


def conflict(message: str) -> ServiceError:
    return ServiceError("ConflictException", message)


def limit_exceeded(message: str) -> ServiceError:
    return ServiceError("LimitExceededException", message)


def operation_for(target: str | None) -> OperationModel:
    """The operation named by an ``X-Amz-Target`` header, or AWS's unknown-operation error."""
    prefix, _, name = (target or "").partition(".")
    if prefix != TARGET_PREFIX or name not in SERVICE_MODEL.operation_names:
        raise ServiceError("UnknownOperationException", "")
    return SERVICE_MODEL.operation_model(name)


def parse_request(operation: OperationModel, body: bytes) -> dict[str, Any]:
    """Decode and validate a request body; raise BadRequestException listing every violation."""
    try:
        params = json.loads(body or b"{}")
    except ValueError as exc:
        raise ServiceError("SerializationException", f"Malformed JSON: {exc}") from exc
    except RecursionError as exc:
        raise ServiceError("SerializationException", "The JSON is nested too deeply.") from exc
    if not isinstance(params, dict):
        raise ServiceError("SerializationException", "The request body must be a JSON object")
    problems: list[str] = []
    report = ParamValidator().validate(params, operation.input_shape)
    if report.has_errors():
        problems.extend(report.generate_report().splitlines())
    else:
        # botocore's client-side validator leaves max, pattern and enum to the service.
        _check_constraints(params, operation.input_shape, "", problems)
    if problems:
        count = len(problems)
        noun = "error" if count == 1 else "errors"
        raise bad_request(f"{count} validation {noun} detected: " + "; ".join(problems))
    return params


def _member_path(path: str, name: str) -> str:
    return f"{path}.{name[:1].lower()}{name[1:]}" if path else f"{name[:1].lower()}{name[1:]}"


def _check_constraints(value: Any, shape: Shape, path: str, problems: list[str]) -> None:
    def fail(constraint: str) -> None:
        problems.append(
            f"Value '{value}' at '{path}' failed to satisfy constraint: Member must {constraint}"
        )

    meta = shape.metadata
    if shape.type_name == "structure":
        for name, member in shape.members.items():
            if name in value:
                _check_constraints(value[name], member, _member_path(path, name), problems)
    elif shape.type_name == "list":
        if "max" in meta and len(value) > meta["max"]:
            fail(f"have length less than or equal to {meta['max']}")
        for index, item in enumerate(value):
            _check_constraints(item, shape.member, f"{path}.{index + 1}.member", problems)
    elif shape.type_name == "map":
        if "max" in meta and len(value) > meta["max"]:
            fail(f"have length less than or equal to {meta['max']}")
        for key, item in value.items():
            _check_constraints(key, shape.key, f"{path}.key", problems)
            _check_constraints(item, shape.value, f"{path}.{key}", problems)
    elif shape.type_name == "string":
        if "max" in meta and len(value) > meta["max"]:
            fail(f"have length less than or equal to {meta['max']}")
        if shape.enum and value not in shape.enum:
            fail(f"satisfy enum value set: [{', '.join(shape.enum)}]")
        if "pattern" in meta and not re.fullmatch(meta["pattern"], value):
            fail(f"satisfy regular expression pattern: {meta['pattern']}")
    elif shape.type_name in ("integer", "long"):
        # JSON's true/false are Python ints, which botocore's validator lets through.
        if isinstance(value, bool):
            problems.append(f"Invalid type for parameter {path}, value: {value}, type: boolean")
        elif "max" in meta and value > meta["max"]:
            fail(f"have value less than or equal to {meta['max']}")


def serialize_response(operation: OperationModel, result: dict[str, Any]) -> bytes:
    """Shape a result by the operation's output model: timestamps as epoch seconds, no nulls."""
    body: dict[str, Any] = {}
    if operation.output_shape is not None:
        JSONSerializer()._serialize(body, _drop_none(result), operation.output_shape)
    return json.dumps(body).encode()


def _drop_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_none(v) for v in value]
    return value
