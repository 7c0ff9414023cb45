"""The ``medgw`` command line: serve, migrate, demo data, tokens, simulation, audit."""

from __future__ import annotations

import asyncio
import functools
import gc
import json
import logging
import sys
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console
from typer.core import TyperCommand

from gateway.config import Settings

if TYPE_CHECKING:
    from gateway.auth import Principal
    from gateway.storage.database import Database
    from gateway.storage.partitions import YearPartitioned
    from policies.access.policy import AccessPolicies

app = typer.Typer(
    help="Medical-assistance data-sharing gateway (GraphQL, one-stop settlement).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
audit_app = typer.Typer(help="The audit trail.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")
partitions_app = typer.Typer(help="The tables partitioned by year.", no_args_is_help=True)
app.add_typer(partitions_app, name="partitions")
err = Console(stderr=True, soft_wrap=True)
T = TypeVar("T")
MIN_TOKEN_TTL = timedelta(minutes=1)


def _settings() -> Settings:
    """The settings from the environment; a bad value exits 2 with one line per variable."""
    try:
        return Settings()
    except ValidationError as exc:
        for error in exc.errors():
            variable = ".".join(str(part) for part in error["loc"])
            message = error["msg"].removeprefix("Value error, ")
            err.print(
                f"[red]error:[/red] {variable} = {error['input']!r}: {message}", highlight=False
            )
        raise typer.Exit(2) from None


def _say(error: str) -> None:
    err.print(f"[red]error:[/red] {error}", highlight=False)


def _fail(message: str, code: int = 2) -> NoReturn:
    _say(message)
    raise typer.Exit(code)


def _existing_database(settings: Settings) -> None:
    """Refuse (exit 2) when the embedded database is used and none is in the data directory:
    only ``serve``, ``migrate`` and ``demo`` create one."""
    pgdata = settings.data_dir / "pgdata"
    if not settings.database_url and not pgdata.is_dir():
        _fail(
            f"no database in {pgdata} (MEDGW_DATA_DIR): create it with `medgw migrate` or "
            "`medgw serve`, or set MEDGW_DATA_DIR or DATABASE_URL"
        )


def _url_of(settings: Settings, role: Callable[[Settings], str], variable: str) -> str:
    """``role(settings)``: the URL of the configured or the embedded server; a configured URL
    that is not PostgreSQL's exits 2 naming ``variable``."""
    from sqlalchemy.exc import ArgumentError

    try:
        url = role(settings)
    except ValueError as exc:
        _fail(str(exc))
    except ArgumentError:
        _fail(f"{variable}: not a URL (expected postgresql://user:password@host/database)")
    if not settings.database_url:
        _announce(settings.data_dir / "pgdata")
    return url


@functools.cache
def _announce(pgdata: Path) -> None:
    """Say once per command where the embedded server lives (both roles' URLs point there)."""
    err.print(f"embedded PostgreSQL in {pgdata}", highlight=False)


def _database_url(settings: Settings) -> str:
    """The gateway's URL (the app role)."""
    from gateway.storage.database import resolve_url

    return _url_of(settings, resolve_url, "DATABASE_URL")


def _migration_url(settings: Settings) -> str:
    """The migrations' URL (the owner role)."""
    from gateway.storage.database import resolve_migration_url

    return _url_of(settings, resolve_migration_url, _migration_variable(settings)[0])


def _migration_variable(settings: Settings) -> tuple[str, str | None]:
    """The setting migrations connect with, and its value."""
    if settings.migration_url:
        return "MEDGW_MIGRATION_URL", settings.migration_url
    return "DATABASE_URL", settings.database_url


@contextmanager
def _reaching(variable: str, configured: str | None) -> Iterator[None]:
    """Turn a configured database that cannot be reached (refused, unknown host, timeout, bad
    password, no such database) into one line naming ``variable`` and the URL without its
    password, exit 2. The embedded server's errors pass through."""
    from sqlalchemy.engine import make_url

    from gateway.errors import is_transient

    try:
        yield
    except Exception as exc:
        if configured is None or not (is_transient(exc) or _refused_login(exc)):
            raise
        shown = make_url(configured).render_as_string(hide_password=True)
        _fail(f"{variable} = {shown}: cannot connect ({_root_cause(exc)})")


def _refused_login(error: BaseException) -> bool:
    """A login the server refused: bad password or role (28…), no such database (3D000)."""
    sqlstate = getattr(getattr(error, "orig", error), "sqlstate", None)
    return isinstance(sqlstate, str) and sqlstate.startswith(("28", "3D"))


def _root_cause(error: BaseException) -> str:
    while error.__cause__ is not None or getattr(error, "orig", None) is not None:
        error = getattr(error, "orig", None) or error.__cause__  # type: ignore[assignment]
    return " ".join(str(error).split()) or type(error).__name__


def _upgrade(settings: Settings, revision: str = "head", *, downgrade: bool = False) -> None:
    """Migrate the database (as the owner role) to ``revision``."""
    from gateway import migrate as migrations

    url = _migration_url(settings)
    with _reaching(*_migration_variable(settings)):
        (migrations.downgrade if downgrade else migrations.upgrade)(url, revision)


def _load_demo(settings: Settings, persons: int, **options: Any) -> int:
    """Load ``persons`` synthetic persons (see ``gateway.demo.load``); how many were added."""
    from gateway import demo as demo_data

    url = _database_url(settings)
    with _reaching("DATABASE_URL", settings.database_url):
        return asyncio.run(demo_data.load(url, settings, persons=persons, **options))


@app.command()
def migrate(
    revision: Annotated[str, typer.Option(help="Target revision.")] = "head",
    downgrade: Annotated[bool, typer.Option(help="Downgrade to --revision instead.")] = False,
) -> None:
    """Bring the database schema to a revision (default: the newest)."""
    _upgrade(_settings(), revision, downgrade=downgrade)
    err.print(f"database at revision {revision}{' (downgraded)' if downgrade else ''}")


@app.command()
def demo(
    persons: Annotated[int, typer.Option(min=1, help="How many synthetic persons.")] = 2000,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same people).")] = 7,
    if_empty: Annotated[bool, typer.Option(help="Only when no person is stored yet.")] = False,
) -> None:
    """Load realistic synthetic persons of the four policy regions."""
    settings = _settings()
    _upgrade(settings)
    added = _load_demo(settings, persons, seed=seed, if_empty=if_empty)
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
    """Migrate, optionally load demo data into an empty database, and serve HTTP; print a
    ready line (with the command that signs a token) once /readyz answers."""
    import uvicorn

    from gateway.transport import HttpToolsProtocol

    settings = _settings()
    _upgrade(settings)
    _ = settings.jwt_secret  # generated now (unless configured), for `medgw token`
    if demo_persons:
        added = _load_demo(settings, demo_persons, if_empty=True)
        if added:
            err.print(f"{added} demo persons loaded")
    bind_host = settings.host if host is None else host
    bind_port = settings.port if port is None else port
    err.print(f"serving http://{bind_host}:{bind_port}/graphql ({settings.env})", highlight=False)
    _announce_when_ready(settings, bind_host, bind_port)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    _exit_on_signals()
    uvicorn.run(
        "gateway.main:app",
        host=bind_host,
        port=bind_port,
        workers=workers or settings.workers,
        log_level="info",
        proxy_headers=False,
        http=HttpToolsProtocol,  # a response's head and body in one write
    )


