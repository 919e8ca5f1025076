"""A local HTTP server speaking the Hugging Face Hub endpoints that huggingface_hub calls for datasets, for tests
and benchmarks (``HF_ENDPOINT=http://127.0.0.1:PORT`` or ``endpoint=``).

Repositories are folders ``<repos_dir>/<owner>/<name>`` (written by the tests); each gets a fixed fake commit
sha. Endpoints (paths as huggingface_hub 1.x / 2.x builds them):

* ``GET /api/datasets?filter=&search=&limit=`` — ``HfApi.list_datasets``; pages of ``page_size`` with a
  ``Link: <...>; rel="next"`` header (GitHub-style pagination, ``huggingface_hub.utils._pagination``);
* ``GET /api/datasets/<owner>/<name>[/revision/<rev>][?blobs=True]`` — ``dataset_info`` / ``repo_info``:
  ``id``, ``sha``, ``tags``, ``siblings`` (with ``size``, ``blobId``, ``lfs`` when ``blobs``);
* ``GET /api/datasets/<owner>/<name>/tree/<rev>[/<path>]?recursive=`` — ``list_repo_tree``;
* ``HEAD`` / ``GET /datasets/<owner>/<name>/resolve/<rev>/<path>`` — file metadata (``X-Repo-Commit``,
  ``ETag``, ``Content-Length``) and content.

``.parquet`` / ``.mp4`` files are served as LFS files (``lfs.sha256``, ``blobId`` of a pointer); others as
git blobs (``blobId = sha1("blob <size>\\0" + content)``). Faults are queued per path substring with
:meth:`FakeHub.fail`: an HTTP status (with ``Retry-After``) or a connection dropped half-way through the
body. Every request is logged in :attr:`FakeHub.requests` as ``(method, path)``.
"""

from __future__ import annotations

import hashlib
import json
import socket
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

from tests.helpers.local_server import LocalServer

LFS_SUFFIXES = (".parquet", ".mp4")


@dataclass
class Fault:
    """``kind`` ``"status"`` (answer ``status`` with ``Retry-After: retry_after``) or ``"drop"`` (close
    the connection after half the body); ``times`` None: forever."""

    match: str
    kind: str = "status"
    status: int = 503
    retry_after: float | None = None
    times: int | None = 1


def fake_sha(repo_id: str) -> str:
    return hashlib.sha1(f"commit:{repo_id}".encode()).hexdigest()


