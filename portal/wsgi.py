import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
django_application = get_wsgi_application()

FRONT_CHECK = "/-/front/check"


def application(environ, start_response):
    """Django, except nginx's auth_request for the front door (issue 16), which is answered
    without Django's request machinery: it comes before every manifest PUT and DELETE."""
    if environ.get("PATH_INFO") == FRONT_CHECK:
        from repositories.registry_views import front_check_wsgi

        return front_check_wsgi(environ, start_response)
    return django_application(environ, start_response)
