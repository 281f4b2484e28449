"""report.csv: the list's filters, UTF-8 with BOM, pt-BR headers, RFC 4180 quoting (a reason
with commas, quotes and a line break comes back intact), no formula injection."""

from __future__ import annotations

import csv
import io

from tests.api.conftest import AUTH, add_ticket

REASON = 'exame, "urgente"\nligar à tarde'


async def test_csv_opens_with_bom_and_quotes_a_hostile_reason(client, db, domains):
    (a, _), (b, _) = domains
    await add_ticket(db, a, reason=REASON, caller_name="=HYPERLINK(\"x\")")
    await add_ticket(db, a, status="canceled", reason="outro")
    await add_ticket(db, b, reason="de outro domínio")
    reply = await client.get("/api/callbacks/report.csv",
                             params={"domain_uuid": str(a), "status": "pending"}, headers=AUTH)
    assert reply.status_code == 200
    assert reply.headers["content-type"] == "text/csv; charset=utf-8"
    raw = reply.content
    assert raw.startswith(b"\xef\xbb\xbf")
    text = raw.decode("utf-8-sig")
    assert '"exame, ""urgente""\nligar à tarde"' in text
    assert "\r\n" in text
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert rows[0][:6] == ["ID", "Tipo", "Situação", "Telefone", "Nome", "Motivo"]
    assert len(rows) == 2
    assert rows[1][5] == REASON
    assert rows[1][4] == "'=HYPERLINK(\"x\")"
    assert rows[1][3] == "+5511988887777"
    bad = await client.get("/api/callbacks/report.csv", params={"domain_uuid": "x"},
                           headers=AUTH)  # fmt: skip
    assert bad.status_code == 400
