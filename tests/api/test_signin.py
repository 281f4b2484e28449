"""Signing in with a FusionPBX username and password, over HTTP against the real app on the
stock FusionPBX schema (5.5 booleans and 5.4 text flags): the cookie it gives, /api/me, CSRF,
sign-out, the failure limit, and cookies that are not ours (tampered, expired, signed out)."""

from __future__ import annotations

import contextlib
import re

import pytest
import trio

from callcontrol.api.http import build_app
from callcontrol.api.sessions import COOKIE_NAME, SessionCodec
from callcontrol.api.signin import SignIn
from callcontrol.db import PoolOptions, open_database
from callcontrol.metrics import Metrics
from callcontrol.testing.database import StockPBX, add_domain, add_extension
from callcontrol.testing.fusionpbx_users import add_user, set_user_enabled
from tests.api.conftest import TOKEN
from tests.api.people import Clock, browser_on

BOTH_PBX = [StockPBX("5.5.7"), StockPBX("5.4.4")]
SECRET = b"k" * 32


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def app(db, clock):
    return build_app(Metrics(), TOKEN, db=db,
                     sign_in=SignIn(SessionCodec(SECRET, clock), clock=clock))  # fmt: skip


@pytest.fixture
async def tenant(db):
    domain = await add_domain(db, "a.example.com")
    await add_extension(db, domain, "1001")
    await add_extension(db, domain, "1002")
    return domain


async def login(c, username, password, **more):
    return await c.post("/login", json={"username": username, "password": password, **more})


@pytest.mark.parametrize("fusionpbx_schema", BOTH_PBX, ids=str)
@pytest.mark.parametrize("legacy_md5", [False, True], ids=["bcrypt-2y", "md5-salt"])
async def test_a_fusionpbx_user_signs_in_and_me_says_who(db, app, tenant, legacy_md5):
    user = await add_user(db, tenant, "ana", "s3nha-da-Ana", extensions=["1002"],
                          legacy_md5=legacy_md5)  # fmt: skip
    stored = await db.fetch_value("SELECT password FROM v_users WHERE user_uuid = %s", (user,))
    assert stored.startswith("$2y$") != legacy_md5
    async with browser_on(app) as c:
        signed = await login(c, "ana", "s3nha-da-Ana")
        assert signed.status_code == 200
        cookie = signed.headers["set-cookie"]
        assert cookie.startswith(f"{COOKIE_NAME}=")
        assert "httponly" in cookie.lower() and "samesite=lax" in cookie.lower()
        assert "max-age=43200" in cookie.lower() and "secure" not in cookie.lower()
        me = (await c.get("/api/me")).json()
        assert me == {"username": "ana", "role": "agent", "domain_uuid": str(tenant),
                      "domain_name": "a.example.com", "extensions": ["1002"],
                      "csrf_token": signed.json()["csrf_token"]}  # fmt: skip
        assert len(me["csrf_token"]) >= 32


async def test_admin_and_superadmin_are_supervisors(db, app, tenant):
    await add_user(db, tenant, "bia", "x-pass-1", group="admin")
    await add_user(db, tenant, "root", "x-pass-2", group="superadmin", extensions=["1001"])
    async with browser_on(app) as c:
        assert (await login(c, "bia", "x-pass-1")).json()["role"] == "supervisor"
    async with browser_on(app) as c:
        me = (await login(c, "root", "x-pass-2")).json()
        assert (me["role"], me["extensions"]) == ("supervisor", ["1001"])


@pytest.mark.parametrize("fusionpbx_schema", BOTH_PBX, ids=str)
async def test_wrong_password_unknown_and_disabled_users_get_one_answer(db, app, tenant):
    await add_user(db, tenant, "ana", "right-one")
    await add_user(db, tenant, "off", "right-one", enabled=False)
    await add_user(db, tenant, "api", "right-one", user_type="api")
    async with browser_on(app) as c:
        answers = [await login(c, name, password) for name, password in
                   [("ana", "wrong"), ("nobody", "right-one"), ("off", "right-one"),
                    ("api", "right-one"), ("ana", "")]]  # fmt: skip
        assert [a.status_code for a in answers[:4]] == [401] * 4
        assert len({a.text for a in answers[:4]}) == 1
        assert answers[4].status_code == 400  # the empty password: a form error, not a guess
        assert "set-cookie" not in answers[0].headers
        assert (await c.get("/api/me")).status_code == 401


