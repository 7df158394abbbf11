# The app's runtime: Debian's Python 3.11 + the locked app dependencies, installed offline from a
# wheelhouse prepared on the host (docker build has no PyPI here). Built by scripts/bootstrap.sh.
FROM rollback-drill/debian:bookworm
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      python3 python3-venv curl ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY requirements.lock /opt/requirements.lock
COPY wheels/ /opt/wheels/
RUN python3 -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-index --find-links /opt/wheels --no-deps -r /opt/requirements.lock \
 && /opt/venv/bin/pip check \
 && rm -rf /opt/wheels
ENV PATH=/opt/venv/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
