"""A plain client of the reference app's contract (docs/app-api.md) for checks and drills.

Synchronous httpx for HTTP and the ``websockets`` sync client for WebSockets; one logged-in
session per client. Only loopback addresses are accepted as targets.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
from websockets.sync.client import connect as ws_connect

from rollback_drill.errors import TargetError
from rollback_drill.signals._net import is_loopback_host


def require_loopback(url: str) -> None:
    host = urlsplit(url).hostname or ""
    if not is_loopback_host(host):
        raise TargetError(f"{url}: traffic goes only to loopback addresses, not {host}")


SECRET_HEADERS = frozenset({"set-cookie", "cookie", "authorization"})


@dataclass(frozen=True)
class Answer:
    status: int
    served_by: str
    release: str
    body: Any
    headers: dict[str, str]

    def __repr__(self) -> str:
        """As the dataclass's, but session cookies masked: a failing ``assert ..., answer``
        prints this into the terminal and JUnit."""
        headers = {k: "***" if k.lower() in SECRET_HEADERS else v for k, v in self.headers.items()}
        return (
            f"Answer(status={self.status!r}, served_by={self.served_by!r}, "
            f"release={self.release!r}, body={self.body!r}, headers={headers!r})"
        )


def _answer(resp: httpx.Response) -> Answer:
    try:
        body: Any = resp.json()
    except ValueError:
        body = resp.text
    return Answer(
        resp.status_code,
        resp.headers.get("x-served-by", ""),
        resp.headers.get("x-release", ""),
        body,
        dict(resp.headers),
    )


class AppClient:
    def __init__(self, base_url: str, timeout: float = 10.0) -> None:
        require_loopback(base_url)
        self.base_url = base_url.rstrip("/")
        self.http = httpx.Client(base_url=self.base_url, timeout=timeout, follow_redirects=False)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> AppClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def get(self, path: str, **kw: Any) -> Answer:
        return _answer(self.http.get(path, **kw))

    def post(self, path: str, payload: dict[str, Any]) -> Answer:
        return _answer(self.http.post(path, json=payload))

    def login(self, username: str, password: str) -> Answer:
        return self.post("/api/auth/login/", {"username": username, "password": password})

    def admin_login(self, username: str, password: str) -> int:
        """Log in through the admin's own form (CSRF included); returns the final status."""
        page = self.http.get("/admin/login/")
        token = self.http.cookies.get("csrftoken", "")
        resp = self.http.post(
            "/admin/login/?next=/admin/",
            data={
                "username": username,
                "password": password,
                "csrfmiddlewaretoken": token,
                "next": "/admin/",
            },
            headers={"Referer": f"{self.base_url}/admin/login/"},
        )
        if resp.status_code == 302 and resp.headers.get("location", "").endswith("/admin/"):
            return self.http.get("/admin/").status_code
        return page.status_code if resp.status_code == 200 else resp.status_code

    def create_session(self, title: str, model: int, client_id: str | None = None) -> Answer:
        payload = {"client_id": client_id or str(uuid.uuid4()), "title": title, "model": model}
        return self.post("/api/sessions/", payload)

    def stream(self, n: int = 3, interval_ms: int = 20) -> tuple[Answer, list[dict[str, Any]]]:
        """Read a whole SSE stream; returns the answer and the decoded ``data:`` events."""
        events: list[dict[str, Any]] = []
        with self.http.stream(
            "GET", "/api/stream/", params={"n": n, "interval_ms": interval_ms}
        ) as resp:
            ended, event = False, "message"
            for line in resp.iter_lines():
                if line.startswith("event:"):
                    event = line[6:].strip()
                    ended = ended or event == "end"
                elif line.startswith("data:") and event == "message":
                    events.append(json.loads(line[5:].strip()))
                elif not line:
                    event = "message"
            ans = _answer_headers(resp)
        if not ended:
            raise ConnectionError(f"stream ended without 'event: end' after {len(events)} events")
        return ans, events

    def ws_echo(self, text: str, room: str = "drill") -> dict[str, Any]:
        """Open the chat WebSocket with this client's session, echo one message, close."""
        url = "ws" + self.base_url.removeprefix("http") + f"/ws/chat/{room}/"
        cookie = "; ".join(f"{k}={v}" for k, v in self.http.cookies.items())
        with ws_connect(url, additional_headers={"Cookie": cookie}, open_timeout=10) as ws:
            ws.send(text)
            reply: dict[str, Any] = json.loads(ws.recv(timeout=10))
        return reply


def _answer_headers(resp: httpx.Response) -> Answer:
    return Answer(
        resp.status_code,
        resp.headers.get("x-served-by", ""),
        resp.headers.get("x-release", ""),
        None,
        dict(resp.headers),
    )
