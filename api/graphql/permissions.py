"""Who may resolve which field, as Strawberry permission classes: catalogue reads and a visitor's
profile recommendations anyone (anonymous callers unless MOVIEREC_ANONYMOUS_READS is false); a user's
data a token of that user, or an API key with `read` (reads) or `users:write` (ratings); the rest an
API key with the field's scope."""

from __future__ import annotations

from typing import Any

from strawberry.permission import BasePermission

from api.errors import Forbidden, Unauthenticated
from api.graphql.context import Info


def allowed(scope: str | None = None, *, own: str | None = None) -> type[BasePermission]:
    """Return a permission class: `scope` needed on an API key (None: a public read), or, with `own`
    naming the user id argument, a token of that user."""

    class Allowed(BasePermission):
        def has_permission(self, source: Any, info: Info, **arguments: Any) -> bool:
            """Return True if the caller may resolve the field; raise UNAUTHENTICATED or FORBIDDEN."""
            caller = info.context.caller  # identified by AuthenticationMiddleware (api.access.backend)
            if scope is None and (caller.kind != "anonymous" or info.context.state.settings.anonymous_reads):
                return True
            if caller.kind == "key" and scope in info.context.request.auth.scopes:
                return True
            if caller.kind == "user" and own is not None and arguments.get(own) == caller.user_id:
                return True
            if caller.kind == "anonymous":
                raise Unauthenticated(
                    "sign the request with an API key or a user token (Authorization: Bearer …)"
                )
            needed = f"an API key with the {scope} scope" if scope else "a credential"
            raise Forbidden(f"this needs {needed}{' or a token of this user' if own else ''}")

    Allowed.__name__ = Allowed.__qualname__ = f"Allowed_{scope or 'public'}_{own or ''}"
    return Allowed
