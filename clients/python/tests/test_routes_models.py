"""Which requests a transport guards: routes added to the defaults, hosts in
no route (warned once, refused when strict, or under a default breaker), and
per-model breakers chosen from the request's model, through the real openai SDK."""
from __future__ import annotations

import logging
import pathlib
import shutil
import tempfile

import httpx2
import openai
import pytest

from conftest import Sidecar, sidecar_config
from fusebox import BreakerOpen, Fusebox, UnroutedRequest
from fusebox.httpx2 import DEFAULT_ROUTES, Transport
from test_httpx import Provider

CONFIG = sidecar_config("""
defaults:
  trip: { consecutive_failures: 2, window: off }
  open: { duration: 30s, jitter: 0, backoff: off }
breakers:
  openai: { models: [gpt-a, gpt-b] }
  anthropic: {}
""")


@pytest.fixture
def setup():
    folder = pathlib.Path(tempfile.mkdtemp(prefix="fusebox-routes-"))
    sidecar = Sidecar(folder, CONFIG).start()
    provider = Provider()
    fb = Fusebox(sidecar.socket)
    yield fb, provider
    fb.close()
    provider.server.shutdown()
    sidecar.stop()
    shutil.rmtree(folder, ignore_errors=True)


def sdk(fb: Fusebox, provider: Provider, **transport) -> openai.OpenAI:
    http = httpx2.Client(transport=Transport(fb, **transport))
    return openai.OpenAI(base_url=f"http://{provider.host}/v1", api_key="test", max_retries=0, http_client=http)


def ask(client: openai.OpenAI, model: str = "m"):
    return client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hello"}])


def failures(fb: Fusebox, breaker: str) -> int:
    return int(fb.status(breaker)[0]["consecutive_failures"])


def test_routes_add_to_the_defaults_and_replace_routes_replaces_them(setup):
    fb, provider = setup
    added = Transport(fb, routes={provider.host: "anthropic"})
    assert added.routes == {**DEFAULT_ROUTES, provider.host: "anthropic"}
    assert Transport(fb, replace_routes={provider.host: "anthropic"}).routes == {provider.host: "anthropic"}
    with pytest.raises(TypeError):
        Transport(fb, routes={}, replace_routes={})


def test_a_host_in_no_route_passes_through_with_one_warning_per_host(setup, caplog):
    fb, provider = setup
    client = sdk(fb, provider)
    provider.mode = "503"
    with caplog.at_level(logging.WARNING, logger="fusebox"):
        for _ in range(3):
            with pytest.raises(openai.APIStatusError):
                ask(client)
    warnings = [r.getMessage() for r in caplog.records if "map to no breaker" in r.getMessage()]
    assert len(warnings) == 1 and provider.host in warnings[0], warnings
    assert provider.calls == 3
    assert failures(fb, "openai") == 0 and fb.status("openai")[0]["state"] == "closed", "unguarded"


def test_strict_refuses_a_host_in_no_route_before_anything_is_sent(setup):
    fb, provider = setup
    # Let through to the app as it is, as BreakerOpen is.
    with pytest.raises(UnroutedRequest) as raised:
        ask(sdk(fb, provider, strict=True))
    assert raised.value.host == provider.host
    assert provider.calls == 0


def test_default_breaker_guards_every_other_host(setup):
    fb, provider = setup
    client = sdk(fb, provider, default_breaker="anthropic")
    provider.mode = "503"
    for _ in range(2):
        with pytest.raises(openai.APIStatusError):
            ask(client)
    assert fb.status("anthropic")[0]["state"] == "open"
    with pytest.raises(BreakerOpen):
        ask(client)
    assert provider.calls == 2, "the open breaker stopped the third request"


def test_one_failing_model_opens_only_its_own_breaker(setup):
    fb, provider = setup
    client = sdk(fb, provider, routes={provider.host: "openai"})
    provider.failing_models = {"gpt-a"}
    for _ in range(2):
        with pytest.raises(openai.APIStatusError):
            ask(client, "gpt-a")
    with pytest.raises(BreakerOpen) as refused:
        ask(client, "gpt-a")
    assert refused.value.breaker == "openai/gpt-a"
    assert ask(client, "gpt-b").choices[0].message.content == "hi"
    assert ask(client, "a-model-with-no-breaker").choices[0].message.content == "hi"
    states = {name: fb.status(name)[0]["state"] for name in ("openai/gpt-a", "openai/gpt-b", "openai")}
    assert states == {"openai/gpt-a": "open", "openai/gpt-b": "closed", "openai": "closed"}
