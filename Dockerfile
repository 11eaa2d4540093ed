# The monitor image: `agent-failover monitor` on a slim Python 3.11, as a non-root user.
# Build: docker build -t agent-failover:0.1.0 .   (docs/operations.md, "Building the image")

# Stage 1: build the project's wheel (and its dependencies' wheels) from the source tree.
FROM python:3.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY agent_failover ./agent_failover
COPY streams ./streams
RUN pip wheel --no-cache-dir --wheel-dir /wheels ".[monitor]"

# Stage 2: the runtime, with only the installed wheels: the SDK and the monitor's extra
# (faust, prometheus-client, kubernetes), never the embedded development broker.
FROM python:3.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
COPY --from=build /wheels /wheels
# The version is the source tree's: the wheel comes from the build stage and --no-index keeps pip
# from looking anywhere else, so there is nothing to pin here.
# hadolint ignore=DL3013
RUN pip install --no-cache-dir --no-index --find-links /wheels "agent-failover[monitor]" \
    && rm -rf /wheels \
    && groupadd --system --gid 10001 agent-failover \
    && useradd --system --uid 10001 --gid agent-failover --home-dir /var/lib/agent-failover \
       --create-home --shell /usr/sbin/nologin agent-failover
USER 10001:10001
WORKDIR /var/lib/agent-failover
ENV AGENT_FAILOVER_MONITOR_DATA_DIR=/var/lib/agent-failover \
    AGENT_FAILOVER_METRICS_PORT=9108
EXPOSE 9108
ENTRYPOINT ["agent-failover"]
CMD ["monitor"]
