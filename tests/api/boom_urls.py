"""The real URLs plus routes that fail the way bugs do, for the error-shape tests."""

from django.http import HttpResponse
from django.urls import include, path


def explode(request):
    raise RuntimeError("a bug in a view")


def html_error(request):
    return HttpResponse("<h1>Bad gateway</h1>", status=502, content_type="text/html")


urlpatterns = [
    path("v1/boom", explode),
    path("v1/html-error", html_error),
    path("", include("glimpse.urls")),
]
