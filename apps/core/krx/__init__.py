"""KRX facts shared by the product and the sandbox broker: the trading calendar's package layer
(:mod:`.calendar`, :mod:`.special_days`) and the tick sizes and price limits (:mod:`.rules`). No ORM, no I/O
beyond the calendar's local cache file."""
