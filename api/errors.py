"""Errors a client may see. Services raise them; the GraphQL layer turns each into a message and
its `extensions.code`. Anything else is logged and shown only as an internal error."""

from __future__ import annotations

from starlette.responses import JSONResponse


class ServiceError(Exception):
    """An error meant for the client: its message is safe to show."""

    code = "INTERNAL_SERVER_ERROR"


class NotFound(ServiceError):
    code = "NOT_FOUND"


class BadUserInput(ServiceError):
    code = "BAD_USER_INPUT"


class Conflict(ServiceError):
    """The request conflicts with what is already there (a second running experiment)."""

    code = "CONFLICT"


class ModelNotReady(ServiceError):
    code = "MODEL_NOT_READY"


class Unauthenticated(ServiceError):
    """No credential, where one is needed."""

    code = "UNAUTHENTICATED"


class Forbidden(ServiceError):
    """A credential that does not allow this."""

    code = "FORBIDDEN"


class Refused(Exception):
    """A request answered outside GraphQL with an error status, in the body GraphQL's errors have."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers

    def response(self) -> JSONResponse:
        body = {"errors": [{"message": self.message, "extensions": {"code": self.code}}]}
        return JSONResponse(body, status_code=self.status, headers=self.headers)
