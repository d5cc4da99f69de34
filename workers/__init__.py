"""Celery workers: the app factory, queues and the lifecycle task class."""
