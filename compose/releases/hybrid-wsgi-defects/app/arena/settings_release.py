"""This release's settings: the base settings plus its new middleware and cache key scheme.

What the new code does, and how badly, is the release's configuration ``release_defect.json``
(see ``arena.release_defects``).
"""

from arena.settings import *  # noqa: F403
from arena.settings import CACHES, MIDDLEWARE

# Right inside ReleaseMiddleware, so every answer still carries X-Release and is counted.
MIDDLEWARE = [MIDDLEWARE[0], "arena.release_defects.ReleaseDefects", *MIDDLEWARE[1:]]
CACHES["default"]["KEY_FUNCTION"] = "arena.release_defects.cache_key"
