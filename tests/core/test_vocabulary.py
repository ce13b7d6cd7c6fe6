"""The failure vocabulary is whole and its page is current."""

from __future__ import annotations

from pathlib import Path

from jabberemu.core.events import CauseKind
from jabberemu.core.states import EndReason
from jabberemu.core.vocabulary import CAUSE_KINDS, END_REASONS, FAULT_CODES, render_markdown
from mock_server.cpa.request import FaultCode


def test_every_word_has_a_meaning() -> None:
    assert set(END_REASONS) == set(EndReason)
    assert set(CAUSE_KINDS) == set(CauseKind)
    assert all(form.split(":")[0] == kind.value for kind, (form, _t) in CAUSE_KINDS.items())


def test_fault_codes_are_the_mocks() -> None:
    assert list(FAULT_CODES) == [c.value for c in FaultCode]


def test_docs_page_is_generated_from_the_vocabulary() -> None:
    doc = Path(__file__).resolve().parents[2] / "docs" / "failure-causes.md"
    assert doc.read_text(encoding="utf-8") == render_markdown()
    page = render_markdown()
    assert "| `timeout:<stage>` |" in page and "`soap`, `connect`, `auth`, `bind`" in page
    assert "| `server-busy` | the node's login queue is full" in page
