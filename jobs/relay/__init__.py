"""The relay process: the outbox publisher, the recovery sweeper and the dead-letter indexer.

Each moves messages between the database and the broker in one direction, and each runs in the
shared ``loop`` that waits out database and broker outages; ``process`` starts them together.
"""