async def test_a_user_left_unset_enabled_and_a_name_in_any_case_sign_in(db, app, tenant):
    await add_user(db, tenant, "Carla", "pw-carla", enabled=None)
    async with browser_on(app) as c:
        assert (await login(c, "carla", "pw-carla")).status_code == 200


async def test_the_form_signs_in_and_goes_to_next_only_on_this_site(db, app, tenant):
    await add_user(db, tenant, "ana", "pw-ana")
    async with browser_on(app) as c:
        page = await c.get("/console/callbacks?tab=pending")
        assert page.status_code == 303
        assert page.headers["location"] == "/login?next=/console/callbacks%3Ftab%3Dpending"
        form = await c.get(page.headers["location"])
        assert form.status_code == 200 and 'name="password"' in form.text
        assert 'value="/console/callbacks?tab=pending"' in form.text
        done = await c.post("/login", data={"username": "ana", "password": "pw-ana",
                                             "next": "/console/callbacks?tab=pending"})
        assert done.status_code == 303
        assert done.headers["location"] == "/console/callbacks?tab=pending"
    for evil in ("//evil.example/x", "https://evil.example/", "/\\evil.example", "console"):
        async with browser_on(app) as c:
            done = await c.post("/login", data={"username": "ana", "password": "pw-ana",
                                                 "next": evil})  # fmt: skip
            assert done.headers["location"] == "/console", evil


async def test_a_failed_form_shows_the_form_again_with_the_message(db, app, tenant):
    await add_user(db, tenant, "ana", "pw-ana")
    async with browser_on(app) as c:
        again = await c.post("/login", data={"username": "ana", "password": "no"})
        assert again.status_code == 401
        assert "usuário ou senha incorretos" in again.text
        assert 'value="ana"' in again.text and "set-cookie" not in again.headers


async def test_user_at_domain_and_the_host_choose_between_two_domains(db, app, tenant):
    other = await add_domain(db, "b.example.com")
    await add_user(db, tenant, "ana", "pw-of-a")
    await add_user(db, other, "ana", "pw-of-b")
    async with browser_on(app) as c:
        assert (await login(c, "ana", "pw-of-a")).status_code == 401  # which ana?
        me = (await login(c, "ana@b.example.com", "pw-of-b")).json()
        assert me["domain_name"] == "b.example.com" and me["username"] == "ana"
    async with browser_on(app) as c:
        me = (await login(c, "ana", "pw-of-a", domain_name="a.example.com")).json()
        assert me["domain_name"] == "a.example.com"
    async with browser_on(app, base_url="http://b.example.com:8086") as c:
        assert (await login(c, "ana", "pw-of-b")).json()["domain_name"] == "b.example.com"


@pytest.mark.parametrize("fusionpbx_schema", BOTH_PBX, ids=str)
async def test_a_user_signs_in_with_the_e_mail_fusionpbx_has_for_them(db, app, tenant):
    await add_user(db, tenant, "ana", "pw-ana", email="Ana.Souza@clinica.com.br")
    # an address at the tenant's own domain: no user "recepcao" there, so it is the e-mail
    await add_user(db, tenant, "bia", "pw-bia", email="recepcao@a.example.com")
    async with browser_on(app) as c:
        me = (await login(c, "ana.souza@CLINICA.com.br", "pw-ana")).json()
        assert (me["username"], me["domain_name"]) == ("ana", "a.example.com")
    async with browser_on(app) as c:
        assert (await login(c, "recepcao@a.example.com", "pw-bia")).json()["username"] == "bia"
    async with browser_on(app) as c:
        assert (await login(c, "ana.souza@clinica.com.br", "pw-bia")).status_code == 401


