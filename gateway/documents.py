"""``GET /documents/claims/{claimNumber}.pdf`` and ``.html``: the 一单制 结算单 of one claim.

The bearer token decides everything, as on ``/graphql``: the data is read by running
:func:`resolvers.documents.document_query` on the caller's department schema, so the row rules,
refusals, purpose rule, masks and the read audit record are those of ``claim(claimNumber:)``.
Answers, each refusal in the gateway's JSON error shape (``extensions.code``, ``requestId``):

- 200 with the document (``Cache-Control: no-store``: it carries personal data);
- 401 ``UNAUTHENTICATED`` without a valid token;
- 403 ``FORBIDDEN`` when the department may not read claims, or the token lacks the purpose
  the personal fields need: decided by the department and token alone, never by the claim;
- 404 ``NOT_FOUND`` for a claim that does not exist *and* for one the caller may not see
  (another insurer's or hospital's, another region's): one answer, so a refusal never tells
  that a claim exists; also for a format other than ``pdf`` or ``html``;
- 400 ``BAD_INPUT`` for a claim number the argument check refuses; 503 ``UNAVAILABLE``.

HTML is filled into :data:`PAGE` with every value escaped; the PDF is drawn with reportlab and
its built-in CID font ``STSong-Light`` (Chinese without a font file).
"""

from __future__ import annotations

import asyncio
import html
import io
import string
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, Protocol
from urllib.parse import quote
from zoneinfo import ZoneInfo

from reportlab.lib import colors  # type: ignore[import-untyped]
from reportlab.lib.pagesizes import A4  # type: ignore[import-untyped]
from reportlab.lib.styles import ParagraphStyle  # type: ignore[import-untyped]
from reportlab.lib.units import mm  # type: ignore[import-untyped]
from reportlab.pdfbase import pdfmetrics  # type: ignore[import-untyped]
from reportlab.pdfbase.cidfonts import UnicodeCIDFont  # type: ignore[import-untyped]
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle  # type: ignore[import-untyped]
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.types import Receive, Scope, Send

from gateway.config import Settings
from gateway.errors import (
    BAD_INPUT,
    CONFLICT,
    FORBIDDEN,
    INTERNAL,
    NOT_FOUND,
    PRECONDITION_FAILED,
    UNAUTHENTICATED,
    UNAVAILABLE,
)
from gateway.middleware import REQUEST_ID, json_error
from gateway.storage.database import Database
from policies.access.policy import AccessPolicies
from policies.benefits import PolicySet
from resolvers.context import Context
from resolvers.documents import OPERATIONS, PayerAmount, SettlementDocument, document_of
from resolvers.documents import document_query as query_for

FONT = "STSong-Light"
"""reportlab's built-in Adobe CID font for simplified Chinese: no font file needed."""
NOT_SHOWN = "（不予显示）"
"""What a field the reader may not see prints as."""
STATUS = {
    BAD_INPUT: 400,
    UNAUTHENTICATED: 401,
    FORBIDDEN: 403,
    NOT_FOUND: 404,
    CONFLICT: 409,
    PRECONDITION_FAILED: 412,
    UNAVAILABLE: 503,
    INTERNAL: 500,
}
VISIT_TYPES = {
    "INPATIENT": "住院",
    "OUTPATIENT_CHRONIC": "门诊慢特病",
    "OUTPATIENT_GENERAL": "普通门诊",
}
LEVELS = {"PRIMARY": "一级", "SECONDARY": "二级", "TERTIARY": "三级"}
KINDS = {"ADJUSTMENT": "追溯调整", "REVERSAL": "冲销", "RECOVERY": "追回"}


# -- the words of the document ------------------------------------------------------------------


def money(amount: Decimal | None) -> str:
    """Yuan with thousands separators and two decimals; a hidden amount as :data:`NOT_SHOWN`.

    >>> money(Decimal("31680")), money(Decimal("-12.5")), money(None)
    ('31,680.00', '-12.50', '（不予显示）')
    """
    return NOT_SHOWN if amount is None else f"{amount:,.2f}"


