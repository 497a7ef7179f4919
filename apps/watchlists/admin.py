from django.contrib import admin

from .models import Watchlist, WatchlistItem


class WatchlistItemInline(admin.TabularInline):
    model = WatchlistItem
    extra = 0
    raw_id_fields = ("stock",)


@admin.register(Watchlist)
class WatchlistAdmin(admin.ModelAdmin):
    list_display = ("name", "user", "position", "chosen", "updated_at")
    search_fields = ("name", "user__username")
    raw_id_fields = ("user",)
    inlines = [WatchlistItemInline]
