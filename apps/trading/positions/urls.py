from django.urls import path

from .apis import PositionListApi

urlpatterns = [path("positions", PositionListApi.as_view(), name="paper-position-list")]
