"""What every admin API view shares (SPEC section 6).

Token or Django-session authentication, staff only; the model permissions an action needs
beyond that; the Idempotency-Key on every POST; the contract's error answers in the schema.
The storefront API stays unauthenticated: these classes are set on the admin views only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from django.http import HttpRequest, HttpResponse
from rest_framework import viewsets
from rest_framework.authentication import SessionAuthentication, TokenAuthentication
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.views import APIView

from payments.api.idempotent import admin_request, idempotent_response
from payments.api.throttling import AdminThrottle

# Every admin endpoint can answer these.
ADMIN_ERRORS = (401, 403)
POST_ERRORS = (*ADMIN_ERRORS, 400, 404, 409, 422)


class IsStaff(BasePermission):
    message = "Staff credentials are required."

    def has_permission(self, request: Request, view: APIView) -> bool:
        user = request.user
        return bool(user and user.is_authenticated and user.is_staff)


class AdminViewSet(viewsets.GenericViewSet):
    # Token first: an anonymous request is then told 401 with `WWW-Authenticate: Token`.
    authentication_classes = [TokenAuthentication, SessionAuthentication]
    permission_classes = [IsStaff]
    throttle_classes = [AdminThrottle]
    lookup_value_regex = "[^/]+"
    # Model permissions an action needs beyond staff, e.g. {"refund": ("payments.refund_payment",)}.
    action_permissions: ClassVar[dict[str, tuple[str, ...]]] = {}

    raw_body = b""
    idempotency_key: str | None = None

    def initialize_request(self, request: HttpRequest, *args: Any, **kwargs: Any) -> Request:
        if request.method == "POST":
            # The Idempotency-Key binds the raw body: keep it before anything parses it
            # (the session authentication's CSRF check does).
            self.raw_body = request.body
        return super().initialize_request(request, *args, **kwargs)

    def check_permissions(self, request: Request) -> None:
        super().check_permissions(request)
        self.require_permissions(request, *self.action_permissions.get(self.action or "", ()))

    def require_permissions(self, request: Request, *permissions: str) -> None:
        if permissions and not request.user.has_perms(permissions):
            self.permission_denied(
                request, message=f"This needs the permission {', '.join(permissions)}."
            )

    def idempotent(
        self,
        request: Request,
        work: Callable[[str], tuple[int, Any]],
        *,
        resource_id: str = "",
        atomic: bool = False,
    ) -> HttpResponse:
        """Answer a POST through its Idempotency-Key; `work` gets the request key. With
        `atomic` (no provider call in `work`), the answer commits with the work's rows."""
        user_id = request.user.pk
        assert user_id is not None  # IsStaff let in authenticated staff only
        idempotent_request = admin_request(
            user_id=user_id,
            method=request.method or "POST",
            path=request.path,
            body=self.raw_body,
            header=request.headers.get("Idempotency-Key"),
        )
        self.idempotency_key = idempotent_request.key
        return idempotent_response(idempotent_request, work, resource_id=resource_id, atomic=atomic)

    def finalize_response(self, request: Request, response: Any, *args: Any, **kwargs: Any) -> Any:
        response = super().finalize_response(request, response, *args, **kwargs)
        if self.idempotency_key is not None:
            response["Idempotency-Key"] = self.idempotency_key
            response["Access-Control-Expose-Headers"] = "Idempotency-Key"
        return response
