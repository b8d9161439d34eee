"""OpenAPI operation ids from the API area, the view and its action: `store_cart_complete`."""

from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema


class AutoSchema(SpectacularAutoSchema):
    def get_operation_id(self) -> str:
        action = getattr(self.view, "action", None)
        if not action:
            return super().get_operation_id()
        area = self.path.strip("/").split("/")[1]  # /api/<area>/...
        view = type(self.view).__name__.removesuffix("ViewSet").removesuffix("View")
        return f"{area}_{view.lower()}_{action}"
