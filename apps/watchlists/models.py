"""Personal watchlists: several named, ordered lists of stocks per user, private to their owner.

One list of a user may be ``chosen``: the dashboard shows it live (at most one per user, a partial unique
constraint). Positions are 0..n-1 within their owner (lists) or list (items); the services rewrite them whole.
"""

from django.conf import settings
from django.db import models

from apps.core.models import TimeStampedModel


class Watchlist(TimeStampedModel):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="watchlists")
    name = models.CharField(max_length=40)
    position = models.PositiveIntegerField(default=0)
    chosen = models.BooleanField(default=False, help_text="The list the dashboard shows.")

    class Meta:
        ordering = ["user", "position", "id"]
        constraints = [
            models.UniqueConstraint(fields=["user", "name"], name="watchlist_name_unique_per_user"),
            models.UniqueConstraint(
                fields=["user"], condition=models.Q(chosen=True), name="watchlist_one_chosen_per_user"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user_id}: {self.name}"


class WatchlistItem(models.Model):
    watchlist = models.ForeignKey(Watchlist, on_delete=models.CASCADE, related_name="items")
    stock = models.ForeignKey("marketdata.Stock", on_delete=models.PROTECT, related_name="+")
    position = models.PositiveIntegerField(default=0)
    added_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["watchlist", "position", "id"]
        constraints = [
            models.UniqueConstraint(fields=["watchlist", "stock"], name="watchlist_item_unique_stock"),
        ]

    def __str__(self) -> str:
        return f"{self.watchlist_id}: {self.stock_id}"
