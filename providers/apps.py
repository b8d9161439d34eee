from django.apps import AppConfig


class ProvidersConfig(AppConfig):
    name = "providers"
    verbose_name = "Payment provider adapters"

    def ready(self) -> None:
        from providers import registry  # noqa: F401  (connects the settings-change receiver)
