"""The agent's behaviour without any UI: first launch, SOS, join, fields, chat, close.

Every change goes through the outbox; the UI (tray, window) and headless mode call these methods
and read :class:`AgentCore`'s state, and are told of changes through :meth:`subscribe`.
"""

from __future__ import annotations

import logging
import re
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from sos_agent.client import ApiClient, ApiError, TransportError, device_info
from sos_agent.config import AgentConfig, DeploymentSettings
from sos_agent.outbox import Outbox, OutboxEntry, OutboxWorker
from sos_agent.state import CaseRecord, RuntimeState

log = logging.getLogger(__name__)

_CODE_DIGITS = re.compile(r"^[sS]?\s*(\d{2})[\s-]*(\d{3})[\s-]*(\d{3})$")


class InvalidCode(ValueError):
    """What the customer typed is not a session code."""


class UnknownTopic(ValueError):
    """The topic asked for is not one the deployment offers; the message lists those it does."""

    def __init__(self, topic: str, offered: tuple[str, ...]) -> None:
        if offered:
            message = f"unknown topic {topic!r}; choose one of: {', '.join(offered)}"
        else:
            message = f"unknown topic {topic!r}: this deployment offers no topics"
        super().__init__(message)
        self.topic = topic
        self.offered = offered


def normalize_code(text: str) -> str:
    """``"12 345 678"``, ``"S12-345-678"`` → ``"s12-345-678"``; ``InvalidCode`` otherwise."""
    match = _CODE_DIGITS.match(text.strip())
    if not match:
        raise InvalidCode(text)
    return "s{}-{}-{}".format(*match.groups())


