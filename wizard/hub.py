"""Hugging Face Hub: look a model up, search text-generation models, and the token's status.

Everything goes through huggingface_hub, which reads `HF_ENDPOINT`, `HF_HUB_OFFLINE` and the token
(`HF_TOKEN`, or the one `hf auth login` / `modelwiz login` saved) itself. modelwiz never puts the token
in argv, logs, URLs, messages or files of its own. Hub failures become the `HubError` subclasses
below, each one line that says what to do.
"""

from __future__ import annotations

import errno
import functools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from wizard.dtypes import DTYPE_BYTES
from wizard.errors import ModelwizError, UsageError
from wizard.redact import redact_host, redact_url

TOKENS_URL = "https://huggingface.co/settings/tokens"


# -- errors ------------------------------------------------------------------------------------------
class HubError(ModelwizError):
    """A Hub request failed for a reason we can explain."""


class ModelNotFound(UsageError):
    """The repo id does not exist, or is private and this token cannot see it (exit 2)."""


class RevisionNotFound(UsageError):
    """The branch, tag or commit does not exist in the repo (exit 2)."""


class GatedNotLoggedIn(HubError):
    """A gated repo, and no token: log in first."""

    def __init__(self, repo_id: str) -> None:
        self.access_url = access_url(repo_id)
        super().__init__(
            f"{repo_id} is a gated model and you are not logged in to Hugging Face",
            hint=f"ask for access at {self.access_url}, then run `modelwiz login` (or set HF_TOKEN)",
        )


class GatedNoAccess(HubError):
    """A gated repo, a valid token, and no access granted (yet)."""

    def __init__(self, repo_id: str, user: str | None = None) -> None:
        self.access_url = access_url(repo_id)
        who = f"your account {user!r}" if user else "your Hugging Face token"
        super().__init__(
            f"{repo_id} is a gated model and {who} has no access to it (yet)",
            hint=f"request access at {self.access_url} and run again once it is granted",
        )


class InvalidToken(HubError):
    """The token huggingface_hub found is rejected by the Hub (revoked, expired, mistyped)."""

    def __init__(self, source: str | None = None) -> None:
        where = {"env": " (from HF_TOKEN)", "file": " (saved by a previous login)"}.get(source or "", "")
        super().__init__(
            f"the Hugging Face token{where} is invalid or expired",
            hint=f"create a new one at {TOKENS_URL} and run `modelwiz login`"
            + (", or fix HF_TOKEN" if source == "env" else ""),
        )


class OfflineNotCached(HubError):
    """HF_HUB_OFFLINE is set and what was asked for is not on disk."""


class HubUnreachable(HubError):
    """The network or the Hub is down."""


def hub_endpoint() -> str:
    """The Hub URL huggingface_hub talks to (HF_ENDPOINT), possibly with credentials: never show
    it without `redact_url`."""
    from huggingface_hub import constants

    return str(constants.ENDPOINT)


def access_url(repo_id: str) -> str:
    """The model page, where a gated model's access request form is (credentials redacted)."""
    return f"{redact_url(hub_endpoint()).rstrip('/')}/{repo_id}"


def is_offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def token_source() -> Literal["env", "file"] | None:
    """Where huggingface_hub finds its token: `HF_TOKEN` env, the saved token file, or nowhere."""
    import os

    from huggingface_hub import constants

    if os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN"):
        return "env"
    try:
        if Path(constants.HF_TOKEN_PATH).read_text().strip():
            return "file"
    except OSError:
        pass
    return None


