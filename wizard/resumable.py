"""Fetch one LFS file of a Hub model so that a cut download goes on where it stopped, in this run or the next.

huggingface_hub 2.x downloads each file into a temp file unique to the process and deletes it when the download
fails (`file_download._download_to_tmp_and_move`, huggingface/huggingface_hub PR #4228): a 5 GB shard cut at
4.9 GB, by Cancel, Ctrl-C, a killed process or a network that stays down, starts again from zero. For the files the
Hub lists a sha256 for (LFS: the weights), modelwiz keeps its own partial file and asks only for the rest, with
huggingface_hub's own HTTP pieces:

- `get_hf_file_metadata` (HEAD of the file's resolve URL at the planned commit) names the download location. For an
  LFS file the real Hub answers with a redirect to its CDN; the token is not sent there, as `hf_hub_download` does
  not send it (file_download.py: "Remove authorization header when downloading a LFS blob from a CDN").
- `http_get(..., resume_size=n)` streams the rest with `Range: bytes=n-`, retries a dropped connection from where it
  stopped, checks the size, and starts again from zero when a server answers a Range with 200 (file_download.py).
- The partial is named by the file's path and sha256, so it is only ever continued with the same content, whatever
  commit the next run fetches. Bytes are hashed as they are written (the bytes already on disk first, when a run
  resumes), and the file moves into place only when its hash is the one the Hub lists.
- The caller holds the folder's download lock, so a partial has one writer.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

from wizard.fsutil import sha256_file

_READ_BYTES = 1024 * 1024
PART_SUFFIX = ".part"
# A CDN URL is signed for a while (an hour or so); a connection that drops after that gets 403 on the
# retry. The Hub then signs a new one and the file goes on from its bytes on disk, this many times.
LOCATION_ATTEMPTS = 3


def partial_name(path: str, sha256: str) -> str:
    """Where, under the partial folder, the download of repo file `path` with content `sha256` goes on.
    The content in the name: a new commit that changes the file never continues the old bytes; the path in
    it: two files with the same content never share one partial."""
    return f"{path}.{sha256}{PART_SUFFIX}"


class _HashingWriter:
    """The file object `http_get` writes into: it hashes what is written, in order.

    `http_get` only writes, and rewinds (seek back to where it started, then truncate) when a server ignores Range;
    a rewind to 0 starts the hash again. Any other seek makes the running hash unusable: the file is hashed from disk.
    """

    def __init__(self, handle: IO[bytes], digest: Any, length: int) -> None:
        self._handle = handle
        self._digest = digest
        self._length = length
        self.in_order = True

    def write(self, data: bytes) -> int:
        written = self._handle.write(data)
        self._digest.update(data)
        self._length += len(data)
        return written

    def tell(self) -> int:
        return self._handle.tell()

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        position = self._handle.seek(offset, whence)
        if position == 0:
            self._digest, self._length = hashlib.sha256(), 0
        elif position != self._length:
            self.in_order = False
        return position

    def truncate(self, size: int | None = None) -> int:
        return self._handle.truncate(size)

    def hexdigest(self) -> str:
        return self._digest.hexdigest()

    @property
    def length(self) -> int:
        """The bytes written so far, in order (what a continued request starts after)."""
        return self._length


_DEFAULT_PORTS = {"http": 80, "https": 443}
_HUB_URLS = ("https://huggingface.co", "https://hf.co")


def _origin(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    return parts.scheme, (parts.hostname or "").lower(), parts.port or _DEFAULT_PORTS.get(parts.scheme, 0)


def keeps_token(url: str, location: str) -> bool:
    """Whether the token goes along to `location`: on the same origin as `url`, or on the Hub itself.
    A CDN's signed URL never gets it (huggingface_hub's rule: `utils/_http.py` `_is_same_or_hub_host`)."""
    from huggingface_hub import constants

    hub = {_origin(u) for u in (*_HUB_URLS, constants.ENDPOINT)}
    return _origin(location) in {_origin(url), *hub}


def _location(url: str, token: str | None) -> tuple[str, dict[str, str]]:
    """Where the bytes of `url` are served now (a HEAD to the Hub), and the headers to ask with."""
    from huggingface_hub import get_hf_file_metadata
    from huggingface_hub.utils import build_hf_headers

    meta = get_hf_file_metadata(url, token=token)
    location = meta.location or url
    headers = build_hf_headers(token=token)
    if not keeps_token(url, location):
        headers.pop("authorization", None)  # a signed CDN URL: the token stays on the Hub
    return location, headers


def fetch_resumable(
    url: str, *, part: Path, target: Path, size: int, sha256: str, token: str | None, tqdm_class: type
) -> str | None:
    """Download `url` (a resolve URL at a commit) into `target`, continuing the bytes `part` holds.

    Returns None when `target` now holds the file (its sha256 is `sha256`), else the sha256 that arrived (the partial
    is deleted: the next attempt starts from zero). Raises what huggingface_hub raises; the partial is kept then.
    """
    from huggingface_hub.errors import HfHubHTTPError
    from huggingface_hub.file_download import http_get

    location, headers = _location(url, token)
    part.parent.mkdir(parents=True, exist_ok=True)
    with open(part, "a+b") as handle:  # append: a rewind + truncate by http_get writes from 0 again
        have = handle.seek(0, os.SEEK_END)
        if have > size:
            handle.truncate(0)
            have = 0
        handle.seek(0)
        digest = hashlib.sha256()
        for chunk in iter(lambda: handle.read(_READ_BYTES), b""):
            digest.update(chunk)
        writer = _HashingWriter(handle, digest, have)
        for attempt in range(1, LOCATION_ATTEMPTS + 1):
            try:
                http_get(
                    location,
                    writer,  # type: ignore[arg-type]  # http_get writes, tells, seeks and truncates; nothing else
                    resume_size=writer.length if writer.in_order else handle.seek(0, os.SEEK_END),
                    headers=headers,
                    expected_size=size,
                    displayed_filename=target.name,
                    tqdm_class=tqdm_class,
                )
                break
            except HfHubHTTPError as error:
                status = error.response.status_code if error.response is not None else None
                if status == 416:
                    handle.truncate(0)  # the server has fewer bytes than the partial: it cannot be continued
                if status != 403 or location == url or attempt == LOCATION_ATTEMPTS:
                    raise
            location, headers = _location(url, token)  # the CDN URL expired: a fresh one, from here
        handle.flush()
        actual = writer.hexdigest() if writer.in_order else None
    if actual is None:
        actual = sha256_file(part)
    if actual != sha256:
        with contextlib.suppress(FileNotFoundError):
            part.unlink()
        return actual
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(part, target)
    return None
