"""A cut LFS file goes on where it stopped (wizard.resumable), against the fake Hub and its CDN.

The fake Hub answers an LFS file's resolve URL with a 302 to its CDN host, as the real Hub does, and the CDN
refuses a request that carries a token, as a presigned S3 URL does.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tests.fakehub import FakeRepo
from tests.fixtures_hub import GOOD_TOKEN, assert_identical, partial_of, tiny_model_files
from wizard import download as dl
from wizard import hub
from wizard.resumable import keeps_token

SHARD = "model-00001-of-00002.safetensors"


def cut_run(fake_hub, dest: Path, path: str, cut: int) -> int:
    """A run whose connection to `path` drops after `cut` bytes and then stays down: it fails, keeping them."""
    fake_hub.cut_after[path] = cut
    fake_hub.cut_times[path] = 1
    fake_hub.stall.add(path)  # the retries get headers, then nothing: a timeout
    try:
        with pytest.raises(hub.HubUnreachable):
            dl.download_model("org/tiny", dest)
    finally:
        fake_hub.stall.discard(path)
    return partial_of(dest, fake_hub.repos["org/tiny"], path).stat().st_size


@pytest.fixture
def short_timeout(monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_DOWNLOAD_TIMEOUT", 0.3)


def test_a_run_that_fails_keeps_the_bytes_and_the_next_asks_for_the_rest(
    fake_hub, tmp_path, small_chunks, short_timeout
):
    repo = fake_hub.repos["org/tiny"]
    dest = tmp_path / "d"
    have = cut_run(fake_hub, dest, SHARD, 100_000)
    assert have >= 90_000 and partial_of(dest, repo, SHARD).read_bytes() == repo.files[SHARD][:have]
    plan = dl.plan_download("org/tiny", dest)
    assert plan.partial == {SHARD: have}
    assert plan.bytes_to_fetch == plan.total_bytes - plan.present_bytes - have  # the disk check counts them
    before = len(fake_hub.requests("GET", SHARD))
    result = dl.download_model("org/tiny", dest)
    assert [r.headers.get("range") for r in fake_hub.requests("GET", SHARD)[before:]] == [f"bytes={have}-"]
    assert_identical(dest, repo, result.files) and dl.is_complete(dest)
    assert dl.read_verified(dest)[SHARD] == repo.etag(SHARD)
    assert not list((dest / dl.PARTIAL_DIR).iterdir())


def test_a_server_that_ignores_range_restarts_the_file_and_it_ends_identical(
    fake_hub, tmp_path, small_chunks, short_timeout
):
    repo = fake_hub.repos["org/tiny"]
    dest = tmp_path / "d"
    have = cut_run(fake_hub, dest, SHARD, 100_000)
    fake_hub.ignore_range.add(SHARD)  # 200 and the whole file, as a CDN that compresses does
    before = len(fake_hub.requests("GET", SHARD))
    result = dl.download_model("org/tiny", dest)
    assert [r.headers.get("range") for r in fake_hub.requests("GET", SHARD)[before:]] == [f"bytes={have}-"]
    assert_identical(dest, repo, result.files) and dl.is_complete(dest)


def test_a_damaged_partial_is_caught_by_its_hash_and_fetched_whole(fake_hub, tmp_path, small_chunks, short_timeout):
    repo = fake_hub.repos["org/tiny"]
    dest = tmp_path / "d"
    have = cut_run(fake_hub, dest, SHARD, 100_000)
    part = partial_of(dest, repo, SHARD)
    with open(part, "r+b") as handle:  # a bad sector, or a power cut that kept the size but not the bytes
        handle.seek(50_000)
        handle.write(b"\0" * 4096)
    before = len(fake_hub.requests("GET", SHARD))
    result = dl.download_model("org/tiny", dest)
    ranges = [r.headers.get("range") for r in fake_hub.requests("GET", SHARD)[before:]]
    assert ranges == [f"bytes={have}-", None]  # continued, refused by its hash, then fetched whole
    assert_identical(dest, repo, result.files) and dl.is_complete(dest)


def test_a_partial_longer_than_the_file_is_not_counted_and_is_fetched_again(fake_hub, tmp_path):
    repo = fake_hub.repos["org/tiny"]
    dest = tmp_path / "d"
    part = partial_of(dest, repo, SHARD)
    part.parent.mkdir(parents=True)
    part.write_bytes(repo.files[SHARD] + b"junk")
    (dest / dl.STARTED).write_text('{"repo_id": "org/tiny", "files": {}}')
    assert dl.plan_download("org/tiny", dest).partial == {}
    result = dl.download_model("org/tiny", dest)
    assert_identical(dest, repo, result.files) and dl.is_complete(dest)


def test_the_token_goes_to_the_hub_and_never_to_the_cdn(fake_hub, tmp_path):
    repo = fake_hub.repos["org/tiny-gated"]
    shard = next(p for p in repo.files if p.endswith(".safetensors"))
    result = dl.download_model("org/tiny-gated", tmp_path / "d", token=GOOD_TOKEN)
    assert_identical(tmp_path / "d", repo, result.files)
    heads = fake_hub.requests("HEAD", f"/resolve/{repo.sha}/{shard}")
    gets = fake_hub.requests("GET", shard)
    assert heads and all(r.headers.get("authorization") == f"Bearer {GOOD_TOKEN}" for r in heads)
    assert gets and all("/_cdn/" in r.path and "authorization" not in r.headers for r in gets)


def test_a_mirror_without_a_cdn_serves_the_file_itself_with_the_token(fake_hub, tmp_path, small_chunks, short_timeout):
    fake_hub.cdn = False
    repo = fake_hub.repos["org/tiny-gated"]
    shard = next(p for p in repo.files if p.endswith(".safetensors"))
    result = dl.download_model("org/tiny-gated", tmp_path / "d", token=GOOD_TOKEN)
    assert_identical(tmp_path / "d", repo, result.files)
    gets = fake_hub.requests("GET", shard)
    assert gets and all("/resolve/" in r.path and r.headers.get("authorization") for r in gets)


def test_a_partial_goes_on_across_a_new_commit_with_the_same_content_and_others_are_dropped(
    fake_hub, tmp_path, small_chunks, short_timeout
):
    repo = fake_hub.repos["org/tiny"]
    dest = tmp_path / "d"
    have = cut_run(fake_hub, dest, SHARD, 100_000)
    other = "model-00002-of-00002.safetensors"
    stale = partial_of(dest, repo, other)
    stale.write_bytes(repo.files[other][:1000])  # a partial of content the new commit no longer has
    # A new commit changes the second shard only: the first shard's bytes go on, the stale partial goes.
    new_files = {**repo.files, other: repo.files[other][::-1]}
    fake_hub.push("org/tiny", new_files)
    new = fake_hub.repos["org/tiny"]
    before = len(fake_hub.requests("GET", SHARD))
    result = dl.download_model("org/tiny", dest)
    assert result.sha == new.sha
    assert [r.headers.get("range") for r in fake_hub.requests("GET", SHARD)[before:]] == [f"bytes={have}-"]
    assert not stale.exists()
    assert_identical(dest, new, result.files) and dl.is_complete(dest)
    assert hashlib.sha256((dest / other).read_bytes()).hexdigest() == new.etag(other)


def test_a_cdn_url_that_expires_mid_file_is_signed_again_and_the_file_goes_on(fake_hub, tmp_path, small_chunks):
    """A presigned CDN URL lives for a while: a connection that drops after that is refused (403
    "Request has expired") on its retry. The Hub signs a new one and the file goes on from its bytes."""
    repo = fake_hub.repos["org/tiny"]
    fake_hub.cut_after[SHARD] = 100_000
    fake_hub.expire_on_cut.add(SHARD)
    result = dl.download_model("org/tiny", tmp_path / "d")
    gets = fake_hub.requests("GET", SHARD)
    signatures = [r.path.rsplit("X-Amz-Signature=", 1)[-1] for r in gets]
    ranges = [r.headers.get("range") for r in gets]
    assert ranges[0] is None and len(set(ranges[1:])) == 1 and ranges[1].startswith("bytes=")
    assert len(gets) == 3 and signatures[0] == signatures[1] != signatures[2]  # refused, then signed again
    assert len(fake_hub.requests("HEAD", f"/resolve/{repo.sha}/{SHARD}")) == 2
    assert_identical(tmp_path / "d", repo, result.files) and dl.is_complete(tmp_path / "d")


def test_a_cdn_that_keeps_refusing_fails_with_its_answer_and_keeps_the_bytes(fake_hub, tmp_path, small_chunks):
    repo = fake_hub.add(FakeRepo("org/one-shard", tiny_model_files((300_000,))))
    shard = "model-00001-of-00001.safetensors"
    dest = tmp_path / "d"
    fake_hub.cut_after[shard] = 100_000
    fake_hub.expire_on_cut.add(shard)
    original, signed = fake_hub.sign, []

    def sign() -> str:  # the first signature works until the cut; every later one has expired already
        signed.append(original())
        if len(signed) > 1:
            fake_hub.expired.add(signed[-1])
        return signed[-1]

    fake_hub.sign = sign
    try:
        with pytest.raises(hub.HubError) as info:
            dl.download_model("org/one-shard", dest)
    finally:
        fake_hub.sign = original
    assert "403" in info.value.one_line() and "again" in info.value.one_line()
    assert len(fake_hub.requests("HEAD", f"/resolve/{repo.sha}/{shard}")) == 3  # signed again, twice
    have = partial_of(dest, repo, shard).stat().st_size
    assert have >= 90_000
    before = len(fake_hub.requests("GET", shard))
    result = dl.download_model("org/one-shard", dest)
    assert [r.headers.get("range") for r in fake_hub.requests("GET", shard)[before:]] == [f"bytes={have}-"]
    assert_identical(dest, repo, result.files)


def test_the_token_follows_only_to_the_hub_s_own_hosts(fake_hub):
    """As hf_hub_download decides it: the same origin or a Hub host (a mirror that sends a file on to
    huggingface.co) keeps the token; a CDN's signed URL never gets it."""
    url = f"{fake_hub.endpoint}/org/x/resolve/{'0' * 40}/model.safetensors"
    assert keeps_token(url, url + "?download=true")
    assert keeps_token(url, "https://huggingface.co/org/x/resolve/main/model.safetensors")
    assert keeps_token(url, "https://huggingface.co:443/org/x/resolve/main/model.safetensors")
    assert not keeps_token(url, "https://cas-bridge.xethub.hf.co/xet-bridge-us/abc?X-Amz-Signature=s")
    assert not keeps_token(url, url.replace("127.0.0.1", "localhost"))