def translate_error(error: BaseException, repo_id: str, *, revision: str | None = None) -> ModelwizError:
    """Turn a huggingface_hub / httpx2 exception into the one-line modelwiz error that explains it."""
    import httpx2
    from huggingface_hub import errors as hf

    if isinstance(error, ModelwizError):
        return error
    cause = error.__cause__
    if (
        isinstance(error, hf.LocalEntryNotFoundError)
        and not is_offline()
        and isinstance(cause, (hf.HfHubHTTPError, httpx2.TransportError))
    ):
        # huggingface_hub wraps a failed HEAD ("cannot find the file in the cache"): the cause says why.
        return translate_error(cause, repo_id, revision=revision)
    if isinstance(error, hf.OfflineModeIsEnabled) or (isinstance(error, hf.LocalEntryNotFoundError) and is_offline()):
        return OfflineNotCached(
            f"offline mode (HF_HUB_OFFLINE=1) and {repo_id} is not on this machine",
            hint="unset HF_HUB_OFFLINE to download it, or copy the model here first",
        )
    if isinstance(error, hf.RevisionNotFoundError):
        return RevisionNotFound(
            f"{repo_id} has no revision {revision or 'main'!r}",
            hint=f"use a branch, tag or commit listed at {access_url(repo_id)}/tree/main",
        )
    if isinstance(error, hf.GatedRepoError):
        status = error.response.status_code if error.response is not None else None
        if status == 403 or token_source() is not None:
            return GatedNoAccess(repo_id, _whoami_name())
        return GatedNotLoggedIn(repo_id)
    if isinstance(error, hf.DisabledRepoError):
        return HubError(f"{repo_id} has been disabled on the Hub", hint="choose another model")
    if isinstance(error, hf.RepositoryNotFoundError):
        hint = "check the spelling (owner/name, as on the model page)"
        if token_source() is None:
            hint += "; if it is private, run `modelwiz login` first"
        return ModelNotFound(f"no model {repo_id!r} on {_host()}", hint=hint)
    if isinstance(error, hf.RemoteEntryNotFoundError):
        return HubError(
            f"a file of {repo_id} is missing on the Hub: {error.server_message or error}",
            hint="the repo changed while downloading; run again",
        )
    if isinstance(error, hf.HfHubHTTPError):
        status = error.response.status_code if error.response is not None else None
        if status == 401:
            return InvalidToken(token_source())
        if status == 429:
            return HubError(
                f"the Hub is rate-limiting requests for {repo_id}",
                hint="wait a few minutes and run again (logging in raises the limit)",
            )
        if status is not None and status >= 500:
            return HubUnreachable(
                f"the Hub at {_host()} has a server error (HTTP {status}) for {repo_id}",
                hint="the network is fine, the server is not: try again in a few minutes"
                " (status: https://status.huggingface.co, or ask whoever runs HF_ENDPOINT's mirror)",
            )
        return HubError(
            f"the Hub refused the request for {repo_id} (HTTP {status})", hint="run again with --debug for details"
        )
    if isinstance(error, (httpx2.TimeoutException, TimeoutError)):
        return HubUnreachable(
            f"{_host()} stopped sending data for {repo_id} (timed out)",
            hint="the Hub or the network is stalled; run again later (what arrived is kept)",
        )
    if isinstance(error, httpx2.RemoteProtocolError):
        return HubUnreachable(
            f"the connection to {_host()} kept dropping while fetching {repo_id}",
            hint="check the network (and HF_ENDPOINT / proxy settings), then run again (what arrived is kept)",
        )
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
        where = f" ({error.filename})" if error.filename else ""
        return ModelwizError(
            f"the disk is full{where} while downloading {repo_id}",
            hint="free some space (or choose a folder on a bigger disk), then run again: what arrived is kept",
        )
    if isinstance(error, OSError) and error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return ModelwizError(
            f"cannot write {error.filename or 'the download folder'}: {error.strerror}",
            hint="choose a folder you can write to",
        )
    if isinstance(error, (httpx2.TransportError, hf.LocalEntryNotFoundError, ConnectionError)):
        return HubUnreachable(
            f"cannot reach {_host()} to fetch {repo_id}",
            hint="check the network (and HF_ENDPOINT / proxy settings), then run again",
        )
    if isinstance(error, RecursionError):
        return HubError(
            f"the Hub sent JSON for {repo_id} that is nested too deeply to read",
            hint="this is not a usable model repo; choose another model",
        )
    return HubError(
        f"{type(error).__name__} while talking to the Hub about {repo_id}", hint="run again with --debug for details"
    )


