import os

from django.core.wsgi import get_wsgi_application

from rokt_platform.startup import freeze_startup_objects

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rokt_platform.settings")
application = get_wsgi_application()
# Each gunicorn worker imports this once: what it built so far lives as long as it does.
freeze_startup_objects()