def git_blob_id(content: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


class FakeHub(LocalServer):
    """The server; use as a context manager (``with FakeHub(dir) as hub: hub.url``)."""

    def __init__(self, repos_dir: str | Path, *, latency_s: float = 0.0, page_size: int = 1000) -> None:
        self.repos_dir = Path(repos_dir)
        self.latency_s = latency_s
        self.page_size = page_size
        self.tags: dict[str, list[str]] = {}
        self.requests: list[tuple[str, str]] = []
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        super().__init__(_handler(self))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def fail(self, match: str, kind: str = "status", status: int = 503, retry_after: float | None = None,
             times: int | None = 1) -> None:  # fmt: skip
        """Queue a fault for the next ``times`` requests whose path contains ``match``."""
        with self._lock:
            self._faults.append(Fault(match, kind, status, retry_after, times))

    def count(self, method: str | None = None, contains: str = "") -> int:
        """Requests logged so far with this method (any when None) whose path contains ``contains``."""
        with self._lock:
            return sum(1 for m, p in self.requests if (method is None or m == method) and contains in p)

    def repo_ids(self) -> list[str]:
        return sorted(
            f"{o.name}/{n.name}" for o in self.repos_dir.iterdir() if o.is_dir() for n in o.iterdir() if n.is_dir()
        )

    def log(self, method: str, path: str) -> Fault | None:
        with self._lock:
            self.requests.append((method, path))
            for fault in self._faults:
                if fault.match in path and (fault.times is None or fault.times > 0):
                    if fault.times is not None:
                        fault.times -= 1
                    return fault
        return None

    # ----- repository views
    def files(self, repo_id: str) -> list[tuple[str, Path]]:
        root = self.repos_dir / repo_id
        return sorted((p.relative_to(root).as_posix(), p) for p in root.rglob("*") if p.is_file())

    def file_entry(self, rel: str, path: Path, tree: bool) -> dict:
        content = path.read_bytes()
        entry: dict = {"size": len(content)}
        if rel.endswith(LFS_SUFFIXES):
            sha256 = hashlib.sha256(content).hexdigest()
            lfs = {"size": len(content), "pointerSize": 134, ("oid" if tree else "sha256"): sha256}
            entry.update(lfs=lfs, blob=hashlib.sha1(f"pointer:{sha256}".encode()).hexdigest(), etag=sha256)
        else:
            entry.update(blob=git_blob_id(content), etag=git_blob_id(content))
        return entry

    def info(self, repo_id: str, blobs: bool) -> dict:
        siblings = []
        for rel, path in self.files(repo_id):
            sibling: dict = {"rfilename": rel}
            if blobs:
                e = self.file_entry(rel, path, tree=False)
                sibling.update(size=e["size"], blobId=e["blob"])
                if "lfs" in e:
                    sibling["lfs"] = e["lfs"]
            siblings.append(sibling)
        return {"id": repo_id, "sha": fake_sha(repo_id), "private": False,
                "tags": self.tags.get(repo_id, ["LeRobot"]), "siblings": siblings}  # fmt: skip


def _handler(hub: FakeHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:  # quiet
            pass

        def _send(self, status: int, body: bytes = b"", headers: dict | None = None, head: bool = False) -> None:
            self.send_response(status)
            for k, v in (headers or {}).items():
                self.send_header(k, str(v))
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if not head:
                self.wfile.write(body)

        def _json(self, data, status: int = 200, headers: dict | None = None) -> None:
            self._send(status, json.dumps(data).encode(), {"Content-Type": "application/json", **(headers or {})})

        def _not_found(self, what: str, code: str = "RepoNotFound") -> None:
            self._json({"error": f"{what} not found"}, 404, {"X-Error-Code": code, "X-Error-Message": what})

        def do_HEAD(self) -> None:
            self._route(head=True)

        def do_GET(self) -> None:
            self._route(head=False)

        def _route(self, head: bool) -> None:
            split = urlsplit(self.path)
            path, query = unquote(split.path), parse_qs(split.query)
            fault = hub.log(self.command, path)
            if hub.latency_s:
                time.sleep(hub.latency_s)
            if fault is not None and fault.kind == "status":
                headers = {"Retry-After": fault.retry_after} if fault.retry_after is not None else {}
                return self._json({"error": f"injected {fault.status}"}, fault.status, headers)
            parts = path.strip("/").split("/")
            if parts[:2] == ["api", "datasets"] and len(parts) == 2:
                return self._list(query)
            if parts[:2] == ["api", "datasets"] and len(parts) >= 4:
                repo_id = "/".join(parts[2:4])
                if not (hub.repos_dir / repo_id).is_dir():
                    return self._not_found(f"Repository {repo_id}")
                if len(parts) >= 6 and parts[4] == "tree":
                    return self._tree(repo_id, "/".join(parts[6:]))
                return self._json(hub.info(repo_id, blobs="blobs" in query))
            if parts[0] == "datasets" and len(parts) >= 6 and parts[3] == "resolve":
                return self._resolve("/".join(parts[1:3]), "/".join(parts[5:]), head, fault)
            self._not_found(path, "EntryNotFound")

        def _list(self, query: dict) -> None:
            wanted = query.get("filter", [])
            search = query.get("search", [""])[0]
            ids = [r for r in hub.repo_ids() if all(t in hub.tags.get(r, ["LeRobot"]) for t in wanted) and search in r]
            limit = int(query.get("limit", ["0"])[0] or 0) or len(ids)
            cursor = int(query.get("cursor", ["0"])[0])
            stop = min(limit, cursor + hub.page_size)
            page = [{"id": r, "tags": hub.tags.get(r, ["LeRobot"]), "sha": fake_sha(r)} for r in ids[cursor:stop]]
            headers = {}
            if stop < min(limit, len(ids)):
                params = [(k, v) for k, vs in query.items() if k != "cursor" for v in vs] + [("cursor", stop)]
                headers["Link"] = f'<{hub.url}/api/datasets?{urlencode(params)}>; rel="next"'
            self._json(page, headers=headers)

        def _tree(self, repo_id: str, prefix: str) -> None:
            out = []
            for rel, path in hub.files(repo_id):
                if prefix and not rel.startswith(prefix.rstrip("/") + "/"):
                    continue
                e = hub.file_entry(rel, path, tree=True)
                item = {"type": "file", "path": rel, "size": e["size"], "oid": e["blob"]}
                if "lfs" in e:
                    item["lfs"] = e["lfs"]
                out.append(item)
            self._json(out)

        def _resolve(self, repo_id: str, rel: str, head: bool, fault: Fault | None) -> None:
            path = hub.repos_dir / repo_id / rel
            if not (hub.repos_dir / repo_id).is_dir():
                return self._not_found(f"Repository {repo_id}")
            if not path.is_file():
                return self._not_found(f"Entry {rel}", "EntryNotFound")
            body = path.read_bytes()
            e = hub.file_entry(rel, path, tree=False)
            headers = {"X-Repo-Commit": fake_sha(repo_id), "ETag": f'"{e["etag"]}"', "Accept-Ranges": "bytes"}
            if fault is not None and fault.kind == "drop" and not head:
                self.send_response(200)
                for k, v in {**headers, "Content-Length": len(body)}.items():
                    self.send_header(k, str(v))
                self.end_headers()
                self.wfile.write(body[: len(body) // 2])
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)
                self.close_connection = True
                return None
            self.send_response(200)
            for k, v in {**headers, "Content-Length": len(body)}.items():
                self.send_header(k, str(v))
            self.end_headers()
            if not head:
                self.wfile.write(body)
            return None

    return Handler
