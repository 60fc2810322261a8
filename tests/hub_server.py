"""A small Hugging Face Hub-compatible HTTP server on 127.0.0.1, serving real model folders.

It answers the calls ``huggingface_hub`` makes to download a model (``model_info``, the
file tree, ``HEAD``/``GET`` of ``resolve/``), with the Hub's headers (``X-Repo-Commit``,
``ETag``, ``X-Error-Code``), so the suite's ordinary download path runs unchanged with
``HF_ENDPOINT`` pointing here. Every request is logged, so a test can show that an offline
run made none. Bounded in time: each connection times out, and the test stops the server.
"""

import hashlib
import json
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlparse

REQUEST_TIMEOUT_SECONDS = 30


@dataclass
class Repo:
    """A model repository: named revisions (branches, tags) -> commits -> folders of files."""

    repo_id: str
    commits: dict[str, Path] = field(default_factory=dict)  # commit hash -> folder
    refs: dict[str, str] = field(default_factory=dict)  # "main", "v1" -> commit hash

    def add_commit(self, folder: Path, *refs: str) -> str:
        digest = hashlib.sha1()
        for path in sorted(folder.iterdir()):
            digest.update(path.name.encode() + hashlib.sha1(path.read_bytes()).digest())
        commit = digest.hexdigest()
        self.commits[commit] = folder
        for ref in refs:
            self.refs[ref] = commit
        return commit

    def resolve(self, revision: str) -> str | None:
        return revision if revision in self.commits else self.refs.get(revision)


def _file_sha(path: Path) -> str:
    return hashlib.sha1(path.read_bytes()).hexdigest()


class HubHandler(BaseHTTPRequestHandler):
    server: "HubServer"
    timeout = REQUEST_TIMEOUT_SECONDS

    def log_message(self, format: str, *args) -> None:  # quiet: the log is self.server.requests
        pass

    def do_HEAD(self) -> None:
        self._handle(send_body=False)

    def do_GET(self) -> None:
        self._handle(send_body=True)

    def _handle(self, send_body: bool) -> None:
        path = unquote(urlparse(self.path).path)
        self.server.requests.append(f"{self.command} {path}")
        if path.startswith("/api/models/"):
            self._api(path.removeprefix("/api/models/"), send_body)
        elif "/resolve/" in path:
            repo_id, rest = path.lstrip("/").split("/resolve/", 1)
            revision, _, filename = rest.partition("/")
            self._resolve(repo_id, revision, filename, send_body)
        else:
            self._error(404, "EntryNotFound", f"no route {path}", send_body)

    def _repo(self, repo_id: str, send_body: bool) -> Repo | None:
        repo = self.server.repos.get(repo_id)
        if repo is None:
            self._error(404, "RepoNotFound", f"Repository Not Found for url: {self.path}", send_body)
        return repo

    def _commit(self, repo: Repo, revision: str, send_body: bool) -> str | None:
        commit = repo.resolve(revision)
        if commit is None:
            self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}", send_body)
        return commit

    def _api(self, rest: str, send_body: bool) -> None:
        parts = rest.split("/")
        repo_id, action, revision = "/".join(parts[:2]), (parts[2:3] or ["revision"])[0], "/".join(parts[3:]) or "main"
        repo = self._repo(repo_id, send_body)
        if repo is None or (commit := self._commit(repo, revision, send_body)) is None:
            return
        folder = repo.commits[commit]
        files = sorted(folder.iterdir())
        if action == "revision":
            body = {"id": repo_id, "modelId": repo_id, "sha": commit, "private": False,
                    "siblings": [{"rfilename": p.name} for p in files]}
        elif action == "tree":
            body = [{"type": "file", "path": p.name, "size": p.stat().st_size, "oid": _file_sha(p)} for p in files]
        else:
            self._error(404, "EntryNotFound", f"no API route {action}", send_body)
            return
        data = json.dumps(body).encode()
        self._send(200, {"Content-Type": "application/json", "Content-Length": str(len(data))}, data, send_body)

    def _resolve(self, repo_id: str, revision: str, filename: str, send_body: bool) -> None:
        repo = self._repo(repo_id, send_body)
        if repo is None or (commit := self._commit(repo, revision, send_body)) is None:
            return
        path = repo.commits[commit] / filename
        if not path.is_file():
            self._error(404, "EntryNotFound", f"{filename} does not exist at {commit}", send_body)
            return
        headers = {
            "X-Repo-Commit": commit,
            "ETag": f'"{_file_sha(path)}"',
            "Content-Length": str(path.stat().st_size),
            "Content-Type": "application/octet-stream",
        }
        self._send(200, headers, path.read_bytes() if send_body else b"", send_body)

    def _error(self, status: int, code: str, message: str, send_body: bool) -> None:
        data = json.dumps({"error": message}).encode()
        headers = {"X-Error-Code": code, "X-Error-Message": message, "Content-Type": "application/json",
                   "Content-Length": str(len(data))}
        self._send(status, headers, data, send_body)

    def _send(self, status: int, headers: dict[str, str], body: bytes, send_body: bool) -> None:
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        if send_body:
            self.wfile.write(body)


class HubServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, repos: dict[str, Repo]):
        super().__init__(("127.0.0.1", 0), HubHandler)
        self.repos = repos
        self.requests: list[str] = []
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def __enter__(self) -> "HubServer":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown()
        self.server_close()
        self._thread.join(timeout=10)


class SilentServer:
    """Accepts connections on 127.0.0.1 and never answers: a Hub that hangs."""

    def __init__(self):
        self.socket = socket.create_server(("127.0.0.1", 0))
        self.socket.settimeout(0.2)
        self._stop = threading.Event()
        self._held: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.socket.getsockname()[1]}"

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self.socket.accept()
            except TimeoutError:
                continue
            self._held.append(connection)

    def __enter__(self) -> "SilentServer":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        for connection in self._held:
            connection.close()
        self.socket.close()
