from __future__ import annotations

import pytest

from sos_agent.i18n import translation
from sos_agent.state import CaseRecord
from sos_agent.viewmodel import TrayState, ViewModel


def _record(status: str = "new", token: str | None = "sosc_x") -> CaseRecord:
    return CaseRecord(local_id="l", source="sos_button", code="s12-345-678", token=token,
                      status=status)


ALICE = {"display_name": "Alice"}

CASES = {
    "waiting": (_record("new"), {"status": "new", "expert": None}),
    "connecting": (
        _record("pending"),
        {"status": "pending", "expert": ALICE, "expert_connected": True},
    ),
    "connected": (_record("in_progress"), {"status": "in_progress", "expert": ALICE}),
    "closed": (_record("closed"), None),
    "queued": (_record("queued", token=None), None),
}

EXPECTED = {
    "en": {
        "waiting": "Waiting for an expert",
        "connecting": "Alice is connecting",
        "connected": "Connected",
        "closed": "Request closed",
        "queued": "Sending your request…",
        "offline": "Waiting for the network…",
    },
    "fr": {
        "waiting": "En attente d'un technicien",
        "connecting": "Alice se connecte",
        "connected": "Connecté",
        "closed": "Demande close",
        "queued": "Envoi de votre demande…",
        "offline": "En attente du réseau…",
    },
    "pt": {
        "waiting": "À espera de um técnico",
        "connecting": "Alice está a ligar-se",
        "connected": "Ligado",
        "closed": "Pedido fechado",
        "queued": "A enviar o seu pedido…",
        "offline": "À espera da rede…",
    },
}


@pytest.mark.parametrize("language", ["en", "fr", "pt"])
@pytest.mark.parametrize("state", list(CASES))
def test_status_in_words_per_state_and_language(language: str, state: str) -> None:
    vm = ViewModel(translation(language))
    record, case = CASES[state]
    assert vm.status_text(record, case, online=True) == EXPECTED[language][state]


@pytest.mark.parametrize("language", ["en", "fr", "pt"])
def test_offline_says_waiting_for_the_network(language: str) -> None:
    vm = ViewModel(translation(language))
    record, case = CASES["waiting"]
    assert vm.status_text(record, case, online=False) == EXPECTED[language]["offline"]
    assert vm.tray_state(record, online=False) is TrayState.OFFLINE


def test_tray_state_follows_the_case() -> None:
    vm = ViewModel(translation("en"))
    assert vm.tray_state(None, True) is TrayState.IDLE
    assert vm.tray_state(_record("new"), True) is TrayState.WAITING
    assert vm.tray_state(_record("in_progress"), True) is TrayState.IN_SESSION
    assert vm.tray_state(_record("closed"), True) is TrayState.IDLE


def test_window_view_shows_code_fields_and_chat() -> None:
    vm = ViewModel(translation("fr"), product_name="Acme", texts={"welcome": "Bonjour"})
    record, case = CASES["connected"]
    messages = [
        {"author": {"kind": "expert", "name": "Alice"}, "body": "Hello"},
        {"author": {"kind": "customer", "name": None}, "body": "Hi"},
    ]
    view = vm.window(record, case, True, messages, ("name", "description"))
    assert view.code == "s12-345-678" and view.title == "Acme" and view.welcome == "Bonjour"
    assert view.fields == (("name", "Votre nom"), ("description", "Quel est le problème ?"))
    assert [(c.author, c.mine) for c in view.chat] == [("Alice", False), ("Vous", True)]
    assert view.can_close and view.tray_state is TrayState.IN_SESSION
    assert vm.menu_labels() == {"help": "Obtenir de l'aide", "open": "Ouvrir", "quit": "Quitter"}


def test_brand_waiting_text_replaces_ours() -> None:
    vm = ViewModel(translation("en"), texts={"waiting": "Hang on, Acme is on it"})
    record, case = CASES["waiting"]
    assert vm.status_text(record, case, True) == "Hang on, Acme is on it"


def _manual(failed: str | None = None) -> CaseRecord:
    return CaseRecord(local_id="j", source="manual", code="s20-000-001", token=None,
                      status="failed" if failed else "queued", failed=failed)


