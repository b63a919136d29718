"""What the tray and the window show, computed from the core's state (pure, testable).

Every string here goes through the gettext catalogue given to :class:`ViewModel`.
"""

from __future__ import annotations

import gettext
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sos_agent.state import CaseRecord


def N_(text: str) -> str:
    """Marks a string for extraction; translated where it is shown."""
    return text


class TrayState(StrEnum):
    IDLE = "idle"
    WAITING = "waiting"
    IN_SESSION = "in_session"
    OFFLINE = "offline"


FIELD_LABELS = {
    "name": N_("Your name"),
    "email": N_("Your e-mail"),
    "description": N_("What is the problem?"),
}

# Refusals the customer can act on, by the backend's error code; others show its own message.
ERROR_TEXTS = {
    "already_joined": N_("This code is already in use on another device"),
}


@dataclass(frozen=True)
class ChatLine:
    author: str
    body: str
    mine: bool


@dataclass(frozen=True)
class WindowView:
    title: str
    welcome: str
    code_label: str
    code: str
    status: str
    tray_state: TrayState
    can_close: bool
    fields: tuple[tuple[str, str], ...]  # (field, label)
    chat: tuple[ChatLine, ...]
    error: str | None
    # The deployment's topics, offered while there is no open request (empty: no choice shown).
    topics: tuple[str, ...] = ()


class ViewModel:
    """Texts for one language; ``texts`` are the brand's own (empty means use ours)."""

    def __init__(
        self,
        translations: gettext.NullTranslations,
        product_name: str = "SOS",
        texts: dict[str, str] | None = None,
    ) -> None:
        self._ = translations.gettext
        self.product_name = product_name
        self.brand_texts = texts or {}

    # --- single texts ----------------------------------------------------------------------

    def status_text(
        self, record: CaseRecord | None, case: dict[str, Any] | None, online: bool | None
    ) -> str:
        """The case's status in words."""
        _ = self._
        if record is None:
            return _("No open request")
        if record.failed and record.failed not in ("closed",):
            if record.source == "manual":
                if record.failed in ERROR_TEXTS:
                    return _(ERROR_TEXTS[record.failed])
                return _("This code cannot be joined")
            return _("The request could not be sent")
        if record.status == "closed":
            return _("Request closed")
        if record.status == "expired":
            return _("Request expired")
        if online is False:
            return _("Waiting for the network…")
        if not record.token:
            return _("Sending your request…")
        if record.status == "closing":
            return _("Closing your request…")
        status = (case or {}).get("status", record.status)
        if status == "in_progress":
            return _("Connected")
        expert = ((case or {}).get("expert") or {}).get("display_name")
        if expert and (case or {}).get("expert_connected"):
            return _("{name} is connecting").format(name=expert)
        if expert:
            return _("{name} will help you").format(name=expert)
        return self.brand_texts.get("waiting") or _("Waiting for an expert")

    def tray_state(self, record: CaseRecord | None, online: bool | None) -> TrayState:
        if online is False:
            return TrayState.OFFLINE
        if record is None or record.is_final:
            return TrayState.IDLE
        if record.status == "in_progress":
            return TrayState.IN_SESSION
        return TrayState.WAITING

    def tray_title(
        self, record: CaseRecord | None, case: dict[str, Any] | None, online: bool | None
    ) -> str:
        status = self.status_text(record, case, online)
        if record is not None and record.code and not record.is_final:
            return f"{self.product_name}: {record.code} · {status}"
        return f"{self.product_name}: {status}"

    def case_line(self, record: CaseRecord | None, case: dict[str, Any] | None, online) -> str:
        """The tray menu's line about the current case."""
        if record is None or record.is_final:
            return self._("No open request")
        code = record.code or self._("(code coming)")
        return f"{code} · {self.status_text(record, case, online)}"

    def error_text(self, code: str | None, message: str | None) -> str | None:
        """The error line: our translation for a known refusal, else the backend's message."""
        if code in ERROR_TEXTS:
            return self._(ERROR_TEXTS[code])
        return message

    def menu_labels(self) -> dict[str, str]:
        _ = self._
        return {"help": _("Get help"), "open": _("Open"), "quit": _("Quit")}

    def labels(self) -> dict[str, str]:
        """Every fixed label of the window."""
        _ = self._
        return {
            "code": _("Your session code"),
            "copy": _("Copy"),
            "copied": _("Copied"),
            "details": _("About your request"),
            "save": _("Send details"),
            "chat": _("Chat with the expert"),
            "send": _("Send"),
            "close_case": _("Close my request"),
            "confirm_close": _("Close this request? The expert will no longer see it as open."),
            "have_code": _("I have a code"),
            "join": _("Join"),
            "join_prompt": _("Enter the code the expert gave you"),
            "bad_code": _("A code looks like s12-345-678"),
            "help": _("Get help"),
            "hide": _("Hide"),
            "quit": _("Quit"),
            "you": _("You"),
            "expert": _("Expert"),
            "topic": _("What is it about?"),
            "any_topic": _("Something else"),
            "consent": self.brand_texts.get("consent") or "",
        }

    def field_labels(self, customer_fields: Sequence[str]) -> tuple[tuple[str, str], ...]:
        return tuple((f, self._(FIELD_LABELS[f])) for f in customer_fields if f in FIELD_LABELS)

    # --- the whole window --------------------------------------------------------------------

    def window(
        self,
        record: CaseRecord | None,
        case: dict[str, Any] | None,
        online: bool | None,
        messages: Sequence[dict[str, Any]],
        customer_fields: Sequence[str],
        error: str | None = None,
        topics: Sequence[str] = (),
    ) -> WindowView:
        _ = self._
        open_case = record is not None and not record.is_final
        code = record.code if (record and record.code) else "—"
        chat = tuple(
            ChatLine(
                author=(m.get("author") or {}).get("name")
                or (_("You") if (m.get("author") or {}).get("kind") == "customer" else _("Expert")),
                body=m.get("body", ""),
                mine=(m.get("author") or {}).get("kind") == "customer",
            )
            for m in messages
        )
        return WindowView(
            title=self.product_name,
            welcome=self.brand_texts.get("welcome")
            or _("Give this code to the expert who helps you."),
            code_label=_("Your session code"),
            code=code,
            status=self.status_text(record, case, online),
            tray_state=self.tray_state(record, online),
            can_close=open_case and bool(record and record.token),
            fields=self.field_labels(customer_fields),
            chat=chat,
            error=error,
            # A topic routes a new request; an open one stays where it is.
            topics=() if open_case else tuple(topics),
        )
