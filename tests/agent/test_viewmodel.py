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