MORE_STATES = {
    "expired": (_record("expired"), None),
    "assigned": (_record("new"), {"status": "new", "expert": ALICE, "expert_connected": False}),
    "closing": (_record("closing"), {"status": "pending", "expert": None}),
    "join refused": (_manual("not_found"), None),
    "code in use": (_manual("already_joined"), None),
    "request refused": (
        CaseRecord(local_id="r", source="sos_button", status="failed", failed="rate_limited"),
        None,
    ),
}

MORE_EXPECTED = {
    "en": {
        "expired": "Request expired",
        "assigned": "Alice will help you",
        "closing": "Closing your request…",
        "join refused": "This code cannot be joined",
        "code in use": "This code is already in use on another device",
        "request refused": "The request could not be sent",
    },
    "fr": {
        "expired": "Demande expirée",
        "assigned": "Alice va vous aider",
        "closing": "Clôture de votre demande…",
        "join refused": "Ce code ne peut pas être rejoint",
        "code in use": "Ce code est déjà utilisé sur un autre appareil",
        "request refused": "La demande n'a pas pu être envoyée",
    },
    "pt": {
        "expired": "Pedido expirado",
        "assigned": "Alice vai ajudá-lo",
        "closing": "A fechar o seu pedido…",
        "join refused": "Não é possível entrar com este código",
        "code in use": "Este código já está a ser usado noutro dispositivo",
        "request refused": "Não foi possível enviar o pedido",
    },
}


@pytest.mark.parametrize("language", ["en", "fr", "pt"])
@pytest.mark.parametrize("state", list(MORE_STATES))
def test_more_states_in_words(language: str, state: str) -> None:
    vm = ViewModel(translation(language))
    record, case = MORE_STATES[state]
    assert vm.status_text(record, case, online=True) == MORE_EXPECTED[language][state]


def test_final_and_refused_cases_show_no_code_in_the_tray_and_cannot_be_closed() -> None:
    vm = ViewModel(translation("en"), product_name="Acme")
    for record, case in (MORE_STATES["expired"], MORE_STATES["code in use"]):
        assert vm.tray_state(record, True) is TrayState.IDLE
        assert vm.tray_title(record, case, True) == f"Acme: {vm.status_text(record, case, True)}"
        assert vm.case_line(record, case, True) == "No open request"
        assert not vm.window(record, case, True, [], ()).can_close
    record, case = MORE_STATES["closing"]
    assert vm.tray_title(record, case, True) == "Acme: s12-345-678 · Closing your request…"


def test_the_window_offers_the_topics_only_when_no_request_is_open() -> None:
    vm = ViewModel(translation("pt"))
    topics = ("Printer", "Network")
    assert vm.window(None, None, True, [], (), topics=topics).topics == topics
    closed, _ = CASES["closed"]
    assert vm.window(closed, None, True, [], (), topics=topics).topics == topics
    # An open request (even one still being sent) stays where it is: no choice shown.
    for state in ("waiting", "queued"):
        record, case = CASES[state]
        assert vm.window(record, case, True, [], (), topics=topics).topics == ()
    assert vm.window(None, None, True, [], ()).topics == ()  # a deployment without topics
    assert vm.labels()["topic"] == "Qual é o assunto?"
    assert vm.labels()["any_topic"] == "Outro assunto"


@pytest.mark.parametrize(
    ("language", "topic", "other"),
    [("en", "What is it about?", "Something else"),
     ("fr", "De quoi s'agit-il ?", "Autre chose")],
)
def test_topic_labels_are_translated(language: str, topic: str, other: str) -> None:
    labels = ViewModel(translation(language)).labels()
    assert (labels["topic"], labels["any_topic"]) == (topic, other)


def test_a_known_refusal_is_translated_and_others_keep_the_backends_message() -> None:
    vm = ViewModel(translation("fr"))
    assert vm.error_text("already_joined", "case s20 has already been joined") == (
        "Ce code est déjà utilisé sur un autre appareil"
    )
    assert vm.error_text("not_found", "no open case with the code s20-000-001") == (
        "no open case with the code s20-000-001"
    )
    assert vm.error_text(None, None) is None
