from django.contrib import admin
from django.http import HttpRequest, JsonResponse
from django.urls import include, path
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


def _json_error(status: int, code: str, message: str):  # type: ignore[no-untyped-def]
    def view(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
        return JsonResponse({"code": code, "message": message}, status=status)

    return view


# Outside DRF too, the API never answers with an HTML page.
handler400 = _json_error(400, "invalid_data", "Bad request.")
handler403 = _json_error(403, "permission_denied", "Permission denied.")
handler404 = _json_error(404, "not_found", "Not found.")
handler500 = _json_error(500, "server_error", "Internal error.")
