from django.apps import AppConfig


class DemoConfig(AppConfig):
    name = "handlers.demo"
    label = "demo"
    verbose_name = "bgtask demo"
