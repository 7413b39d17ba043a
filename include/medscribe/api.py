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

from .auth import verify_signature
from .backend import TranscribeBackend
from .protocol import CONTENT_TYPE, ServiceError, operation_for, parse_request, serialize_response

log = logging.getLogger(__name__)


def _method_name(operation: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", operation).lower()


def create_app(backend: TranscribeBackend) -> Starlette:
    config = backend.config

    async def handle(request: Request) -> Response:
        body = await request.body()
        name = "-"
        try:
            headers = {key.lower(): value for key, value in request.headers.items()}
            verify_signature(
                method=request.method,
                url=str(request.url),
                headers=headers,
                body=body,
                secrets=config.access_keys,
                region=config.region,
            )
            operation = operation_for(headers.get("x-amz-target"))
            name = operation.name
            handler = getattr(backend, _method_name(name), None)
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
