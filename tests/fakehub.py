"""A fake Hugging Face Hub on 127.0.0.1, faithful enough that the real huggingface_hub runs end to end.

It follows the routes, headers, `X-Error-Code` values and Range/206/416 answers of the real Hub as
huggingface_hub reads them, never advertises Xet, and is multi-threaded (snapshot downloads use 8 workers).
As the real Hub does, it answers the resolve URL of an LFS file with a 302 to its CDN: here
`http://localhost:<port>/_cdn/...`, another host for huggingface_hub (so the token must not follow), and
the CDN refuses a request that carries one, as an S3 presigned URL does ("Only one auth mechanism
allowed"). `cdn = False` serves LFS files from the resolve URL itself, as a plain mirror does.
Used by the tests (tests/fixtures_hub.py) and by benchmarks/download.py.
"""

from __future__ import annotations

import hashlib
import json
import re
import struct
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

ZERO_SHA = "0" * 40


def safetensors_bytes(tensors: dict[str, tuple[str, list[int]]], *, fill: bytes = b"\0") -> bytes:
    """A valid safetensors file: {name: (dtype, shape)}; the data is `fill` repeated."""
    sizes = {"F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I8": 1, "U8": 1, "F8_E4M3": 1}
    header: dict = {}
    offset = 0
    for name, (dtype, shape) in tensors.items():
        n = sizes[dtype]
        for dim in shape:
            n *= dim
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + n]}
        offset += n
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    body = (fill * (offset // len(fill) + 1))[:offset]
    return struct.pack("<Q", len(raw)) + raw + body


@dataclass
class FakeRepo:
    repo_id: str
    files: dict[str, bytes]
    sha: str = ""
    gated: bool | str = False  # False | "auto" | "manual"
    private: bool = False
    allowed_tokens: set[str] = field(default_factory=set)
    info: dict = field(default_factory=dict)  # extra model JSON (downloads, likes, tags, safetensors...)
    older: dict[str, dict[str, bytes]] = field(default_factory=dict)  # earlier commits: sha -> files

    def __post_init__(self) -> None:
        if not self.sha:
            digest = hashlib.sha1(self.repo_id.encode())
            for path in sorted(self.files):
                digest.update(path.encode() + hashlib.sha1(self.files[path]).digest())
            self.sha = digest.hexdigest()
        self._etags: dict[str, str] = {}

    def at(self, rev: str) -> FakeRepo:
        """The repo as of `rev` (main, or any commit it had)."""
        if rev in ("main", self.sha):
            return self
        return FakeRepo(self.repo_id, self.older[rev], rev, self.gated, self.private, self.allowed_tokens, self.info)

    def is_lfs(self, path: str) -> bool:
        return len(self.files[path]) > 10_000 or path.endswith((".safetensors", ".bin", ".pth"))

    def etag(self, path: str) -> str:
        if path not in self._etags:
            data = self.files[path]
            if self.is_lfs(path):
                self._etags[path] = hashlib.sha256(data).hexdigest()
            else:
                self._etags[path] = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
        return self._etags[path]


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]


class FakeHub:
    """`with FakeHub(repos=[...], users={"hf_tok": "alice"}) as hub: hub.endpoint`."""

    def __init__(self, repos: list[FakeRepo] = (), users: dict[str, str] | None = None) -> None:
        self.repos = {r.repo_id: r for r in repos}
        self.users = dict(users or {})
        self.log: list[Request] = []
        self._lock = threading.Lock()
        # Fault switches, for tests.
        self.cut_after: dict[str, int] = {}  # file path -> cut the next GET body after N bytes
        self.cut_times: dict[str, int] = {}  # how many GETs of that path to cut (default 1)
        self.throttle: dict[str, float] = {}  # file path -> seconds to sleep per 64 KiB written
        self.gate = threading.Event()  # when cleared with hold_path set, GETs of that path wait
        self.gate.set()
        self.hold_path: str | None = None
        # Fault injection (what a bad mirror, proxy or NIC does), for file requests (/resolve/):
        self.corrupt: dict[str, int] = {}  # path -> how many GETs serve damaged bytes (same size, same ETag)
        self.fail_status: int | None = None  # answer this status (500, 503...) ...
        self.fail_times = 0  # ... to this many of the next file requests (HEAD and GET)
        self.stall: set[str] = set()  # paths whose GET sends headers, then no body (until `unstall` or exit)
        self.ignore_range: set[str] = set()  # paths whose GET answers 200 with the whole file to a Range (a CDN
        # that compresses, or a proxy that drops Range)
        self.cdn = True  # LFS files: the resolve URL redirects to the CDN host (see the module docstring)
        self.expire_on_cut: set[str] = set()  # paths whose CDN signature expires when their body is cut: the
        # retry gets 403 "Request has expired", as a presigned URL does after its lifetime
        self.expired: set[str] = set()  # CDN signatures that have expired
        self._signed = 0
        self.search_gate = threading.Event()  # cleared: model searches (/api/models) wait for it (a slow Hub)
        self.search_gate.set()
        self.unstall = threading.Event()
        self._server: ThreadingHTTPServer | None = None

    # -- lifecycle -------------------------------------------------------------------------------
    def __enter__(self) -> FakeHub:
        hub = self

        class Handler(_Handler):
            fake = hub

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.gate.set()
        self.unstall.set()
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()

    @property
    def endpoint(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def add(self, repo: FakeRepo) -> FakeRepo:
        self.repos[repo.repo_id] = repo
        return repo

    def push(self, repo_id: str, files: dict[str, bytes]) -> str:
        """A new commit on main with `files`; the old commit stays reachable by its sha. Returns the new sha."""
        with self._lock:
            old = self.repos[repo_id]
            new = FakeRepo(repo_id, files, "", old.gated, old.private, old.allowed_tokens, old.info)
            new.older = {**old.older, old.sha: old.files}
            self.repos[repo_id] = new
            return new.sha

    def requests(self, method: str | None = None, contains: str = "") -> list[Request]:
        with self._lock:
            return [
                r
                for r in self.log
                if (method is None or r.method == method)
                and contains in r.path
                and "/api/agent-harnesses" not in r.path
            ]

    def take(self, table: dict[str, int], path: str) -> bool:
        """Use up one of `table[path]`'s injected faults; True when there was one."""
        with self._lock:
            left = table.get(path, 0)
            if left <= 0:
                return False
            table[path] = left - 1
            return True

    def take_failure(self) -> int | None:
        with self._lock:
            if self.fail_status is None or self.fail_times <= 0:
                return None
            self.fail_times -= 1
            return self.fail_status

    def sign(self) -> str:
        """A new CDN signature (each resolve of an LFS file gets its own, as the real Hub's do)."""
        with self._lock:
            self._signed += 1
            return f"sig{self._signed}"

    def record(self, req: Request) -> None:
        with self._lock:
            self.log.append(req)


_CDN = re.compile(r"^/_cdn/(?P<repo>[^/]+/[^/]+)/(?P<sha>[0-9a-f]{40})/(?P<path>.+)$")
_RESOLVE = re.compile(r"^/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<path>.+)$")
_API_MODEL = re.compile(
    r"^/api/models/(?P<repo>[^/]+/[^/]+)(?:/(?P<kind>revision|tree|auth-check)(?:/(?P<rev>[^/]+)(?:/(?P<path>.+))?)?)?$"
)


class _Handler(BaseHTTPRequestHandler):
    fake: FakeHub
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args) -> None:  # silence the default stderr log
        return None

    # -- plumbing --------------------------------------------------------------------------------
    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)

    def _json(self, status: int, obj, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(obj).encode(), {"Content-Type": "application/json", **(headers or {})})

    def _error(self, status: int, code: str | None, message: str, extra: dict[str, str] | None = None) -> None:
        headers = {"X-Error-Message": message, **(extra or {})}
        if code:
            headers["X-Error-Code"] = code
        self._json(status, {"error": message}, headers)

    def _token(self) -> str | None:
        auth = self.headers.get("authorization") or ""
        return auth[7:] if auth.lower().startswith("bearer ") else None

    def _repo(self, repo_id: str) -> FakeRepo | None:
        repo = self.fake.repos.get(repo_id)
        if repo is None:
            self._error(401, "RepoNotFound", "Repository not found")
            return None
        if repo.private and self._token() not in repo.allowed_tokens:
            self._error(401, "RepoNotFound", "Repository not found")
            return None
        return repo

    def _gated_ok(self, repo: FakeRepo) -> bool:
        if not repo.gated:
            return True
        token = self._token()
        if token is None or token not in self.fake.users:
            self._error(
                401,
                "GatedRepo",
                f"Access to model {repo.repo_id} is restricted. You must have access to it and be "
                "authenticated to access it. Please log in.",
            )
            return False
        if token not in repo.allowed_tokens:
            self._error(
                403,
                "GatedRepo",
                f"Access to model {repo.repo_id} is restricted and you are not in the authorized list. "
                f"Visit https://huggingface.co/{repo.repo_id} to ask for access.",
            )
            return False
        return True

    def _rev_ok(self, repo: FakeRepo, rev: str) -> bool:
        if rev not in ("main", repo.sha) and rev not in repo.older:
            self._error(404, "RevisionNotFound", f"Invalid rev id: {rev}")
            return False
        return True

    # -- verbs -----------------------------------------------------------------------------------
    def do_HEAD(self) -> None:
        self._dispatch()

    def do_GET(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        self.signature = ""  # the CDN signature of this request, if it is one
        self.fake.record(Request(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}))
        split = urlsplit(self.path)
        query = parse_qs(split.query)
        raw = split.path
        try:
            if raw == "/api/whoami-v2":
                return self._whoami()
            if raw == "/api/agent-harnesses":
                return self._json(200, {"standardEnvVars": [], "harnesses": {}})
            match = _CDN.match(raw)
            if match:
                signature = (query.get("X-Amz-Signature") or [""])[0]
                return self._cdn(unquote(match["repo"]), match["sha"], unquote(match["path"]), signature)
            token = self._token()
            if token is not None and token not in self.fake.users:
                # The real Hub rejects an unknown bearer token on every route, before anything else.
                return self._error(401, None, "Invalid credentials in Authorization header")
            if raw == "/api/models":
                self.fake.search_gate.wait(30)
                return self._list_models(query)
            match = _API_MODEL.match(raw)
            if match:
                return self._api_model(match, query)
            match = _RESOLVE.match(raw)
            if match:
                return self._resolve(unquote(match["repo"]), unquote(match["rev"]), unquote(match["path"]))
            self._error(404, None, "Not Found")
        except (BrokenPipeError, ConnectionResetError):
            return

    def _whoami(self) -> None:
        token = self._token()
        name = self.fake.users.get(token or "")
        if name is None:
            return self._error(401, None, "Invalid credentials in Authorization header")
        self._json(
            200,
            {
                "type": "user",
                "name": name,
                "fullname": name.title(),
                "orgs": [],
                "auth": {"type": "access_token", "accessToken": {"displayName": "test", "role": "read"}},
            },
        )

    def _model_json(self, repo: FakeRepo, *, blobs: bool, siblings: bool = True) -> dict:
        out = {
            "id": repo.repo_id,
            "modelId": repo.repo_id,
            "sha": repo.sha,
            "private": repo.private,
            "gated": repo.gated,
            "disabled": False,
            "downloads": 0,
            "likes": 0,
            "tags": [],
            "pipeline_tag": "text-generation",
            "library_name": "transformers",
            "lastModified": "2026-01-01T00:00:00.000Z",
            "createdAt": "2025-01-01T00:00:00.000Z",
        }
        out.update(repo.info)
        if siblings:
            sib = []
            for path in sorted(repo.files):
                entry: dict = {"rfilename": path}
                if blobs:
                    data = repo.files[path]
                    entry["size"] = len(data)
                    entry["blobId"] = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
                    if repo.is_lfs(path):
                        entry["lfs"] = {"size": len(data), "sha256": repo.etag(path), "pointerSize": 134}
                sib.append(entry)
            out["siblings"] = sib
        return out

    def _list_models(self, query: dict) -> None:
        models = list(self.fake.repos.values())
        if "search" in query:
            needle = query["search"][0].lower()
            models = [m for m in models if needle in m.repo_id.lower()]
        if "author" in query:
            models = [m for m in models if m.repo_id.split("/")[0] == query["author"][0]]
        for tag in query.get("filter", []) + query.get("pipeline_tag", []):
            models = [
                m
                for m in models
                if tag in m.info.get("tags", []) or tag == m.info.get("pipeline_tag", "text-generation")
            ]
        models = [m for m in models if not m.private]
        if "sort" in query:
            key = query["sort"][0]
            models.sort(key=lambda m: m.info.get(key, 0), reverse=True)
        if "limit" in query:
            models = models[: int(query["limit"][0])]
        full = query.get("full", ["false"])[0] == "true"
        items = []
        for m in models:
            item = self._model_json(m, blobs=False, siblings=full)
            if "expand" in query:
                keep = set(query["expand"]) | {"id", "_id"}
                item = {k: v for k, v in item.items() if k in keep}
            items.append(item)
        self._json(200, items)

    def _api_model(self, match: re.Match, query: dict) -> None:
        repo = self._repo(unquote(match["repo"]))
        if repo is None:
            return
        kind, rev = match["kind"], unquote(match["rev"] or "main")
        if kind == "auth-check":
            if self._gated_ok(repo):
                self._json(200, {})
            return
        if not self._rev_ok(repo, rev):
            return
        repo = repo.at(rev)
        if kind in (None, "revision"):
            return self._json(200, self._model_json(repo, blobs=query.get("blobs", [""])[0] == "true"))
        # tree
        prefix = unquote(match["path"] or "")
        recursive = query.get("recursive", ["false"])[0] == "true"
        entries, dirs = [], set()
        for path in sorted(repo.files):
            if prefix and not path.startswith(prefix.rstrip("/") + "/"):
                continue
            rest = path[len(prefix.rstrip("/")) + 1 :] if prefix else path
            parts = rest.split("/")
            base = (prefix.rstrip("/") + "/") if prefix else ""
            for i in range(1, len(parts)):
                d = base + "/".join(parts[:i])
                if (recursive or i == 1) and d not in dirs:
                    dirs.add(d)
                    entries.append({"type": "directory", "path": d, "oid": hashlib.sha1(d.encode()).hexdigest()})
            if len(parts) > 1 and not recursive:
                continue
            data = repo.files[path]
            entry = {
                "type": "file",
                "path": path,
                "size": len(data),
                "oid": hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest(),
            }
            if repo.is_lfs(path):
                entry["lfs"] = {"oid": repo.etag(path), "size": len(data), "pointerSize": 134}
            entries.append(entry)
        self._json(200, entries)

    def _resolve(self, repo_id: str, rev: str, path: str) -> None:
        repo = self._repo(repo_id)
        if repo is None or not self._gated_ok(repo) or not self._rev_ok(repo, rev):
            return
        repo = repo.at(rev)
        if path not in repo.files:
            return self._error(404, "EntryNotFound", f"Entry not found: {path}", {"X-Repo-Commit": repo.sha})
        failure = self.fake.take_failure()
        if failure is not None:
            return self._error(failure, None, "Internal Error - We're working hard to fix this as soon as possible!")
        data = repo.files[path]
        headers = {
            "X-Repo-Commit": repo.sha,
            "ETag": f'"{repo.etag(path)}"',
            "Accept-Ranges": "bytes",
            "Content-Disposition": f'attachment; filename="{path.rsplit("/", 1)[-1]}";',
            "Content-Type": "application/octet-stream",
        }
        if repo.is_lfs(path):
            headers["X-Linked-Size"] = str(len(data))
            headers["X-Linked-Etag"] = f'"{repo.etag(path)}"'
            if self.fake.cdn:
                port = self.server.server_address[1]
                signature = self.fake.sign()
                location = f"http://localhost:{port}/_cdn/{repo.repo_id}/{repo.sha}/{path}?X-Amz-Signature={signature}"
                body = f"Found. Redirecting to {location}".encode()
                headers = {k: v for k, v in headers.items() if k not in ("Accept-Ranges", "Content-Type")}
                return self._send(302, body, {**headers, "Location": location, "Content-Type": "text/plain"})
        self._serve_file(path, data, headers)

    def _cdn(self, repo_id: str, sha: str, path: str, signature: str) -> None:
        """The CDN behind an LFS file's redirect: presigned, so a request that also carries a token is refused,
        and so is one whose signature expired."""
        if self.headers.get("authorization"):
            body = b"<Error><Code>InvalidArgument</Code><Message>Only one auth mechanism allowed</Message></Error>"
            return self._send(400, body, {"Content-Type": "application/xml"})
        if signature in self.fake.expired:
            body = b"<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>"
            return self._send(403, body, {"Content-Type": "application/xml"})
        self.signature = signature
        repo = self.fake.repos.get(repo_id)
        files = None if repo is None else repo.files if sha == repo.sha else repo.older.get(sha)
        if files is None or path not in files:
            return self._send(403, b"<Error><Code>AccessDenied</Code></Error>", {"Content-Type": "application/xml"})
        name = path.rsplit("/", 1)[-1]
        headers = {
            "ETag": f'"{hashlib.sha256(files[path]).hexdigest()}"',
            "Accept-Ranges": "bytes",
            "Content-Disposition": f'attachment; filename="{name}";',
            "Content-Type": "application/octet-stream",
        }
        self._serve_file(path, files[path], headers)

    def _serve_file(self, path: str, data: bytes, headers: dict[str, str]) -> None:
        """A file's bytes, honouring Range (206, 416), with the body faults the tests switched on."""
        status, start, end = 200, 0, len(data)
        rng = self.headers.get("range")
        if rng and path not in self.fake.ignore_range:
            m = re.fullmatch(r"bytes=(\d+)-(\d*)", rng.strip())
            if not m or int(m[1]) >= len(data):
                return self._error(416, None, "Range Not Satisfiable", {"Content-Range": f"bytes */{len(data)}"})
            start = int(m[1])
            end = min(len(data), int(m[2]) + 1) if m[2] else len(data)
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end - 1}/{len(data)}"
        if self.command == "HEAD":
            self.send_response(200)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            return
        body = data[start:end]
        if self.fake.take(self.fake.corrupt, path):
            flip = min(len(body), 4096)  # the first 4 KiB inverted: same length, same headers
            body = bytes(b ^ 0xFF for b in body[:flip]) + body[flip:]
        cut = None
        with self.fake._lock:
            if path in self.fake.cut_after:
                cut = self.fake.cut_after[path]
                left = self.fake.cut_times.get(path, 1) - 1
                if left <= 0:
                    del self.fake.cut_after[path]
                    self.fake.cut_times.pop(path, None)
                else:
                    self.fake.cut_times[path] = left
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if cut is not None:
            if path in self.fake.expire_on_cut:
                self.fake.expired.add(self.signature)
            self.wfile.write(body[:cut])
            self.wfile.flush()
            self.close_connection = True
            return
        if path in self.fake.stall:
            self.wfile.flush()
            self.fake.unstall.wait(30)
            self.close_connection = True
            return
        delay = self.fake.throttle.get(path)
        hold = self.fake.hold_path == path
        if delay is None and not hold:
            self.wfile.write(body)
            return
        step = 64 * 1024
        import time

        for i in range(0, len(body), step):
            if hold and i >= step:
                self.fake.gate.wait(30)
            self.wfile.write(body[i : i + step])
            if delay:
                time.sleep(delay)
