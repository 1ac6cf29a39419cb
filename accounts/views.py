from django.contrib import messages
from django.contrib.auth import login, logout
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from api.forms import ApiKeyOptionsForm
from api.services import api_key_configure
from audit.erasure import user_erase
from audit.services import audit_record

from .forms import AccountDeleteForm, ApiKeyCreateForm, SignUpForm
from .models import ApiKey
from .services import api_key_create, api_key_revoke, user_create


class PasswordChangeView(auth_views.PasswordChangeView):
    """Django's view, with the change and its audit record in one transaction."""

    def form_valid(self, form):
        with transaction.atomic():
            response = super().form_valid(form)
            audit_record(
                actor=self.request.user, action="user.password_change", obj=self.request.user
            )
        return response


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
    options = ApiKeyOptionsForm(request.POST or None)
    new_key = None
    if request.method == "POST" and form.is_valid() and options.is_valid():
        with transaction.atomic():
            api_key, new_key = api_key_create(
                user=request.user,
                name=form.cleaned_data["name"],
                scopes=options.cleaned_data["scopes"],
            )
            if options.cleaned_data["allowed_image_domains"]:
                api_key_configure(
                    api_key=api_key,
                    acting_user=request.user,
                    allowed_image_domains=options.cleaned_data["allowed_image_domains"],
                )
        form, options = ApiKeyCreateForm(), ApiKeyOptionsForm()
    keys = ApiKey.objects.filter(user=request.user)
    return render(
        request,
        "accounts/api_keys.html",
        {"form": form, "options": options, "keys": keys, "new_key": new_key},
    )


@login_required
@require_POST
def api_key_revoke_view(request, prefix):
    # Looked up through the owner, so another user's prefix is a 404, not a revoke.
    api_key = get_object_or_404(ApiKey, user=request.user, prefix=prefix)
    api_key_revoke(api_key=api_key, acting_user=request.user)
    messages.success(request, f"Key glk_{prefix}… revoked.")
    return redirect("api_keys")


@login_required
def account_delete(request):
    """Right to erasure: the account and all its data, after the password is re-entered."""
    if request.user.is_superuser:
        messages.error(
            request,
            "An administrator account is erased by another administrator "
            "(manage.py erase_user), so the platform is never left without one.",
        )
        return redirect("api_keys")
    form = AccountDeleteForm(request.user, request.POST or None)
    if request.method == "POST" and form.is_valid():
        user_erase(user=request.user, acting_user=request.user)
        logout(request)
        messages.success(request, "Your account and all its data have been deleted.")
        return redirect("login")
    return render(request, "accounts/delete.html", {"form": form})
