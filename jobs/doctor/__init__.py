"""``conveyor doctor``: every check of a deployment, each ok, warn, fail or skip, with the
command to run next. ``problems`` (settings a worker refuses to start on) and ``warnings`` are
the settings' own checks."""

from jobs.doctor.timers import problems, warnings

__all__ = ["problems", "warnings"]
