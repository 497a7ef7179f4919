"""Watchlist API (session or token auth): only your own lists exist for you; another user's list id is a 404."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core.exceptions import ValidationFailed, parse_id

from .exceptions import WatchlistNotFound
from .selectors import watchlist_get_for_user, watchlist_list_for_user
from .services import (
    watchlist_create,
    watchlist_delete,
    watchlist_item_add,
    watchlist_item_remove,
    watchlist_items_reorder,
    watchlist_update,
    watchlists_reorder,
)


class ItemOutput(serializers.Serializer):
    code = serializers.CharField(source="stock.code")
    name = serializers.CharField(source="stock.name")
    market = serializers.CharField(source="stock.market")
    position = serializers.IntegerField()


class WatchlistOutput(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    position = serializers.IntegerField()
    chosen = serializers.BooleanField(help_text="The list the dashboard shows.")
    items = ItemOutput(many=True, source="items.all")


class NameInput(serializers.Serializer):
    name = serializers.CharField(max_length=40, trim_whitespace=True)


class UpdateInput(serializers.Serializer):
    name = serializers.CharField(max_length=40, required=False)
    chosen = serializers.BooleanField(required=False, help_text="true: the dashboard shows this list")


class WatchlistsOrderInput(serializers.Serializer):
    ids = serializers.ListField(child=serializers.IntegerField(min_value=1), max_length=1000)


class ItemInput(serializers.Serializer):
    code = serializers.CharField(max_length=6, min_length=6)


class ItemsOrderInput(serializers.Serializer):
    codes = serializers.ListField(child=serializers.CharField(max_length=6), max_length=1000)


def _valid(serializer_class, data) -> dict:
    serializer = serializer_class(data=data)
    if not serializer.is_valid():
        raise ValidationFailed("Invalid input.", code="invalid_watchlist", fields=serializer.errors)
    return serializer.validated_data


def _list_id(raw) -> int | None:
    """``default`` (the chosen list) → None; a malformed id is a 404, like another user's."""
    if raw == "default":
        return None
    found = parse_id(raw)
    if found is None:
        raise WatchlistNotFound("No such watchlist.")
    return found


def _one(user, watchlist_id: int) -> dict:
    found = next((w for w in watchlist_list_for_user(user=user) if w.pk == watchlist_id), None)
    if found is None:
        raise WatchlistNotFound("No such watchlist.")
    return WatchlistOutput(found).data


class WatchlistListApi(APIView):
    @extend_schema(responses=WatchlistOutput(many=True), summary="Your watchlists, in order, with their stocks")
    def get(self, request):
        return Response(WatchlistOutput(watchlist_list_for_user(user=request.user), many=True).data)

    @extend_schema(request=NameInput, responses={201: WatchlistOutput}, summary="Create a watchlist")
    def post(self, request):
        data = _valid(NameInput, request.data)
        watchlist = watchlist_create(user=request.user, name=data["name"])
        return Response(_one(request.user, watchlist.pk), status=status.HTTP_201_CREATED)


class WatchlistDetailApi(APIView):
    @extend_schema(responses=WatchlistOutput, summary="One of your watchlists")
    def get(self, request, watchlist_id: str):
        found = watchlist_get_for_user(user=request.user, watchlist_id=_list_id(watchlist_id))
        return Response(_one(request.user, found.pk))

    @extend_schema(request=UpdateInput, responses=WatchlistOutput, summary="Rename or choose a watchlist")
    def patch(self, request, watchlist_id: str):
        data = _valid(UpdateInput, request.data)
        found = watchlist_update(
            user=request.user, watchlist_id=_list_id(watchlist_id), name=data.get("name"), chosen=data.get("chosen")
        )
        return Response(_one(request.user, found.pk))

    @extend_schema(responses={204: None}, summary="Delete a watchlist")
    def delete(self, request, watchlist_id: str):
        watchlist_delete(user=request.user, watchlist_id=_list_id(watchlist_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class WatchlistOrderApi(APIView):
    @extend_schema(
        request=WatchlistsOrderInput, responses=WatchlistOutput(many=True), summary="Reorder your watchlists"
    )
    def post(self, request):
        data = _valid(WatchlistsOrderInput, request.data)
        watchlists_reorder(user=request.user, ids=[str(i) for i in data["ids"]])
        return Response(WatchlistOutput(watchlist_list_for_user(user=request.user), many=True).data)


class WatchlistItemsApi(APIView):
    @extend_schema(
        request=ItemInput, responses={201: WatchlistOutput, 200: WatchlistOutput},
        summary="Add a stock to a watchlist (`default`: the chosen one, created if you have none)",
    )  # fmt: skip
    def post(self, request, watchlist_id: str):
        data = _valid(ItemInput, request.data)
        item, created = watchlist_item_add(user=request.user, watchlist_id=_list_id(watchlist_id), code=data["code"])
        return Response(
            _one(request.user, item.watchlist_id), status=status.HTTP_201_CREATED if created else status.HTTP_200_OK
        )


class WatchlistItemApi(APIView):
    @extend_schema(responses={204: None}, summary="Remove a stock from a watchlist")
    def delete(self, request, watchlist_id: str, code: str):
        watchlist_item_remove(user=request.user, watchlist_id=_list_id(watchlist_id), code=code[:6])
        return Response(status=status.HTTP_204_NO_CONTENT)


class WatchlistItemsOrderApi(APIView):
    @extend_schema(request=ItemsOrderInput, responses=WatchlistOutput, summary="Reorder a watchlist's stocks")
    def post(self, request, watchlist_id: str):
        data = _valid(ItemsOrderInput, request.data)
        found = watchlist_get_for_user(user=request.user, watchlist_id=_list_id(watchlist_id))
        watchlist_items_reorder(user=request.user, watchlist_id=found.pk, codes=data["codes"])
        return Response(_one(request.user, found.pk))
