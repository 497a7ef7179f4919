"""Notification API (session or token auth): your channels (create, verify, change, delete) and your
notification history. Another user's channel ids answer 404. Secrets are write-only: a channel shows its
masked label, never its webhook URL or bot token."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core.exceptions import ValidationFailed
from apps.core.pagination import BoundedLimitOffsetPagination

from .models import ALL_EVENTS, ChannelKind, DeliveryStatus, EventKind
from .selectors import channel_for_user, channel_list_for_user, notification_list_for_user
from .services import channel_create, channel_delete, channel_update, channel_verification_send, channel_verify


class ChannelOutput(serializers.Serializer):
    id = serializers.IntegerField()
    kind = serializers.ChoiceField(choices=ChannelKind.choices)
    label = serializers.CharField(help_text="masked destination")
    events = serializers.ListField(child=serializers.ChoiceField(choices=EventKind.choices))
    enabled = serializers.BooleanField()
    verified = serializers.BooleanField()
    verified_at = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()


class DestinationInput(serializers.Serializer):
    address = serializers.CharField(required=False, max_length=254, help_text="email")
    webhook_url = serializers.CharField(
        required=False, max_length=500, help_text="slack: https://hooks.slack.com/services/..."
    )
    bot_token = serializers.CharField(required=False, max_length=80, help_text="telegram: from @BotFather")
    chat_id = serializers.CharField(required=False, max_length=40, help_text="telegram: chat id or @channel")


class ChannelCreateInput(serializers.Serializer):
    kind = serializers.ChoiceField(choices=ChannelKind.choices)
    destination = DestinationInput(required=False, default=dict)
    events = serializers.ListField(
        child=serializers.ChoiceField(choices=EventKind.choices), required=False, max_length=len(ALL_EVENTS) * 2
    )


class ChannelUpdateInput(serializers.Serializer):
    events = serializers.ListField(
        child=serializers.ChoiceField(choices=EventKind.choices), required=False, max_length=len(ALL_EVENTS) * 2
    )
    enabled = serializers.BooleanField(required=False)


class VerifyInput(serializers.Serializer):
    code = serializers.CharField(max_length=12)


class DeliveryOutput(serializers.Serializer):
    channel = serializers.IntegerField(source="channel_id")
    kind = serializers.CharField(source="channel.kind")
    status = serializers.ChoiceField(choices=DeliveryStatus.choices)
    attempts = serializers.IntegerField()
    last_error = serializers.CharField()
    sent_at = serializers.DateTimeField(allow_null=True)


class NotificationOutput(serializers.Serializer):
    id = serializers.IntegerField()
    key = serializers.CharField()
    event = serializers.ChoiceField(choices=EventKind.choices)
    title = serializers.CharField()
    body = serializers.CharField()
    url = serializers.CharField()
    created_at = serializers.DateTimeField()
    deliveries = DeliveryOutput(many=True, source="deliveries.all")


def _valid(serializer_class, data):
    if not isinstance(data, dict):
        raise ValidationFailed("a JSON object is expected", code="invalid_body")
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


class ChannelListApi(APIView):
    @extend_schema(responses=ChannelOutput(many=True), summary="Your notification channels")
    def get(self, request):
        return Response(ChannelOutput(channel_list_for_user(user=request.user), many=True).data)

    @extend_schema(request=ChannelCreateInput, responses={201: ChannelOutput}, summary="Add a notification channel")
    def post(self, request):
        data = _valid(ChannelCreateInput, request.data)
        channel = channel_create(
            user=request.user,
            kind=data["kind"],
            destination=dict(data.get("destination") or {}),
            events=data.get("events"),
        )
        return Response(ChannelOutput(channel).data, status=status.HTTP_201_CREATED)


class ChannelDetailApi(APIView):
    @extend_schema(responses=ChannelOutput, summary="One of your channels")
    def get(self, request, channel_id: int):
        return Response(ChannelOutput(channel_for_user(user=request.user, channel_id=channel_id)).data)

    @extend_schema(
        request=ChannelUpdateInput, responses=ChannelOutput, summary="Change a channel's events or switch it"
    )
    def patch(self, request, channel_id: int):
        data = _valid(ChannelUpdateInput, request.data)
        channel = channel_update(user=request.user, channel_id=channel_id, **data)
        return Response(ChannelOutput(channel).data)

    @extend_schema(request=None, responses={204: None}, summary="Delete a channel")
    def delete(self, request, channel_id: int):
        channel_delete(user=request.user, channel_id=channel_id)
        return Response(status=status.HTTP_204_NO_CONTENT)


class ChannelVerificationApi(APIView):
    @extend_schema(request=None, responses=ChannelOutput, summary="Send a verification code through the channel")
    def post(self, request, channel_id: int):
        return Response(ChannelOutput(channel_verification_send(user=request.user, channel_id=channel_id)).data)


class ChannelVerifyApi(APIView):
    @extend_schema(
        request=VerifyInput, responses=ChannelOutput, summary="Confirm the channel with the code it received"
    )
    def post(self, request, channel_id: int):
        data = _valid(VerifyInput, request.data)
        return Response(ChannelOutput(channel_verify(user=request.user, channel_id=channel_id, code=data["code"])).data)


class NotificationListApi(APIView):
    @extend_schema(
        responses=NotificationOutput(many=True), summary="Your notifications and their deliveries, newest first"
    )
    def get(self, request):
        paginator = BoundedLimitOffsetPagination()
        page = paginator.paginate_queryset(notification_list_for_user(user=request.user), request, view=self)
        return paginator.get_paginated_response(NotificationOutput(page, many=True).data)
