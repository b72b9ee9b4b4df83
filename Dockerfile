# One image for every bbapi process and the operator; the command picks which:
#   docker run ghcr.io/bbapi/bbapi serve      # all-in-one (default)
#   ... gateway | cas | metadata | logs | migrate | operator
# Targets: `runtime` (default, last) for clusters; `dev` for Tilt's live update.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH
RUN groupadd --system --gid 10001 bbapi \
 && useradd --system --uid 10001 --gid bbapi --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin bbapi \
 && install -d -o bbapi -g bbapi /data

FROM base AS build
RUN python -m venv "$VIRTUAL_ENV"
WORKDIR /src
# Dependencies first, in their own layer: a source change does not reinstall them.
COPY pyproject.toml README.md ./
RUN python -c "import tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; \
print('\n'.join(p['dependencies'] + p['optional-dependencies']['operator']))" > /tmp/requirements.txt \
 && pip install -r /tmp/requirements.txt
COPY services ./services
COPY operator ./operator
RUN pip install --no-deps .

# Tilt's target: an editable install owned by the app user, so synced sources run as they land.
FROM build AS dev
RUN pip install --no-deps -e . \
 && chown -R bbapi:bbapi /src "$VIRTUAL_ENV"
USER 10001:10001
ENV BBAPI_DATA_DIR=/data
WORKDIR /data
ENTRYPOINT ["bbapi"]
CMD ["serve"]

FROM base AS runtime
COPY --from=build /opt/venv /opt/venv
USER 10001:10001
ENV BBAPI_DATA_DIR=/data
WORKDIR /data
VOLUME ["/data"]
EXPOSE 1985 8080
ENTRYPOINT ["bbapi"]
CMD ["serve"]
