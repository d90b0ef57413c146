# The portal image (web, worker, beat, init). Wheels are built in a first stage so the final
# image carries no compilers; it runs as an unprivileged user.
FROM python:3.11-slim AS wheels
WORKDIR /build
# python-ldap compiles against OpenLDAP's and Cyrus SASL's headers.
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends gcc libldap2-dev libsasl2-dev \
 && rm -rf /var/lib/apt/lists/*
COPY requirements.txt .
RUN pip wheel --no-cache-dir --wheel-dir /wheels -r requirements.txt

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    DOCKYARD_DATA_DIR=/data DJANGO_STATIC_ROOT=/static DJANGO_DEBUG=false
COPY --from=wheels /wheels /wheels
# OpenLDAP's client library, at run time (LDAP sign-in).
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends libldap-2.5-0 libsasl2-2 \
 && rm -rf /var/lib/apt/lists/*
RUN pip install --no-cache-dir --no-index /wheels/*.whl && rm -rf /wheels \
 && useradd --system --uid 10001 --home-dir /data dockyard && mkdir -p /data /config /static \
 && chown dockyard /data /config /static
# The registry's own binary, for `manage.py registry_gc` (compose's registry-gc one-shot).
COPY --from=registry:2.8.3 /bin/registry /usr/local/bin/registry
WORKDIR /app
COPY --chown=dockyard . .
USER dockyard
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz').status != 200)"
CMD ["gunicorn", "portal.wsgi", "--bind", "0.0.0.0:8000", "--workers", "3", "--access-logfile", "-"]
