"""What every page shares: the request type of the htmx views, and the home page,
which sends a person to their start (leads to the batches, annotators to labelling)."""

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_GET
from django_htmx.middleware import HtmxDetails

from accounts.models import User


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails
    user: User


@require_GET
@login_required
def home(request: HtmxHttpRequest) -> HttpResponse:
    if request.user.is_lead:
        return redirect("annotation:batch_list")
    return redirect("annotation:workspace")
