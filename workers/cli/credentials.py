"""Credentials of offices and services (R10) and the HTTP gateway that checks them."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from models.domain import Role
from workers.cli.common import (
    app,
    console,
    engine_for,
    fail,
    keys_for,
    run,
    settings,
    setup_logging,
)

PANEL = "凭证与接口 / Credentials and the HTTP API"

credentials_app = typer.Typer(
    help="API keys of offices and services: each bound to one actor, role and place.",
    no_args_is_help=True,
)
app.add_typer(credentials_app, name="credentials", rich_help_panel=PANEL)


@credentials_app.command("create")
def create(
    actor: Annotated[str, typer.Option("--actor", help="the official's or service's id")],
    role: Annotated[Role, typer.Option("--role")],
    place: Annotated[
        str,
        typer.Option(
            "--place",
            help="the place the office holds: a 12-digit division code (a university: its 5-digit code)",
        ),
    ] = "",
    name: Annotated[str | None, typer.Option("--name", help="shown in the trail")] = None,
    note: Annotated[str, typer.Option("--note", help="who holds it, for the list")] = "",
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Create a credential; prints its API key once (it is not stored)."""
    from store.credentials import create as create_credential

    s = settings()
    try:
        row, token = create_credential(
            engine_for(s),
            keys_for(s).authority,
            actor_id=actor,
            actor_name=name or actor,
            role=role,
            place_code=place,
            note=note,
        )
    except ValueError as e:
        raise fail(str(e), 2) from None
    if as_json:
        console.print_json(json.dumps({"credential": row.id, "api_key": token}))
        return
    console.print(f"credential [bold]{row.id}[/bold]: {actor} as {role.value} at {place or '-'}")
    console.print(f"API key (shown once, keep it secret):\n{token}", highlight=False)


@credentials_app.command("list")
def listing(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Every credential, with whom it is bound to and whether it is revoked."""
    from store.credentials import listing as all_credentials

    rows = all_credentials(engine_for(settings()))
    if as_json:
        console.print_json(
            json.dumps(
                [
                    {
                        "credential": r.id,
                        "actor": r.actor_id,
                        "role": r.role,
                        "place": r.place_code,
                        "created_at": r.created_at.isoformat(),
                        "revoked_at": r.revoked_at.isoformat() if r.revoked_at else None,
                        "note": r.note,
                    }
                    for r in rows
                ]
            )
        )
        return
    table = Table("凭证 / credential", "actor", "role", "place", "created", "revoked", "note")
    for r in rows:
        table.add_row(
            r.id,
            r.actor_id,
            r.role,
            r.place_code or "-",
            f"{r.created_at:%Y-%m-%d %H:%M}",
            f"{r.revoked_at:%Y-%m-%d %H:%M}" if r.revoked_at else "",
            r.note,
        )
    console.print(table)


@credentials_app.command("revoke")
def revoke(credential: Annotated[str, typer.Argument(help="the credential id (c-…)")]) -> None:
    """Revoke a credential: the gateway refuses it from the next request on."""
    from store.credentials import revoke as revoke_credential

    try:
        row = revoke_credential(engine_for(settings()), credential)
    except KeyError:
        raise fail(f"no credential {credential}") from None
    assert row.revoked_at is not None
    console.print(f"credential {row.id} revoked at {row.revoked_at.isoformat()}")


@app.command(rich_help_panel=PANEL)
def serve(
    port: Annotated[
        int | None, typer.Option("--port", help="default AIDFLOW_API_PORT (8000)")
    ] = None,
) -> None:
    """Serve the HTTP API (OpenAPI at /openapi.json) against a running Temporal."""
    s = settings()
    setup_logging(s)
    s.check_deployment()
    if port is not None:
        s = s.model_copy(update={"api_port": port})
    run(_serve(s))


async def _serve(s: object) -> None:
    from workers.gateway.serving import serve_gateway
    from workers.settings import Settings
    from workers.worker import connect

    assert isinstance(s, Settings)
    try:
        client = await connect(s)
    except Exception as e:
        raise fail(f"cannot connect to Temporal at {s.temporal_address}: {e}") from None
    console.print(f"aidflow API at http://{s.api_host}:{s.api_port} (OpenAPI: /openapi.json)")
    await serve_gateway(client, s)


@app.command(rich_help_panel=PANEL)
def dashboard(
    county: Annotated[str, typer.Option(help="12-digit county code")],
    season: Annotated[str, typer.Option(help="YEAR[-ROUND]")],
    programme: Annotated[str, typer.Option()] = "county-subsidy",
    hours: Annotated[float, typer.Option(help="how long the link holds")] = 12,
    base_url: Annotated[
        str | None,
        typer.Option(
            "--base-url", help="default AIDFLOW_API_URL, else http://AIDFLOW_API_HOST:PORT"
        ),
    ] = None,
) -> None:
    """A signed link to the county's read-only dashboard, for a browser."""
    from datetime import timedelta

    from workers.gateway.dashboard import signed_link

    s = settings()
    base = base_url or s.api_url or f"http://{s.api_host}:{s.api_port}"
    link = signed_link(
        base,
        keys_for(s).authority,
        county=county,
        programme=programme,
        season=season,
        valid=timedelta(hours=hours),
    )
    console.print(link, highlight=False, soft_wrap=True)
