# The portal image (web, worker, beat). A first version; the production issue hardens it.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 DOCKYARD_DATA_DIR=/data DJANGO_STATIC_ROOT=/app/staticfiles
WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY . .
# Build-time placeholders so collectstatic does not generate real secrets into the image.
RUN DJANGO_SECRET_KEY=build REGISTRY_EVENTS_SECRET=build REGISTRY_HTTP_SECRET=build \
    python manage.py collectstatic --no-input \
 && useradd --system --uid 10001 --home /data dockyard && mkdir -p /data /config && chown dockyard /data /config
USER dockyard
EXPOSE 8000
CMD ["gunicorn", "portal.wsgi", "--bind", "0.0.0.0:8000", "--workers", "3"]
