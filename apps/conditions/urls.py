"""REST routes under /api/conditions/ (config/urls.py)."""

from django.urls import path

from .apis import ConditionDetailApi, ConditionEventListApi, ConditionListApi, ConditionMemberListApi, ConditionSyncApi

urlpatterns = [
    path("", ConditionListApi.as_view(), name="condition-list"),
    path("sync", ConditionSyncApi.as_view(), name="condition-sync"),
    path("events", ConditionEventListApi.as_view(), name="condition-event-list"),
    path("<int:condition_id>", ConditionDetailApi.as_view(), name="condition-detail"),
    path("<int:condition_id>/members", ConditionMemberListApi.as_view(), name="condition-member-list"),
]

# The server-rendered page under /conditions/ (config/urls.py includes these with the "conditions" namespace).
from . import views  # noqa: E402

page_urlpatterns = [
    path("", views.conditions_page, name="page"),
    path("sync", views.conditions_sync_submit, name="sync"),
    path("<int:condition_id>/settings", views.condition_settings_submit, name="settings"),
    path("order", views.condition_order_submit, name="order"),
]
