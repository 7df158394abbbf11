"""Release headers, request counters and dependency-failure responses."""

from asgiref.sync import iscoroutinefunction, markcoroutinefunction

from arena import metrics
from arena.failures import failure_response
from arena.release import release, served_by

UNCOUNTED_PATHS = {"/metrics"}  # scrapes would drown the traffic being measured


class ReleaseMiddleware:
    """Outermost middleware: every response leaves with X-Served-By and X-Release."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        self.async_mode = iscoroutinefunction(get_response)
        if self.async_mode:
            markcoroutinefunction(self)

    def __call__(self, request):
        if self.async_mode:
            return self.__acall__(request)
        return self.finish(request, self.get_response(request))

    async def __acall__(self, request):
        return self.finish(request, await self.get_response(request))

    def process_exception(self, request, exception):
        # Errors raised in views; errors in other middleware reach handler500.
        return failure_response(exception)

    def finish(self, request, response):
        server = served_by(request)
        response["X-Served-By"] = server
        response["X-Release"] = release()
        if request.path not in UNCOUNTED_PATHS:
            metrics.REQUESTS.labels(status=str(response.status_code), served_by=server).inc()
        if response.status_code == 401:
            metrics.AUTH_FAILURES.inc()
        return response