async def test_an_e_mail_must_be_one_users_in_the_domain_and_a_username_goes_first(db, app,
                                                                                  tenant):
    other = await add_domain(db, "b.example.com")
    await add_user(db, tenant, "ana", "pw-ana", email="equipe@clinica.com.br")
    await add_user(db, tenant, "caio", "pw-caio", email="equipe@clinica.com.br")
    await add_user(db, tenant, "dani", "pw-dani", email="dani@gmail.com")
    await add_user(db, other, "edu", "pw-edu", email="dani@gmail.com")
    # someone whose e-mail reads like another user's user@domain
    await add_user(db, other, "fabi", "pw-fabi", email="ana@a.example.com")
    async with browser_on(app) as c:
        # two users of one domain share it: it signs neither in; their usernames still do
        assert (await login(c, "equipe@clinica.com.br", "pw-ana")).status_code == 401
        assert (await login(c, "caio", "pw-caio")).status_code == 200
    async with browser_on(app) as c:
        # one address in two domains: the form's domain, or the Host's, says which
        assert (await login(c, "dani@gmail.com", "pw-dani")).status_code == 401
        me = (await login(c, "dani@gmail.com", "pw-edu", domain_name="b.example.com")).json()
        assert me["username"] == "edu"
    async with browser_on(app, base_url="http://a.example.com:8086") as c:
        assert (await login(c, "dani@gmail.com", "pw-dani")).json()["username"] == "dani"
    async with browser_on(app) as c:
        assert (await login(c, "ana@a.example.com", "pw-fabi")).status_code == 401
        assert (await login(c, "ana@a.example.com", "pw-ana")).json()["username"] == "ana"


async def test_tries_by_e_mail_and_by_username_count_against_one_account(db, app, tenant):
    await add_user(db, tenant, "ana", "pw-ana", email="ana.souza@clinica.com.br")
    async with browser_on(app) as c:
        for name in ("ana", "ana.souza@clinica.com.br", "ANA", "Ana.Souza@clinica.com.br",
                     "ana@a.example.com"):
            assert (await login(c, name, "guess")).status_code == 401
        assert (await login(c, "ana.souza@clinica.com.br", "pw-ana")).status_code == 429


async def test_failures_are_limited_per_username_then_the_window_passes(db, app, tenant, clock,
                                                                        capsys):
    await add_user(db, tenant, "ana", "pw-ana")
    async with browser_on(app) as c:
        # one account however it is spelt: the count is the account's
        for name in ("ana", "ANA", "ana@a.example.com", "Ana", "ana"):
            assert (await login(c, name, "guess-pw-1")).status_code == 401
        limited = await login(c, "ana", "pw-ana")  # even the right one: no password is tried
        assert limited.status_code == 429
        assert limited.json()["error"] == "too_many_failures"
        assert 1 <= int(limited.headers["retry-after"]) <= 300
        clock.now += 301
        assert (await login(c, "ana", "pw-ana")).status_code == 200
    assert "guess-pw-1" not in capsys.readouterr().out


async def test_failures_are_limited_per_client_address_across_usernames(db, app, tenant, clock):
    await add_user(db, tenant, "ana", "pw-ana")
    async with browser_on(app) as c:
        for n in range(20):  # 20: behind a proxy every browser has the proxy's address
            assert (await login(c, f"user{n}", "x")).status_code == 401
        assert (await login(c, "ana", "pw-ana")).status_code == 429
    async with browser_on(app, client=("10.0.0.9", 5000)) as c:
        assert (await login(c, "ana", "pw-ana")).status_code == 200


@contextlib.asynccontextmanager
async def two_instances(db_url, clock, *, inline=True):
    """Two apps, each with its own pool on the one database: two workers, or two instances
    behind a load balancer, as far as the database can tell."""
    async with open_database(db_url, PoolOptions(max_size=4, inline=inline)) as one, \
            open_database(db_url, PoolOptions(max_size=4, inline=inline)) as two:  # fmt: skip
        yield [build_app(Metrics(), TOKEN, db=d,
                         sign_in=SignIn(SessionCodec(SECRET, clock), clock=clock))
               for d in (one, two)]  # fmt: skip


