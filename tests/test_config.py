"""Specs, URLs, CHANNELS_URL, option checks and the backend registry."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

import channels
from channels import ConfigError, QueueChannel
from channels._config import parse_spec


@pytest.mark.parametrize(
    ("spec", "backend", "options"),
    [
        ("queue", "queue", {}),
        ("QUEUE", "queue", {}),
        ("queue://?maxsize=100", "queue", {"maxsize": "100"}),
        ("pipe://", "pipe", {}),
        (
            "manager://127.0.0.1:5000/jobs?maxsize=3",
            "manager",
            {"address": ("127.0.0.1", 5000), "name": "jobs", "maxsize": "3"},
        ),
    ],
)
def test_specs_parse(spec: str, backend: str, options: dict[str, object]) -> None:
    parsed = parse_spec(spec)
    assert parsed.backend == backend
    assert parsed.options == options


@pytest.mark.parametrize(
    "spec", ["", "queue/x", "queue://?maxsize", "queue://?a=1&a=2", "queue://:80", "q://h:bad"]
)
def test_bad_specs_are_config_errors(spec: str) -> None:
    with pytest.raises(ConfigError):
        channels.open_channel(spec)


def test_url_options_mean_the_same_as_keywords() -> None:
    for ch in (
        channels.open_channel[int]("queue://?maxsize=1"),
        channels.open_channel[int]("queue", maxsize=1),
    ):
        ch.send(1)
        with pytest.raises(channels.WouldBlock):
            ch.send_nowait(2)
        ch.close()


def test_channels_url_picks_the_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHANNELS_URL", "pipe")
    ch = channels.open_channel[int]()
    assert type(ch).__name__ == "PipeChannel"
    ch.close()
    monkeypatch.setenv("CHANNELS_URL", "queue://?maxsize=1")
    ch = channels.open_channel[int]()
    ch.send(1)
    with pytest.raises(channels.WouldBlock):
        ch.send_nowait(2)
    ch.close()
    monkeypatch.delenv("CHANNELS_URL")
    ch = channels.open_channel[int]()
    assert isinstance(ch, QueueChannel)
    ch.close()


@pytest.mark.parametrize(
    ("spec", "options", "says"),
    [
        ("nope", {}, "available: manager, pipe, queue, redis, rediss, simplequeue"),
        ("queue", {"maxsize": -1}, "maxsize must be"),
        ("queue", {"maxsize": "many"}, "not a valid int"),
        ("queue", {"colour": "red"}, "it takes: context"),
        ("queue", {"context": "teleport"}, "choose one of"),
        ("queue", {"serializer": "yaml"}, "choose one of ['json', 'pickle']"),
        ("queue", {"max_message_size": 0}, "max_message_size"),
        ("simplequeue", {"maxsize": 2}, "cannot be bounded"),
        ("pipe", {"maxsize": 2}, "for a bounded channel use"),
        ("queue://?maxsize=2", {"maxsize": 3}, "both in the spec"),
        ("queue://somehost:1/x", {}, "does not take option(s) 'address'"),
    ],
)
def test_config_errors_name_the_problem(spec: str, options: dict[str, Any], says: str) -> None:
    with pytest.raises(ConfigError) as info:
        channels.open_channel(spec, **options)
    assert says in str(info.value)
    assert isinstance(info.value, ValueError)


def test_register_backend_at_run_time() -> None:
    opened: list[dict[str, object]] = []

    def factory(*, flavour: str = "plain", maxsize: int = 0) -> channels.Channel[Any]:
        opened.append({"flavour": flavour, "maxsize": maxsize})
        return channels.open_channel("queue", maxsize=maxsize)

    factory.features = channels.Features(bounded=True)  # type: ignore[attr-defined]
    channels.register_backend("testecho", factory)
    try:
        assert "testecho" in channels.backends()
        ch = channels.open_channel[int]("testecho://?flavour=salty&maxsize=4")
        assert opened == [{"flavour": "salty", "maxsize": 4}]
        ch.close()
        with pytest.raises(ConfigError, match="already registered"):
            channels.register_backend("testecho", factory)
        unknown: dict[str, Any] = {"colour": "red"}
        with pytest.raises(ConfigError, match="it takes: flavour, maxsize"):
            channels.open_channel("testecho", **unknown)
    finally:
        channels.register_backend("testecho", factory, replace=True)


def test_register_backend_refuses_bad_names() -> None:
    with pytest.raises(ConfigError):
        channels.register_backend("Not A Name", channels.QueueChannel)
    with pytest.raises(ConfigError, match="already registered"):
        channels.register_backend("queue", channels.QueueChannel)


PLUGIN = """
from typing import Any
import channels

def open_loud(*, volume: int = 1) -> channels.Channel[Any]:
    ch = channels.open_channel("simplequeue")
    ch.send(("volume", volume))
    return ch
"""


def test_a_backend_from_an_installed_entry_point(tmp_path: Path) -> None:
    (tmp_path / "loud_backend.py").write_text(PLUGIN)
    info = tmp_path / "loud_backend-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: loud-backend\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[typed_channels.backends]\nloud = loud_backend:open_loud\n"
    )
    script = textwrap.dedent(
        """
        import channels
        assert "loud" in channels.backends(), channels.backends()
        ch = channels.open_channel("loud://?volume=11")
        ch.close()
        print(list(ch))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[('volume', 11)]"


@pytest.mark.parametrize(
    "password",
    ["Zq3/Xw7?Kp", "Jv8#Rt2/Ny", "Qm4?Wd6", "Ux1/Hb5", "Gf+9/Lc==", "Yk2?Zz=Pw", "Ee5@Oo6/Ii"],
)
@pytest.mark.parametrize("user", ["", "alice"])
def test_no_part_of_a_password_shows_whatever_it_holds(user: str, password: str) -> None:
    """A raw '/', '?', '#' or '@' in a password (base64 has them) never leaks into an error."""
    spec = f"redis://{user}:{password}@db.internal:6379/jobs?db=2&maxsize=nonsense"
    with pytest.raises(ConfigError) as caught:
        channels.open_channel[int](spec)
    told: list[str] = []
    error: BaseException | None = caught.value
    while error is not None:  # the message and every exception chained to it
        told.append(str(error))
        error = error.__cause__ or error.__context__
    said = " ".join(told)
    pieces = {p for p in re.split(r"[/?#@=+]", password) if len(p) > 1}
    for piece in pieces:
        assert piece not in said.replace("redis://", "").replace("db.internal", "")
