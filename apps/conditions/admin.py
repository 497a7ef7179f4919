"""Admin for conditions. Runs, events and members are history: read-only. A condition's toggles are changed
through ``condition_update`` as the operator (the only one who may switch Slack posting on); identity fields
are read-only. The operator links broker connections (whose Kiwoom key is whose) and may share a condition
with groups, whose members then see it read-only."""

from django import forms
from django.contrib import admin, messages

from apps.core.exceptions import ApplicationError

from .models import BrokerConnection, Condition, ConditionEvent, ConditionMember, ConditionRun
from .selectors import current_key_id
from .services import TOGGLES, broker_connection_link, condition_update


class BrokerConnectionForm(forms.ModelForm):
    class Meta:
        model = BrokerConnection
        fields = ("owner", "key_id", "label")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if not self.instance.pk:
            self.fields["key_id"].initial = current_key_id() or ""
            self.fields["key_id"].help_text = "This deployment's Kiwoom key is pre-filled (its id, not the key)."

    def clean(self):
        data = super().clean()
        if self.instance.pk:
            return data
        owner, key_id = data.get("owner"), data.get("key_id")
        if key_id and BrokerConnection.objects.filter(key_id=key_id).exclude(owner=owner).exists():
            raise forms.ValidationError("This Kiwoom key is already linked to another user. [broker_connection_taken]")
        if owner is not None and BrokerConnection.objects.filter(owner=owner).exists():
            raise forms.ValidationError("This user already has a Kiwoom connection. [broker_connection_taken]")
        return data


@admin.register(BrokerConnection)
class BrokerConnectionAdmin(admin.ModelAdmin):
    form = BrokerConnectionForm
    list_display = ("id", "owner", "broker", "key_id", "label", "created_at")
    search_fields = ("owner__username", "key_id", "label")
    list_select_related = ("owner",)

    def get_readonly_fields(self, request, obj=None):
        return ("owner", "key_id") if obj is not None else ()

    def save_model(self, request, obj, form, change):
        if change:
            obj.save(update_fields=["label", "updated_at"])
            return
        # The form refused a taken key or a second connection; the service's own checks (row lock) decide races.
        linked = broker_connection_link(
            user=form.cleaned_data["owner"], key_id=form.cleaned_data["key_id"], label=form.cleaned_data["label"]
        )
        obj.pk = linked.pk

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # its conditions keep their history; relink the key to another user instead


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
    list_filter = (
        "broker",
        "enabled",
        "realtime",
        "notify_email",
        "notify_slack",
        ("connection", admin.EmptyFieldListFilter),
    )
    search_fields = ("name", "seq", "owner__username")
    list_select_related = ("owner",)
    fields = (
        "owner",
        "connection",
        "broker",
        "seq",
        "name",
        *TOGGLES,
        "shared_with",
        "missing_since",
        "last_synced_at",
    )
    readonly_fields = ("owner", "connection", "broker", "seq", "name", "missing_since", "last_synced_at")
    filter_horizontal = ("shared_with",)

    def has_add_permission(self, request) -> bool:
        return False  # conditions come from the broker's list ("sync from Kiwoom")

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # deleting would delete its history

    def save_model(self, request, obj, form, change):
        values = {key: form.cleaned_data[key] for key in TOGGLES if key in form.cleaned_data}
        try:
            condition_update(condition_id=obj.pk, operator=True, **values)
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
