"""Real-time fan-out: snapshots of ticks and order books, Channels groups, the quote store and the
order-fill tick stream. The feed holder publishes; browsers and the paper-trading engine consume."""
