"""The shared core: settings, database, models and the service that changes a job's state."""