_REACHED: dict[str, float] = {}  # endpoint -> when a connection to it last succeeded
_PROBE_TIMEOUT_S = 3.0


def _through_proxy(scheme: str, host: str) -> bool:
    """Whether requests to `host` go through an HTTP(S)_PROXY (as httpx, and so huggingface_hub, do)."""
    from urllib.request import getproxies, proxy_bypass

    proxies = getproxies()
    return bool(proxies.get(scheme) or proxies.get("all")) and not proxy_bypass(host)


def ensure_reachable(what: str) -> None:
    """Fail fast when the Hub cannot be reached at all (no route, no DNS): huggingface_hub would
    retry with backoff for about 25 seconds first, which a person waiting on a screen should not."""
    import socket
    import time
    from urllib.parse import urlsplit

    from huggingface_hub import constants

    endpoint = constants.ENDPOINT
    if time.monotonic() - _REACHED.get(endpoint, float("-inf")) < 60:
        return
    parts = urlsplit(endpoint)
    if _through_proxy(parts.scheme, parts.hostname or ""):
        return  # only the proxy knows whether the Hub answers; huggingface_hub goes through it
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        socket.create_connection((parts.hostname or "", port), timeout=_PROBE_TIMEOUT_S).close()
    except OSError as error:
        reason = getattr(error, "strerror", None) or str(error) or type(error).__name__
        raise HubUnreachable(
            f"cannot reach {_host()} to {what} ({reason})",
            hint="check the network (and HF_ENDPOINT / proxy settings), or set HF_HUB_OFFLINE=1 to use what is on disk",
        ) from None
    _REACHED[endpoint] = time.monotonic()


def _host() -> str:
    return redact_host(hub_endpoint())


def _whoami_name() -> str | None:
    """The logged-in user's name, or None (no token, invalid, offline). Never raises."""
    try:
        from huggingface_hub import HfApi

        return HfApi().whoami().get("name")
    except Exception:  # noqa: BLE001 - only a nicety in a message; never fails the caller
        return None


# -- vLLM architectures ------------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def vllm_architectures() -> dict[str, tuple[str, str]]:
    """architecture -> (kind, last_version) from assets/data/vllm-architectures.tsv."""
    from wizard.paths import data_file

    table: dict[str, tuple[str, str]] = {}
    lines = data_file("vllm-architectures.tsv").read_text().splitlines()
    for line in lines:
        if not line or line.startswith("#") or line.startswith("architecture\t"):
            continue
        arch, kind, last = ([*line.split("\t"), "", ""])[:3]
        table[arch] = (kind, last)
    return table


def check_vllm_support(architectures: list[str] | tuple[str, ...]) -> tuple[bool, str | None]:
    """(served, message). The message says why not, or names the caveat."""
    if not architectures:
        return False, "config.json names no architecture, so vLLM cannot tell which model class to load"
    table = vllm_architectures()
    for arch in architectures:
        kind, last = table.get(arch, ("", ""))
        if kind in ("text", "multimodal"):
            return True, None
        if kind == "transformers":
            return True, f"{arch} runs through vLLM's Transformers backend (slower than a native model)"
        if kind == "removed":
            return False, f"{arch} was dropped from vLLM after {last}; use an image with vLLM <= {last}"
    names = ", ".join(architectures)
    return False, (
        f"vLLM has no native implementation of {names}; it may still load with "
        "model_impl=transformers if transformers supports it, or with trust_remote_code"
    )


def estimate_weight_bytes(parameters_by_dtype: dict[str, int] | None) -> int | None:
    """Bytes the weights take, from safetensors parameter counts per dtype."""
    if not parameters_by_dtype:
        return None
    return int(sum(n * DTYPE_BYTES.get(dtype.upper(), 2) for dtype, n in parameters_by_dtype.items()))


