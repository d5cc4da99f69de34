"""The platform's upkeep of its own data, as the maintenance handlers in ``tasks`` call it:
each step is a short transaction of its own, so upkeep never holds locks the API waits on."""

from jobs.upkeep.purges import purge_expired_dead_letters, purge_expired_keys

__all__ = ["purge_expired_dead_letters", "purge_expired_keys"]
