from django.db import models

from apps.core.models import TimeStampedModel


class Market(models.TextChoices):
    KOSPI = "KOSPI", "KOSPI"
    KOSDAQ = "KOSDAQ", "KOSDAQ"


class Stock(TimeStampedModel):
    """A listed stock. The default universe is the largest N by market cap (``rank``)."""

    code = models.CharField(max_length=6, unique=True, help_text="6-digit KRX short code, e.g. 005930.")
    name = models.CharField(max_length=100)
    market = models.CharField(max_length=6, choices=Market.choices)
    active = models.BooleanField(default=True)
    rank = models.PositiveIntegerField(null=True, blank=True, help_text="Rank by market cap at the last refresh.")
    market_cap = models.BigIntegerField(null=True, blank=True, help_text="KRW, at the last refresh.")

    class Meta:
        ordering = ["rank", "code"]
        constraints = [
            models.CheckConstraint(condition=models.Q(code__regex=r"^[0-9A-Z]{6}$"), name="stock_code_format"),
        ]

    def __str__(self) -> str:
        return f"{self.code} {self.name}"
