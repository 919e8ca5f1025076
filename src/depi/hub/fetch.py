"""One verified file download from the Hub: a streamed GET of the ``resolve`` URL at a fixed commit, written
to a temp file beside the target, checked against the size and hash the repository listing gave, then
renamed into place (a crash never leaves a half file under the real name).

The request goes through huggingface_hub's own HTTP session (``huggingface_hub.utils.get_session``, its
headers, proxies and ``hf_raise_for_status`` errors), but not through ``hf_hub_download``: that function
sends a ``HEAD`` per file (one more request per video, the 429 storm of large downloads) and retries on its
own, which would multiply :mod:`depi.hub.retry`'s bounded budget.

Hashes (what the Hub's ``/api/datasets/<id>/revision/<sha>?blobs=True`` listing gives per file): LFS files
carry ``lfs.sha256`` of the content; other files carry the git blob id,
``sha1(b"blob <size>\\0" + content)`` (git's object format, *Pro Git* §10.2).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from huggingface_hub import hf_hub_url
from huggingface_hub.utils import build_hf_headers, get_session, hf_raise_for_status

CHUNK_BYTES = 1 << 20


class IncompleteDownload(ConnectionError):
    """The body ended early or its hash differs from the listing (retried like a dropped connection)."""


@dataclass(frozen=True)
class RemoteFile:
    """A file of a repository listing: ``path`` in the repo, ``size`` in bytes, and its ``sha256`` (LFS) or
    git ``blob_id`` (either may be None when the server did not say)."""

    path: str
    size: int | None
    sha256: str | None = None
    blob_id: str | None = None


def is_complete(target: Path, remote: RemoteFile) -> bool:
    """True when ``target`` exists with the listed size (files only get their name once verified)."""
    return target.is_file() and (remote.size is None or target.stat().st_size == remote.size)


def fetch_file(
    repo_id: str,
    remote: RemoteFile,
    target: Path,
    *,
    revision: str,
    endpoint: str,
    token: str | bool | None = None,
    timeout_s: float = 60.0,
) -> int:
    """Download ``remote`` of dataset ``repo_id`` at commit ``revision`` to ``target``; returns its bytes.

    Raises:
        huggingface_hub.errors.HfHubHTTPError: HTTP status >= 400 (the response is attached: status,
            ``Retry-After``).
        IncompleteDownload: fewer / more bytes than listed, or a hash mismatch.
        httpx TransportError: the connection failed or dropped.
    """
    url = hf_hub_url(repo_id, remote.path, repo_type="dataset", revision=revision, endpoint=endpoint)
    headers = build_hf_headers(token=token)
    headers["Accept-Encoding"] = "identity"
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.incomplete")
    sha256, sha1 = hashlib.sha256(), hashlib.sha1()
    if remote.blob_id is not None and remote.size is not None:
        sha1.update(b"blob %d\0" % remote.size)
    written = 0
    try:
        with get_session().stream(
            "GET", url, headers=headers, follow_redirects=True, timeout=timeout_s
        ) as response:
            if response.status_code >= 400:
                response.read()
                hf_raise_for_status(response)
            with open(tmp, "wb") as f:
                for chunk in response.iter_bytes(CHUNK_BYTES):
                    f.write(chunk)
                    sha256.update(chunk)
                    sha1.update(chunk)
                    written += len(chunk)
        _verify(remote, written, sha256.hexdigest(), sha1.hexdigest())
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return written


def _verify(remote: RemoteFile, written: int, sha256: str, sha1: str) -> None:
    if remote.size is not None and written != remote.size:
        raise IncompleteDownload(f"{remote.path}: got {written} bytes, the listing says {remote.size}")
    if remote.sha256 is not None and sha256 != remote.sha256:
        raise IncompleteDownload(f"{remote.path}: sha256 {sha256} differs from the listing's {remote.sha256}")
    if remote.sha256 is None and remote.blob_id is not None and sha1 != remote.blob_id:
        raise IncompleteDownload(f"{remote.path}: git blob id {sha1} differs from the listing's {remote.blob_id}")


def get_bytes(
    repo_id: str, path: str, *, revision: str, endpoint: str, token: str | bool | None = None, timeout_s: float = 30.0
) -> bytes:
    """The content of one small file of dataset ``repo_id`` (e.g. ``meta/info.json``), in memory.

    Raises:
        huggingface_hub.errors.HfHubHTTPError: HTTP status >= 400; httpx TransportError: connection failed.
    """
    url = hf_hub_url(repo_id, path, repo_type="dataset", revision=revision, endpoint=endpoint)
    response = get_session().get(url, headers=build_hf_headers(token=token), follow_redirects=True, timeout=timeout_s)
    hf_raise_for_status(response)
    return response.content
