from django.urls import path

from .apis import QuotesApi

urlpatterns = [
    path("quotes", QuotesApi.as_view(), name="quotes"),
]
