# One image for every Hoga process; docker-compose.yml picks the role (bin/hoga-process <role>).

# The pages' browser libraries (htmx, lightweight-charts, axe-core) from package-lock.json, as `make static`
# does: npm ci, then the standalone bundles copied to static/vendor/ (never a CDN at run time).
FROM node:20-bookworm-slim AS static
WORKDIR /build
COPY package.json package-lock.json ./
COPY scripts/build_static.py scripts/
RUN apt-get update && apt-get install -y --no-install-recommends python3 && rm -rf /var/lib/apt/lists/* \
    && mkdir -p static && python3 scripts/build_static.py

FROM python:3.11-slim-bookworm

# HOGA_CONTAINER: a process in this image refuses to start without an explicit DJANGO_SETTINGS_MODULE
# (config/settings_module.py) instead of falling back to the local development settings.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOGA_CONTAINER=1 \
    DJANGO_SETTINGS_MODULE=config.settings.production \
    HOGA_BIND=0.0.0.0 \
    FLOWER_ADDRESS=0.0.0.0

RUN useradd --create-home --uid 1000 hoga
WORKDIR /app

COPY requirements/ requirements/
RUN pip install --no-cache-dir -r requirements/prod.txt

COPY . .
COPY --from=static /build/static/vendor/ static/vendor/
# collectstatic needs a secret to import settings; this one is used for nothing else.
RUN DJANGO_SECRET_KEY=collectstatic-only DJANGO_ALLOWED_HOSTS=localhost \
    python manage.py collectstatic --noinput -v 0 && mkdir -p var/prometheus && chown -R hoga:hoga /app

USER hoga
EXPOSE 8000
ENTRYPOINT ["bin/hoga-process"]
CMD ["web"]
