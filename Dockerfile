# One image for every Python service of the stack (feed, algorithms, bridges,
# view); docker-compose.yml gives each service its full `tickbus ...` command.
# There is no ENTRYPOINT on purpose, so every command stays visible in the
# compose file and tests/test_compose.py can check it against the real CLI.
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY . .
# pyzmq, gevent, numpy and msgpack ship manylinux wheels for 3.11, so the
# slim image needs no compiler.
RUN pip install --no-cache-dir .

# Services never need root; a fixed uid keeps volume ownership predictable.
RUN useradd --create-home --uid 10001 tickbus
USER tickbus
WORKDIR /home/tickbus
# The recorder's dataset: made here, so a new named volume mounted on it
# belongs to tickbus.
RUN mkdir tape
