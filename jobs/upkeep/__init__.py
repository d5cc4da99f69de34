"""The platform's upkeep of its own data, as the maintenance handlers in ``tasks`` call it:
each step is a short transaction of its own, so upkeep never holds locks the API waits on.
Backups (``backups``, ``drills``) are upkeep too: the platform's database is one of their
targets, and their manifest (``manifest``) is the platform's data."""

from jobs.upkeep.postgres import UpkeepError
from jobs.upkeep.purges import purge_expired_dead_letters, purge_expired_keys

__all__ = ["UpkeepError", "purge_expired_dead_letters", "purge_expired_keys"]
