"""`bbapi keys create|list|revoke`: manage API keys directly in the database."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable

from pydantic import Field
from sqlalchemy import make_url
from sqlalchemy.exc import DBAPIError

from services.allinone.settings import EmbeddedDatabase
from services.cli import exits
from services.common import db
from services.common.auth import Capability
from services.common.errors import ApiError
from services.common.settings import add_arguments, from_args
from services.metadata import keys
from services.metadata.db import migrate

DATABASE = "metadata"  # the keys live in the data directory's metadata.db


class KeysSettings(EmbeddedDatabase):
    tenant: str = Field("", description="tenant (group) the key belongs to")
    capability: str = Field("cache-write", description="read, cas-write, cache-write or admin")
    label: str = Field("", description="a note to tell keys apart")


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = commands.add_parser("keys", help="create, list and revoke API keys")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = actions.add_parser("create", help="create a key; the key is the last line printed")
    add_arguments(create, KeysSettings)
    create.set_defaults(run=_command(_create))
    listing = actions.add_parser("list", help="list keys (never the keys themselves)")
    add_arguments(listing, KeysSettings, exclude=("capability", "label"))
    listing.set_defaults(run=_command(_list))
    revoke = actions.add_parser("revoke", help="revoke a key by its id")
    revoke.add_argument("key_id", help="the id shown by `bbapi keys list` (AK...)")
    add_arguments(revoke, KeysSettings, exclude=("tenant", "capability", "label"))
    revoke.set_defaults(run=_command(_revoke))


def _command(action: Callable[[db.Sessions, KeysSettings, argparse.Namespace], Awaitable[None]]
             ) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        settings = from_args(KeysSettings, args)
        missing = _missing_data_dir(settings)
        if missing:
            return exits.fail(missing, exits.NO_INPUT)

        async def go() -> None:
            url = settings.database_url(DATABASE)
            await migrate(url)
            engine = db.create_engine(url, pool_size=1)
            try:
                await action(db.sessions(engine), settings, args)
            finally:
                await engine.dispose()

        try:
            asyncio.run(go())
        except ApiError as err:
            return exits.fail(err.message, exits.FAILED)
        except (OSError, DBAPIError) as err:
            url = make_url(settings.database_url(DATABASE)).render_as_string(hide_password=True)
            reason = str(err.orig if isinstance(err, DBAPIError) else err).strip().splitlines()[0]
            return exits.fail(f"cannot use the database {url}: {reason}", exits.UNAVAILABLE)
        return exits.OK
    return run


def _missing_data_dir(settings: KeysSettings) -> str:
    """Why there is no database to manage keys in, or "" when there is one. A key written to a
    database made up here would be one no server ever sees."""
    if settings.database:
        return ""
    database = settings.data_dir / f"{DATABASE}.db"
    if database.is_file():
        return ""
    return (f"no bbapi data directory at {settings.data_dir.resolve()} (no {database.name}); "
            f"`bbapi serve --data-dir {settings.data_dir}` creates one, or give the server's --data-dir or --database")


async def _create(maker: db.Sessions, settings: KeysSettings, _args: argparse.Namespace) -> None:
    info, key = await keys.create_key(maker, settings.tenant, Capability.parse(settings.capability), settings.label)
    print(f"created key {info.id} for tenant {info.tenant} with capability {info.capability.label}")
    print(key)


async def _list(maker: db.Sessions, settings: KeysSettings, _args: argparse.Namespace) -> None:
    rows = await keys.list_keys(maker, settings.tenant or None)
    print(f"{'ID':<20} {'TENANT':<20} {'CAPABILITY':<12} {'KEY':<6} {'CREATED':<20} {'REVOKED':<20} LABEL")
    for k in rows:
        revoked = k.revoked_at.strftime("%Y-%m-%d %H:%M:%S") if k.revoked_at else "-"
        print(f"{k.id:<20} {k.tenant:<20} {k.capability.label:<12} {k.hint:<6} "
              f"{k.created_at:%Y-%m-%d %H:%M:%S}  {revoked:<20} {k.label}")


async def _revoke(maker: db.Sessions, _settings: KeysSettings, args: argparse.Namespace) -> None:
    info = await keys.revoke_key(maker, args.key_id)
    print(f"revoked key {info.id} of tenant {info.tenant}")
