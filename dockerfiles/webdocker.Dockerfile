# The webdock application image for the classic builder. `webdock build` does
# not use this file: it makes the same image in fewer, cheaper steps (see
# docs/architecture.md, build/). `webdock build TAG --emit-context DIR` writes
# a context for it, so `docker build DIR` can do the same work (the benchmark):
#   .webdock/rootfs/            images/rootfs/ of webdock: /init, s6 services, nginx, uwsgi
#   .webdock/requirements.txt   the app's pinned requirements
#   .webdock/wheels/            wheels for them (installed offline, --no-index)
#   .webdock/djobs/<name>/run   one execline script per djob (argv: its command, for the lease holder)
#   .webdock/crontab            the app's crontab
#   app/                        the application, with its compiled front-end assets
#
# Layers go from the least to the most often changed. The tag, revision, date
# and djob list are not in this file: --emit-context appends
# `ENV WEBDOCK_RELEASE=<tag>` and one label instruction with literal values.

ARG BASE_IMAGE=webdock-base:dev
FROM ${BASE_IMAGE}

ENV PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    LANG=C.UTF-8 \
    PYTHONUNBUFFERED=1

ENTRYPOINT ["/init"]
WORKDIR /app

# User app (10001:10001) runs every app process; /app (its home) stays
# root-owned and read-only to it. No system cron jobs, no default nginx site.
RUN groupadd --gid 10001 app \
 && useradd --uid 10001 --gid app --home-dir /app --no-create-home \
        --shell /usr/sbin/nologin app \
 && mkdir -p /app /data /run/webdock/sock \
 && chown app:app /data \
 && rm -f /etc/cron.d/* /etc/cron.hourly/* /etc/cron.daily/* /etc/cron.weekly/* \
        /etc/cron.monthly/* /etc/nginx/sites-enabled/*

COPY .webdock/requirements.txt .webdock/wheels/ /opt/webdock/wheels/
# No pip in the venv (ensurepip costs more than the install): Debian's pip
# wheel runs from its zip with the venv's interpreter, as webdock's deps step.
RUN python3 -m venv --without-pip /opt/venv \
 && set -- /usr/share/python-wheels/pip-*.whl \
 && /opt/venv/bin/python "$1/pip" install --no-index --no-cache-dir --disable-pip-version-check \
        --find-links /opt/webdock/wheels -r /opt/webdock/wheels/requirements.txt \
 && rm -rf /opt/webdock/wheels

# webdock's own files: after the venv, so upgrading webdock never reinstalls it.
COPY .webdock/rootfs/ /

COPY .webdock/djobs/ /etc/webdock/djobs/
COPY .webdock/crontab /etc/webdock/crontab

COPY app/ /app/
# WEBDOCK_BUILD=1 lets settings load without runtime secrets. Text assets get
# a .gz twin for nginx's gzip_static (-n: no name/time, reproducible).
RUN WEBDOCK_BUILD=1 python manage.py collectstatic --noinput -v 0 \
 && if [ -d /app/staticfiles ]; then \
        find /app/staticfiles -type f \( -name '*.css' -o -name '*.js' -o -name '*.mjs' \
            -o -name '*.map' -o -name '*.svg' -o -name '*.json' -o -name '*.txt' \
            -o -name '*.html' -o -name '*.xml' -o -name '*.ico' -o -name '*.ttf' \
            -o -name '*.eot' -o -name '*.otf' \) -exec gzip -k -9 -n {} + ; \
    fi \
 && python -m compileall -q --invalidation-mode checked-hash /app
