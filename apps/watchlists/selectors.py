"""Reads of watchlists, always scoped to their owner."""

from __future__ import annotations

from django.db.models import Prefetch, QuerySet

from .exceptions import WatchlistNotFound
from .models import Watchlist, WatchlistItem


def watchlist_list_for_user(*, user) -> QuerySet[Watchlist]:
    """The user's lists in their order, each with its items (stock loaded) in their order."""
    items = WatchlistItem.objects.select_related("stock").order_by("position", "id")
    return Watchlist.objects.filter(user=user).order_by("position", "id").prefetch_related(Prefetch("items", items))


def watchlist_get_for_user(*, user, watchlist_id: int | None) -> Watchlist:
    """The user's list ``watchlist_id``; WatchlistNotFound for anyone else's (or a malformed id)."""
    found = Watchlist.objects.filter(user=user, pk=watchlist_id).first() if watchlist_id else None
    if found is None:
        raise WatchlistNotFound("No such watchlist.")
    return found


def watchlist_chosen_for_user(*, user) -> Watchlist | None:
    """The list the dashboard shows: the chosen one, else the first; None when the user has none."""
    lists = list(watchlist_list_for_user(user=user))
    return next((w for w in lists if w.chosen), lists[0] if lists else None)


def watchlist_stocks(*, watchlist: Watchlist) -> list:
    """The stocks of ``watchlist`` in its order."""
    return [item.stock for item in watchlist.items.select_related("stock").order_by("position", "id")]
