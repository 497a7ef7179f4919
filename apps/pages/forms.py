"""Forms of the pages. They only parse input; the order rules live in ``apps.trading.orders.placement``."""

from __future__ import annotations

from django import forms
from django.contrib.auth.forms import UserCreationForm
from django.utils.translation import gettext_lazy as _

from apps.core.krx import phases

SIDE_CHOICES = [("BUY", _("Buy")), ("SELL", _("Sell"))]
#: The ticket's order types with their KIS order codes (krx-rules §3.3): the regular session's limit and market
#: orders, and the closing-price and after-hours sessions' own kinds (``apps.core.krx.phases`` order kinds).
ORDER_TYPE_CHOICES = [
    ("LIMIT", _("Limit")),  # 00
    ("MARKET", _("Market")),  # 01
    ("PRE_CLOSE_PRICE", _("Pre-open, previous close")),  # 05
    ("POST_CLOSE_PRICE", _("After-hours, today's close")),  # 06
    ("AFTER_HOURS_SINGLE", _("After-hours single price")),  # 07
]
#: Order types the user gives a price for; the closing-price kinds trade at the close, market orders at the book.
PRICED_TYPES = frozenset({"LIMIT", "AFTER_HOURS_SINGLE"})
ROUTE_CHOICES = [
    (phases.KRX, _("KRX Korea Exchange")),
    (phases.NXT, _("NXT Nextrade")),
    (phases.SOR, _("SOR smart routing (best of KRX and NXT)")),
]

#: Conditional orders of the ticket (``apps.trading.orders.models.TriggerType``); empty: a plain order.
TRIGGER_CHOICES = [
    ("", _("None")),
    ("STOP", _("Stop, market on trigger")),
    ("STOP_LIMIT", _("Stop-limit: the price above on trigger")),
    ("TAKE_PROFIT", _("Take-profit, market on trigger")),
    ("TRAILING_STOP", _("Trailing stop")),
]

# A form field's problem reported with the service's error code for the same problem.
FIELD_ERROR_CODES = {
    "side": "invalid_side",
    "order_type": "invalid_order_type",
    "quantity": "invalid_quantity",
    "price": "invalid_price",
    "route": "invalid_route",
    "client_order_id": "invalid_client_order_id",
    "trigger_type": "invalid_trigger",
    "trigger_price": "invalid_trigger",
    "trail_amount": "invalid_trigger",
    "trail_percent": "invalid_trigger",
    "take_profit_price": "invalid_trigger",
    "stop_loss_price": "invalid_trigger",
}


class SignUpForm(UserCreationForm):
    class Meta(UserCreationForm.Meta):
        fields = ("username",)


class OrderTicketForm(forms.Form):
    side = forms.ChoiceField(choices=SIDE_CHOICES)
    order_type = forms.ChoiceField(choices=ORDER_TYPE_CHOICES)
    route = forms.ChoiceField(choices=ROUTE_CHOICES, required=False)
    quantity = forms.IntegerField(min_value=1, max_value=10**9)
    price = forms.IntegerField(required=False, min_value=1, max_value=10**9)
    client_order_id = forms.CharField(required=False, max_length=64)
    trigger_type = forms.ChoiceField(choices=TRIGGER_CHOICES, required=False)
    trigger_price = forms.IntegerField(required=False, min_value=1, max_value=10**9)
    trail_amount = forms.IntegerField(required=False, min_value=1, max_value=10**9)
    trail_percent = forms.DecimalField(required=False, min_value=0, max_value=50, max_digits=5, decimal_places=2)
    take_profit_price = forms.IntegerField(required=False, min_value=1, max_value=10**9)
    stop_loss_price = forms.IntegerField(required=False, min_value=1, max_value=10**9)

    def clean_route(self) -> str:
        return self.cleaned_data.get("route") or phases.KRX  # a ticket without the field routes to KRX

    def coded_errors(self) -> list[dict]:
        """The form's errors as ``{"code", "message"}`` items, like the service's ``ApplicationError``."""
        items = []
        for field, messages in self.errors.items():
            code = FIELD_ERROR_CODES.get(field, "invalid_order")
            for message in messages:
                items.append({"code": code, "message": f"{field}: {message}"})
        return items
