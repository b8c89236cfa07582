FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PORT=8000 \
    PRODUCTION=1 \
    COLLECTSTATIC=0

WORKDIR /app

COPY requirements.txt .
RUN pip install -r requirements.txt

COPY . .
# Static files are collected and the translation catalogues compiled at build time (so
# the entrypoint need not: COLLECTSTATIC=0); WhiteNoise serves the static files.
RUN python -m babel.messages.frontend --quiet compile --directory=locale --domain=django \
    && SECRET_KEY=collectstatic-only python manage.py collectstatic --noinput \
    && useradd --system --uid 10001 --no-create-home crm

USER crm
EXPOSE 8000
ENTRYPOINT ["scripts/docker-entrypoint.sh"]
