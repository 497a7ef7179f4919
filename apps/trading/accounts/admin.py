from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from apps.core.exceptions import ApplicationError
from apps.trading.orders.release import paper_account_reset

from .models import PaperAccount, PaperAccountReset, VerifiedEmail


@admin.register(PaperAccount)
class PaperAccountAdmin(admin.ModelAdmin[PaperAccount]):
    list_display = ("id", "user", "name", "cash", "reserved_cash", "initial_cash", "commission_rate", "created_at")
    list_select_related = ("user",)
    list_filter = ("created_at",)
    search_fields = ("user__username", "name")
    # Money, its owner and its fee terms change only through services; the admin shows them read-only.
    readonly_fields = (
        "user", "cash", "reserved_cash", "initial_cash", "commission_rate", "created_at", "updated_at", "reset_at",
    )  # fmt: skip
    actions = ["reset_accounts"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # accounts are opened through paper_account_create (the API, the first login)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # deleting would drop open orders and positions without releasing them: reset instead

    @admin.action(description="Reset the selected accounts (cancel orders, clear positions, restore cash)")
    def reset_accounts(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        done, failed = 0, []
        for account_id in queryset.values_list("pk", flat=True):
            try:
                paper_account_reset(account_id=account_id, reset_by=request.user)
                done += 1
            except ApplicationError as exc:
                failed.append(f"#{account_id}: {exc.message}")
        if done:
            self.message_user(request, f"{done} account(s) reset; an audit record was kept for each.", messages.SUCCESS)
        if failed:
            self.message_user(request, "Not reset: " + "; ".join(failed), messages.WARNING)


@admin.register(PaperAccountReset)
class PaperAccountResetAdmin(admin.ModelAdmin[PaperAccountReset]):
    list_display = ("account", "reset_at", "reset_by", "cash_before", "positions_cost_before", "cancelled_orders")
    list_select_related = ("account__user", "reset_by")
    search_fields = ("account__user__username",)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [f.name for f in PaperAccountReset._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(VerifiedEmail)
class VerifiedEmailAdmin(admin.ModelAdmin[VerifiedEmail]):
    """Addresses users proved they read (``/accounts/email/``); the operator may record one they checked."""

    list_display = ("user", "email", "verified_at")
    search_fields = ("user__username", "email")
    list_select_related = ("user",)
