"""Connection faults of the data stores, from outside the app: Redis and PostgreSQL.

Both go through the ports the stack publishes on 127.0.0.1 (the suite's own connections), and
tell the app's connections apart by the app containers' addresses on the project network:

- :class:`RedisClientKill` -- ``CLIENT KILL`` of every app connection (one-shot; the app's
  pools reconnect);
- :class:`RedisConnectionExhaustion` -- ``CONFIG SET maxclients`` down to the connections
  that are not the app's, then ``CLIENT KILL`` of the app's: every reconnection is refused
  with "max number of clients reached" until the revert restores ``maxclients``;
- :class:`PostgresTerminate` -- ``pg_terminate_backend`` of every app backend (one-shot);
- :class:`PostgresConnectionExhaustion` -- the suite takes every connection slot
  (``max_connections``, superuser-reserved ones included when the role is a superuser) and
  terminates the app's backends: every reconnection fails with "too many clients" until the
  revert closes the held connections.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any, ClassVar, Literal

import psycopg
import redis
from psycopg import sql

from rollback_drill.errors import FaultError
from rollback_drill.faults.base import BaseFault, Effect
from rollback_drill.journal import Journal
from rollback_drill.stack import Stack

__all__ = [
    "PostgresConnectionExhaustion",
    "PostgresTerminate",
    "RedisClientKill",
    "RedisConnectionExhaustion",
    "app_addresses",
]

HOLD_NAME = "rbd-fault-hold"
MAINTENANCE_DB = "postgres"  # the held connections go there, not into the app's database


def app_addresses(stack: Stack) -> set[str]:
    """IP addresses of the app containers (WSGI and ASGI) on their networks."""
    ips: set[str] = set()
    for service in (stack.target.services.wsgi, stack.target.services.asgi):
        for c in stack.containers(service):
            for net in (c.attrs.get("NetworkSettings", {}).get("Networks") or {}).values():
                if net.get("IPAddress"):
                    ips.add(net["IPAddress"])
    return ips


class _StoreFault(BaseFault):
    family: ClassVar[Literal["infrastructure"]] = "infrastructure"

    def __init__(self, stack: Stack, journal: Journal | None, **params: Any) -> None:
        super().__init__(
            type(self).__name__, journal if journal is not None else stack.journal, params
        )
        self.stack = stack


# ---- Redis ---------------------------------------------------------------------------------


class _RedisFault(_StoreFault):
    def _client(self) -> redis.Redis:
        port = self.stack.port(self.stack.target.services.redis, self.stack.target.ports.redis)
        client = redis.Redis(
            host="127.0.0.1", port=port, socket_timeout=5, socket_connect_timeout=5
        )
        client.client_setname(HOLD_NAME)
        return client

    def _kill_app_clients(self, client: redis.Redis) -> int:
        apps = app_addresses(self.stack)
        killed = 0
        for info in client.client_list():
            ip = str(info.get("addr", "")).rpartition(":")[0]
            if ip in apps:
                with contextlib.suppress(redis.ResponseError):
                    killed += int(client.client_kill_filter(_id=info["id"]))
        return killed

    def app_clients(self, client: redis.Redis) -> int:
        apps = app_addresses(self.stack)
        return sum(str(i.get("addr", "")).rpartition(":")[0] in apps for i in client.client_list())


class RedisClientKill(_RedisFault):
    """Kill every app connection to Redis once (one-shot: nothing to revert)."""

    def __init__(self, stack: Stack, *, journal: Journal | None = None) -> None:
        super().__init__(stack, journal)
        self.killed = 0

    def _apply(self) -> float | None:
        client = self._client()
        try:
            self.killed = self._kill_app_clients(client)
        finally:
            client.close()
        return None

    def _revert(self) -> None:
        pass

    def observe(self) -> Effect:
        return Effect(self.killed > 0, self.killed, "app connections killed")


class RedisConnectionExhaustion(_RedisFault):
    """No new connection for the app: ``maxclients`` at the non-app connections, app killed."""

    def __init__(self, stack: Stack, *, journal: Journal | None = None) -> None:
        super().__init__(stack, journal)
        self.client: redis.Redis | None = None
        self.saved: str | None = None
        self.killed = 0

    def _apply(self) -> float | None:
        self.client = client = self._client()
        self.saved = str(client.config_get("maxclients")["maxclients"])
        others = len(client.client_list()) - self.app_clients(client)
        client.config_set("maxclients", max(1, others))
        self.killed = self._kill_app_clients(client)
        return None

    def _revert(self) -> None:
        if self.client is None:
            return
        try:
            if self.saved is not None:
                self.client.config_set("maxclients", self.saved)
        finally:
            self.client.close()
            self.client, self.saved = None, None

    def observe(self) -> Effect:
        assert self.client is not None
        port = self.stack.port(self.stack.target.services.redis, self.stack.target.ports.redis)
        probe = redis.Redis(host="127.0.0.1", port=port, socket_timeout=3, socket_connect_timeout=3)
        try:
            probe.ping()
            refused = "accepted"
        except redis.ConnectionError as exc:
            refused = str(exc)
        finally:
            probe.close()
        apps = self.app_clients(self.client)
        ok = "max number of clients" in refused and apps == 0
        return Effect(
            ok,
            {"new connection": refused, "app connections": apps},
            "new connections refused (max clients) and no app connection left",
        )


# ---- PostgreSQL ----------------------------------------------------------------------------


class _PostgresFault(_StoreFault):
    def _connect(self, timeout: int = 5, dbname: str | None = None) -> psycopg.Connection[Any]:
        extra: dict[str, Any] = {"dbname": dbname} if dbname else {}
        return psycopg.connect(
            self.stack.postgres_dsn(),
            connect_timeout=timeout,
            application_name=HOLD_NAME,
            autocommit=True,
            **extra,
        )

    def _terminate_app_backends(self, conn: psycopg.Connection[Any]) -> int:
        apps = sorted(app_addresses(self.stack))
        if not apps:
            return 0
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE backend_type = 'client backend' AND host(client_addr) = ANY(%s) "
            "AND pid <> pg_backend_pid()",
            (apps,),
        ).fetchall()
        return sum(1 for (ok,) in rows if ok)

    def _app_backends(self, conn: psycopg.Connection[Any]) -> int:
        apps = sorted(app_addresses(self.stack))
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' "
            "AND host(client_addr) = ANY(%s)",
            (apps,),
        ).fetchone()
        return int(row[0]) if row else 0


class PostgresTerminate(_PostgresFault):
    """Terminate every app backend once (one-shot: the app reconnects)."""

    def __init__(self, stack: Stack, *, journal: Journal | None = None) -> None:
        super().__init__(stack, journal)
        self.terminated = 0

    def _apply(self) -> float | None:
        with self._connect() as conn:
            self.terminated = self._terminate_app_backends(conn)
        return None

    def _revert(self) -> None:
        pass

    def observe(self) -> Effect:
        return Effect(self.terminated > 0, self.terminated, "app backends terminated")


class PostgresConnectionExhaustion(_PostgresFault):
    """Hold every connection slot and terminate the app's backends, until reverted.

    The app reconnects within milliseconds of a termination, so a plain race for the freed
    slots is lost often. While the slots are taken, the app's database briefly refuses new
    connections (``ALLOW_CONNECTIONS false``: the app sees a connection failure then too);
    the held connections go to the maintenance database. Without the right to alter the
    database, the fault falls back to the race, terminating until it wins (``settle_s``).
    """

    def __init__(
        self, stack: Stack, *, settle_s: float = 30.0, journal: Journal | None = None
    ) -> None:
        super().__init__(stack, journal, settle_s=settle_s)
        self.settle_s = settle_s
        self.held: list[psycopg.Connection[Any]] = []
        self._blocked = False  # the app's database refuses connections (briefly, in apply)

    def _fill(self) -> None:
        while True:
            try:
                self.held.append(self._connect(timeout=3, dbname=MAINTENANCE_DB))
            except psycopg.OperationalError as exc:
                if "too many clients" in str(exc) or "remaining connection slots" in str(exc):
                    return
                raise

    def _allow(self, conn: psycopg.Connection[Any], allow: bool) -> bool:
        db = sql.Identifier(self.stack.workspace.database.name)
        stmt = sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS {}").format(
            db, sql.SQL("true" if allow else "false")
        )
        try:
            conn.execute(stmt)
        except psycopg.Error:
            return False
        return True

    def _apply(self) -> float | None:
        deadline = time.monotonic() + self.settle_s
        ctl = self._connect(dbname=MAINTENANCE_DB)
        self.held.append(ctl)
        first = time.time()
        while True:
            self._blocked = self._allow(ctl, False)
            try:
                self._terminate_app_backends(ctl)
                # terminated backends keep their slots until they have exited
                while self._app_backends(ctl) and time.monotonic() < deadline:
                    time.sleep(0.05)
                self._fill()
            finally:
                if self._blocked:
                    self._blocked = not self._allow(ctl, True)
            time.sleep(0.3)  # the app's reconnection attempts meet the full house
            if self._app_backends(ctl) == 0:
                return first
            if time.monotonic() > deadline:
                raise FaultError("the app kept its PostgreSQL connections: not exhausted")

    def _revert(self) -> None:
        held, self.held = self.held, []
        if held and self._blocked:
            self._allow(held[0], True)
        for conn in held:
            with contextlib.suppress(Exception):
                conn.close()

    def observe(self) -> Effect:
        try:
            self._connect(timeout=3).close()
            refused = "accepted"
        except psycopg.OperationalError as exc:
            refused = str(exc).strip().splitlines()[-1][:120]
        apps = self._app_backends(self.held[0]) if self.held else -1
        ok = "too many clients" in refused or "remaining connection slots" in refused
        return Effect(
            ok and apps == 0,
            {"held": len(self.held), "new connection": refused, "app backends": apps},
            "every slot held, new connections refused, no app backend left",
        )
