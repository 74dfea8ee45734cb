"""One shape for every refusal: RFC 9457 problem details (``application/problem+json``),
naming every wrong field, with the HTTP status that says what kind of refusal it is."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from workers.client import Refused

MEDIA_TYPE = "application/problem+json"

TITLES = {
    400: "请求格式错误 / Bad request",
    401: "未认证 / Not authenticated",
    403: "无权办理 / Forbidden",
    404: "未找到 / Not found",
    409: "请求被拒绝 / Refused",
    413: "请求过大 / Too large",
    422: "字段有误 / Invalid fields",
    429: "请求过于频繁 / Too many requests",
    503: "服务暂不可用，请重新发送同一请求 / Unavailable: send the same request again",
}
_KIND_STATUS = {"forbidden": 403, "not_found": 404, "refused": 409, "unavailable": 503}


class FieldError(BaseModel):
    field: str
    problem: str


class ProblemDetail(BaseModel):
    """RFC 9457. ``errors`` names every wrong field at once."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    instance: str = ""
    errors: list[FieldError] = []


class Problem(Exception):
    def __init__(self, status: int, detail: str, errors: list[FieldError] | None = None):
        super().__init__(detail)
        self.status, self.detail, self.errors = status, detail, errors or []


def problem_response(
    status: int, detail: str, request: Request, errors: list[FieldError] | None = None
) -> JSONResponse:
    body = ProblemDetail(
        type=f"https://aidflow.example/problems/{status}",
        title=TITLES.get(status, "Error"),
        status=status,
        detail=detail,
        instance=request.url.path,
        errors=errors or [],
    )
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(
        body.model_dump(), status_code=status, media_type=MEDIA_TYPE, headers=headers
    )


def field_errors(errors: Any) -> list[FieldError]:
    out = []
    for e in errors:
        loc = [str(p) for p in e.get("loc", ()) if p not in ("body",)]
        out.append(FieldError(field=".".join(loc) or "(body)", problem=str(e.get("msg", ""))))
    return out


def refusal_status(refused: Refused) -> int:
    return _KIND_STATUS.get(refused.kind, 409)


def install(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        return problem_response(exc.status, exc.detail, request, exc.errors)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = field_errors(exc.errors())
        malformed = any(e.get("type") == "json_invalid" for e in exc.errors())
        return problem_response(
            400 if malformed else 422,
            "; ".join(f"{e.field}: {e.problem}" for e in errors),
            request,
            errors,
        )

    @app.exception_handler(ValidationError)
    async def _model_invalid(request: Request, exc: ValidationError) -> JSONResponse:
        errors = field_errors(exc.errors())
        return problem_response(
            422, "; ".join(f"{e.field}: {e.problem}" for e in errors), request, errors
        )

    @app.exception_handler(Refused)
    async def _refused(request: Request, exc: Refused) -> JSONResponse:
        errors = [FieldError(field=p.field, problem=p.problem) for p in exc.problems]
        status = 422 if errors and exc.kind == "refused" else refusal_status(exc)
        return problem_response(status, str(exc), request, errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return problem_response(exc.status_code, str(exc.detail), request)
