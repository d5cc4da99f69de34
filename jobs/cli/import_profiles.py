"""``conveyor import-profiles``: profiles kept in git, applied in one command; the same checks
and versions as ``/v1/import-profiles``."""

from __future__ import annotations

from typing import Any

import click
import yaml

from jobs.cli.support import Context, actor, pass_context, table, to_json
from jobs.errors import InvalidInputError
from jobs.imports import profiles


@click.group("import-profiles")
def import_profiles_group() -> None:
    """List import profiles; apply a file of them."""


@import_profiles_group.command("list")
@click.option("--json", "as_json", is_flag=True)
@pass_context
def list_command(ctx: Context, as_json: bool) -> None:
    """The latest version of every profile."""
    with ctx.sessions() as session:
        found = [profile.to_dict() for profile in profiles.list_latest(session)]
    if as_json:
        click.echo(to_json(found))
        return
    rows = [
        (p["name"], str(p["version"]), p["mode"], f"{p['target']}:{p['schema']}.{p['table']}") for p in found
    ]
    table([("NAME", "VERSION", "MODE", "TABLE"), *rows])


@import_profiles_group.command("apply")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@pass_context
def apply(ctx: Context, path: str) -> None:
    """Save each profile of PATH (YAML: a list of profiles, or a mapping of name to profile) whose
    definition differs from its latest version; all or none: a profile that does not fit stops it."""
    definitions = _read(path)
    with ctx.sessions.begin() as session:
        for name, body in definitions.items():
            profile, saved = profiles.save(
                session, ctx.settings, name, profiles.load_definition(body), actor()
            )
            click.echo(f"{name}: {'saved as' if saved else 'unchanged at'} version {profile.version}")


def _read(path: str) -> dict[str, dict[str, Any]]:
    try:
        with open(path, encoding="utf-8") as file:
            loaded = yaml.safe_load(file)
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"{path} is not YAML: {exc}") from None
    if isinstance(loaded, list) and all(isinstance(item, dict) and "name" in item for item in loaded):
        return {str(item["name"]): {k: v for k, v in item.items() if k != "name"} for item in loaded}
    if isinstance(loaded, dict) and all(isinstance(value, dict) for value in loaded.values()):
        return {str(name): value for name, value in loaded.items()}
    raise InvalidInputError(
        f"{path} must hold a list of profiles, each with a name, or a mapping of name to profile."
    )
