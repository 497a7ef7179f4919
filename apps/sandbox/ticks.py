"""The KRX tick table and price limits now live in :mod:`apps.marketdata.krx_rules` (shared with paper
trading); this module re-exports them for the sandbox broker."""

from apps.marketdata.krx_rules import (
    DEFAULT_TICKS,
    LIMIT_30PCT_EFFECTIVE,
    TABLE_2023,
    TABLE_OLD_KOSDAQ,
    TABLE_OLD_KOSPI,
    TICK_TABLE_2023_EFFECTIVE,
    Band,
    TickTable,
)

__all__ = [
    "DEFAULT_TICKS",
    "LIMIT_30PCT_EFFECTIVE",
    "TABLE_2023",
    "TABLE_OLD_KOSDAQ",
    "TABLE_OLD_KOSPI",
    "TICK_TABLE_2023_EFFECTIVE",
    "Band",
    "TickTable",
]