def _exit_on_signals() -> None:
    """Make SIGTERM and SIGHUP end the process as an exit, not a kill, so that its exit
    handlers run, one of which stops the embedded PostgreSQL (pgserver's). uvicorn, once it
    has shut down on SIGTERM (or SIGINT), raises that signal again under the handler it found:
    with Python's default action the process would die there, and `kill`, `docker stop` or
    systemd would leave the database running; SIGHUP (the terminal of `make run` closed)
    would kill it outright. SIGINT already ends in ``KeyboardInterrupt``, an exit. Exit status
    128 + the signal's number, as a kill's."""
    import signal

    def ended(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    for ending in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(ending, ended)


def _announce_when_ready(settings: Settings, host: str, port: int, timeout_s: float = 600) -> None:
    """In a daemon thread: poll ``/readyz`` until it answers 200, then print the ready line,
    the data directory and the command that signs a token (to stderr)."""
    import threading
    import time
    import urllib.request

    local = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    readyz = f"http://{f'[{local}]' if ':' in local else local}:{port}/readyz"
    program = Path(sys.argv[0])
    medgw = str(program.absolute()) if program.name == "medgw" else "medgw"

    def poll() -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(readyz, timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            time.sleep(0.3)
        else:
            return
        err.print(
            f"ready: http://{host}:{port}/graphql ({settings.env}; data in {settings.data_dir})\n"
            f"  a token: {medgw} token --department medical_insurance --org 攀枝花医保局 "
            "--region 5104",
            highlight=False,
        )

    threading.Thread(target=poll, name="medgw-ready", daemon=True).start()


class _TokenCommand(TyperCommand):
    """``medgw token``, whose --help lists the departments and the purposes of the access
    policies (loaded only when help is asked for)."""

    def format_help(self, ctx: Any, formatter: Any) -> None:
        from gateway.app import load_access_for_schema

        policies = load_access_for_schema()[1].departments
        departments = ", ".join(
            f"{name} ({policy.title})" for name, policy in sorted(policies.items())
        )
        needing: dict[str, list[str]] = {}
        for name, policy in sorted(policies.items()):
            for purpose in policy.purposes_for_personal:
                needing.setdefault(purpose, []).append(name)
        purposes = ", ".join(
            f"{purpose} (needed by {', '.join(names)} for personal fields)"
            for purpose, names in sorted(needing.items())
        )
        self.help = f"{self.help}\n\nDepartments: {departments}.\n\nPurposes: {purposes}."
        super().format_help(ctx, formatter)


@app.command(cls=_TokenCommand)
def token(
    department: Annotated[
        str, typer.Option(help="One of the departments with an access policy (listed above).")
    ],
    org: Annotated[str, typer.Option(help="The organisation (an insurer's code, an office).")],
    region: Annotated[
        list[str], typer.Option(help="A region-code prefix it serves; repeat for several.")
    ],
    purpose: Annotated[
        str | None, typer.Option(help="Why the data is used (listed above).")
    ] = None,
    ttl: Annotated[
        str,
        typer.Option(help="Lifetime, e.g. 30m, 8h, 2d: at least 1m, at most MEDGW_MAX_TOKEN_TTL."),
    ] = "8h",
    subject: Annotated[str, typer.Option(help="The user or system named in the token.")] = "cli",
) -> None:
    """Print a signed bearer token, signed with MEDGW_JWT_SECRET or the secret the gateway keeps
    in its data directory (the directory must exist: start the gateway once)."""
    import re

    from gateway.app import load_access_for_schema
    from gateway.auth import Unauthenticated, issue_token, parse_duration

    settings = _settings()
    known = load_access_for_schema()[1].departments
    if department not in known:
        _fail(f"--department = {department}: unknown (known: {', '.join(sorted(known))})")
    for prefix in region:
        if not re.fullmatch(r"[0-9]{1,6}", prefix):
            _fail(f"--region = {prefix}: expected 1 to 6 digits of a region code")
    try:
        lifetime = parse_duration(ttl)
    except ValueError:
        _fail(f"--ttl = {ttl}: expected a number and a unit s, m, h or d (e.g. 8h)")
    if not MIN_TOKEN_TTL <= lifetime <= settings.max_token_ttl:
        _fail(
            f"--ttl = {ttl}: must be between 1m and {_duration(settings.max_token_ttl)} "
            "(MEDGW_MAX_TOKEN_TTL)"
        )
    if settings.jwt_secret_value is None:
        secret_file = settings.data_dir / "jwt_secret"
        if not secret_file.is_file():
            _fail(
                f"no JWT secret in {secret_file} (MEDGW_DATA_DIR): start the gateway once "
                "(`medgw serve`), or set MEDGW_DATA_DIR or MEDGW_JWT_SECRET"
            )
        err.print(f"signed with the secret in {secret_file}", highlight=False)
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


def _duration(value: timedelta) -> str:
    """``value`` in the largest whole unit: 30d, 12h, 90m, 45s."""
    seconds = int(value.total_seconds())
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


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
    """Check the hash chain of every shard of the audit log and compare each with the signed
    checkpoints (file MEDGW_AUDIT_CHECKPOINTS); report the first broken link, a truncation
    (fewer records in a shard than a checkpoint counted), a rewrite (a record that is not the
    one a checkpoint signed), a missing checkpoint file or a bad signature, and exit 1."""
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
            f"{result.checkpoints} signed checkpoints ({len(result.shards)} shards)"
        )
        return
    raise typer.Exit(1)


@audit_app.command("checkpoint")
def audit_checkpoint() -> None:
    """Sign the heads of the audit chain's shards now and append them to the checkpoint file
    (the running gateway does this every MEDGW_AUDIT_CHECKPOINT_SECONDS and when it stops)."""
    from gateway.storage import audit

    settings = _settings()
    signed = _with_database(
        settings, lambda db: audit.checkpoint(db, settings.audit_key, settings.audit_checkpoints)
    )
    typer.echo(
        f"checkpoint: {signed.count} records, last id {signed.last_id}, "
        f"{len(signed.heads())} shards, written to {settings.audit_checkpoints}"
    )


@audit_app.command("add-years")
def audit_add_years(
    first: Annotated[int, typer.Argument(help="The first year to give a partition.")],
    last: Annotated[int | None, typer.Argument(help="The last one (default: FIRST).")] = None,
) -> None:
    """Create the audit log's partitions of the years FIRST to LAST (China time) that do not
    exist yet, as the owner role (MEDGW_MIGRATION_URL). Exit 1, creating none, when the DEFAULT
    partition already holds records of one of them: add years before they begin. (``medgw
    partitions add-years`` adds the years to every table partitioned by year.)"""
    from gateway.storage import partitions

    created = _add_years([partitions.AUDIT], first, last or first)["audit_log"]
    typer.echo(
        f"audit log partitions added: {', '.join(map(str, created))}"
        if created
        else "audit log partitions: every year asked for already has one"
    )


@partitions_app.command("add-years")
def partitions_add_years(
    first: Annotated[int, typer.Argument(help="The first year to give a partition.")],
    last: Annotated[int | None, typer.Argument(help="The last one (default: FIRST).")] = None,
) -> None:
    """Create the partitions of the years FIRST to LAST that do not exist yet, of every table
    partitioned by year (the audit log, by China time; claims, settlements and settlement
    lines, by settlement year), in one transaction, as the owner role (MEDGW_MIGRATION_URL).
    Exit 1, creating none, when a DEFAULT partition already holds rows of a year its table
    lacks: add years before they begin."""
    from gateway.storage import partitions

    created = _add_years(partitions.EVERY, first, last or first)
    for table, years in created.items():
        if years:
            typer.echo(f"{table} partitions added: {', '.join(map(str, years))}")
    if not any(created.values()):
        typer.echo("partitions: every year asked for already has one")


def _add_years(tables: Sequence[YearPartitioned], first: int, last: int) -> dict[str, list[int]]:
    """:func:`gateway.storage.partitions.add_years` as the owner; exit 1 when it refuses."""
    from sqlalchemy.ext.asyncio import create_async_engine

    from gateway.storage import partitions

    settings = _settings()
    _existing_database(settings)
    url = _migration_url(settings)

    async def run() -> dict[str, list[int]]:
        engine = create_async_engine(url)
        try:
            async with engine.begin() as conn:
                return await partitions.add_years(conn, tables, first, last)
        finally:
            await engine.dispose()

    try:
        with _reaching(*_migration_variable(settings)):
            return asyncio.run(run())
    except partitions.PartitionError as exc:
        typer.echo(f"no partition added: {exc}")
        raise typer.Exit(1) from exc


def _with_database(settings: Settings, work: Callable[[Database], Awaitable[T]]) -> T:
    """Run ``work`` on the gateway's existing database, then close it (no database: exit 2)."""
    from gateway.storage.database import Database

    _existing_database(settings)
    url = _database_url(settings)

    async def run() -> T:
        db = Database.connect(url, settings)
        try:
            return await work(db)
        finally:
            await db.dispose()

    with _reaching("DATABASE_URL", settings.database_url):
        return asyncio.run(run())


@app.command("schema")
def print_schema() -> None:
    """Print the GraphQL SDL (the full schema, all departments)."""
    from schema import build_schema

    typer.echo(build_schema().as_str())


_EXPORT_OPTIONS = {"kind": "KIND", "columns": "--columns", "region": "--region"}
"""The command-line name of each field an export error may name (else ``--<field>``)."""


@app.command("export")
def export_table(
    kind: Annotated[
        str,
        typer.Argument(
            help="subsidies (资助参保 per fund), alerts (主动发现), settlements (per hospital, "
            "month), payments (what the assistance fund owes hospitals and persons), "
            "statements (a fund's statement; --fund an account kind, --hospital its party).",
            metavar="KIND",
            show_default=False,
        ),
    ],
    department: Annotated[
        str, typer.Option("--as", help="The department exporting (its access policy applies).")
    ],
    org: Annotated[str, typer.Option(help="Its organisation (an insurer: the carrier code).")],
    region: Annotated[
        list[str], typer.Option(help="A region-code prefix it serves; repeat for several.")
    ],
    year: Annotated[int, typer.Option(help="The year (enrollment, alert or settlement year).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="The file to write.")],
    format: Annotated[str, typer.Option(help="csv (UTF-8 with BOM) or xlsx.")] = "csv",
    month: Annotated[int | None, typer.Option(help="settlements: admission month (1-12).")] = None,
    quarter: Annotated[
        int | None, typer.Option(help="statements: the quarter (1-4) instead of the year.")
    ] = None,
    hospital: Annotated[str | None, typer.Option(help="settlements: one hospital code.")] = None,
    fund: Annotated[
        str | None, typer.Option(help="subsidies: rows where assistanceFund or finance pays.")
    ] = None,
    columns: Annotated[
        str | None, typer.Option(help="Comma-separated column names (default: all readable).")
    ] = None,
    purpose: Annotated[
        str | None, typer.Option(help="The purpose, where personal fields need one.")
    ] = None,
) -> None:
    """Write an export (a table of a department's rows) to a file, as the GraphQL API would
    answer that department: its columns, masks and rows, audited as one read. Exit 2 on a bad
    option, 1 when the access policy refuses the export."""
    import os

    from gateway.app import load_access_for_schema
    from gateway.errors import Forbidden
    from gateway.tables import Format, write_table
    from policies.errors import InvalidInput
    from resolvers.exports import Export, ExportRequest, plan

    settings = _settings()
    schema, access = load_access_for_schema()
    principal = _cli_principal(department, org, region, purpose, settings, access)
    if format not in set(Format):
        _fail(f"--format = {format}: expected one of {', '.join(Format)}")
    wanted = ExportRequest(
        kind=kind,
        year=year,
        region=None,
        month=month,
        quarter=quarter,
        hospital=hospital,
        fund=fund,
        columns=None if columns is None else [c.strip() for c in columns.split(",") if c.strip()],
    )
    try:
        planned = plan(wanted, principal, access, schema)
    except InvalidInput as exc:
        option = _EXPORT_OPTIONS.get(exc.field, f"--{exc.field}")
        _fail(f"{option} = {exc.value}: {exc.reason}")
    except Forbidden as exc:
        _fail(f"refused: {exc}", code=1)
    partial = output.with_name(output.name + ".part")

    async def run(db: Database) -> tuple[int, int]:
        async with await Export.open(db, principal, planned) as export:
            count = 0

            async def counted() -> Any:
                nonlocal count
                async for row in export.rows():
                    count += 1
                    yield row

            with partial.open("wb") as file:
                size = await write_table(planned.columns, counted(), Format(format), file)
        return count, size

    if not output.parent.is_dir():
        _fail(f"-o = {output}: no directory {output.parent}")
    try:
        rows, size = _with_database(settings, run)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    os.replace(partial, output)
    err.print(
        f"{rows} rows of {kind} ({len(planned.columns)} columns, {size} bytes) written to {output}",
        highlight=False,
    )


_IMPORT_OPTIONS = {
    "kind": "KIND",
    "snapshot": "--snapshot",
    "category": "--category",
    "asOf": "--as-of",
}
"""The command-line name of each field an import error may name."""


@app.command("import")
def import_list(
    kind: Annotated[
        str,
        typer.Argument(
            help="persons, identities, flags (monitoring flags) or enrollments.",
            metavar="KIND",
            show_default=False,
        ),
    ],
    file: Annotated[Path, typer.Argument(help="The list: CSV (UTF-8, GB18030) or XLSX.")],
    department: Annotated[
        str, typer.Option("--as", help="The department importing (its rules apply).")
    ],
    org: Annotated[str, typer.Option(help="Its organisation.")],
    region: Annotated[
        list[str], typer.Option(help="A region-code prefix it serves; repeat for several.")
    ],
    snapshot: Annotated[
        bool, typer.Option(help="The file is the whole list of --category on --as-of.")
    ] = False,
    category: Annotated[str | None, typer.Option(help="snapshot: the category listed.")] = None,
    as_of: Annotated[
        str | None, typer.Option("--as-of", help="snapshot: the day the list holds (YYYY-MM-DD).")
    ] = None,
    accept_valid: Annotated[
        bool, typer.Option(help="Store the valid rows, report the rest (default: all or none).")
    ] = False,
    report: Annotated[
        Path | None,
        typer.Option(help="Where to write the report (.json or .csv; default FILE.report.csv)."),
    ] = None,
    purpose: Annotated[
        str | None, typer.Option(help="The purpose, where personal fields need one.")
    ] = None,
) -> None:
    """Import a department's list (issue 11): each row checked as the mutations check it, then
    stored all or nothing (or, with --accept-valid, the valid rows), the affected claims
    re-settled. Exit 0 when stored, 1 when refused (the report says why, by line and column),
    2 on a bad option."""
    import time
    import uuid
    from datetime import date

    from gateway.app import load_access_for_schema
    from gateway.errors import Forbidden
    from gateway.imports import report_csv, report_json
    from policies.benefits import load_policies
    from policies.errors import InvalidInput
    from resolvers.imports import ImportRequest, Summary, import_file, plan
    from resolvers.imports import report_rows as rows_of

    settings = _settings()
    _, access = load_access_for_schema()
    principal = _cli_principal(department, org, region, purpose, settings, access)
    if not file.is_file():
        _fail(f"FILE = {file}: no such file")
    try:
        day = date.fromisoformat(as_of) if as_of else None
    except ValueError:
        _fail(f"--as-of = {as_of}: expected a date such as 2026-11-30")
    request = ImportRequest(kind, snapshot, category, day, accept_valid)
    try:
        planned = plan(request, principal, access, settings.today())
    except InvalidInput as exc:
        _fail(f"{_IMPORT_OPTIONS.get(exc.field, exc.field)} = {exc.value}: {exc.reason}")
    except Forbidden as exc:
        _fail(f"refused: {exc}", code=1)
    target = report or file.with_name(file.name + ".report.csv")

    async def run(db: Database) -> Summary:
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        size = max(1, file.stat().st_size)
        with Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[rows]:,} rows, {task.fields[rate]:,.0f} rows/s"),
            TimeRemainingColumn(),
            console=err,
            transient=False,
        ) as bar:
            task = bar.add_task(f"import {kind}", total=size, rows=0, rate=0.0)
            started = time.monotonic()

            def progress(rows: int, done: int) -> None:
                rate = rows / max(time.monotonic() - started, 1e-6)
                bar.update(task, completed=min(done, size), rows=rows, rate=rate)

            policies = load_policies()
            # As the served process does once started (create_app(freeze_heap=True)): what the
            # command built is moved out of the garbage collector's sight, so that the full
            # collections a million rows' objects trigger do not scan the whole startup heap
            # (~0.6 s of the ~6.5 s of 300,000 identity rows; README, "Speed and memory").
            gc.collect()
            gc.freeze()
            try:
                summary = await import_file(
                    db, principal, policies, access, planned, file, settings.today(),
                    progress=progress,
                )  # fmt: skip
            finally:
                gc.unfreeze()  # a caller in the same process (tests) sees its heap as before
            bar.update(task, completed=size)
        if summary.problems:
            rows = rows_of(db, principal, uuid.UUID(summary.importId))
            chunks = (
                report_json(summary.to_dict(), rows)
                if target.suffix == ".json"
                else report_csv(rows)
            )
            with target.open("wb") as out:
                async for chunk in chunks:
                    out.write(chunk)
        return summary

    summary = _with_database(settings, run)
    counts = ", ".join(
        f"{name} {getattr(summary, name)}"
        for name in ("rows", "stored", "changed", "unchanged", "ended", "refused")
    )
    settled = f"; re-settled: {summary.adjustments} adjustments, {summary.recoveries} recoveries"
    err.print(f"{summary.status}: {counts}{settled}", highlight=False)
    err.print(f"import {summary.importId}, file SHA-256 {summary.fileSha256}", highlight=False)
    if summary.problems:
        err.print(f"report ({summary.problems} problems): {target}", highlight=False)
    if summary.status != "STORED":
        raise typer.Exit(1)


def _cli_principal(
    department: str,
    org: str,
    region: list[str],
    purpose: str | None,
    settings: Settings,
    access: AccessPolicies,
) -> Principal:
    """The caller a command acts as, checked as a token with those claims would be (exit 2)."""
    import re
    import secrets

    from gateway.auth import Principal, Unauthenticated, issue_token

    if department not in access.departments:
        _fail(f"--as = {department}: unknown (known: {', '.join(sorted(access.departments))})")
    for prefix in region:
        if not re.fullmatch(r"[0-9]{1,6}", prefix):
            _fail(f"--region = {prefix}: expected 1 to 6 digits of a region code")
    try:
        issue_token(
            secrets.token_hex(16),
            subject="cli",
            department=department,
            org=org,
            regions=region,
            purpose=purpose,
            max_regions=settings.max_token_regions,
        )
    except Unauthenticated as exc:
        _fail(str(exc))
    return Principal("cli", department, org, tuple(region), purpose)
