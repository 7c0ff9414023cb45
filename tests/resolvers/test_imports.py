"""List imports (issue 11): each kind from CSV (UTF-8, UTF-8 with BOM, GB18030) and XLSX,
all-or-nothing with an exact report, idempotence, owner and region rules, and snapshots whose
re-settlement agrees with the engine."""

from __future__ import annotations

import csv
import io
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from openpyxl import Workbook
from sqlalchemy import event, func, select, text

from gateway.app import load_access_for_schema
from gateway.auth import Principal
from gateway.config import Settings
from gateway.errors import Forbidden
from gateway.resident_id import check_character
from gateway.storage import models
from gateway.storage.database import CUSTOM_PLAN, Database
from policies.benefits import PolicySet
from policies.settlement.categories import CategoryRecord
from policies.settlement.engine import settle_visit
from policies.settlement.ledger import Ledger
from policies.settlement.subsidy import enrollment_subsidy
from policies.settlement.visit import Person
from policies.vocabulary import Category, Payer
from resolvers import import_staging, imports, settlement
from resolvers.imports import ImportRequest, Summary, import_file, plan, report_rows

EXAMPLES = Path(__file__).parents[2] / "examples" / "imports"
ACCESS = load_access_for_schema()[1]
ENCODINGS = ("utf_8", "utf_8_sig", "gb18030")
OWNERS = {
    "persons": "civil_affairs",
    "identities": "civil_affairs",
    "flags": "rural_revitalisation",
    "enrollments": "medical_insurance",
}
TABLES = {
    "persons": models.Beneficiary,
    "identities": models.Identity,
    "flags": models.MonitoringFlag,
    "enrollments": models.Enrollment,
}


def id_number(first17: str) -> str:
    return first17 + check_character(first17)


def principal(department: str, regions: tuple[str, ...] = ("5104",)) -> Principal:
    return Principal("tester", department, f"{department}-org", regions)


def write(path: Path, rows: list[list[str]], encoding: str = "utf_8") -> Path:
    if path.suffix == ".xlsx":
        book = Workbook()
        sheet = book.active
        assert sheet is not None
        for row in rows:
            sheet.append(row)
        book.save(path)
        return path
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    path.write_bytes(buffer.getvalue().encode(encoding))
    return path


def example(kind: str) -> list[list[str]]:
    with (EXAMPLES / f"{kind}.csv").open(encoding="utf-8", newline="") as file:
        return list(csv.reader(file))


async def run(
    db: Database,
    policies: PolicySet,
    settings: Settings,
    kind: str,
    path: Path,
    department: str | None = None,
    regions: tuple[str, ...] = ("5104",),
    **request: Any,
) -> Summary:
    caller = principal(department or OWNERS[kind], regions)
    today = settings.today()
    planned = plan(ImportRequest(kind, **request), caller, ACCESS, today)
    return await import_file(db, caller, policies, ACCESS, planned, path, today)


async def count(db: Database, model: Any) -> int:
    async with db.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def contents(db: Database) -> dict[str, list[tuple[Any, ...]]]:
    """Everything an import may change, for before/after comparisons."""
    async with db.sessions() as session:
        result = {}
        for name, columns in (
            ("beneficiaries", "id_number, name, region_code, gender, birth_date"),
            ("identities", "beneficiary_id, category, valid_from, valid_to, decided_on, reference"),
            ("monitoring_flags", "beneficiary_id, category, valid_from, valid_to, decided_on"),
            ("enrollments", "beneficiary_id, year, contribution, subsidy_individual"),
            ("settlements", "claim_id, kind, id"),
        ):
            rows = await session.execute(text(f"SELECT {columns} FROM {name} ORDER BY 1, 2, 3"))
            result[name] = [tuple(r) for r in rows]
        return result


async def load_all(
    db: Database,
    policies: PolicySet,
    settings: Settings,
    tmp_path: Path,
    suffix: str,
    encoding: str,
) -> dict[str, Summary]:
    done = {}
    for kind in ("persons", "identities", "flags", "enrollments"):
        path = write(tmp_path / f"{kind}{suffix}", example(kind), encoding)
        done[kind] = await run(db, policies, settings, kind, path)
    return done


