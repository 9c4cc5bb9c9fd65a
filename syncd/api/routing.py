"""Registering a list URL: GET (the page) and HEAD (the same headers, no body), documented
as Waldur's generated clients name them (`<name>_list`, `<name>_count`); and HEAD beside any
other GET (`head_too`)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Response

from syncd.api.schemas import ERROR_RESPONSES, HEAD_OK, LIST_HEADERS

Handler = Callable[..., Response]


def list_route(router: APIRouter, path: str, name: str, model: Any) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        router.get(
            path,
            response_model=list[model],
            responses={**ERROR_RESPONSES, 200: {"headers": LIST_HEADERS}},
            operation_id=f"{name}_list",
            summary=f"List {name.replace('marketplace_software_', '')} (`?field=` picks keys)",
        )(handler)
        # One handler for both: paginated() answers HEAD with the headers only.
        router.head(
            path,
            response_class=Response,
            responses={**ERROR_RESPONSES, 200: HEAD_OK},
            operation_id=f"{name}_count",
            summary=f"Count {name.replace('marketplace_software_', '')} (X-Result-Count)",
        )(handler)
        return handler

    return register


def head_too(router: APIRouter, path: str) -> Callable[[Handler], Handler]:
    """HEAD on a GET-only URL (an object, a small unpaginated list), as DRF answers it: the
    status and headers of the GET, no body. Not in the OpenAPI document (Waldur's clients
    only send HEAD to the paginated lists)."""

    def register(handler: Handler) -> Handler:
        @functools.wraps(handler)  # FastAPI reads the parameters through __wrapped__
        def head(*args: Any, **kwargs: Any) -> Response:
            answer = handler(*args, **kwargs)
            # The GET's headers as they are, Content-Length included: its true length.
            return Response(status_code=answer.status_code, headers=dict(answer.headers))

        router.head(path, response_class=Response, include_in_schema=False)(head)
        return handler

    return register
