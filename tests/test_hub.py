"""wizard.hub against the fake Hub: lookup, search, token status and the errors people see."""

from __future__ import annotations

import pytest

from tests.fixtures_hub import GOOD_TOKEN, OTHER_TOKEN
from wizard import hub
from wizard.errors import UsageError


def test_lookup_reports_files_config_params_license(fake_hub):
    model = hub.lookup_model("org/tiny")
    repo = fake_hub.repos["org/tiny"]
    assert model.sha == repo.sha
    assert model.files == {p: len(d) for p, d in repo.files.items()}
    assert model.architectures == ("LlamaForCausalLM",) and model.model_type == "llama"
    assert model.config["num_key_value_heads"] == 2
    assert model.parameters_by_dtype == {"BF16": 250_000} and model.parameters == 250_000
    assert model.weight_bytes == 500_000
    assert model.license == "apache-2.0" and model.downloads == 500 and model.likes == 7
    assert model.vllm_supported and model.vllm_message is None
    assert model.gated is False and not model.private
    # No weights were fetched: only config.json was GET.
    gets = [r.path for r in fake_hub.requests("GET", "/resolve/")]
    assert gets and all(p.endswith("/config.json") for p in gets)


def test_lookup_counts_parameters_from_safetensors_headers_when_the_hub_has_none(fake_hub):
    model = hub.lookup_model("org/odd-arch")
    assert model.parameters_by_dtype == {"F16": 16, "F32": 4}
    assert fake_hub.requests("GET", "/resolve/main/model.safetensors") or fake_hub.requests("GET", "model.safetensors")


def test_lookup_says_when_vllm_does_not_serve_the_architecture(fake_hub):
    model = hub.lookup_model("org/odd-arch")
    assert not model.vllm_supported
    assert "FancyNewForCausalLM" in model.vllm_message


@pytest.mark.parametrize(
    "archs, ok, fragment",
    [
        (["Qwen2ForCausalLM"], True, None),
        (["LlavaForConditionalGeneration"], True, None),
        (["SmolLM3ForCausalLM"], True, "Transformers backend"),
        (["MllamaForConditionalGeneration"], False, "0.10.2"),
        ([], False, "no architecture"),
        (["BertModel"], False, "BertModel"),
    ],
)
def test_vllm_support_table(archs, ok, fragment):
    supported, message = hub.check_vllm_support(archs)
    assert supported is ok
    if fragment is None:
        assert message is None
    else:
        assert fragment in message


def test_lookup_unknown_repo_is_bad_input(fake_hub):
    with pytest.raises(hub.ModelNotFound) as info:
        hub.lookup_model("org/nope")
    assert info.value.exit_code == 2 and "org/nope" in str(info.value)
    assert "modelwiz login" in info.value.hint  # not logged in: it may be private


def test_lookup_bad_revision(fake_hub):
    with pytest.raises(hub.RevisionNotFound) as info:
        hub.lookup_model("org/tiny", revision="v9")
    assert "'v9'" in str(info.value)


@pytest.mark.parametrize("bad", ["", "tiny", "a/b/c", "org/bad name"])
def test_malformed_repo_ids_are_usage_errors(bad, fake_hub):
    with pytest.raises(UsageError):
        hub.lookup_model(bad)
    assert not fake_hub.requests()


def test_gated_anonymous_says_log_in_and_where_to_ask(fake_hub):
    with pytest.raises(hub.GatedNotLoggedIn) as info:
        hub.lookup_model("org/tiny-gated")
    assert info.value.access_url == f"{fake_hub.endpoint}/org/tiny-gated"
    assert "modelwiz login" in info.value.one_line() and info.value.access_url in info.value.one_line()


