from django.apps import AppConfig


class TestProviderConfig(AppConfig):
    name = "providers.test"
    label = "test_provider"
    verbose_name = "Test provider (sandbox ledger)"