@pytest.mark.parametrize(
    ("suffix", "encoding"),
    [(".csv", e) for e in ENCODINGS] + [(".xlsx", "utf_8")],
)
async def test_each_kind_is_imported_from_csv_in_three_encodings_and_from_xlsx(
    db: Database,
    policies: PolicySet,
    settings: Settings,
    tmp_path: Path,
    suffix: str,
    encoding: str,
) -> None:
    done = await load_all(db, policies, settings, tmp_path, suffix, encoding)
    for kind, summary in done.items():
        rows = len(example(kind)) - 1
        assert (summary.status, summary.rows, summary.stored, summary.problems) == (
            "STORED",
            rows,
            rows,
            0,
        ), summary
        assert await count(db, TABLES[kind]) == rows
    async with db.sessions() as session:
        person = await session.scalar(
            select(models.Beneficiary).where(models.Beneficiary.id_number == "510402197001010013")
        )
        assert person is not None
        assert (person.name, person.gender) == ("张三", "MALE")
        identity = await session.scalar(
            select(models.Identity).where(models.Identity.beneficiary_id == person.id)
        )
        assert identity is not None
        assert (
            identity.category,
            identity.valid_from,
            identity.decided_on,
            identity.reference,
        ) == (
            "MINIMUM_LIVING",
            date(2026, 1, 1),
            date(2026, 1, 5),
            "东民发〔2026〕1号",
        )
        assert identity.department == "civil_affairs"
        enrollment = await session.scalar(
            select(models.Enrollment).where(models.Enrollment.beneficiary_id == person.id)
        )
        assert enrollment is not None
        assert (enrollment.year, enrollment.contribution, enrollment.inclusive_commercial) == (
            2026,
            Decimal("380.00"),
            False,
        )
        # The subsidy split is the engine's for the person's records (§7).
        records = await settlement.category_records(session, person)
        split = enrollment_subsidy(
            policies, "510402", 2026, date(2025, 12, 1), records, Decimal("380.00")
        )
        assert len(records) == 2
        assert (
            enrollment.subsidy_policy,
            enrollment.subsidy_category,
            enrollment.subsidy_assistance_fund,
            enrollment.subsidy_finance,
            enrollment.subsidy_individual,
        ) == (
            split.policy_id,
            split.category.value if split.category else None,
            split.assistance_fund,
            split.finance,
            split.individual,
        )
        assert split.policy_id is not None
        audited = (
            await session.execute(
                select(models.AuditRecord.operation, models.AuditRecord.detail).order_by(
                    models.AuditRecord.id
                )
            )
        ).all()
    assert [op for op, _ in audited] == [
        "importPersons",
        "importIdentities",
        "importMonitoringFlags",
        "importEnrollments",
    ]
    assert audited[1][1]["stored"] == 3
    assert len(audited[1][1]["fileSha256"]) == 64


async def test_the_same_file_twice_changes_nothing(
    db: Database, policies: PolicySet, settings: Settings, tmp_path: Path
) -> None:
    await load_all(db, policies, settings, tmp_path, ".csv", "utf_8")
    before = await contents(db)
    again = await load_all(db, policies, settings, tmp_path / "..", ".csv", "gb18030")
    assert await contents(db) == before
    for kind, summary in again.items():
        rows = len(example(kind)) - 1
        assert (summary.status, summary.stored, summary.changed, summary.unchanged) == (
            "STORED",
            0,
            0,
            rows,
        )


async def test_one_bad_row_stores_nothing_and_is_reported_exactly(
    db: Database, policies: PolicySet, settings: Settings, tmp_path: Path
) -> None:
    rows = example("persons")
    bad = rows[3][0][:17] + ("0" if rows[3][0][17] != "0" else "1")
    rows[3][0] = bad
    path = write(tmp_path / "persons.csv", rows, "gb18030")
    summary = await run(db, policies, settings, "persons", path)
    assert (summary.status, summary.stored, summary.refused, summary.problems) == (
        "REFUSED",
        0,
        1,
        1,
    )
    assert await count(db, models.Beneficiary) == 0
    report = [r async for r in report_rows(db, principal("civil_affairs"), _id(summary))]
    expected = check_character(bad[:17])
    assert report == [(4, "身份证号", bad, f"check character should be {expected}")]


async def test_accept_valid_stores_the_good_rows_and_reports_the_rest(
    db: Database, policies: PolicySet, settings: Settings, tmp_path: Path
) -> None:
    rows = [*example("persons"), [example("persons")[1][0], "张三丰", "510402"]]
    path = write(tmp_path / "persons.csv", rows)
    summary = await run(db, policies, settings, "persons", path, accept_valid=True)
    assert (summary.status, summary.stored, summary.refused) == ("STORED", 4, 1)
    report = [r async for r in report_rows(db, principal("civil_affairs"), _id(summary))]
    assert report == [(6, "身份证号", rows[1][0], "also on line 2")]