# -- lookup ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class HubModel:
    repo_id: str
    sha: str
    gated: Literal[False, "auto", "manual"] = False
    private: bool = False
    files: dict[str, int] = field(default_factory=dict)  # repo path -> size in bytes
    config: dict | None = None  # config.json, as is
    parameters_by_dtype: dict[str, int] | None = None  # safetensors counts, e.g. {"BF16": 8e9}
    license: str | None = None
    architectures: tuple[str, ...] = ()
    model_type: str | None = None
    vllm_supported: bool = False
    vllm_message: str | None = None  # why not, or a caveat
    downloads: int = 0
    likes: int = 0
    pipeline_tag: str | None = None
    tags: tuple[str, ...] = ()
    revision: str | None = None  # what was asked for (None = main)
    offline: bool = False  # built from the local cache only
    etags: dict[str, str] = field(default_factory=dict)  # repo path -> etag (see file_etags)

    @property
    def parameters(self) -> int | None:
        return sum(self.parameters_by_dtype.values()) if self.parameters_by_dtype else None

    @property
    def weight_bytes(self) -> int | None:
        return estimate_weight_bytes(self.parameters_by_dtype)

    @property
    def total_bytes(self) -> int:
        return sum(self.files.values())

    @property
    def url(self) -> str:
        return access_url(self.repo_id)


def check_repo_id(repo_id: str) -> str:
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    repo_id = repo_id.strip()
    try:
        validate_repo_id(repo_id)
    except HFValidationError:
        raise UsageError(
            f"{repo_id!r} is not a Hugging Face model id",
            hint="write it as owner/name, e.g. Qwen/Qwen2.5-0.5B-Instruct",
        ) from None
    if "/" not in repo_id:
        raise UsageError(
            f"{repo_id!r} is not a Hugging Face model id",
            hint="write it as owner/name, e.g. Qwen/Qwen2.5-0.5B-Instruct",
        )
    return repo_id


def lookup_model(repo_id: str, *, revision: str | None = None, token: str | None = None) -> HubModel:
    """What the Hub knows about `repo_id` (no weights downloaded). Raises a HubError subclass.

    For a gated repo the access is checked too (auth-check), so a user without access hears it now,
    not halfway through a download. Offline (HF_HUB_OFFLINE=1), answers from the local cache.
    """
    from huggingface_hub import HfApi

    repo_id = check_repo_id(repo_id)
    if is_offline():
        return _lookup_cached(repo_id, revision)
    ensure_reachable(f"look up {repo_id}")
    api = HfApi()
    tok = token if token is not None else None
    try:
        info = api.model_info(repo_id, revision=revision, files_metadata=True, token=tok)
        if info.gated:
            api.auth_check(repo_id, token=tok)
        config = _fetch_config(repo_id, revision or "main", tok, sha=info.sha)
        params = _parameters(api, info, tok)
    except Exception as error:  # noqa: BLE001 - every library failure becomes one line
        raise translate_error(error, repo_id, revision=revision) from None
    files = {s.rfilename: int(s.size or 0) for s in (info.siblings or [])}
    return _build(repo_id, info.sha, revision, files, config, params, info=info)


def _build(repo_id, sha, revision, files, config, params, *, info=None, offline=False) -> HubModel:
    archs = tuple((config or {}).get("architectures") or ())
    supported, message = check_vllm_support(list(archs))
    card = getattr(info, "card_data", None) or {}
    license_ = card.get("license") if hasattr(card, "get") else None
    tags = tuple(getattr(info, "tags", None) or ())
    if not license_:
        license_ = next((t.split(":", 1)[1] for t in tags if t.startswith("license:")), None)
    return HubModel(
        repo_id=repo_id,
        sha=sha,
        gated=_gated(getattr(info, "gated", False)),
        private=bool(getattr(info, "private", False)),
        files=files,
        config=config,
        parameters_by_dtype=params,
        license=license_,
        architectures=archs,
        model_type=(config or {}).get("model_type"),
        vllm_supported=supported,
        vllm_message=message,
        downloads=int(getattr(info, "downloads", 0) or 0),
        likes=int(getattr(info, "likes", 0) or 0),
        pipeline_tag=getattr(info, "pipeline_tag", None),
        tags=tags,
        revision=revision,
        offline=offline,
        etags=file_etags(getattr(info, "siblings", None)),
    )