def _text(value: str | date | None, words: dict[str, str] | None = None) -> str:
    if value is None:
        return NOT_SHOWN
    if isinstance(value, date):
        return value.isoformat()
    return (words or {}).get(value, value)


def facts(doc: SettlementDocument) -> list[tuple[str, str]]:
    """The header of the 结算单 as (label, text) pairs, in print order."""
    stay = (
        NOT_SHOWN
        if doc.admission_date is None
        else f"{_text(doc.admission_date)} 至 {_text(doc.discharge_date)}"
    )
    status = {None: NOT_SHOWN, True: "已冲销", False: "有效"}[doc.reversed]
    return [
        ("结算单号", doc.claim_number),
        ("姓名", _text(doc.name)),
        ("身份证号", _text(doc.id_number)),
        ("定点医疗机构", _text(doc.hospital_code)),
        ("医院等级", _text(doc.hospital_level, LEVELS)),
        ("就诊类型", _text(doc.visit_type, VISIT_TYPES)),
        ("住院期间", stay),
        ("总费用（元）", money(doc.total_cost)),
        ("政策范围内费用（元）", money(doc.policy_scope_cost)),
        ("适用政策", _text(doc.policy)),
        ("结算状态", status if doc.settled or doc.reversed is not None else "未结算"),
    ]


def _amount_rows(amounts: Iterable[PayerAmount]) -> list[tuple[str, str]]:
    return [(line.label, money(line.amount)) for line in amounts]


def _adjustment_rows(doc: SettlementDocument) -> list[tuple[str, str, str]]:
    """(date and time, kind, what changed) per later event; unchanged payers left out."""
    rows = []
    for event in doc.adjustments:
        changed = [
            f"{line.label} {'+' if line.amount > 0 else ''}{money(line.amount)}"
            for line in event.amounts
            if line.amount is not None and line.amount != 0
        ]
        when = event.at.strftime("%Y-%m-%d %H:%M")
        rows.append((when, KINDS.get(event.kind, event.kind), "；".join(changed) or "—"))
    return rows


def _footer(doc: SettlementDocument) -> str:
    printed = doc.printed_at.strftime("%Y-%m-%d %H:%M")
    return (
        f"打印时间 {printed}（北京时间）；按 {doc.reader} 的查阅权限生成，"
        f"{NOT_SHOWN}表示该项不向此查阅方披露。金额单位：元。"
    )


TITLE = "医疗费用一站式结算单（一单制）"


# -- HTML ---------------------------------------------------------------------------------------


class _Html(str):
    """A fragment this module built from escaped parts: inserted as it is."""


def _fill(template: string.Template, **values: str) -> _Html:
    """``template`` with every value HTML-escaped (quotes too), except fragments already built
    here (:class:`_Html`)."""
    return _Html(
        template.substitute(
            {
                k: v if isinstance(v, _Html) else html.escape(v, quote=True)
                for k, v in values.items()
            }
        )
    )


ROW = string.Template("<tr><th>$label</th><td>$value</td></tr>")
AMOUNT_ROW = string.Template('<tr class="$kind"><th>$label</th><td class="num">$value</td></tr>')
ADJUSTMENT_ROW = string.Template("<tr><td>$when</td><td>$kind</td><td>$what</td></tr>")
PAGE = string.Template("""<!doctype html>
<html lang="zh-CN">
<head>
<meta charset="utf-8">
<title>$title $claim</title>
<style>
  body { font-family: "Noto Sans CJK SC", "Noto Serif CJK SC", "Source Han Sans SC", sans-serif;
         background: #f3f4f6; margin: 0; padding: 24px; color: #111827; }
  main { background: #fff; max-width: 760px; margin: 0 auto; padding: 28px 36px;
         border: 1px solid #d1d5db; }
  h1 { font-size: 22px; text-align: center; margin: 0 0 4px; }
  p.sub { text-align: center; color: #4b5563; margin: 0 0 18px; }
  h2 { font-size: 16px; margin: 20px 0 6px; border-bottom: 2px solid #1f2937; }
  table { width: 100%; border-collapse: collapse; }
  th, td { border: 1px solid #d1d5db; padding: 6px 10px; text-align: left; }
  th { background: #f9fafb; width: 40%; font-weight: normal; }
  td.num { text-align: right; font-variant-numeric: tabular-nums; }
  tr.patient th, tr.patient td { font-weight: bold; background: #fef3c7; }
  table.log th { width: auto; }
  table.log td:last-child { width: 55%; }
  footer { margin-top: 18px; font-size: 12px; color: #6b7280; }
</style>
</head>
<body>
<main>
<h1>$title</h1>
<p class="sub">结算单号 $claim</p>
<h2>就诊信息</h2>
<table>$facts</table>
<h2>费用分担</h2>
<table>$amounts</table>
<h2>后续调整</h2>
<table class="log">
<tr><th>日期</th><th>类型</th><th>变动金额（元）</th></tr>
$adjustments
</table>
<footer>$footer</footer>
</main>
</body>
</html>
""")


