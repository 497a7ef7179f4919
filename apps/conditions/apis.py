"""Condition API (session or token auth): you see the conditions of your own broker connection and those the
operator shared with your groups (read-only); you change only your own, and never the e-mail address (your
verified one) or Slack (the operator's switch)."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core.exceptions import ValidationFailed, parse_id
from apps.core.pagination import BoundedLimitOffsetPagination

from .exceptions import OperatorOnlySetting
from .models import EventKind
from .selectors import (
    condition_event_list_for_user,
    condition_get_for_user,
    condition_list_with_members,
    condition_member_list,
)
from .services import condition_update, conditions_sync


class MemberOutput(serializers.Serializer):
    code = serializers.CharField()
    name = serializers.CharField()
    since = serializers.DateTimeField()
    price_in = serializers.IntegerField(allow_null=True)


class ConditionOutput(serializers.Serializer):
    id = serializers.IntegerField()
    broker = serializers.CharField()
    seq = serializers.CharField()
    name = serializers.CharField()
    enabled = serializers.BooleanField()
    realtime = serializers.BooleanField()
    notify_browser = serializers.BooleanField()
    notify_email = serializers.BooleanField()
    email_recipients = serializers.SerializerMethodField(help_text="your verified address (empty: none yet)")
    notify_slack = serializers.BooleanField(help_text="set by the operator")
    owned = serializers.SerializerMethodField(help_text="false: shared with you by the operator (read-only)")
    missing_since = serializers.DateTimeField(allow_null=True)
    last_synced_at = serializers.DateTimeField(allow_null=True)
    members = MemberOutput(many=True, source="members.all")

    def get_email_recipients(self, obj) -> list[str]:
        return obj.recipients()

    def get_owned(self, obj) -> bool:
        request = self.context.get("request")
        return bool(request is not None and obj.owner_id == request.user.pk)


class ConditionUpdateInput(serializers.Serializer):
    enabled = serializers.BooleanField(required=False)
    realtime = serializers.BooleanField(required=False, help_text="real-time alerts on the feed")
    notify_browser = serializers.BooleanField(required=False)
    notify_email = serializers.BooleanField(required=False, help_text="to your verified e-mail address")


class EventOutput(serializers.Serializer):
    id = serializers.IntegerField()
    condition = serializers.IntegerField(source="condition_id")
    condition_name = serializers.CharField(source="condition.name")
    code = serializers.CharField()
    name = serializers.CharField()
    kind = serializers.ChoiceField(choices=EventKind.choices)
    at = serializers.DateTimeField()
    price = serializers.IntegerField(allow_null=True)
    source = serializers.CharField()
    created_at = serializers.DateTimeField()


class SyncOutput(serializers.Serializer):
    created = serializers.ListField(child=serializers.CharField())
    renamed = serializers.ListField(child=serializers.CharField())
    missing = serializers.ListField(child=serializers.CharField())
    restored = serializers.ListField(child=serializers.CharField())
    total = serializers.IntegerField()


OPERATOR_FIELDS = ("notify_slack", "email_recipients")


class ConditionListApi(APIView):
    @extend_schema(responses=ConditionOutput(many=True), summary="Your Kiwoom conditions (조건검색) and live members")
    def get(self, request):
        conditions = condition_list_with_members(user=request.user)
        return Response(ConditionOutput(conditions, many=True, context={"request": request}).data)


class ConditionDetailApi(APIView):
    @extend_schema(responses=ConditionOutput, summary="One of your conditions")
    def get(self, request, condition_id: int):
        condition = condition_get_for_user(user=request.user, condition_id=condition_id)
        return Response(ConditionOutput(condition, context={"request": request}).data)

    @extend_schema(request=ConditionUpdateInput, responses=ConditionOutput, summary="Change your condition's toggles")
    def patch(self, request, condition_id: int):
        if isinstance(request.data, dict):
            asked = [key for key in OPERATOR_FIELDS if key in request.data]
            if asked:
                raise OperatorOnlySetting(
                    f"{', '.join(asked)}: Slack is the operator's switch and e-mail goes to your verified address.",
                    fields={key: ["Operator only."] for key in asked},
                )
        data = ConditionUpdateInput(data=request.data)
        data.is_valid(raise_exception=True)
        condition = condition_update(condition_id=condition_id, user=request.user, **data.validated_data)
        return Response(ConditionOutput(condition, context={"request": request}).data)


class ConditionSyncApi(APIView):
    @extend_schema(
        request=None,
        responses=SyncOutput,
        summary="Read your condition list from Kiwoom (CNSRLST); needs a broker connection linked to you",
    )
    def post(self, request):
        result = conditions_sync(owner=request.user)
        return Response(SyncOutput(result).data)


class ConditionEventListApi(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter("condition", int, required=False),
            OpenApiParameter("code", str, required=False, description="stock code"),
            OpenApiParameter("kind", str, enum=EventKind.values, required=False),
            OpenApiParameter("limit", int, required=False),
            OpenApiParameter("offset", int, required=False),
        ],
        responses=EventOutput(many=True),
        summary="Entries (IN) and exits (OUT) of your conditions, newest first",
    )
    def get(self, request):
        params = request.query_params
        condition_id = params.get("condition") or None
        if condition_id is not None:
            if parse_id(condition_id) is None:
                raise ValidationFailed(
                    "Invalid condition.", code="invalid_condition", fields={"condition": ["a condition id"]}
                )
            condition_id = condition_get_for_user(user=request.user, condition_id=condition_id).pk
        kind = (params.get("kind") or "").upper() or None
        if kind is not None and kind not in EventKind.values:
            raise ValidationFailed(
                "Invalid kind.", code="invalid_kind", fields={"kind": [f"one of {EventKind.values}"]}
            )
        events = condition_event_list_for_user(
            user=request.user, condition_id=condition_id, code=params.get("code") or None, kind=kind
        )
        paginator = BoundedLimitOffsetPagination()
        page = paginator.paginate_queryset(events, request, view=self)
        return paginator.get_paginated_response(EventOutput(page, many=True).data)


class ConditionMemberListApi(APIView):
    @extend_schema(responses=MemberOutput(many=True), summary="The stocks in one of your conditions right now")
    def get(self, request, condition_id: int):
        condition = condition_get_for_user(user=request.user, condition_id=condition_id)
        return Response(MemberOutput(condition_member_list(condition_id=condition.pk), many=True).data)
