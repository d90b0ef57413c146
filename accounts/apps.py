from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    # allauth's own app (e-mail addresses) is "Accounts" in the admin: two sections of one name.
    verbose_name = "People and organizations"
