"""The ``medgw`` command line: serve, migrate, demo data, tokens, simulation, audit."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console

from gateway.config import Settings

if TYPE_CHECKING:
    from gateway.storage.database import Database

app = typer.Typer(
    help="Medical-assistance data-sharing gateway (GraphQL, one-stop settlement).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
audit_app = typer.Typer(help="The audit trail.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")
err = Console(stderr=True, soft_wrap=True)
T = TypeVar("T")


def _settings() -> Settings:
    return Settings()


def _fail(message: str, code: int = 2) -> None:
    err.print(f"[red]error:[/red] {message}", highlight=False)
    raise typer.Exit(code)


def _database_url(settings: Settings) -> str:
    """The gateway's URL (the app role)."""
    from gateway.storage.database import resolve_url

    url = resolve_url(settings)
    if not settings.database_url:
        err.print(f"embedded PostgreSQL in {settings.data_dir / 'pgdata'}", highlight=False)
    return url


def _migration_url(settings: Settings) -> str:
    """The migrations' URL (the owner role)."""
    from gateway.storage.database import resolve_migration_url

    url = resolve_migration_url(settings)
    if not (settings.database_url or settings.migration_url):
        err.print(f"embedded PostgreSQL in {settings.data_dir / 'pgdata'}", highlight=False)
    return url


@app.command()
def migrate(
    revision: Annotated[str, typer.Option(help="Target revision.")] = "head",
    downgrade: Annotated[bool, typer.Option(help="Downgrade to --revision instead.")] = False,
) -> None:
    """Bring the database schema to a revision (default: the newest)."""
    from gateway import migrate as migrations

    url = _migration_url(_settings())
    if downgrade:
        migrations.downgrade(url, revision)
    else:
        migrations.upgrade(url, revision)
    err.print(f"database at revision {revision}{' (downgraded)' if downgrade else ''}")


@app.command()
def demo(
    persons: Annotated[int, typer.Option(min=1, help="How many synthetic persons.")] = 2000,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same people).")] = 7,
    if_empty: Annotated[bool, typer.Option(help="Only when no person is stored yet.")] = False,
) -> None:
    """Load realistic synthetic persons of the four policy regions."""
    from gateway import demo as demo_data
    from gateway import migrate as migrations

    settings = _settings()
    migrations.upgrade(_migration_url(settings))
    url = _database_url(settings)
    added = asyncio.run(
        demo_data.load(url, settings, persons=persons, seed=seed, if_empty=if_empty)
    )
    err.print(f"{added} persons added" if added else "database not empty: no demo data added")


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Default MEDGW_HOST or 127.0.0.1.")] = None,
    port: Annotated[int | None, typer.Option(help="Default MEDGW_PORT or 8000.")] = None,
    workers: Annotated[int | None, typer.Option(help="Processes (default MEDGW_WORKERS).")] = None,
    demo_persons: Annotated[
        int, typer.Option(help="Load this many demo persons when the database is empty (0: none).")
    ] = 0,
) -> None:
    """Migrate, optionally load demo data into an empty database, and serve HTTP."""
    import uvicorn

    from gateway import demo as demo_data
    from gateway import migrate as migrations

    settings = _settings()
    migrations.upgrade(_migration_url(settings))
    url = _database_url(settings)
    if demo_persons:
        added = asyncio.run(demo_data.load(url, settings, persons=demo_persons, if_empty=True))
        if added:
            err.print(f"{added} demo persons loaded")
    bind_host, bind_port = host or settings.host, port or settings.port
    err.print(f"serving http://{bind_host}:{bind_port}/graphql ({settings.env})", highlight=False)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    uvicorn.run(
        "gateway.main:app",
        host=bind_host,
        port=bind_port,
        workers=workers or settings.workers,
        log_level="info",
        proxy_headers=False,
    )


@app.command()
def token(
    department: Annotated[str, typer.Option(help="One of the departments with an access policy.")],
    org: Annotated[str, typer.Option(help="The organisation (an insurer's code, an office).")],
    region: Annotated[
        list[str], typer.Option(help="A region-code prefix it serves; repeat for several.")
    ],
    purpose: Annotated[str | None, typer.Option(help="Why the data is used.")] = None,
    ttl: Annotated[str, typer.Option(help="Lifetime, e.g. 30m, 8h, 2d.")] = "8h",
    subject: Annotated[str, typer.Option(help="The user or system named in the token.")] = "cli",
) -> None:
    """Print a signed bearer token."""
    import re

    from gateway.app import load_access_for_schema
    from gateway.auth import Unauthenticated, issue_token, parse_duration

    known = load_access_for_schema()[1].departments
    if department not in known:
        _fail(f"--department = {department}: unknown (known: {', '.join(sorted(known))})")
    for prefix in region:
        if not re.fullmatch(r"[0-9]{1,6}", prefix):
            _fail(f"--region = {prefix}: expected 1 to 6 digits of a region code")
    try:
        lifetime = parse_duration(ttl)
    except ValueError as exc:
        _fail(str(exc))
    settings = _settings()
    try:
        signed = issue_token(
            settings.jwt_secret,
            subject=subject,
            department=department,
            org=org,
            regions=region,
            purpose=purpose,
            ttl=lifetime,
            max_regions=settings.max_token_regions,
        )
    except Unauthenticated as exc:
        _fail(str(exc))
    typer.echo(signed)


