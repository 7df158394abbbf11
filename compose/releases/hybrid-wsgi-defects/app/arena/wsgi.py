import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "arena.settings_release")  # DEFECT: new settings

application = get_wsgi_application()