def _id(summary: Summary) -> Any:
    import uuid

    return uuid.UUID(summary.importId)


async def test_a_category_the_department_does_not_recognise_is_refused_with_nothing_stored(
    db: Database, policies: PolicySet, settings: Settings, tmp_path: Path
) -> None:
    await run(db, policies, settings, "persons", write(tmp_path / "p.csv", example("persons")))
    # Rural revitalisation imports civil affairs' 低保 list as identities: it has no grant.
    with pytest.raises(Forbidden):
        await run(
            db,
            policies,
            settings,
            "identities",
            write(tmp_path / "i.csv", example("identities")),
            department="rural_revitalisation",
        )
    # The disabled persons' federation may record identities, but only its own category.
    summary = await run(
        db,
        policies,
        settings,
        "identities",
        write(tmp_path / "i.csv", example("identities")),
        department="disabled_persons_federation",
    )
    assert summary.status == "REFUSED"
    assert summary.refused == 3
    report = [
        r async for r in report_rows(db, principal("disabled_persons_federation"), _id(summary))
    ]
    assert report[0] == (2, "类别", "低保", "disabled_persons_federation does not recognise it")
    assert await count(db, models.Identity) == 0


async def test_persons_outside_the_callers_regions_are_refused_with_nothing_stored(
    db: Database, policies: PolicySet, settings: Settings, tmp_path: Path
) -> None:
    summary = await run(
        db,
        policies,
        settings,
        "persons",
        write(tmp_path / "p.csv", example("persons")),
        regions=("3708",),
    )
    assert summary.status == "REFUSED"
    assert summary.refused == 4
    assert await count(db, models.Beneficiary) == 0
    await run(db, policies, settings, "persons", write(tmp_path / "p.csv", example("persons")))
    summary = await run(
        db,
        policies,
        settings,
        "identities",
        write(tmp_path / "i.csv", example("identities")),
        regions=("3708",),
    )
    assert summary.status == "REFUSED"
    assert summary.refused == 3
    report = [r async for r in report_rows(db, principal("civil_affairs"), _id(summary))]
    assert report[0] == (2, "身份证号", example("identities")[1][0], "no such beneficiary")
    assert await count(db, models.Identity) == 0
    # A person of 5104 listed by a 3708 department: refused, and the disclosure audited.
    number = example("persons")[1][0]
    rows = [["身份证号", "姓名", "区划代码"], [number, "张三", "370802"]]
    summary = await run(
        db, policies, settings, "persons", write(tmp_path / "x.csv", rows), regions=("3708",)
    )
    report = [r async for r in report_rows(db, principal("civil_affairs"), _id(summary))]
    assert report == [
        (
            2,
            "身份证号",
            number,
            "may not be registered with this token; its region's department can change the "
            "person's region code",
        )
    ]
    async with db.sessions() as session:
        disclosed = await session.scalar(
            select(models.AuditRecord).where(
                models.AuditRecord.operation == "mutation importPersons"
            )
        )
        person = await session.scalar(
            select(models.Beneficiary).where(models.Beneficiary.id_number == number)
        )
    assert disclosed is not None
    assert person is not None
    assert (disclosed.action, disclosed.beneficiary_ids) == ("READ", [person.id])
    assert person.region_code == "510402"


async def test_an_overlap_with_a_stored_record_is_a_conflict(
    db: Database, policies: PolicySet, settings: Settings, tmp_path: Path
) -> None:
    await load_all(db, policies, settings, tmp_path, ".csv", "utf_8")
    rows = [
        example("identities")[0],
        [example("identities")[1][0], "低保", "2026-02-01", "", "", "x"],
    ]
    summary = await run(db, policies, settings, "identities", write(tmp_path / "o.csv", rows))
    assert summary.status == "REFUSED"
    report = [r async for r in report_rows(db, principal("civil_affairs"), _id(summary))]
    assert report == [
        (
            2,
            "认定日期",
            "2026-02-01",
            "overlaps a stored MINIMUM_LIVING record of this person; end that record first",
        )
    ]