def _gated(value: object) -> Literal[False, "auto", "manual"]:
    """The Hub's `gated` field: False, "auto" or "manual" (any other true value counts as manual)."""
    if not value:
        return False
    return "auto" if value == "auto" else "manual"


def file_etags(siblings) -> dict[str, str]:
    """What huggingface_hub records as each file's etag: sha256 for LFS files, else the blob id."""
    out = {}
    for s in siblings or []:
        lfs = getattr(s, "lfs", None)
        sha256 = getattr(lfs, "sha256", None) if lfs is not None else None
        if isinstance(lfs, dict):
            sha256 = lfs.get("sha256")
        etag = sha256 or getattr(s, "blob_id", None)
        if etag:
            out[s.rfilename] = etag
    return out


def _fetch_config(repo_id: str, revision: str, token, *, sha: str | None = None) -> dict | None:
    """config.json (a few KB, kept in the HF cache under the revision's ref, so an offline lookup
    can use it) of commit `sha`: when the branch moved since model_info named the commit, the
    file is fetched again at that commit, so the metadata and the planned download agree."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import RemoteEntryNotFoundError

    try:
        path = hf_hub_download(repo_id, "config.json", revision=revision, token=token)
        if sha and Path(path).parent.name != sha:  # the cache's layout: snapshots/<commit>/config.json
            path = hf_hub_download(repo_id, "config.json", revision=sha, token=token)
    except RemoteEntryNotFoundError:
        return None
    return _read_json(path)


def _read_json(path) -> dict | None:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    except RecursionError:
        raise UsageError(
            "the model's config.json on the Hub is nested too deeply to be a real config",
            hint="this repo is not a usable model; choose another",
        ) from None
    return data if isinstance(data, dict) else None


def _parameters(api, info, token) -> dict[str, int] | None:
    """Parameter counts per dtype: the Hub's own summary, else the safetensors headers."""
    st = getattr(info, "safetensors", None)
    if st is not None and getattr(st, "parameters", None):
        return {k: int(v) for k, v in st.parameters.items()}
    names = [s.rfilename for s in (info.siblings or [])]
    if not any(n.endswith(".safetensors") for n in names):
        return None
    from huggingface_hub.errors import NotASafetensorsRepoError, SafetensorsParsingError

    try:
        meta = api.get_safetensors_metadata(info.id, revision=info.sha, token=token)
    except (NotASafetensorsRepoError, SafetensorsParsingError):
        return None
    return {k: int(v) for k, v in meta.parameter_count.items()} or None


def _lookup_cached(repo_id: str, revision: str | None) -> HubModel:
    """Offline: what the HF cache holds (config.json from an earlier lookup)."""
    from huggingface_hub import try_to_load_from_cache

    path = try_to_load_from_cache(repo_id, "config.json", revision=revision or "main")
    if not isinstance(path, str):
        raise OfflineNotCached(
            f"offline mode (HF_HUB_OFFLINE=1) and {repo_id} was never looked up on this machine",
            hint="unset HF_HUB_OFFLINE, or use a model folder that is already on disk",
        )

    sha = Path(path).parent.name
    return _build(repo_id, sha, revision, {}, _read_json(path), None, offline=True)


# -- search ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class HubSearchResult:
    repo_id: str
    downloads: int = 0
    likes: int = 0
    gated: Literal[False, "auto", "manual"] = False
    parameters: int | None = None  # total, when the Hub has safetensors metadata
    parameters_by_dtype: dict[str, int] | None = None
    pipeline_tag: str | None = None

    @property
    def weight_bytes(self) -> int | None:
        return estimate_weight_bytes(self.parameters_by_dtype)


