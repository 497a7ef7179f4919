"""Watchlist services: every change is the owner's, in one transaction, under a row lock.

Lock order: the user row (creating, deleting, reordering or choosing lists), then the list row (its items). Limits
(``WATCHLISTS_MAX_PER_USER`` lists, ``WATCHLIST_MAX_ITEMS`` stocks a list) are counted under those locks, so
concurrent requests cannot exceed them. Another user's list id is "not found" (never "forbidden").
"""

from __future__ import annotations

from collections.abc import Sequence

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction

from apps.core.groups import valid_code
from apps.marketdata.models import Stock

from .exceptions import InvalidWatchlist, WatchlistLimit, WatchlistNameTaken, WatchlistNotFound
from .models import Watchlist, WatchlistItem

DEFAULT_NAME = "관심종목"


def _name(raw) -> str:
    name = str(raw if raw is not None else "").strip()
    if not 1 <= len(name) <= 40 or not name.isprintable():
        raise InvalidWatchlist("A list name is 1-40 printable characters.", fields={"name": ["1-40 characters."]})
    return name


def _lock_user(user) -> None:
    get_user_model().objects.select_for_update().filter(pk=user.pk).first()


def _lock_list(*, user, watchlist_id: int | None) -> Watchlist:
    found = Watchlist.objects.select_for_update().filter(user=user, pk=watchlist_id).first() if watchlist_id else None
    if found is None:
        raise WatchlistNotFound("No such watchlist.")
    return found


def _renumber(rows: Sequence, model) -> None:
    for position, row in enumerate(rows):
        if row.position != position:
            model.objects.filter(pk=row.pk).update(position=position)


@transaction.atomic
def watchlist_create(*, user, name: str) -> Watchlist:
    """A new list at the end of the user's lists; the first one becomes the chosen one."""
    name = _name(name)
    _lock_user(user)
    count = Watchlist.objects.filter(user=user).count()
    if count >= settings.WATCHLISTS_MAX_PER_USER:
        raise WatchlistLimit(f"At most {settings.WATCHLISTS_MAX_PER_USER} watchlists.", fields={"name": ["Too many."]})
    watchlist = Watchlist(user=user, name=name, position=count, chosen=count == 0)
    watchlist.full_clean(validate_unique=False, validate_constraints=False)
    try:
        with transaction.atomic():
            watchlist.save()
    except IntegrityError as exc:
        raise WatchlistNameTaken(f"You already have a list named {name!r}.", fields={"name": ["Taken."]}) from exc
    return watchlist


@transaction.atomic
def watchlist_update(
    *, user, watchlist_id: int | None, name: str | None = None, chosen: bool | None = None
) -> Watchlist:
    """Rename a list and/or make it the one the dashboard shows (``chosen=True``; the user's other lists are
    unchosen). A list cannot be unchosen directly: choose another."""
    _lock_user(user)
    watchlist = _lock_list(user=user, watchlist_id=watchlist_id)
    if name is not None:
        watchlist.name = _name(name)
        try:
            with transaction.atomic():
                Watchlist.objects.filter(pk=watchlist.pk).update(name=watchlist.name)
        except IntegrityError as exc:
            raise WatchlistNameTaken(f"You already have a list named {name!r}.", fields={"name": ["Taken."]}) from exc
    if chosen:
        Watchlist.objects.filter(user=user, chosen=True).exclude(pk=watchlist.pk).update(chosen=False)
        Watchlist.objects.filter(pk=watchlist.pk).update(chosen=True)
        watchlist.chosen = True
    return watchlist


@transaction.atomic
def watchlist_delete(*, user, watchlist_id: int | None) -> None:
    """Delete a list and its items; the others close up, and the first becomes chosen if this one was."""
    _lock_user(user)
    watchlist = _lock_list(user=user, watchlist_id=watchlist_id)
    was_chosen = watchlist.chosen
    watchlist.delete()
    rest = list(Watchlist.objects.filter(user=user).order_by("position", "id"))
    _renumber(rest, Watchlist)
    if was_chosen and rest:
        Watchlist.objects.filter(pk=rest[0].pk).update(chosen=True)