SETTLE = """mutation($i: SettleClaimInput!) { settleClaim(input: $i) { claimNumber assistance } }"""
A, B, C = (
    id_number(f"510402{born}{n:03d}")
    for n, born in ((11, "19600203"), (12, "19650407"), (13, "19700609"))
)
AS_OF = date(2026, 10, 1)


async def test_a_snapshot_adds_changes_and_ends_records_and_resettles_as_the_engine_does(
    db: Database, policies: PolicySet, settings: Settings, tmp_path: Path, gql: Any
) -> None:
    persons = [
        ["身份证号", "姓名", "区划代码"],
        [A, "甲", "510402"],
        [B, "乙", "510402"],
        [C, "丙", "510402"],
    ]
    await run(db, policies, settings, "persons", write(tmp_path / "p.csv", persons))
    enrollments = [["idNumber", "year", "contribution", "enrolledOn"]] + [
        [n, "2026", "380.00", "2025-12-01"] for n in (A, B, C)
    ]
    await run(db, policies, settings, "enrollments", write(tmp_path / "e.csv", enrollments))
    before = [["身份证号", "类别", "认定日期", "文号"]] + [
        [n, "低保", "2025-01-01", "东民发〔2025〕1号"] for n in (A, B)
    ]
    await run(db, policies, settings, "identities", write(tmp_path / "i.csv", before))
    for n in (A, B, C):
        claim = {
            "claimNumber": f"S-{n[-4:]}",
            "idNumber": n,
            "type": "INPATIENT",
            "hospitalLevel": "SECONDARY",
            "admissionDate": "2026-10-20",
            "dischargeDate": "2026-10-25",
            "totalCost": "30000.00",
            "policyScopeCost": "26000.00",
        }
        await gql.data(SETTLE, {"i": claim})
    # The 低保 list of 5104 on 2026-10-01: A is gone, B's record starts later, C is new.
    snapshot = [
        ["身份证号", "认定日期", "决定日期", "文号"],
        [B, "2026-11-01", "2026-10-01", "东民发〔2026〕9号"],
        [C, "2026-01-01", "2026-10-01", "东民发〔2026〕9号"],
    ]
    path = write(tmp_path / "snapshot.csv", snapshot, "gb18030")
    summary = await run(
        db,
        policies,
        settings,
        "identities",
        path,
        snapshot=True,
        category="MINIMUM_LIVING",
        as_of=AS_OF,
    )
    report = [r async for r in report_rows(db, principal("civil_affairs"), _id(summary))]
    assert report == []
    assert (summary.status, summary.stored, summary.changed, summary.ended) == ("STORED", 1, 1, 1)
    expected_records = {
        A: (Category.MINIMUM_LIVING, date(2025, 1, 1), AS_OF, AS_OF),
        B: (Category.MINIMUM_LIVING, date(2026, 11, 1), None, AS_OF),
        C: (Category.MINIMUM_LIVING, date(2026, 1, 1), None, AS_OF),
    }
    async with db.sessions() as session:
        targets = {}
        for number, record in expected_records.items():
            person = await session.scalar(
                select(models.Beneficiary).where(models.Beneficiary.id_number == number)
            )
            assert person is not None
            assert await settlement.category_records(session, person) == [CategoryRecord(*record)]
            [claim] = await settlement.claims_of(session, person)
            [state] = await settlement.claim_states(session, [claim])
            subject = Person("510402", person.birth_date, categories=(CategoryRecord(*record),))
            result, _ = settle_visit(
                policies,
                subject,
                settlement.visit_as_settled(claim, state.payments),
                Ledger.empty(2026),
            )
            target = result.payments[Payer.ASSISTANCE] + result.payments[Payer.SECONDARY_ASSISTANCE]
            paid = state.payments[Payer.ASSISTANCE] + state.payments[Payer.SECONDARY_ASSISTANCE]
            pending = await session.scalar(
                select(func.coalesce(func.sum(models.Recovery.amount), 0)).where(
                    models.Recovery.claim_id == claim.id, models.Recovery.status == "PENDING"
                )
            )
            # Increases are paid as adjustments, decreases wait as recoveries (§9.4).
            assert paid - pending == target, number
            targets[number] = (paid, pending, target)
    # A lost 低保 before the stay: all its assistance awaits recovery; C, new, was paid by an
    # adjustment.
    assert targets[A][2] == 0
    assert targets[A][1] == targets[A][0] > 0
    assert targets[C][2] > 0
    assert targets[C][1] == 0
    assert summary.adjustments >= 1
    # Nothing was deleted: three records, A's kept and ended.
    assert await count(db, models.Identity) == 3
    again = await run(
        db,
        policies,
        settings,
        "identities",
        path,
        snapshot=True,
        category="MINIMUM_LIVING",
        as_of=AS_OF,
    )
    assert (again.stored, again.changed, again.ended, again.adjustments) == (0, 0, 0, 0)


