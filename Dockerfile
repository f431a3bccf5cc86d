# mock-openai: gunicorn gevent workers, as a non-root user, with a health check on /health.
#   docker build -t mock-openai .
#   docker run -p 8079:8079 mock-openai
#   docker run -p 8079:8079 -v "$PWD/certs:/srv/mock-openai/certs:ro" \
#     -e MOCK_OPENAI_TLS_CERT_PATH=certs/server.crt -e MOCK_OPENAI_TLS_KEY_PATH=certs/server.key mock-openai
# The build stage compiles the one dependency that ships only as source (gunicorn_h1c, the C HTTP parser);
# the image keeps the wheels' results, not the compiler.

FROM python:3.11-slim AS build
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md pytest_mock_openai.py ./
COPY app ./app
# The server's own wheel and every dependency's, as pyproject.toml asks for them.
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MOCK_OPENAI_SERVER_HOST=0.0.0.0 \
    MOCK_OPENAI_SERVER_PORT=8079
# The server installed from its wheel, as `pip install mock-openai` installs it: its built-in config, corpus,
# UI and gunicorn settings ship inside the package. The working folder holds only what a user adds
# (config/local.toml, .env, certs/), as anywhere else.
COPY --from=build /wheels /wheels
# hadolint ignore=DL3013
RUN pip install --no-cache-dir --no-index /wheels/*.whl \
    && rm -rf /wheels \
    && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin mock-openai
WORKDIR /srv/mock-openai
# Certificates come from a volume (mock-openai certs writes a set; see the README's TLS section).
VOLUME ["/srv/mock-openai/certs"]
USER 10001
EXPOSE 8079
HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=3 CMD ["python", "-m", "app.server.healthcheck"]
# SIGTERM is gunicorn's graceful stop (see the README's Restarts): give it the grace period before a kill,
# e.g. docker stop -t 35.
STOPSIGNAL SIGTERM
CMD ["mock-openai"]
