from django.urls import path

from .apis import PaperAccountListApi

urlpatterns = [path("", PaperAccountListApi.as_view(), name="paper-account-list")]