def test_gated_without_access_names_the_user_and_the_request_page(fake_hub, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", OTHER_TOKEN)
    with pytest.raises(hub.GatedNoAccess) as info:
        hub.lookup_model("org/tiny-gated")
    line = info.value.one_line()
    assert "'bob'" in line and f"{fake_hub.endpoint}/org/tiny-gated" in line
    assert OTHER_TOKEN not in line


def test_gated_with_access_works(fake_hub, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", GOOD_TOKEN)
    model = hub.lookup_model("org/tiny-gated")
    assert model.gated == "manual" and model.architectures == ("LlamaForCausalLM",)


def test_invalid_token_is_told_apart(fake_hub, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_revoked_000000000000000000")
    with pytest.raises(hub.InvalidToken) as info:
        hub.lookup_model("org/tiny")
    assert "HF_TOKEN" in info.value.one_line()
    assert "hf_revoked" not in info.value.one_line()


def test_unreachable_hub(fake_hub, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")  # discard port: refused
    with pytest.raises(hub.HubUnreachable) as info:
        hub.lookup_model("org/tiny")
    assert "127.0.0.1:9" in str(info.value)


def test_offline_lookup_uses_the_cache_or_says_so(fake_hub, monkeypatch):
    from huggingface_hub import constants

    online = hub.lookup_model("org/tiny")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    before = len(fake_hub.requests())
    cached = hub.lookup_model("org/tiny")
    assert cached.offline and cached.sha == online.sha and cached.architectures == online.architectures
    with pytest.raises(hub.OfflineNotCached) as info:
        hub.lookup_model("org/tiny-chat")
    assert "HF_HUB_OFFLINE" in info.value.one_line()
    assert len(fake_hub.requests()) == before


def test_search_text_generation_most_downloaded_first(fake_hub):
    results = hub.search_models("tiny")
    assert [r.repo_id for r in results] == ["org/tiny-chat", "org/tiny", "org/tiny-gated"]
    by_id = {r.repo_id: r for r in results}
    assert by_id["org/tiny-gated"].gated == "manual"
    assert by_id["org/tiny"].parameters == 250_000 and by_id["org/tiny"].weight_bytes == 500_000
    request = fake_hub.requests("GET", "/api/models?")[0].path
    assert "pipeline_tag=text-generation" in request and "sort=downloads" in request


def test_search_limit_and_no_match(fake_hub):
    assert len(hub.search_models("tiny", limit=1)) == 1
    assert hub.search_models("zzz") == []
    with pytest.raises(UsageError):
        hub.search_models("tiny", limit=0)


def test_auth_status_not_logged_in(fake_hub):
    status = hub.auth_status()
    assert not status.logged_in and status.source is None and not status.token_invalid


def test_auth_status_env_and_invalid(fake_hub, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", GOOD_TOKEN)
    status = hub.auth_status()
    assert status.logged_in and status.user == "alice" and status.source == "env"
    assert GOOD_TOKEN not in repr(status)
    monkeypatch.setenv("HF_TOKEN", "hf_wrong_00000000000000000000")
    status = hub.auth_status()
    assert not status.logged_in and status.token_invalid and status.source == "env"


def test_save_token_validates_then_saves_where_huggingface_hub_reads_it(fake_hub):
    from huggingface_hub import constants, get_token

    assert hub.save_token(f"  {GOOD_TOKEN}\n") == "alice"
    assert get_token() == GOOD_TOKEN
    status = hub.auth_status()
    assert status.logged_in and status.source == "file" and status.user == "alice"
    whoami = [r for r in fake_hub.requests("GET", "/api/whoami-v2")]
    assert whoami and all(GOOD_TOKEN not in r.path for r in whoami)  # header only, never the URL
    assert constants.HF_TOKEN_PATH.endswith("hf-token")


def test_save_token_rejects_invalid_and_saves_nothing(fake_hub):
    from huggingface_hub import get_token

    with pytest.raises(hub.InvalidToken) as info:
        hub.save_token("hf_not_a_real_token_0000000000")
    assert "hf_not_a_real" not in info.value.one_line()
    assert get_token() is None
    for bad in ("", "two words", "api_org_abc"):
        with pytest.raises(UsageError):
            hub.save_token(bad)


def test_an_unreachable_hub_fails_at_once_with_one_clear_line(fake_hub, monkeypatch):
    # A port nobody listens on: huggingface_hub alone would retry with backoff for ~25 s.
    import socket

    from huggingface_hub import constants

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}"
    monkeypatch.setattr(constants, "ENDPOINT", dead)
    with pytest.raises(hub.HubUnreachable) as info:
        hub.search_models("tiny")
    assert "cannot reach 127.0.0.1" in info.value.message and "\n" not in info.value.one_line()
    with pytest.raises(hub.HubUnreachable):
        hub.lookup_model("org/tiny")


def test_behind_a_proxy_the_reachability_probe_steps_aside(fake_hub, monkeypatch):
    # A direct connection would fail where only the proxy reaches the Hub: the probe must not decide.
    import socket

    from huggingface_hub import constants

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"http://hub.internal.example:{sock.getsockname()[1]}"
    monkeypatch.setattr(constants, "ENDPOINT", dead)
    hub._REACHED.clear()
    for name in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    hub.ensure_reachable("look up org/tiny")  # no direct probe, no error
    monkeypatch.delenv("HTTP_PROXY")
    with pytest.raises(hub.HubUnreachable):
        hub.ensure_reachable("look up org/tiny")


def test_a_hub_config_json_nested_too_deeply_is_bad_input(fake_hub):
    from tests.fakehub import FakeRepo, safetensors_bytes

    fake_hub.add(
        FakeRepo(
            "org/deep",
            {"config.json": b"[" * 100_000, "model.safetensors": safetensors_bytes({"w": ("F16", [4])})},
        )
    )
    with pytest.raises(UsageError, match="nested too deeply"):
        hub.lookup_model("org/deep")


def test_a_404_500_chain_from_a_head_request_is_told_as_the_servers_error(fake_hub, monkeypatch):
    """huggingface_hub wraps a failed HEAD in LocalEntryNotFoundError; the cause is what is reported."""
    import time as _time
    import types

    from huggingface_hub.utils import _http

    fast = types.SimpleNamespace(**{k: getattr(_time, k) for k in dir(_time) if not k.startswith("_")})
    fast.sleep = lambda s: None
    monkeypatch.setattr(_http, "time", fast)
    fake_hub.fail_status, fake_hub.fail_times = 503, 1000
    with pytest.raises(hub.HubUnreachable) as info:
        hub.lookup_model("org/tiny")
    assert "server error (HTTP 503)" in info.value.one_line()


def test_config_comes_from_the_commit_model_info_named_even_when_main_moves(fake_hub):
    """model_info names commit A; if main moves to B before config.json is read, the config is A's
    (the planner's metadata and the pinned download must describe the same commit)."""
    import json

    from tests.fixtures_hub import llama_config, tiny_model_files

    old_sha = fake_hub.repos["org/tiny"].sha
    bigger = json.loads(llama_config())
    bigger["num_key_value_heads"] = 4
    fake_hub.push("org/tiny", tiny_model_files(config=json.dumps(bigger).encode()))
    config = hub._fetch_config("org/tiny", "main", None, sha=old_sha)
    assert config is not None and config["num_key_value_heads"] == 2
    assert hub._fetch_config("org/tiny", "main", None)["num_key_value_heads"] == 4