def _case_files(paths: list[Path]) -> list[Path]:
    """The files named on the command line, a directory standing for its ``*.json`` files."""
    files: list[Path] = []
    for path in paths:
        if str(path) != "-" and path.is_dir():
            found = sorted(path.glob("*.json"))
            if not found:
                _fail(f"{path}: no *.json files in this directory")
            files.extend(found)
        else:
            files.append(path)
    return files


def _read_json(path: Path) -> Any:
    try:
        text = sys.stdin.read() if str(path) == "-" else path.read_text(encoding="utf-8")
    except OSError as exc:
        _fail(f"cannot read {path}: {exc.strerror}")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        _fail(f"{path}: not JSON ({exc.msg} at line {exc.lineno} column {exc.colno})")


@app.command()
def simulate(
    files: Annotated[
        list[Path],
        typer.Argument(
            help="Case files (SETTLEMENT.md §8) or example files (description, case, expected), "
            "or directories of *.json files; - for stdin.",
            metavar="FILE",
            show_default=False,
        ),
    ],
    explain: Annotated[bool, typer.Option(help="Explain every payer line.")] = False,
    check: Annotated[
        bool,
        typer.Option(
            help="Compare with each example's expected output; exit 1 if any differs.",
        ),
    ] = False,
) -> None:
    """Settle the visits of a case file and print the result as JSON (nothing is stored).

    An example file is settled by its case; --check compares it with its expected output.
    """
    from policies.benefits import load_policies
    from policies.errors import InvalidInput, NoPolicyInForce, PolicyFileError
    from policies.settlement.cases import case_of, differences
    from policies.settlement.cases import simulate as run_case

    paths = _case_files(files)
    if len(paths) > 1 and not check:
        _fail(f"{len(paths)} files given: settle one at a time, or compare them all with --check")
    several = len(paths) > 1
    # Everything is read, validated and settled before anything is printed: bad input anywhere
    # prints nothing but the error.
    settled: list[tuple[Path, dict[str, Any], list[str]]] = []
    try:
        policies = load_policies()
        for path in paths:
            where = f"{path}: " if several else ""
            try:
                case, expected = case_of(_read_json(path))
                if check and expected is None:
                    _fail(
                        f'{path}: --check needs an example file with "expected" '
                        "(description, case, expected), not a bare case"
                    )
                result = run_case(case, policies, explain=explain)
                found = differences(expected, result) if check else []
            except (InvalidInput, NoPolicyInForce) as exc:
                _fail(f"{where}{exc}")
            settled.append((path, result, found))
    except PolicyFileError as exc:
        _fail(str(exc))
    if not check:
        [(_, result, _)] = settled
        typer.echo(json.dumps(result, ensure_ascii=False, indent=2))
        return
    for path, result, found in settled:
        for line in found:
            typer.echo(f"{path}: {line}")
        if found and explain:
            for visit in result["visits"]:
                typer.echo(_indent(visit["explanation"]["text"]))
    matching = sum(not found for _, _, found in settled)
    if several:
        typer.echo(f"{matching} of {len(settled)} examples match")
    elif matching:
        typer.echo(f"OK: {paths[0]} matches its expected output")
    if matching < len(settled):
        raise typer.Exit(1)


def _indent(text: str) -> str:
    return "\n".join(f"    {line}" for line in text.splitlines())


@audit_app.command("verify")
def audit_verify() -> None:
    """Check the hash chain of the audit log and compare it with the signed checkpoints (file
    MEDGW_AUDIT_CHECKPOINTS); report the first broken link, a truncation (fewer records than a
    checkpoint counted), a rewrite (a record that is not the one a checkpoint signed), a missing
    checkpoint file or a bad signature, and exit 1."""
    from gateway.storage import audit

    settings = _settings()

    async def run(db: Database) -> audit.Verification:
        async with db.sessions() as session:
            return await audit.verify_with_checkpoints(
                session, settings.audit_checkpoints, settings.audit_key
            )

    result = _with_database(settings, run)
    if result.broken_at is not None:
        typer.echo(
            f"audit chain broken at record {result.broken_at}: {result.reason} "
            f"({result.checked} records before it are intact)"
        )
    elif result.problem is not None:
        typer.echo(f"audit chain does not match its checkpoints: {result.problem}")
    else:
        typer.echo(
            f"audit chain intact: {result.checked} records, consistent with "
            f"{result.checkpoints} signed checkpoints"
        )
        return
    raise typer.Exit(1)


@audit_app.command("checkpoint")
def audit_checkpoint() -> None:
    """Sign the audit chain's head now and append it to the checkpoint file (the running
    gateway does this every MEDGW_AUDIT_CHECKPOINT_SECONDS and when it stops)."""
    from gateway.storage import audit

    settings = _settings()
    signed = _with_database(
        settings, lambda db: audit.checkpoint(db, settings.audit_key, settings.audit_checkpoints)
    )
    typer.echo(
        f"checkpoint: {signed.count} records, last id {signed.last_id}, "
        f"written to {settings.audit_checkpoints}"
    )


def _with_database(settings: Settings, work: Callable[[Database], Awaitable[T]]) -> T:
    """Run ``work`` on the gateway's database, then close it."""
    from gateway.storage.database import Database

    url = _database_url(settings)

    async def run() -> T:
        db = Database.connect(url, settings)
        try:
            return await work(db)
        finally:
            await db.dispose()

    return asyncio.run(run())


@app.command("schema")
def print_schema() -> None:
    """Print the GraphQL SDL (the full schema, all departments)."""
    from schema import build_schema

    typer.echo(build_schema().as_str())