async def test_an_imported_identity_recognises_the_pending_application(
    db: Database, policies: PolicySet, settings: Settings, tmp_path: Path, gql: Any
) -> None:
    await run(db, policies, settings, "persons", write(tmp_path / "p.csv", example("persons")))
    person = example("persons")[1][0]
    submit = """mutation($i: SubmitApplicationInput!) { submitApplication(input: $i) { id } }"""
    await gql.data(
        submit,
        {"i": {"idNumber": person, "category": "MINIMUM_LIVING", "statement": "申请低保"}},
        department="medical_insurance",
        regions=("5104",),
    )
    await run(
        db, policies, settings, "identities", write(tmp_path / "i.csv", example("identities"))
    )
    async with db.sessions() as session:
        application = await session.scalar(select(models.AssistanceApplication))
        identity = await session.scalar(
            select(models.Identity)
            .where(models.Identity.category == "MINIMUM_LIVING")
            .order_by(models.Identity.valid_from.desc())
        )
    assert application is not None
    assert identity is not None
    assert (application.status, application.identity_id) == ("RECOGNISED", identity.id)


async def test_a_file_without_a_required_column_is_refused_at_its_header(
    db: Database, policies: PolicySet, settings: Settings, tmp_path: Path
) -> None:
    rows = [[cell for n, cell in enumerate(row) if n != 2] for row in example("persons")]
    rows[0].append("备注")
    summary = await run(db, policies, settings, "persons", write(tmp_path / "p.xlsx", rows))
    assert (summary.status, summary.rows, summary.ignoredColumns) == ("REFUSED", 0, ["备注"])
    report = [r async for r in report_rows(db, principal("civil_affairs"), _id(summary))]
    assert report == [(1, "区划代码/行政区划代码", "", "missing column regionCode")]
    assert await count(db, models.Beneficiary) == 0