def render_html(doc: SettlementDocument) -> str:
    """The 结算单 as an HTML page (UTF-8), every value escaped."""
    facts_html = "".join(_fill(ROW, label=k, value=v) for k, v in facts(doc))
    amounts = "".join(
        _fill(
            AMOUNT_ROW, kind="patient" if line.field == "outOfPocket" else "payer", label=k, value=v
        )
        for line, (k, v) in zip(doc.payers, _amount_rows(doc.payers), strict=True)
    )
    adjustments = "".join(
        _fill(ADJUSTMENT_ROW, when=w, kind=k, what=t) for w, k, t in _adjustment_rows(doc)
    ) or _fill(ADJUSTMENT_ROW, when="—", kind="无", what="—")
    return _fill(
        PAGE,
        title=TITLE,
        claim=doc.claim_number,
        facts=_Html(facts_html),
        amounts=_Html(amounts),
        adjustments=_Html(adjustments),
        footer=_footer(doc),
    )


# -- PDF ----------------------------------------------------------------------------------------


def _font() -> str:
    if FONT not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(UnicodeCIDFont(FONT))
    return FONT


def _table(rows: Sequence[tuple[str, ...]], widths: list[float], bold_last: bool = False) -> Table:
    # Plain strings in cells: reportlab draws them as they are (no markup to escape).
    table = Table(rows, colWidths=widths)
    style = [
        ("FONT", (0, 0), (-1, -1), _font(), 10),
        ("GRID", (0, 0), (-1, -1), 0.5, colors.grey),
        ("BACKGROUND", (0, 0), (0, -1), colors.whitesmoke),
        ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
    ]
    if bold_last:
        style += [
            ("BACKGROUND", (0, -1), (-1, -1), colors.lightyellow),
            ("FONT", (0, -1), (-1, -1), _font(), 11),
            ("ALIGN", (1, 0), (1, -1), "RIGHT"),
        ]
    table.setStyle(TableStyle(style))
    return table


def render_pdf(doc: SettlementDocument) -> bytes:
    """The 结算单 as a one-page A4 PDF (more pages if many adjustments)."""
    font = _font()
    title = ParagraphStyle("title", fontName=font, fontSize=16, leading=22, alignment=1)
    heading = ParagraphStyle("heading", fontName=font, fontSize=12, leading=18, spaceBefore=8)
    small = ParagraphStyle("small", fontName=font, fontSize=8, leading=11)

    def para(text: str, style: ParagraphStyle) -> Paragraph:
        return Paragraph(html.escape(text), style)  # Paragraph reads markup: escape it

    buffer = io.BytesIO()
    pdf = SimpleDocTemplate(
        buffer,
        pagesize=A4,
        title=f"{TITLE} {doc.claim_number}",
        leftMargin=18 * mm,
        rightMargin=18 * mm,
        topMargin=16 * mm,
        bottomMargin=16 * mm,
    )
    adjustments: list[tuple[str, ...]] = [("日期", "类型", "变动金额（元）")]
    adjustments += _adjustment_rows(doc) or [("—", "无", "—")]
    story = [
        para(TITLE, title),
        Spacer(1, 4 * mm),
        para("就诊信息", heading),
        _table(facts(doc), [55 * mm, 119 * mm]),
        para("费用分担", heading),
        _table(_amount_rows(doc.payers), [55 * mm, 119 * mm], bold_last=True),
        para("后续调整", heading),
        _table(adjustments, [40 * mm, 25 * mm, 109 * mm]),
        Spacer(1, 5 * mm),
        para(_footer(doc), small),
    ]
    pdf.build(story)
    return buffer.getvalue()