def search_models(query: str, *, limit: int = 20) -> list[HubSearchResult]:
    """Text-generation models whose id contains `query`, most downloaded first."""
    from huggingface_hub import HfApi

    if limit < 1:
        raise UsageError("the search limit must be at least 1")
    ensure_reachable("search models")
    try:
        models = HfApi().list_models(
            search=query.strip() or None,
            pipeline_tag="text-generation",
            sort="downloads",
            limit=limit,
            expand=["downloads", "likes", "gated", "safetensors", "pipeline_tag"],
        )
        results = []
        for m in models:
            st = getattr(m, "safetensors", None)
            by_dtype = {k: int(v) for k, v in st.parameters.items()} if st and st.parameters else None
            results.append(
                HubSearchResult(
                    repo_id=m.id,
                    downloads=int(m.downloads or 0),
                    likes=int(m.likes or 0),
                    gated=_gated(m.gated),
                    parameters=int(st.total) if st and st.total else None,
                    parameters_by_dtype=by_dtype,
                    pipeline_tag=m.pipeline_tag,
                )
            )
    except Exception as error:  # noqa: BLE001 - every library failure becomes one line
        raise translate_error(error, f"search {query!r}") from None
    results.sort(key=lambda r: r.downloads, reverse=True)
    return results


# -- token -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AuthStatus:
    logged_in: bool  # a token exists and the Hub accepted it
    user: str | None = None
    source: Literal["env", "file"] | None = None  # HF_TOKEN, or the file `hf auth login` saved
    token_invalid: bool = False  # a token exists and the Hub rejected it
    checked: bool = True  # False when offline: the token was not verified
    message: str = ""


def auth_status() -> AuthStatus:
    """Who huggingface_hub is logged in as, and where the token comes from. Never the token itself."""
    source = token_source()
    if source is None:
        return AuthStatus(False, message="not logged in (no HF_TOKEN, no saved token)")
    if is_offline():
        return AuthStatus(
            False,
            source=source,
            checked=False,
            message="a token is set but offline mode (HF_HUB_OFFLINE=1) cannot verify it",
        )
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    try:
        info = HfApi().whoami()
    except HfHubHTTPError as error:
        if error.response is not None and error.response.status_code == 401:
            return AuthStatus(False, source=source, token_invalid=True, message=InvalidToken(source).one_line())
        raise translate_error(error, "whoami") from None
    except Exception as error:  # noqa: BLE001 - every library failure becomes one line
        raise translate_error(error, "whoami") from None
    user = info.get("name")
    where = "HF_TOKEN" if source == "env" else "the saved token"
    return AuthStatus(True, user=user, source=source, message=f"logged in as {user} (via {where})")


def save_token(token: str) -> str:
    """Check `token` with the Hub, then save it where huggingface_hub keeps it. Returns the user name.

    Uses huggingface_hub's own login storage (never git credentials); raises InvalidToken if the
    Hub rejects it, UsageError for an empty or organisation token.
    """
    import logging

    from huggingface_hub import login
    from huggingface_hub.errors import HfHubHTTPError

    token = token.strip()
    if not token:
        raise UsageError("no token given", hint=f"paste a token from {TOKENS_URL}")
    if any(c.isspace() for c in token):
        raise UsageError(
            "that does not look like a token (it contains spaces)", hint=f"paste only the token from {TOKENS_URL}"
        )
    if token.startswith("api_org"):
        raise UsageError("that is an organisation token", hint="use a personal access token")
    if is_offline():
        raise OfflineNotCached(
            "offline mode (HF_HUB_OFFLINE=1): cannot check the token", hint="unset HF_HUB_OFFLINE and run again"
        )
    hf_logger = logging.getLogger("huggingface_hub")
    level = hf_logger.level
    hf_logger.setLevel(logging.ERROR)  # login() logs chatty notes about git credentials
    try:
        from huggingface_hub import HfApi

        user = str(HfApi().whoami(token=token).get("name") or "")
        login(token=token, add_to_git_credential=False, skip_if_logged_in=False)
    except HfHubHTTPError as error:
        if error.response is not None and error.response.status_code == 401:
            raise InvalidToken() from None
        raise translate_error(error, "whoami") from None
    except Exception as error:  # noqa: BLE001 - every library failure becomes one line
        raise translate_error(error, "whoami") from None
    finally:
        hf_logger.setLevel(level)
    return user
