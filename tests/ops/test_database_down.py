"""PostgreSQL unreachable: clear 503s, no half-written rows, and recovery by itself.

The web process reaches the (shared, never stopped) PostgreSQL server through a TCP proxy
that the test cuts, like a network partition between web and database.
"""

from __future__ import annotations

import httpx
import pytest
from django.db import connection

from assistant import services
from assistant.models import Conversation

from ..servers import base_env, running, start_daphne
from .helpers import TcpProxy, wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.integration]


def test_database_unreachable_gives_clear_503s_and_recovers(owner, cookie_for, tmp_path, settings):
    db = connection.settings_dict
    proxy = TcpProxy(int(db["PORT"]))
    proxy.start()
    env = base_env(
        DATABASE_URL=f"postgres://{db['USER']}@127.0.0.1:{proxy.port}/{db['NAME']}",
        INFERENCE_ENGINE="fixedrate",
        DATA_DIR=str(tmp_path / "data"),
        MEDIA_ROOT=str(tmp_path / "media"),
        SECRET_KEY=settings.SECRET_KEY,
        DATABASE_CONNECT_TIMEOUT="2",
    )
    conversation = services.conversation_create(owner=owner)
    cookies = {"sessionid": cookie_for(owner)}
    as_script = {"Accept": "application/json"}
    daphne, url = start_daphne(env, tmp_path)
    with running(daphne):
        client = httpx.Client(base_url=url, cookies=cookies, timeout=10)
        assert (
            client.get(f"/conversations/{conversation.pk}/messages/", headers=as_script).status_code
            == 200
        )
        assert client.get("/readyz").status_code == 200

        proxy.cut()
        before = Conversation.objects.count()
        # The chat's JSON endpoints: a 503 in the API error shape, with Retry-After.
        response = client.get(f"/conversations/{conversation.pk}/messages/", headers=as_script)
        assert response.status_code == 503
        assert response.headers["Retry-After"] == "30"
        assert response.json()["error"]["code"] == "database_unavailable"
        csrf = "x" * 32
        created = client.post(
            "/conversations/",
            headers={**as_script, "X-CSRFToken": csrf},
            cookies={**cookies, "csrftoken": csrf},
        )
        assert created.status_code == 503
        # A browser gets a short page, not a traceback.
        page = client.get("/", headers={"Accept": "text/html"})
        assert page.status_code == 503 and "Temporarily unavailable" in page.text
        # The probes: alive, not ready.
        assert client.get("/healthz").status_code == 200
        readyz = client.get("/readyz")
        assert readyz.status_code == 503 and readyz.json()["checks"]["database"]["ok"] is False
        # Nothing half-written.
        assert Conversation.objects.count() == before

        proxy.restore()
        wait_until(lambda: client.get("/readyz").status_code == 200, timeout=15)
        response = client.get(f"/conversations/{conversation.pk}/messages/", headers=as_script)
        assert response.status_code == 200
        proxy.cut()