async def test_two_instances_share_the_failure_limit_in_the_database(db, db_url, tenant, clock,
                                                                     capsys):
    await add_user(db, tenant, "ana", "pw-ana")
    async with two_instances(db_url, clock) as (first, second):
        # the same guesser, from an address each time (only the account's count fills up),
        # its tries dealt out between the two instances
        for n in range(5):
            async with browser_on((first, second)[n % 2], client=(f"10.0.1.{n}", 5000)) as c:
                assert (await login(c, "ana", f"guess-pw-{n}")).status_code == 401
        for app in (first, second):
            async with browser_on(app, client=("10.0.2.1", 5000)) as c:
                limited = await login(c, "ana", "pw-ana")
                assert limited.status_code == 429, "a worker of its own gave five more tries"
                assert 1 <= int(limited.headers["retry-after"]) <= 300
        counted = await db.fetch_all("SELECT kind, key FROM callcontrol_sign_in_failures"
                                     " ORDER BY failure_id")  # fmt: skip
        ana = str(await db.fetch_value("SELECT user_uuid FROM v_users WHERE username = 'ana'"))
        assert [r["key"] for r in counted if r["kind"] == "account"] == [ana] * 5
        clock.now += 301
        async with browser_on(second, client=("10.0.2.1", 5000)) as c:
            assert (await login(c, "ana", "pw-ana")).status_code == 200
        # the window passed: the old rows were pruned, and a right password leaves none
        assert await db.fetch_value("SELECT count(*) FROM callcontrol_sign_in_failures") == 0
    out = capsys.readouterr().out
    assert "api.login_failed" in out and "guess-pw-" not in out and "pw-ana" not in out


async def test_guesses_sent_at_once_to_two_instances_get_five_tries_in_all(db, db_url, tenant,
                                                                          clock):
    await add_user(db, tenant, "ana", "pw-ana")
    answers: list[int] = []
    async with two_instances(db_url, clock, inline=False) as apps:

        async def guess(n: int) -> None:
            async with browser_on(apps[n % 2], client=(f"10.0.3.{n}", 5000)) as c:
                answers.append((await login(c, "ana", f"guess-{n}")).status_code)

        async with trio.open_nursery() as nursery:
            for n in range(12):
                nursery.start_soon(guess, n)
    # each try is counted before its password is hashed: none slips past a check the others
    # are still being hashed behind
    assert sorted(answers) == [401] * 5 + [429] * 7


async def test_changes_with_a_session_need_the_csrf_token(db, app, tenant):
    await add_user(db, tenant, "ana", "pw-ana")
    async with browser_on(app) as c:
        token = (await login(c, "ana", "pw-ana")).json()["csrf_token"]
        refused = await c.post("/logout")
        assert refused.status_code == 403 and refused.json()["error"] == "csrf"
        refused = await c.post("/logout", headers={"X-CSRF-Token": token[:-1] + "x"})
        assert refused.status_code == 403
        refused = await c.post("/logout", data={"csrf_token": "nope"})
        assert refused.status_code == 403
        assert (await c.get("/api/me")).status_code == 200  # still signed in
        out = await c.post("/logout", data={"csrf_token": token})
        assert out.status_code == 303 and out.headers["location"] == "/login"
        assert (await c.get("/api/me")).status_code == 401


async def test_signed_out_cookie_is_refused_even_as_a_copy(db, app, tenant):
    await add_user(db, tenant, "ana", "pw-ana")
    async with browser_on(app) as c:
        token = (await login(c, "ana", "pw-ana")).json()["csrf_token"]
        kept = c.cookies[COOKIE_NAME]
        out = await c.post("/logout", headers={"X-CSRF-Token": token})
        assert out.status_code == 200 and out.json() == {"status": "signed_out"}
        assert f'{COOKIE_NAME}=""' in out.headers["set-cookie"]
    async with browser_on(app, cookies={COOKIE_NAME: kept}) as c:
        assert (await c.get("/api/me")).status_code == 401
        assert (await c.get("/console")).status_code == 303


async def test_tampered_and_expired_cookies_are_refused(db, app, tenant, clock):
    ana = await add_user(db, tenant, "ana", "pw-ana")
    async with browser_on(app) as c:
        await login(c, "ana", "pw-ana")
        good = c.cookies[COOKIE_NAME]
    payload, signature = good.split(".")
    forged = SessionCodec(b"another secret of 32 bytes......", clock).new(ana, tenant)[1]
    for cookie in (payload + "." + signature[:-2] + "AA", payload[:-2] + "e30." + signature,
                   forged, "garbage", good + "." + signature):  # fmt: skip
        async with browser_on(app, cookies={COOKIE_NAME: cookie}) as c:
            assert (await c.get("/api/me")).status_code == 401, cookie
    async with browser_on(app) as c:  # bytes no cookie of ours holds: refused, not a crash
        odd = await c.get("/api/me", headers={"Cookie": f"{COOKIE_NAME}=\xe5{good}".encode()})
        assert odd.status_code == 401
    async with browser_on(app, cookies={COOKIE_NAME: good}) as c:
        assert (await c.get("/api/me")).status_code == 200
        clock.now += 12 * 3600
        assert (await c.get("/api/me")).status_code == 401


