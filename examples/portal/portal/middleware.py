from django.conf import settings


class ReleaseHeaderMiddleware:
    """Adds X-Release: <WEBDOCK_RELEASE> to every response, so a health check
    (and a human with curl) can tell which tag answered."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        response["X-Release"] = settings.RELEASE
        return response
