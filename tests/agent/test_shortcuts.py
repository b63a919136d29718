from __future__ import annotations

import plistlib
import shlex
from pathlib import Path

from sos_agent.shortcuts import ShortcutSpec, install_shortcuts, linux, macos, spec_for, windows


def _spec(tmp_path: Path) -> ShortcutSpec:
    icon = tmp_path / "icon.png"
    from PIL import Image

    Image.new("RGBA", (256, 256), "#1f6feb").save(icon)
    return ShortcutSpec(
        name="SOS",
        comment="Acme support",
        slug="acme-support",
        command=("/opt/My Agent/agent", "--data-dir", "/tmp/a b"),
        icon=icon,
    )


def test_linux_first_launch_writes_the_desktop_and_menu_launchers(make_config, tmp_path) -> None:
    config = make_config()
    paths = install_shortcuts(config)
    desktop = tmp_path / "home" / "Desktop" / "sos-support-sos.desktop"
    menu = tmp_path / "home" / ".local" / "share" / "applications" / "sos-support-sos.desktop"
    assert paths == [desktop, menu]
    text = desktop.read_text()
    assert "Name=SOS\n" in text and "Type=Application\n" in text
    exec_line = next(line for line in text.splitlines() if line.startswith("Exec="))
    assert exec_line.endswith(" --sos")
    assert f"Icon={config.data_dir / 'icon.png'}" in text
    assert desktop.stat().st_mode & 0o111
    # Start at login is off in the default brand.
    assert not (tmp_path / "home" / ".config" / "autostart").exists()
    assert spec_for(config).command[1:3] == ("-m", "sos_agent")


def test_linux_exec_line_quotes_spaces_and_specials(tmp_path: Path) -> None:
    spec = _spec(tmp_path)
    text = linux.desktop_entry(spec, spec.sos_command)
    assert 'Exec="/opt/My Agent/agent" --data-dir "/tmp/a b" --sos\n' in text
    assert linux.quote_exec_arg("100%") == "100%%"
    assert linux.quote_exec_arg('a"b') == '"a\\"b"'


def test_linux_start_at_login_adds_and_removes_the_autostart_entry(tmp_path: Path) -> None:
    spec = _spec(tmp_path)
    (path,) = linux.set_start_at_login(spec, True, autostart=tmp_path / "autostart")
    assert "--sos" not in path.read_text()
    assert linux.set_start_at_login(spec, False, autostart=tmp_path / "autostart") == []
    assert not path.exists()


def test_linux_desktop_folder_comes_from_xdg(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_DESKTOP_DIR", str(tmp_path / "Bureau"))
    assert linux.desktop_dir() == tmp_path / "Bureau"


def test_macos_app_on_the_desktop_starts_the_agent_with_sos(tmp_path: Path) -> None:
    spec = _spec(tmp_path)
    app, _ = macos.install(spec, desktop=tmp_path / "Desktop", applications=tmp_path / "Apps")
    assert app == tmp_path / "Desktop" / "SOS.app"
    info = plistlib.loads((app / "Contents" / "Info.plist").read_bytes())
    assert info["CFBundleExecutable"] == "sos-launcher"
    script = (app / "Contents" / "MacOS" / "sos-launcher").read_text()
    assert shlex.split(script.splitlines()[1]) == ["exec", *spec.sos_command]
    assert (app / "Contents" / "Resources" / "icon.icns").read_bytes()[:4] == b"icns"
    (agent,) = macos.set_start_at_login(spec, True, agents=tmp_path / "LaunchAgents")
    assert plistlib.loads(agent.read_bytes())["ProgramArguments"] == list(spec.command)


def test_windows_lnk_is_made_by_the_script_host_with_the_sos_argument(tmp_path: Path) -> None:
    spec = _spec(tmp_path)
    calls: list[list[str]] = []
    paths = windows.install(
        spec, desktop=tmp_path / "Desktop", programs=tmp_path / "Programs", run=calls.append
    )
    assert paths == [tmp_path / "Desktop" / "SOS.lnk", tmp_path / "Programs" / "SOS.lnk"]
    script = calls[0][-1]
    assert "WScript.Shell" in script and f"'{tmp_path / 'Desktop' / 'SOS.lnk'}'" in script
    assert "$s.TargetPath = '/opt/My Agent/agent'" in script
    assert "$s.Arguments = '--data-dir \"/tmp/a b\" --sos'" in script
    windows.set_start_at_login(spec, True, startup=tmp_path / "Startup", run=calls.append)
    assert "--sos" not in calls[-1][-1].split("Arguments")[1].split(";")[0]
