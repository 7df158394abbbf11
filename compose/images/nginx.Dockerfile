# nginx from Debian's packages (no registry here). Built by scripts/bootstrap.sh; the stack's
# nginx service adds its configuration on top (compose/nginx/Dockerfile). Without Debian's
# default site, as the official image: a target's conf.d/default.conf then serves port 80.
FROM rollback-drill/debian:bookworm
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nginx-light curl \
 && rm -rf /var/lib/apt/lists/* \
 && ln -sf /dev/stdout /var/log/nginx/access.log && ln -sf /dev/stderr /var/log/nginx/error.log \
 && rm -f /etc/nginx/sites-enabled/default
EXPOSE 80
CMD ["nginx", "-g", "daemon off;"]
