"""Imports: the profiles that say what a file is loaded into (``profiles``) and the target
databases they name (``targets``); the ``import`` job's handler is in ``tasks/``."""