class AgentCore:
    """One customer's agent: its state, its outbox and the flows the issue describes."""

    def __init__(
        self,
        config: AgentConfig,
        *,
        client: ApiClient | None = None,
        state: RuntimeState | None = None,
        outbox: Outbox | None = None,
        install_shortcuts: Callable[[AgentConfig], Any] | None = None,
    ) -> None:
        self.config = config
        self.client = client or ApiClient(config.backend_url, config.deployment_key)
        self.state = state or RuntimeState(config.data_dir)
        self.outbox = outbox or Outbox(config.data_dir)
        self._install_shortcuts = install_shortcuts
        self.online: bool | None = None
        self.case_view: dict[str, Any] | None = None  # the customer view of the current case
        self.messages: list[dict[str, Any]] = []
        self.last_error: str | None = None  # the backend's message for the last refusal
        self.last_error_code: str | None = None  # and its stable code, e.g. "already_joined"
        self._changed = threading.Condition(threading.RLock())
        # Not the state's lock: installing shortcuts may take seconds (PowerShell on Windows)
        # and the window reads the state meanwhile.
        self._first_launch_lock = threading.Lock()
        self._listeners: list[Callable[[], None]] = []
        self.worker = OutboxWorker(
            self.outbox, self._send, on_online=self.set_online, on_refused=self._refused
        )
        if self.state.data.deployment:
            self.config = config.with_deployment(
                DeploymentSettings.from_api(self.state.data.deployment)
            )

    # --- lifecycle and change notification --------------------------------------------------

    def start(self) -> None:
        """Start sending the outbox (requests left from an earlier run go first)."""
        self.worker.start()

    def stop(self) -> None:
        self.worker.stop()

    def subscribe(self, listener: Callable[[], None]) -> None:
        """Call ``listener()`` (from any thread) after every change."""
        self._listeners.append(listener)

    def notify(self) -> None:
        with self._changed:
            self._changed.notify_all()
        for listener in list(self._listeners):
            try:
                listener()
            except Exception:
                log.exception("change listener failed")

    def wait_for_change(self, timeout: float) -> None:
        with self._changed:
            self._changed.wait(timeout)

    def set_online(self, online: bool) -> None:
        if online != self.online:
            log.info("backend %s", "reachable" if online else "unreachable")
            was_offline = self.online is False
            self.online = online
            if online and was_offline:
                self.outbox.retry_now()
                self.worker.wake()
            self.notify()

    # --- deployment settings ----------------------------------------------------------------

    def refresh_deployment(self) -> DeploymentSettings:
        """Fetch the deployment's settings and merge them in (cached for offline starts)."""
        try:
            data = self.client.agent_config()
        except TransportError:
            self.set_online(False)
            return self.config.deployment
        self.set_online(True)
        settings = DeploymentSettings.from_api(data)
        self.state.set_deployment(settings.to_json())
        self.config = self.config.with_deployment(settings)
        self.notify()
        return settings

    # --- flows ---------------------------------------------------------------------------------

    def current(self) -> CaseRecord | None:
        return self.state.current()

    def resolve_topic(self, topic: str | None) -> str | None:
        """The deployment's name for ``topic`` (``None`` for none); ``UnknownTopic`` if not offered.

        Checked against the deployment's settings as last read from the backend. An agent that
        has never reached the backend cannot know them: it sends the topic and lets the backend
        decide (a refusal then names the valid topics).
        """
        if topic is None or not topic.strip():
            return None
        if self.state.data.deployment is None:
            return topic.strip()
        found = self.config.deployment.find_topic(topic)
        if found is None:
            raise UnknownTopic(topic.strip(), self.config.deployment.topics)
        return found

    def first_launch(
        self,
        customer: dict[str, str] | None = None,
        description: str | None = None,
        topic: str | None = None,
        *,
        open_case: bool = True,
    ) -> CaseRecord | None:
        """On the very first start: shortcut on the desktop, start at login, and a case.

        ``open_case=False`` does the set-up only: a first start that joins an expert's case
        must not open a second case beside it.
        """
        with self._first_launch_lock:  # one first launch, even if a hand-over arrives meanwhile
            if self.state.data.first_launch_done:
                return None
            if self._install_shortcuts is not None:
                try:
                    self._install_shortcuts(self.config)
                except OSError:
                    log.exception("could not install the desktop shortcut")
            record = (
                self._open_case("first_launch", customer, description, topic)
                if open_case else None
            )
            self.state.mark_first_launch_done()
            return record

    def request_help(
        self,
        source: str = "sos_button",
        customer: dict[str, str] | None = None,
        description: str | None = None,
        topic: str | None = None,
    ) -> CaseRecord:
        """The SOS button: bring back this device's open case, or open a new one."""
        with self.state.lock:
            record = self.current()
            if record is not None and not record.is_final and record.code and record.token:
                self.refresh_case()
                record = self.current()
            if record is not None and not record.is_final:
                log.info("bringing back case %s", record.code or record.local_id)
                if topic and topic != record.topic:
                    log.info("topic %r not applied: case %s is still open", topic, record.code)
                if customer or description:
                    self.update_fields(customer, description)
                return record
            return self._open_case(source, customer, description, topic)

    def join(self, code: str, customer: dict[str, str] | None = None) -> CaseRecord:
        """Join a manual case an expert opened and read out (``InvalidCode`` if malformed)."""
        code = normalize_code(code)
        body: dict[str, Any] = {"code": code, "device": device_info(self.state.device_id)}
        if customer := _clean_customer(customer):
            body["customer"] = customer
        with self.state.lock:
            previous = self.current()
            record = CaseRecord(
                local_id=uuid.uuid4().hex, source="manual", code=code,
                previous=previous.local_id if previous is not None else None,
            )
            self.state.add_case(record)
            self.case_view, self.messages = None, []
            self.last_error = self.last_error_code = None
            self.outbox.enqueue("join", "POST", "/agent/join", body, case=record.local_id)
        self.worker.wake()
        self.notify()
        return record

    def update_fields(
        self, customer: dict[str, str] | None = None, description: str | None = None
    ) -> None:
        """Send the customer's name, e-mail and description for the current case."""
        body: dict[str, Any] = {}
        if customer := _clean_customer(customer):
            body["customer"] = customer
        if description is not None and description.strip():
            body["description"] = description.strip()
        if body:
            self._enqueue_for_current("edit", "PATCH", "/cases/{code}", body)

    def send_message(self, text: str) -> None:
        text = text.strip()
        if text:
            self._enqueue_for_current("message", "POST", "/cases/{code}/messages", {"body": text})

    def close_case(self) -> None:
        """"Close my request": the case is closed by its creator."""
        record = self._enqueue_for_current("close", "POST", "/cases/{code}/close", None)
        if record is not None:
            self.state.update_case(record.local_id, status="closing")
            self.notify()

    def wait_until_sent(self, local_id: str, timeout: float) -> CaseRecord | None:
        """Block until the case has its code from the backend (or failed), at most ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            record = self.state.case(local_id)
            if record is None or record.token or record.failed:
                return record
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return record
            self.wait_for_change(min(remaining, 0.5))

    # --- reading the case --------------------------------------------------------------------

    def refresh_case(self) -> dict[str, Any] | None:
        """Read the current case and its messages from the backend (live, not queued)."""
        record = self.current()
        if record is None or not record.token or not record.code:
            return None
        try:
            case = self.client.get_case(record.code, record.token)
            after = self.messages[-1]["id"] if self.messages else None
            new_messages = self.client.messages(record.code, record.token, after)
        except TransportError:
            self.set_online(False)
            return self.case_view
        except ApiError as exc:
            if exc.status in (401, 403, 404):
                # The case was deleted or the token revoked: it is over for this device.
                self.state.update_case(record.local_id, status="closed", failed=exc.code)
                self.notify()
            return self.case_view
        self.set_online(True)
        with self.state.lock:
            current = self.current()
            if current is None or current.local_id != record.local_id:
                return self.case_view
            self.state.update_case(record.local_id, status=case["status"])
            self.case_view = case
            self.messages.extend(new_messages)
        self.notify()
        return case

    # --- internals --------------------------------------------------------------------------

    def _open_case(
        self,
        source: str,
        customer: dict[str, str] | None = None,
        description: str | None = None,
        topic: str | None = None,
    ) -> CaseRecord:
        record = CaseRecord(local_id=uuid.uuid4().hex, source=source, topic=topic or None)
        body: dict[str, Any] = {"source": source, "device": device_info(self.state.device_id)}
        if topic:
            body["topic"] = topic  # the backend routes the case to the topic's group
        if customer := _clean_customer(customer):
            body["customer"] = customer
        if description is not None and description.strip():
            body["description"] = description.strip()
        with self.state.lock:
            self.state.add_case(record)
            self.case_view, self.messages = None, []
            self.last_error = self.last_error_code = None
            self.outbox.enqueue("open_case", "POST", "/agent/cases", body, case=record.local_id)
        log.info(
            "case requested (%s%s), local id %s",
            source, f", topic {topic!r}" if topic else "", record.local_id,
        )
        self.worker.wake()
        self.notify()
        return record

    def _enqueue_for_current(
        self, kind: str, method: str, path: str, body: dict[str, Any] | None
    ) -> CaseRecord | None:
        record = self.current()
        if record is None or record.is_final:
            return None
        self.outbox.enqueue(kind, method, path, body, case=record.local_id)
        self.worker.wake()
        return record

    def _send(self, entry: OutboxEntry) -> None:
        """Perform one queued request (called by the outbox worker)."""
        # The key was made when the request was queued and is stored with it: a retry (after a
        # lost answer or a crash) repeats it, so the backend opens, joins or posts only once.
        headers = {"Idempotency-Key": entry.idempotency_key}
        if entry.kind in ("open_case", "join"):
            response = self.client.request(
                entry.method, entry.path, json=entry.body, headers=headers
            )
            case, token = response.body["case"], response.body["case_token"]
            with self.state.lock:
                self.state.update_case(
                    entry.case, code=case["code"], token=token, status=case["status"]
                )
                current = self.current()
                if current is not None and current.local_id == entry.case:
                    self.case_view = case
            log.info("case %s ready (%s)", case["code"], entry.kind)
            self.notify()
            return
        record = self.state.case(entry.case) if entry.case else None
        if record is None or not record.token or not record.code:
            log.warning("dropping %s: its case never got a code", entry.id)
            return
        try:
            self.client.request(
                entry.method,
                entry.path.format(code=record.code),
                token=record.token,
                json=entry.body,
                headers=headers,
            )
        except ApiError as exc:
            if entry.kind == "close" and exc.code in ("already_closed", "case_final"):
                pass  # a retry of a close that did arrive, or an expert closed it first
            else:
                raise
        if entry.kind == "close":
            self.state.update_case(record.local_id, status="closed")
        self.refresh_case()
        self.notify()

    def _refused(self, entry: OutboxEntry, exc: ApiError) -> None:
        """The backend refused a queued request for good (it is in ``outbox/failed/``)."""
        self.last_error, self.last_error_code = exc.message, exc.code
        if entry.kind in ("open_case", "join") and entry.case:
            with self.state.lock:
                record = self.state.update_case(entry.case, failed=exc.code, status="failed")
                if entry.kind == "join" and record is not None:
                    self._restore_previous(record)
        self.notify()

    def _restore_previous(self, refused: CaseRecord) -> None:
        """A refused join (a wrong code, or one already in use on another device) must not
        take the customer's own open case away: that case becomes current again."""
        if self.state.data.current_case != refused.local_id or refused.previous is None:
            return
        previous = self.state.case(refused.previous)
        if previous is not None and not previous.is_final:
            log.info("join of %s refused; back to case %s", refused.code, previous.code)
            self.state.set_current(previous.local_id)
            self.case_view, self.messages = None, []


def _clean_customer(customer: dict[str, str] | None) -> dict[str, str] | None:
    if not customer:
        return None
    cleaned = {k: v.strip() for k, v in customer.items() if k in ("name", "email") and v}
    cleaned = {k: v for k, v in cleaned.items() if v}
    return cleaned or None
