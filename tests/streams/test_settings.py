"""Settings derived for clients: the Redis URL shown in logs hides its password; the one connected with trusts the stack's CA."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

from hypothesis import given
from hypothesis import strategies as st

from streams.settings import Settings


@given(user=st.sampled_from(["", "lp", "default"]), password=st.text(min_size=1, max_size=30))
def test_the_shown_redis_url_never_holds_the_password(user: str, password: str) -> None:
    settings = Settings(redis_url=f"rediss://{user}:{quote(password, safe='')}@redis.internal:6380/0")
    assert settings.redis_shown == f"rediss://{user}:***@redis.internal:6380/0"


def test_a_redis_url_without_a_password_is_shown_as_it_is() -> None:
    assert Settings(redis_url="redis://127.0.0.1:6379/0").redis_shown == "redis://127.0.0.1:6379/0"


def test_rediss_trusts_the_stacks_ca_only_when_there_is_one_and_no_ca_is_given(tmp_path: Path) -> None:
    url = "rediss://lp:pw@127.0.0.1:6380/0"
    assert Settings(home=tmp_path, redis_url=url).redis_connect_url == url
    ca = tmp_path / "kafka" / "tls" / "ca.pem"
    ca.parent.mkdir(parents=True)
    ca.write_text("pem")
    assert Settings(home=tmp_path, redis_url=url).redis_connect_url == f"{url}?ssl_ca_certs={quote(str(ca), safe='')}"
    given_ca = f"{url}?ssl_ca_certs=/etc/own-ca.pem"
    assert Settings(home=tmp_path, redis_url=given_ca).redis_connect_url == given_ca
    assert Settings(home=tmp_path, redis_url="redis://127.0.0.1:6379/0").redis_connect_url == "redis://127.0.0.1:6379/0"