def _permutation(given, existing: list, field: str) -> list:
    if not isinstance(given, list) or len(given) > 1000:
        raise InvalidWatchlist(f"{field} must be a list.", fields={field: ["A list."]})
    if sorted(map(str, given)) != sorted(map(str, existing)) or len(set(map(str, given))) != len(given):
        raise InvalidWatchlist(
            f"{field} must name every entry exactly once.", fields={field: ["Every entry exactly once."]}
        )
    return [str(x) for x in given]


@transaction.atomic
def watchlists_reorder(*, user, ids: list) -> list[Watchlist]:
    """Put the user's lists in the order of ``ids`` (all of them, each once)."""
    _lock_user(user)
    lists = {str(w.pk): w for w in Watchlist.objects.filter(user=user)}
    order = _permutation(ids, list(lists), "ids")
    for position, key in enumerate(order):
        Watchlist.objects.filter(pk=lists[key].pk).update(position=position)
    return list(Watchlist.objects.filter(user=user).order_by("position", "id"))


@transaction.atomic
def watchlist_default_for_user(*, user) -> Watchlist:
    """The chosen list, created (named DEFAULT_NAME) when the user has none yet."""
    _lock_user(user)
    found = Watchlist.objects.filter(user=user).order_by("-chosen", "position", "id").first()
    if found is not None:
        return found
    return watchlist_create(user=user, name=DEFAULT_NAME)


def _stock(code) -> Stock:
    text = str(code or "").strip().upper()
    stock = Stock.objects.filter(code=text, active=True).first() if valid_code(text) else None
    if stock is None:
        raise InvalidWatchlist("Unknown or delisted stock.", code="unknown_stock", fields={"code": ["Unknown stock."]})
    return stock


@transaction.atomic
def watchlist_item_add(*, user, watchlist_id: int | None, code: str) -> tuple[WatchlistItem, bool]:
    """Add a listed stock at the end of a list (``watchlist_id`` None: the chosen list, created if needed);
    (item, created). Adding a stock already there changes nothing."""
    stock = _stock(code)
    if watchlist_id is None:
        watchlist_id = watchlist_default_for_user(user=user).pk
    watchlist = _lock_list(user=user, watchlist_id=watchlist_id)
    existing = WatchlistItem.objects.filter(watchlist=watchlist, stock=stock).first()
    if existing is not None:
        return existing, False
    count = WatchlistItem.objects.filter(watchlist=watchlist).count()
    if count >= settings.WATCHLIST_MAX_ITEMS:
        raise WatchlistLimit(f"A watchlist holds at most {settings.WATCHLIST_MAX_ITEMS} stocks.",
                             fields={"code": ["List full."]})  # fmt: skip
    item = WatchlistItem(watchlist=watchlist, stock=stock, position=count)
    item.full_clean(validate_unique=False, validate_constraints=False)
    item.save()
    return item, True


@transaction.atomic
def watchlist_item_remove(*, user, watchlist_id: int | None, code: str) -> bool:
    """Remove a stock from a list (True when it was there); the rest close up."""
    watchlist = _lock_list(user=user, watchlist_id=watchlist_id)
    deleted, _ = WatchlistItem.objects.filter(watchlist=watchlist, stock__code=str(code or "").upper()).delete()
    _renumber(list(WatchlistItem.objects.filter(watchlist=watchlist).order_by("position", "id")), WatchlistItem)
    return bool(deleted)


@transaction.atomic
def watchlist_items_reorder(*, user, watchlist_id: int | None, codes: list) -> list[WatchlistItem]:
    """Put a list's stocks in the order of ``codes`` (all of them, each once)."""
    watchlist = _lock_list(user=user, watchlist_id=watchlist_id)
    items = {i.stock.code: i for i in WatchlistItem.objects.filter(watchlist=watchlist).select_related("stock")}
    order = _permutation(codes, list(items), "codes")
    for position, code in enumerate(order):
        WatchlistItem.objects.filter(pk=items[code].pk).update(position=position)
    return list(WatchlistItem.objects.filter(watchlist=watchlist).select_related("stock").order_by("position"))