RENDERERS: dict[str, Callable[[SettlementDocument], str | bytes]] = {
    "pdf": render_pdf,
    "html": render_html,
}


# -- the route ----------------------------------------------------------------------------------


def _refusal(errors: list[Any], scope: Scope) -> Response:
    """The first error of a refused read as an HTTP error in the gateway's JSON shape."""
    error = errors[0]
    extensions = dict(error.extensions or {})
    code = str(extensions.pop("code", INTERNAL))
    extensions.pop("requestId", None)
    response = json_error(STATUS.get(code, 500), code, error.message, scope, **extensions)
    if code == UNAVAILABLE and "retryAfter" in extensions:
        response.headers["Retry-After"] = str(extensions["retryAfter"])
    return response


def _disposition(claim_number: str, kind: str) -> str:
    """``inline`` with the claim number as file name (RFC 6266/5987: any characters)."""
    encoded = quote(f"结算单-{claim_number}.{kind}")
    return f"inline; filename=\"settlement.{kind}\"; filename*=UTF-8''{encoded}"


class Gateway(Protocol):
    """What the running service holds (:class:`gateway.app.Gateway`), as far as documents use it."""

    settings: Settings
    db: Database
    policies: PolicySet
    access: AccessPolicies
    views: dict[str, Any]


class ClaimDocuments:
    """The ASGI endpoint of ``/documents/claims/{claim_number}.{kind}`` (behind the bearer
    token middleware): reads the claim as the caller's department, renders it."""

    def __init__(self, gateway_of: Callable[[Scope], Gateway]) -> None:
        self.gateway_of = gateway_of

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = await self.answer(Request(scope, receive))
        await response(scope, receive, send)

    async def answer(self, request: Request) -> Response:
        scope = request.scope
        number = str(request.path_params["claim_number"])
        kind = str(request.path_params["kind"])
        if kind not in RENDERERS:
            return json_error(404, NOT_FOUND, f"no document of kind {kind!r}: pdf or html", scope)
        gateway = self.gateway_of(scope)
        principal = scope["user"].principal
        policy = gateway.access.departments[principal.department]
        query = query_for(policy, OPERATIONS[kind])
        if query is None:
            return json_error(
                403,
                FORBIDDEN,
                f"{policy.department} may not read claims",
                scope,
                forbidden=["claim"],
            )
        context = Context(
            request=request,
            response=Response(),
            request_id=scope[REQUEST_ID],
            principal=principal,
            settings=gateway.settings,
            db=gateway.db,
            policies=gateway.policies,
            access=gateway.access,
        )
        try:
            result = await gateway.views[principal.department].schema.execute(
                query,
                variable_values={"claimNumber": number},
                context_value=context,
                operation_name=OPERATIONS[kind],
            )
        finally:
            await context.close()
        if result.errors:
            return _refusal(list(result.errors), scope)
        claim = (result.data or {}).get("claim")
        if claim is None:
            # Missing, or not the caller's to see: one answer (nothing tells which).
            return json_error(
                404,
                NOT_FOUND,
                f"claimNumber = {number}: no such claim",
                scope,
                field="claimNumber",
                value=number,
            )
        zone = ZoneInfo(gateway.settings.timezone)
        doc = document_of(claim, policy.department, datetime.now(UTC), zone)
        body = await asyncio.to_thread(RENDERERS[kind], doc)
        headers = {
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
            "Content-Disposition": _disposition(doc.claim_number, kind),
        }
        if kind == "html":
            # Nothing but the page's own inline style runs or loads.
            headers["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'"
            return HTMLResponse(body, headers=headers)
        return Response(body, media_type="application/pdf", headers=headers)
