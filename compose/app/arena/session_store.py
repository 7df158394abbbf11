"""Django's cache session store (sessions in Redis), minus one silent fallback.

The stock ``load()`` swallows every cache exception and starts an empty
session, so a Redis outage shows up as anonymous users and 401s. Here a lost
Redis connection propagates and becomes a 503 with ``X-Failure-Cause:
redis-connection`` (arena/failures.py), which is what the drill must observe.
"""

from django.contrib.sessions.backends import cache


class SessionStore(cache.SessionStore):
    def load(self):
        session_data = self._cache.get(self.cache_key)
        if session_data is not None:
            return session_data
        self._session_key = None
        return {}

    async def aload(self):
        session_data = await self._cache.aget(await self.acache_key())
        if session_data is not None:
            return session_data
        self._session_key = None
        return {}