async def test_a_user_disabled_in_fusionpbx_loses_the_session_at_once(db, app, tenant):
    ana = await add_user(db, tenant, "ana", "pw-ana")
    async with browser_on(app) as c:
        await login(c, "ana", "pw-ana")
        await set_user_enabled(db, ana, False)
        assert (await c.get("/api/me")).status_code == 401


async def test_a_person_is_served_without_a_service_token(db, clock, tenant):
    app = build_app(Metrics(), None, db=db,
                    sign_in=SignIn(SessionCodec(SECRET, clock), clock=clock))  # fmt: skip
    await add_user(db, tenant, "ana", "pw-ana")
    async with browser_on(app) as c:
        assert (await c.get("/api/me")).status_code == 503  # no one: the API is closed
        await login(c, "ana", "pw-ana")
        assert (await c.get("/api/me")).json()["username"] == "ana"
        assert (await c.get("/metrics")).status_code == 403  # every tenant's: the token's only


async def test_without_a_session_secret_sign_in_says_it_is_off(db, tenant):
    app = build_app(Metrics(), None, db=db)
    await add_user(db, tenant, "ana", "pw-ana")
    async with browser_on(app) as c:
        off = await login(c, "ana", "pw-ana")
        assert off.status_code == 503 and off.json()["error"] == "sign_in_off"
        assert "CALLCONTROL_SESSION_SECRET" in off.json()["reason"]


async def test_a_cross_site_form_cannot_sign_anyone_in(db, app, tenant):
    await add_user(db, tenant, "ana", "pw-ana")
    form = {"username": "ana", "password": "pw-ana"}
    for headers in ({"Origin": "https://evil.example"}, {"Sec-Fetch-Site": "cross-site"},
                    {"Sec-Fetch-Site": "same-site", "Origin": "http://api"},
                    {"Origin": "null"}):  # fmt: skip
        async with browser_on(app) as c:
            refused = await c.post("/login", data=form, headers=headers)
            assert refused.status_code == 403, headers
            assert "set-cookie" not in refused.headers
    # the browser's own page: the same origin, also behind a proxy that rewrote Host
    for headers in ({"Origin": "http://api"}, {"Sec-Fetch-Site": "same-origin"},
                    {"Sec-Fetch-Site": "same-origin", "Origin": "https://pbx.example.com"},
                    {"Origin": "https://pbx.example.com",
                     "X-Forwarded-Host": "pbx.example.com"}, {}):  # fmt: skip
        async with browser_on(app) as c:
            assert (await c.post("/login", data=form, headers=headers)).status_code == 303, headers


async def test_the_service_token_is_the_service_and_me_says_so(app):
    async with browser_on(app) as c:
        me = (await c.get("/api/me", headers={"Authorization": f"Bearer {TOKEN}"})).json()
        assert me == {"username": None, "role": "service", "domain_uuid": None,
                      "domain_name": None, "extensions": [], "csrf_token": None}  # fmt: skip


async def test_the_console_page_carries_the_token_its_sign_out_form_sends(db, app, tenant):
    await add_user(db, tenant, "ana", "pw-ana", extensions=["1001"])
    async with browser_on(app) as c:
        await c.post("/login", data={"username": "ana", "password": "pw-ana"})
        page = await c.get("/console")
        assert page.status_code == 200, page.text
        [meta] = re.findall(r'<meta name="csrf-token" content="([^"]+)">', page.text)
        [field] = re.findall(r'name="csrf_token" value="([^"]+)"', page.text)
        assert meta == field == (await c.get("/api/me")).json()["csrf_token"]
        assert (await c.get("/login")).headers["location"] == "/console"  # signed in already
        out = await c.post("/logout", data={"csrf_token": field})
        assert out.status_code == 303 and out.headers["location"] == "/login"
        assert (await c.get("/console")).status_code == 303
