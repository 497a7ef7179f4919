from django.urls import path

from .apis import BalanceApi, PaperAccountListApi, PaperAccountResetApi

urlpatterns = [
    path("accounts", PaperAccountListApi.as_view(), name="paper-account-list"),
    path("accounts/<int:account_id>/reset", PaperAccountResetApi.as_view(), name="paper-account-reset"),
    path("balance", BalanceApi.as_view(), name="paper-balance"),
]
