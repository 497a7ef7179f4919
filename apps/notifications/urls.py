"""REST routes under /api/notifications/ and the page under /notifications/ (config/urls.py)."""

from django.urls import path

from . import views
from .apis import ChannelDetailApi, ChannelListApi, ChannelVerificationApi, ChannelVerifyApi, NotificationListApi

urlpatterns = [
    path("channels", ChannelListApi.as_view(), name="notification-channel-list"),
    path("channels/<int:channel_id>", ChannelDetailApi.as_view(), name="notification-channel-detail"),
    path(
        "channels/<int:channel_id>/send-code", ChannelVerificationApi.as_view(), name="notification-channel-send-code"
    ),
    path("channels/<int:channel_id>/verify", ChannelVerifyApi.as_view(), name="notification-channel-verify"),
    path("history", NotificationListApi.as_view(), name="notification-list"),
]

page_urlpatterns = [
    path("", views.notifications_page, name="page"),
    path("channels/add", views.channel_add_submit, name="channel-add"),
    path("channels/<int:channel_id>/send-code", views.channel_send_code_submit, name="channel-send-code"),
    path("channels/<int:channel_id>/verify", views.channel_verify_submit, name="channel-verify"),
    path("channels/<int:channel_id>/settings", views.channel_settings_submit, name="channel-settings"),
    path("channels/<int:channel_id>/delete", views.channel_delete_submit, name="channel-delete"),
]
