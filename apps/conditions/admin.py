"""Admin for conditions. Runs, events and members are history: read-only. A condition's toggles are changed
through ``condition_update`` (the same validation as the page and the API); identity fields are read-only."""

from django.contrib import admin, messages

from apps.core.exceptions import ApplicationError

from .models import Condition, ConditionEvent, ConditionMember, ConditionRun
from .services import TOGGLES, condition_update


class _ReadOnlyAdmin(admin.ModelAdmin):
    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False  # viewable (view permission), never edited

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Condition)
class ConditionAdmin(admin.ModelAdmin):
    list_display = ("id", "owner", "seq", "name", "enabled", "realtime", "notify_browser", "notify_email",
                    "notify_slack", "missing_since", "last_synced_at")  # fmt: skip
    list_filter = ("broker", "enabled", "realtime", "notify_email", "notify_slack")
    search_fields = ("name", "seq", "owner__username")
    list_select_related = ("owner",)
    fields = ("owner", "broker", "seq", "name", *TOGGLES, "email_recipients", "missing_since", "last_synced_at")
    readonly_fields = ("owner", "broker", "seq", "name", "missing_since", "last_synced_at")

    def has_add_permission(self, request) -> bool:
        return False  # conditions come from the broker's list ("sync from Kiwoom")

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # deleting would delete its history

    def save_model(self, request, obj, form, change):
        values = {key: form.cleaned_data[key] for key in (*TOGGLES, "email_recipients") if key in form.cleaned_data}
        try:
            condition_update(condition_id=obj.pk, **values)
        except ApplicationError as exc:
            self.message_user(request, f"Not saved: {exc.message} [{exc.code}]", messages.ERROR)


@admin.register(ConditionRun)
class ConditionRunAdmin(_ReadOnlyAdmin):
    list_display = ("id", "condition", "started_at", "finished_at", "status", "hits", "entered", "exited")
    list_filter = ("status",)
    search_fields = ("condition__name", "condition__seq")
    list_select_related = ("condition",)
    date_hierarchy = "started_at"


@admin.register(ConditionEvent)
class ConditionEventAdmin(_ReadOnlyAdmin):
    list_display = ("id", "condition", "kind", "code", "name", "at", "price", "source", "created_at")
    list_filter = ("kind", "source")
    search_fields = ("code", "name", "condition__name", "condition__owner__username")
    list_select_related = ("condition",)
    date_hierarchy = "at"


@admin.register(ConditionMember)
class ConditionMemberAdmin(_ReadOnlyAdmin):
    list_display = ("id", "condition", "code", "name", "since", "price_in")
    search_fields = ("code", "name", "condition__name")
    list_select_related = ("condition",)
