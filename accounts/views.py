from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from .forms import ApiKeyCreateForm, SignUpForm
from .models import ApiKey
from .services import api_key_create, api_key_revoke, user_create


def signup(request):
    if request.user.is_authenticated:
        return redirect("chat")
    form = SignUpForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = user_create(
            username=form.cleaned_data["username"],
            password=form.cleaned_data["password1"],
            email=form.cleaned_data.get("email") or "",
        )
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        return redirect("chat")
    return render(request, "accounts/signup.html", {"form": form})


@login_required
def api_keys(request):
    form = ApiKeyCreateForm(request.POST or None)
    new_key = None
    if request.method == "POST" and form.is_valid():
        _, new_key = api_key_create(user=request.user, name=form.cleaned_data["name"])
        form = ApiKeyCreateForm()
    keys = ApiKey.objects.filter(user=request.user)
    return render(
        request, "accounts/api_keys.html", {"form": form, "keys": keys, "new_key": new_key}
    )


@login_required
@require_POST
def api_key_revoke_view(request, prefix):
    # Looked up through the owner, so another user's prefix is a 404, not a revoke.
    api_key = get_object_or_404(ApiKey, user=request.user, prefix=prefix)
    api_key_revoke(api_key=api_key, acting_user=request.user)
    messages.success(request, f"Key glk_{prefix}… revoked.")
    return redirect("api_keys")
