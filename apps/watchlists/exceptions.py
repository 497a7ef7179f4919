from apps.core.exceptions import Conflict, NotFound, ValidationFailed


class WatchlistNotFound(NotFound):
    """Also what another user's list id answers: a list's existence is not disclosed."""

    default_code = "watchlist_not_found"


class WatchlistLimit(Conflict):
    default_code = "watchlist_limit"


class WatchlistNameTaken(Conflict):
    default_code = "watchlist_name_taken"


class InvalidWatchlist(ValidationFailed):
    default_code = "invalid_watchlist"
