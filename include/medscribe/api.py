"""The HTTP face of the engine: authenticate, decode, dispatch to the backend, encode."""

from __future__ import annotations

import json
import logging
import re

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .auth import authorize, verify_signature
from .backend import TranscribeBackend
from .protocol import CONTENT_TYPE, ServiceError, operation_for, parse_request, serialize_response

log = logging.getLogger(__name__)

#: The largest request the model allows (tags, URIs, names) is a few kB.
MAX_BODY_BYTES = 1 << 20


async def _read_body(request: Request) -> bytes:
    """The body, refused past MAX_BODY_BYTES whether declared or streamed."""
    too_large = ServiceError(
        "RequestEntityTooLargeException",
        f"The request body is larger than {MAX_BODY_BYTES} bytes.",
        413,
    )
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise too_large
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise too_large
    return bytes(body)


def method_name(operation: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", operation).lower()


def create_app(backend: TranscribeBackend) -> Starlette:
    config = backend.config

    async def handle(request: Request) -> Response:
        name = "-"
        try:
            headers = {key.lower(): value for key, value in request.headers.items()}
            authorization = authorize(
                headers=headers, secrets=config.access_keys, region=config.region
            )
            body = await _read_body(request)
            verify_signature(
                authorization,
                method=request.method,
                url=str(request.url),
                headers=headers,
                body=body,
            )
            operation = operation_for(headers.get("x-amz-target"))
            name = operation.name
            handler = getattr(backend, method_name(name), None)
            if handler is None:
                raise ServiceError(
                    "UnknownOperationException", f"{name} is not supported by this engine."
                )
            # Store calls block; keep them off the event loop.
            result = await run_in_threadpool(handler, parse_request(operation, body))
            return Response(serialize_response(operation, result), media_type=CONTENT_TYPE)
        except ServiceError as error:
            log.info("%s refused: %s", name, error.code)
            return Response(
                json.dumps(error.body()),
                status_code=error.status,
                media_type=CONTENT_TYPE,
                headers={"x-amzn-ErrorType": error.code},
            )
        except Exception:
            log.exception("%s failed", name)
            failure = ServiceError("InternalFailureException", "An internal error occurred.", 500)
            return Response(json.dumps(failure.body()), status_code=500, media_type=CONTENT_TYPE)

    async def health(_: Request) -> Response:
        return Response("ok", media_type="text/plain")

    return Starlette(routes=[Route("/", handle, methods=["POST"]), Route("/health", health)])
