from django.urls import path

from .apis import (
    WatchlistDetailApi,
    WatchlistItemApi,
    WatchlistItemsApi,
    WatchlistItemsOrderApi,
    WatchlistListApi,
    WatchlistOrderApi,
)

urlpatterns = [
    path("", WatchlistListApi.as_view(), name="watchlist-list"),
    path("order", WatchlistOrderApi.as_view(), name="watchlist-order"),
    path("<str:watchlist_id>/", WatchlistDetailApi.as_view(), name="watchlist-detail"),
    path("<str:watchlist_id>/items/", WatchlistItemsApi.as_view(), name="watchlist-items"),
    path("<str:watchlist_id>/items/order", WatchlistItemsOrderApi.as_view(), name="watchlist-items-order"),
    path("<str:watchlist_id>/items/<str:code>/", WatchlistItemApi.as_view(), name="watchlist-item"),
]
