from typing import Any

from django.conf import settings
from django.contrib import admin
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import include, path
from django.views import defaults
from django.views.generic import TemplateView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from checkout.api.hooks import WebhookView

urlpatterns = [
    # The demo storefront: one page that uses only the public storefront API.
    path("", TemplateView.as_view(template_name="storefront/index.html"), name="storefront"),
    path("admin/", admin.site.urls),
    path("api/store/", include("checkout.api.urls")),
    path("api/admin/", include("checkout.api.admin_urls")),
    path("api/hooks/<str:provider_id>", WebhookView.as_view(), name="webhook"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
]


def _error_view(status: int, code: str, message: str, html_view: Any) -> Any:
    """The contract's JSON error under /api/; elsewhere (the admin, the demo page) Django's
    own page, since handler400..500 apply to the whole site."""

    def view(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
        if not request.path.startswith("/api/"):
            return html_view(request) if exception is None else html_view(request, exception)
        text = message
        if isinstance(exception, RequestDataTooBig):
            text = f"The body is larger than {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes."
        return JsonResponse({"code": code, "message": text}, status=status)

    return view


handler400 = _error_view(400, "invalid_data", "Bad request.", defaults.bad_request)
handler403 = _error_view(403, "permission_denied", "Permission denied.", defaults.permission_denied)
handler404 = _error_view(404, "not_found", "Not found.", defaults.page_not_found)
handler500 = _error_view(500, "server_error", "Internal error.", defaults.server_error)
