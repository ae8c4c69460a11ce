"""API keys reach only the server they are meant for: real HTTP servers on loopback record the
headers of every request the OpenAI-compatible backend sends."""

from __future__ import annotations

import contextlib
import json

import pytest

from tts.backends.openai import KEY_SERVERS_ENV, OpenAIBackend, ServerError
from tts.errors import ValidationError
from tts.types import GenRequest

from .http_util import QuietHandler, serving

ENV_KEY = "sk-env-secret"
REPLY = {"choices": [{"index": 0, "message": {"content": "The answer is 7."},
                      "finish_reason": "stop"}],
         "usage": {"prompt_tokens": 12, "completion_tokens": 5}}


class Recorder(QuietHandler):
    """Answers every POST with a chat completion (or a redirect) and records its headers."""

    seen: list[dict[str, str]]
    redirect_to: str | None = None

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        self.read_body()
        type(self).seen.append({k.lower(): v for k, v in self.headers.items()})
        if self.redirect_to:
            self.reply(307, headers={"Location": self.redirect_to})
        else:
            self.reply(200, json.dumps(REPLY).encode(), {"Content-Type": "application/json"})


@pytest.fixture
def servers():
    """Start recording servers on 127.0.0.1: `start()` -> (handler class, base URL)."""
    with contextlib.ExitStack() as stack:
        def start(redirect_to: str | None = None):
            handler = type("H", (Recorder,), {"seen": [], "redirect_to": redirect_to})
            return handler, stack.enter_context(serving(handler))

        yield start


@pytest.fixture(autouse=True)
def env_key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", ENV_KEY)
    monkeypatch.delenv(KEY_SERVERS_ENV, raising=False)


def ask(backend: OpenAIBackend):
    [[c]] = backend.generate([GenRequest(prompt="q", max_tokens=8, seed=0)])
    assert c.answer == "7" and c.tokens == 5


def auth(handler) -> list[str | None]:
    return [h.get("authorization") for h in handler.seen]


def test_env_key_is_not_sent_to_an_arbitrary_server(servers):
    handler, url = servers()
    backend = OpenAIBackend(url, model="m")
    ask(backend)
    assert auth(handler) == [None] and backend.api_key is None


def test_explicit_key_goes_to_its_server(servers):
    handler, url = servers()
    ask(OpenAIBackend(url, model="m", api_key="sk-mine"))
    assert auth(handler) == ["Bearer sk-mine"]


def test_env_key_when_opted_in(servers, monkeypatch):
    handler, url = servers()
    ask(OpenAIBackend(url, model="m", env_key=True))
    assert auth(handler) == [f"Bearer {ENV_KEY}"]
    other, other_url = servers()
    monkeypatch.setenv(KEY_SERVERS_ENV, f"https://example.org, {url.rsplit('/', 1)[0]}")
    ask(OpenAIBackend(url, model="m"))  # listed origin
    ask(OpenAIBackend(other_url, model="m"))  # another port: another server
    assert auth(handler)[-1] == f"Bearer {ENV_KEY}" and auth(other) == [None]
    ask(OpenAIBackend(url, model="m", env_key=False))
    assert auth(handler)[-1] is None


def test_env_key_goes_to_openai_over_https_only():
    assert OpenAIBackend("https://api.openai.com/v1", model="gpt").api_key == ENV_KEY
    assert OpenAIBackend("https://API.openai.com:443/v1/", model="gpt").api_key == ENV_KEY
    assert OpenAIBackend("http://api.openai.com/v1", model="gpt").api_key is None
    assert OpenAIBackend("https://api.openai.com.evil.example/v1", model="g").api_key is None
    assert OpenAIBackend("https://evil.example/v1", model="gpt").api_key is None


@pytest.mark.parametrize("url", ["http://10.0.0.5:8000/v1", "http://example.com/v1",
                                 "http://127.0.0.1.nip.io/v1"])
def test_no_key_over_plain_http_to_other_hosts(url):
    with pytest.raises(ValidationError, match="refusing to send an API key over plain http"):
        OpenAIBackend(url, model="m", api_key="sk-mine")
    with pytest.raises(ValidationError, match="plain http"):
        OpenAIBackend(url, model="m", env_key=True)
    assert OpenAIBackend(url, model="m").api_key is None  # no key asked for: fine
    backend = OpenAIBackend(url, model="m", api_key="sk-mine", allow_insecure_key=True)
    assert backend.api_key == "sk-mine"


@pytest.mark.parametrize("url", ["http://127.0.0.1:8000/v1", "http://localhost:8000/v1",
                                 "http://[::1]:8000/v1", "http://127.1.2.3/v1"])
def test_loopback_http_may_carry_a_key(url):
    assert OpenAIBackend(url, model="m", api_key="sk-mine").api_key == "sk-mine"


def test_redirects_are_not_followed_with_the_key(servers):
    target, target_url = servers()
    source, source_url = servers(redirect_to=f"{target_url}/chat/completions")
    backend = OpenAIBackend(source_url, model="m", api_key="sk-mine", max_retries=0)
    with pytest.raises(ServerError, match="HTTP 307.*redirects are not followed"):
        ask(backend)
    assert auth(source) == ["Bearer sk-mine"] and target.seen == []


def test_bad_key_settings():
    with pytest.raises(ValidationError, match="api_key"):
        OpenAIBackend("http://127.0.0.1:1/v1", model="m", api_key=123)
    with pytest.raises(ValidationError, match="env_key"):
        OpenAIBackend("http://127.0.0.1:1/v1", model="m", env_key="yes")
