"""gunicorn settings for backend-wsgi (bin/wsgi): threaded workers, logs to stdout."""

import os
import sys

from prometheus_client import multiprocess

# A thread that wakes from I/O (a DB reply, a sleep) waits for the GIL until the running thread
# yields it: by default after 5 ms. Under four threads per worker that convoy widens the tail of
# every request that waited on anything; 1 ms keeps a P95 close to the work it measures. Set
# in the master, inherited by the forked workers.
sys.setswitchinterval(float(os.environ.get("PYTHON_SWITCH_INTERVAL_S", "0.001")))

bind = f"{os.environ.get('APP_HOST', '0.0.0.0')}:{os.environ.get('APP_PORT', '8000')}"
worker_class = "gthread"
workers = int(os.environ.get("GUNICORN_WORKERS", "2"))
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "10"))
control_socket_disable = True  # gunicornc is not used; keeps $HOME untouched
accesslog = "-"
errorlog = "-"
# nginx, on the compose network, is the only client.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "*")


def child_exit(server, worker):
    # Drop the dead worker's live-gauge files; its counters keep counting.
    multiprocess.mark_process_dead(worker.pid)
