"""Forms of the pages. They only parse input; the order rules live in ``apps.orders.services``."""

from __future__ import annotations

from django import forms
from django.contrib.auth.forms import UserCreationForm

SIDE_CHOICES = [("BUY", "매수 (Buy)"), ("SELL", "매도 (Sell)")]
ORDER_TYPE_CHOICES = [("LIMIT", "지정가 (Limit)"), ("MARKET", "시장가 (Market)")]

# A form field's problem reported with the service's error code for the same problem.
FIELD_ERROR_CODES = {
    "side": "invalid_side",
    "order_type": "invalid_order_type",
    "quantity": "invalid_quantity",
    "price": "invalid_price",
    "client_order_id": "invalid_client_order_id",
}


class SignUpForm(UserCreationForm):
    class Meta(UserCreationForm.Meta):
        fields = ("username",)


class OrderTicketForm(forms.Form):
    side = forms.ChoiceField(choices=SIDE_CHOICES)
    order_type = forms.ChoiceField(choices=ORDER_TYPE_CHOICES)
    quantity = forms.IntegerField(min_value=1, max_value=10**9)
    price = forms.IntegerField(required=False, min_value=1, max_value=10**9)
    client_order_id = forms.CharField(required=False, max_length=64)

    def coded_errors(self) -> list[dict]:
        """The form's errors as ``{"code", "message"}`` items, like the service's ``ApplicationError``."""
        items = []
        for field, messages in self.errors.items():
            code = FIELD_ERROR_CODES.get(field, "invalid_order")
            for message in messages:
                items.append({"code": code, "message": f"{field}: {message}"})
        return items
