import time

from django.conf import settings
from django.db import DatabaseError
from django.http import HttpResponse, HttpResponseNotAllowed
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt

from .models import Visit

FAIL_HEALTH = settings.BASE_DIR / "FAIL_HEALTH"
HANG_HEALTH = settings.BASE_DIR / "HANG_HEALTH"


def _text(body, status=200):
    return HttpResponse(body + "\n", status=status, content_type="text/plain; charset=utf-8")


def health(request):
    # A deliberately broken build: tests add this file to make an unhealthy tag.
    if FAIL_HEALTH.exists():
        return _text(f"fail {settings.RELEASE}: FAIL_HEALTH present", status=500)
    # A health endpoint that hangs: the socket is there, the answer never comes.
    if HANG_HEALTH.exists():
        time.sleep(3600)
    try:
        Visit.objects.exists()  # the table exists only after `migrate`
    except DatabaseError as exc:
        return _text(f"fail {settings.RELEASE}: database: {exc}", status=500)
    return _text(f"ok {settings.RELEASE}")


def index(request):
    return render(request, "portal/index.html", {
        "release": settings.RELEASE,
        "visits": Visit.objects.count(),
    })


def slow(request):
    try:
        seconds = float(request.GET.get("seconds", "1"))
    except ValueError:
        return _text("seconds must be a number", status=400)
    seconds = min(max(seconds, 0.0), 30.0)
    time.sleep(seconds)
    return _text("slow done")


@csrf_exempt
def echo(request):
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    return _text(str(len(request.body)))