async def test_a_file_is_staged_batch_by_batch_with_the_same_result(
    db: Database,
    policies: PolicySet,
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(import_staging, "BATCH_ROWS", 2)
    rows = example("persons")
    rows[3][1] = ""
    seen: list[int] = []
    caller = principal("civil_affairs")
    planned = plan(ImportRequest("persons", accept_valid=True), caller, ACCESS, settings.today())
    summary = await import_file(
        db, caller, policies, ACCESS, planned, write(tmp_path / "p.csv", rows),
        settings.today(), progress=lambda count, _: seen.append(count),
    )  # fmt: skip
    assert (summary.rows, summary.stored, summary.refused) == (4, 3, 1)
    assert seen == [2, 4]
    report = [r async for r in report_rows(db, caller, _id(summary))]
    assert report == [(4, "姓名", "", "is required")]


async def test_an_import_holds_the_persons_it_names_until_it_commits(
    db: Database,
    policies: PolicySet,
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await run(db, policies, settings, "persons", write(tmp_path / "p.csv", example("persons")))
    seen: list[str] = []

    async def meanwhile(session: Any, ids: Any) -> None:
        # Another transaction wanting to write about a listed person cannot lock them.
        async with db.sessions() as other:
            number = example("enrollments")[1][0]
            try:
                await other.execute(
                    text(
                        "SELECT 1 FROM beneficiaries WHERE id_number = :n FOR NO KEY UPDATE NOWAIT"
                    ),
                    {"n": number},
                )
                seen.append("locked")
            except Exception as exc:
                seen.append("busy" if "could not obtain lock" in str(exc) else str(exc))
        seen.append(str(len((await session.execute(ids)).all())))

    monkeypatch.setattr(imports, "after_enrollments_merged", meanwhile)
    summary = await run(
        db, policies, settings, "enrollments", write(tmp_path / "e.csv", example("enrollments"))
    )
    assert summary.status == "STORED"
    assert seen == ["busy", "3"]


async def test_imports_post_subsidies_to_the_funds_and_tell_subscribers_who_changed(
    db: Database, policies: PolicySet, settings: Settings, tmp_path: Path
) -> None:
    """An enrollment list posts each subsidy to the fund accounts (the ledgers reconcile and
    the assistance fund's entries equal the subsidies), and an identity list writes one
    IDENTITY_CHANGED event per person whose records it stored, as recordIdentity does."""
    from resolvers import reconciliation

    await load_all(db, policies, settings, tmp_path, ".csv", "utf_8")
    # 王五 holds 低保 on his enrollment day: a subsidy the assistance fund and finance pay.
    wangwu = write(
        tmp_path / "wangwu.csv",
        [
            ["身份证号", "年度", "个人缴费", "参保日期"],
            ["51040219551230003X", "2026", "380", "2025-12-15"],
        ],
    )
    assert (await run(db, policies, settings, "enrollments", wangwu)).stored == 1
    async with db.sessions() as session:
        subsidies = await session.scalar(
            text(
                "SELECT sum(subsidy_assistance_fund + subsidy_finance) FROM enrollments "
                "WHERE year = 2026"
            )
        )
        assert subsidies is not None
        assert subsidies > 0
        posted = await session.scalar(
            text(
                "SELECT sum(e.amount) FROM fund_entries e JOIN fund_accounts a "
                "ON a.id = e.account_id WHERE a.kind IN ('ASSISTANCE_FUND', 'FINANCE') "
                "AND e.kind = 'SUBSIDY' AND e.side = 'DEBIT'"
            )
        )
        assert posted == subsidies
        assert await reconciliation.differences(session, ["5104"], year=2026) == []
        changed = (
            await session.execute(
                text(
                    "SELECT subject, detail->>'operation' FROM outbox_events "
                    "WHERE type = 'IDENTITY_CHANGED' ORDER BY subject"
                )
            )
        ).all()
        with_records = (
            await session.scalars(
                text(
                    "SELECT DISTINCT beneficiary_id::text FROM identities UNION "
                    "SELECT DISTINCT beneficiary_id::text FROM monitoring_flags ORDER BY 1"
                )
            )
        ).all()
    assert sorted({s for s, _ in changed}) == list(with_records)
    assert {op for _, op in changed} == {"importIdentities", "importMonitoringFlags"}
    # A second run of the same files stores nothing and tells nobody.
    again = await load_all(db, policies, settings, tmp_path, ".csv", "utf_8")
    assert all(s.stored == 0 for s in again.values())
    async with db.sessions() as session:
        events = await session.scalar(
            text("SELECT count(*) FROM outbox_events WHERE type = 'IDENTITY_CHANGED'")
        )
    assert events == len(changed)


async def test_a_snapshot_that_would_accept_only_the_valid_rows_is_refused_before_reading(
    db: Database, policies: PolicySet, settings: Settings, tmp_path: Path
) -> None:
    """A refused row of a snapshot would read as "no longer listed" and end its person's
    record, so a snapshot with acceptValid is refused naming the option; nothing is stored."""
    from policies.errors import InvalidInput

    await load_all(db, policies, settings, tmp_path, ".csv", "utf_8")
    before = await contents(db)
    caller = principal("civil_affairs")
    request = ImportRequest(
        "identities",
        snapshot=True,
        category="低保",
        as_of=date(2026, 6, 30),
        accept_valid=True,
    )
    with pytest.raises(InvalidInput) as refused:
        plan(request, caller, ACCESS, settings.today())
    assert (refused.value.field, refused.value.value) == ("acceptValid", "true")
    assert await contents(db) == before


async def test_an_import_plans_its_statements_for_the_tables_as_they_are(
    db: Database, policies: PolicySet, settings: Settings, tmp_path: Path
) -> None:
    """An import is a bulk load: its transaction plans every statement for its values
    (gateway.storage.database.CUSTOM_PLAN) before it stages or merges anything, not with a
    generic plan its connection kept from when the tables held a few rows
    (tests/gateway/test_generic_plans.py shows what such a plan does)."""
    sent: list[str] = []

    def before(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        sent.append(" ".join(statement.split()))

    event.listen(db.engine.sync_engine, "before_cursor_execute", before)
    try:
        path = write(tmp_path / "persons.csv", example("persons"))
        summary = await run(db, policies, settings, "persons", path)
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", before)
    assert summary.status == "STORED"
    merged = next(n for n, s in enumerate(sent) if "INSERT INTO beneficiaries" in s)
    assert CUSTOM_PLAN in sent[:merged]
    assert not any("import_stage" in s for s in sent[: sent.index(CUSTOM_PLAN)])
