# carrybot: the bot, its CLI and its dashboard (port 8321). See README "Run it as a service".
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY strategies ./strategies
COPY migrations ./migrations
RUN pip install --no-cache-dir --prefix=/install .

FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    CARRYBOT_CONFIG=/etc/carrybot/carrybot.toml
COPY --from=build /install /usr/local
COPY deploy/carrybot.toml /etc/carrybot/carrybot.toml
RUN groupadd --gid 10001 carrybot \
    && useradd --create-home --uid 10001 --gid 10001 --shell /usr/sbin/nologin carrybot
USER 10001:10001
WORKDIR /home/carrybot
EXPOSE 8321
HEALTHCHECK --interval=30s --timeout=5s --start-period=90s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8321/api/status', timeout=4)"]
ENTRYPOINT ["carrybot"]
CMD ["run"]
