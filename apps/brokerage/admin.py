from django import forms
from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

from apps.trading.accounts import admin as accounts_admin  # registers PaperAccount first
from apps.trading.accounts.models import PaperAccount

from .models import BrokerBalance, BrokerDisagreement, BrokerExecution, BrokerLink, BrokerOrder
from .services import broker_link_save


class BrokerLinkForm(forms.ModelForm):
    """Keys are written only: the stored ciphertext is never shown; leave both empty to keep them."""

    app_key = forms.CharField(widget=forms.PasswordInput, required=False)
    app_secret = forms.CharField(widget=forms.PasswordInput, required=False)

    class Meta:
        model = BrokerLink
        fields = ("account", "env", "cano", "product_code", "hts_id", "daily_value_limit", "active")

    def clean(self):
        data = super().clean()
        if self.instance.pk is None and not (data.get("app_key") and data.get("app_secret")):
            raise forms.ValidationError("A new link needs the app key and secret.")
        return data


@admin.register(BrokerLink)
class BrokerLinkAdmin(admin.ModelAdmin):
    form = BrokerLinkForm
    list_display = ("account", "env", "masked_cano", "hts_id", "key_hint", "real_opt_in", "daily_value_limit", "active")
    list_filter = ("env", "real_opt_in", "active")
    readonly_fields = ("real_opt_in", "real_opt_in_at")

    @admin.display(description="account no.")
    def masked_cano(self, obj: BrokerLink) -> str:
        return f"{obj.cano[:4]}****"

    @admin.display(description="app key")
    def key_hint(self, obj: BrokerLink) -> str:
        return f"{obj.app_key_hint}…"

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        if data.get("app_key") and data.get("app_secret"):
            broker_link_save(
                account=data["account"], env=data["env"], cano=data["cano"], product_code=data["product_code"],
                hts_id=data["hts_id"], app_key=data["app_key"], app_secret=data["app_secret"],
                daily_value_limit=data["daily_value_limit"],
            )  # fmt: skip
        elif change:
            super().save_model(request, obj, form, change)


class ExecutionInline(admin.TabularInline):
    model = BrokerExecution
    extra = 0
    can_delete = False
    readonly_fields = ("quantity", "price", "venue", "source", "broker_cumulative_qty", "dedupe_key", "created_at")


@admin.register(BrokerOrder)
class BrokerOrderAdmin(admin.ModelAdmin):
    """Orders of broker-linked accounts (the paper engine's are under Orders): each says where it was executed."""

    list_display = ("id", "link", "code", "side", "quantity", "limit_price", "executed_where", "status", "filled_qty",
                    "noticed_qty", "cancelled_qty", "broker_order_no", "created_at")  # fmt: skip
    list_filter = ("env", "status", "venue")
    search_fields = ("code", "broker_order_no", "client_order_id", "link__account__user__username", "=id")
    inlines = [ExecutionInline]
    readonly_fields = [f.name for f in BrokerOrder._meta.fields]

    @admin.display(description="executed at")
    def executed_where(self, obj: BrokerOrder) -> str:
        return obj.executed_at

    def has_add_permission(self, request) -> bool:
        return False  # orders are placed through the order API or pages, with their rules

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # an order's reserved value counts in the link's daily limit, and it is the audit trail


@admin.register(BrokerBalance)
class BrokerBalanceAdmin(admin.ModelAdmin):
    """The broker's last balance of each link (it wins; differences are under Broker disagreements)."""

    list_display = ("link", "cash", "securities_value", "total_value", "fetched_at")
    readonly_fields = [f.name for f in BrokerBalance._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(BrokerDisagreement)
class BrokerDisagreementAdmin(admin.ModelAdmin):
    list_display = ("created_at", "link", "order", "kind", "ours", "broker")
    list_filter = ("kind",)
    readonly_fields = ("link", "order", "kind", "ours", "broker", "created_at")


class BrokerLinkInline(admin.StackedInline):
    """The account page shows its broker link (read only: keys never shown; edit it on its own page)."""

    model = BrokerLink
    extra = 0
    max_num = 1
    can_delete = False
    fields = ("edit", "env", "masked_cano", "product_code", "hts_id", "key_hint", "real_opt_in", "daily_value_limit",
              "active", "balance_as_of")  # fmt: skip
    readonly_fields = fields

    @admin.display(description="link")
    def edit(self, obj: BrokerLink) -> str:
        url = reverse("admin:brokerage_brokerlink_change", args=[obj.pk])
        return format_html('<a href="{}">{}</a>', url, "Edit the broker link")

    @admin.display(description="account no.")
    def masked_cano(self, obj: BrokerLink) -> str:
        return f"{obj.cano[:4]}****"

    @admin.display(description="app key")
    def key_hint(self, obj: BrokerLink) -> str:
        return f"{obj.app_key_hint}…"

    @admin.display(description="broker balance read at")
    def balance_as_of(self, obj: BrokerLink) -> str:
        balance = BrokerBalance.objects.filter(link=obj).first()
        return f"{balance.fetched_at:%Y-%m-%d %H:%M:%S} UTC ({balance.cash:,} KRW cash)" if balance else "never"

    def has_add_permission(self, request, obj=None) -> bool:
        return False  # linked on the broker link page (the keys are sealed there)


def _register_link_inline() -> None:
    account_admin = admin.site._registry.get(PaperAccount)
    if account_admin is not None and BrokerLinkInline not in account_admin.inlines:
        account_admin.inlines = [*account_admin.inlines, BrokerLinkInline]


assert accounts_admin  # imported for its registration
_register_link_inline()
