"""The home page: it sends a person to their start (leads to the batches,
annotators to labelling)."""

from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_GET

from accounts.http import HtmxHttpRequest


@require_GET
@login_required
def home(request: HtmxHttpRequest) -> HttpResponse:
    if request.user.is_lead:
        return redirect("annotation:batch_list")
    return redirect("annotation:workspace")
