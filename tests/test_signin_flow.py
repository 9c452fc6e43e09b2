"""Sign-in through the real SimpleSAMLphp proxy on a local hub brought up by `make local`: each
button, driven by Chromium in English and French, ends in a running server in the dataset of
the hash `callysto user findhash --source ...` prints; forged, altered, replayed, expired and
misdirected responses and a browser's REMOTE_USER header sign no one in; sign-out ends the
proxy's session too; no address is written anywhere; a reinstall keeps every hash. As a hub of
a fleet it lets in only the students its front door assigns it, and sends the others on."""

from __future__ import annotations

import base64
import json
import os
import signal
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import pytest

from tests.signin import ARTIFACTS, Student, forge_response, local_hub

pytestmark = pytest.mark.slow

ENV_NAME = "signin"
PORT = 18620  # the hub; +1 the hub's API, +2 the proxy's API, +3 the sign-in proxy
TOKEN = uuid.uuid4().hex[:10]
# Unique to this run, so that finding one anywhere can only mean this run wrote it.
GOOGLE = f"Ana.Tremblay.{TOKEN}@Example.org"
INSTITUTION = f"o'brien+{TOKEN}@district-3.ca"
INSTITUTION_IDP = "https://idp.ecole.example.ca/idp/shibboleth"
MICROSOFT = f"kim.{TOKEN}@outlook.example.com"
MICROSOFT_ACCOUNT = f"{TOKEN}abcdef"[:16]
# Students who come in through the fleet's front door.
DOOR_STUDENTS = (f"door.one.{TOKEN}@example.org", f"door.two.{TOKEN}@example.org")
# Students who open this hub's own name when it is a hub of the fleet.
FLEET_STUDENTS = tuple(f"{n}.{TOKEN}@example.org" for n in ("elsewhere", "here", "stalled"))
ADDRESSES = (GOOGLE, INSTITUTION, MICROSOFT, *DOOR_STUDENTS, *FLEET_STUDENTS)
DOOR_PORT = 18626  # the front door; its database 18627; 18628: a hub where nothing answers
DEAD_HUB = f"http://127.0.0.1:{DOOR_PORT + 2}/"
LINK = "hub/user-redirect/git-pull?repo=https%3A%2F%2Fgithub.com%2Fcallysto%2Fnotebooks"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def hub(zfs_daemon):
    with local_hub(ENV_NAME, PORT, "signin") as hub:
        yield hub


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def findhash_args(source: str) -> list[str]:
    if source == "institution":
        return ["--source", "institution", "--idp", INSTITUTION_IDP, INSTITUTION]
    if source == "microsoft":
        return ["--source", "microsoft", "--account-id", MICROSOFT_ACCOUNT]
    return ["--source", "google", GOOGLE]


def fill_stand_in(page, source: str) -> None:
    """The proxy's stand-in form of SOURCE, filled as a student would."""
    page.wait_for_selector("#email_input")
    page.fill("#email_input", {"institution": INSTITUTION, "google": GOOGLE}.get(source, MICROSOFT))
    if source == "institution":
        page.fill("#idp_input", INSTITUTION_IDP)
    if source == "microsoft":
        page.fill("#account_input", MICROSOFT_ACCOUNT)
    page.click("#login_submit")


def nothing_created(hub, user_hash: str) -> bool:
    return user_hash not in hub.users() and hub.dataset(user_hash) is None


def fresh_hash() -> str:
    return uuid.uuid4().hex + uuid.uuid4().hex[:8]


# --- each button, in a real browser ------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "language"), [("institution", "fr"), ("google", "en"), ("microsoft", "fr")]
)
def test_each_button_signs_in_through_the_proxy_to_a_running_server(hub, browser, source, language):
    expected = hub.findhash(*findhash_args(source))
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(120_000)
    page.goto(f"{hub.url}hub/login")
    if language == "fr":
        page.click("#lang-fr")
        assert "Se connecter avec un compte" in page.inner_text("body")
    page.click(f"#source-{source}")
    page.wait_for_selector("#email_input")
    assert page.url.startswith(hub.proxy_url)  # the real proxy, not the hub
    greeting = {"en": "Sign in with your", "fr": "Connexion avec votre"}[language]
    assert greeting in page.inner_text("body")  # in the language chosen on the hub's page
    fill_stand_in(page, source)
    page.wait_for_url(f"**/user/{expected}/**", timeout=180_000)
    page.wait_for_selector(".jp-LabShell", timeout=120_000)
    page.screenshot(path=str(ARTIFACTS / f"signin-{source}-{language}.png"))
    user = hub.api(f"users/{expected}")
    assert user["servers"][""]["ready"] is True
    assert hub.dataset(expected) == f"{hub.pool}/home/{expected}"
    context.close()


def test_the_hub_has_its_own_entity_id_and_the_hash_uses_the_pinned_one(hub):
    # The hashes above are findhash's, which knows only the pinned entity IDs: so the proxy
    # hashed with those, not with the hub's own, and every hub behind one proxy agrees.
    _, own = hub.entity_ids()
    pinned = hub.findhash_env().sp_entity_id
    assert own != pinned
    (listed,) = (hub.data_dir / "simplesamlphp" / "config" / "metadata" / "sps").glob("*.php")
    text = listed.read_text()
    assert f"'entityid' => \"{own}\"" in text and pinned not in text


def test_sign_out_ends_the_proxy_session_too(hub, browser):
    expected = hub.findhash(*findhash_args("google"))
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(120_000)
    page.goto(f"{hub.url}hub/login")
    page.click("#source-google")
    fill_stand_in(page, "google")
    page.wait_for_url(f"**/user/{expected}/**", timeout=180_000)

    page.goto(f"{hub.url}hub/logout")
    page.wait_for_url(f"{hub.url}hub/login**")
    # The next student at this screen: the hub shows its sign-in page, not the server ...
    page.goto(f"{hub.url}hub/home")
    page.wait_for_url(f"{hub.url}hub/login**")
    assert page.is_visible("#source-google")
    # ... and the proxy asks again instead of signing the previous student back in.
    page.click("#source-google")
    page.wait_for_selector("#email_input")
    assert page.url.startswith(hub.proxy_url)
    context.close()


# --- only the proxy's own responses, to this browser's own request ----------------------------


def test_a_response_made_with_the_proxys_key_is_accepted(hub):
    """The forging below is faithful: signed and encrypted as the proxy does, it signs in."""
    student = Student(hub)
    request_id = student.start("google")
    user_hash = fresh_hash()
    answer = student.post_response(forge_response(hub, request_id, user_hash))
    assert answer.status_code == 302, answer.text[:300]
    assert user_hash in hub.users()


@pytest.mark.parametrize(
    "forgery",
    [
        pytest.param({"sign": False}, id="unsigned"),
        pytest.param({"encrypt": False}, id="assertion-not-encrypted"),
        pytest.param(
            {"audience": "https://another-hub.example.ca/shibboleth"}, id="other-audience"
        ),
        pytest.param({"lifetime_minutes": -10}, id="expired"),
    ],
)
def test_forged_responses_sign_no_one_in(hub, forgery):
    student = Student(hub)
    request_id = student.start("google")
    user_hash = fresh_hash()
    answer = student.post_response(forge_response(hub, request_id, user_hash, **forgery))
    assert answer.status_code == 403
    assert student.signed_in_as() is None
    assert nothing_created(hub, user_hash)


def test_a_response_to_another_request_signs_no_one_in(hub):
    student = Student(hub)
    student.start("google")
    user_hash = fresh_hash()
    answer = student.post_response(forge_response(hub, "_not-this-browsers-request", user_hash))
    assert answer.status_code == 403
    assert nothing_created(hub, user_hash)


def test_an_altered_assertion_signs_no_one_in(hub):
    student = Student(hub)
    _, response = student.proxy_response("google", GOOGLE)
    xml = base64.b64decode(response).decode()
    start = xml.index("<xenc:CipherValue>", xml.index("EncryptedData")) + len("<xenc:CipherValue>")
    # Change a few bytes of the encrypted assertion after the proxy signed the response.
    altered = (
        xml[:start] + ("AAAA" if xml[start : start + 4] != "AAAA" else "BBBB") + xml[start + 4 :]
    )
    answer = student.post_response(base64.b64encode(altered.encode()).decode())
    assert answer.status_code == 403
    assert student.signed_in_as() is None


def test_a_replayed_response_signs_no_one_in(hub):
    first = Student(hub)
    _, response = first.proxy_response("institution", INSTITUTION, idp=INSTITUTION_IDP)
    assert first.post_response(response).status_code == 302
    # The same response again, from the same browser ...
    assert first.post_response(response).status_code == 403
    # ... and from another browser with a pending sign-in of its own.
    second = Student(hub)
    second.start("institution")
    assert second.post_response(response).status_code == 403
    assert second.signed_in_as() is None


def test_a_browsers_remote_user_header_signs_no_one_in(hub):
    user_hash = fresh_hash()
    student = Student(hub)
    student.session.headers.update({"REMOTE_USER": user_hash, "Remote-User": user_hash})
    assert student.signed_in_as() is None
    login = student.session.get(f"{hub.url}hub/login")
    assert login.status_code == 200 and 'id="source-google"' in login.text
    for path in ("hub/remote-login", "hub/saml/acs"):
        student.session.get(f"{hub.url}{path}", allow_redirects=False)
    assert nothing_created(hub, user_hash)


def test_a_local_hub_still_signs_in_a_posted_user_hash(hub):
    student = Student(hub)
    student.session.get(f"{hub.url}hub/login")
    xsrf = student.session.cookies.get("_xsrf")
    user_hash = fresh_hash()
    done = student.session.post(
        f"{hub.url}hub/login",
        data={"username": user_hash, "password": "", "_xsrf": xsrf},
        allow_redirects=False,
    )
    assert done.status_code == 302
    assert user_hash in hub.users()
    refused = student.session.post(
        f"{hub.url}hub/login",
        data={"username": GOOGLE, "password": "", "_xsrf": xsrf},
        allow_redirects=False,
    )
    assert refused.status_code == 403


# --- privacy and stability ---------------------------------------------------------------------


def _files(root: Path):
    for directory, dirs, files in os.walk(root):
        # A student's own browser profile is not the machine's: Playwright's lives in /tmp.
        dirs[:] = [d for d in dirs if not d.startswith("playwright")]
        for name in files:
            path = Path(directory) / name
            try:
                if path.is_symlink() or not path.is_file() or path.stat().st_size > 64 << 20:
                    continue
                yield path, path.read_bytes()
            except OSError:
                continue


# --- the fleet's front door, signing in through the same proxy -------------------------------


@pytest.fixture(scope="module")
def frontdoor(hub, tmp_path_factory):
    """The front door (callysto_login.frontdoor) as an SP of this hub's proxy, in front of two
    hubs: this one, and one where nothing answers; the assignments in a real PostgreSQL. Its API
    takes the fleet's token from the controller's file, made here as the first role would."""
    import socket
    import subprocess
    import sys

    from tests import postgres

    work = tmp_path_factory.mktemp("frontdoor")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=front door", "-keyout", str(work / "sp.key"), "-out", str(work / "sp.crt")],
        check=True, capture_output=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{DOOR_PORT}/"
    cert = "".join((work / "sp.crt").read_text().split("-----")[2].split())
    # The proxy's file for it, as the idp_proxy role writes one per service provider.
    sps = hub.data_dir / "simplesamlphp" / "config" / "metadata" / "sps"
    entry = sps / "frontdoor.php"
    entry.write_text(
        "<?php return ['entityid' => "
        + json.dumps(f"{url}frontdoor/saml/metadata")
        + ", 'AssertionConsumerService' => [['Binding' => "
        "'urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST', 'Location' => "
        + json.dumps(f"{url}frontdoor/saml/acs")
        + ", 'index' => 0]], 'SingleLogoutService' => [],"
        " 'certData' => " + json.dumps(cert) + ", 'assertion.encryption' => true,"
        " 'saml20.sign.response' => true, 'saml20.sign.assertion' => true,"
        " 'NameIDFormat' => 'urn:oasis:names:tc:SAML:2.0:nameid-format:persistent',"
        " 'attributes.NameFormat' => 'urn:oasis:names:tc:SAML:2.0:attrname-format:uri',"
        " 'callysto.host' => '127.0.0.1:" + str(DOOR_PORT) + "'];\n"
    )
    with postgres.running(DOOR_PORT + 1) as database:
        (work / "db-password").write_text(database.password)
        (work / "cookie-secret").write_text(uuid.uuid4().hex + uuid.uuid4().hex)
        token_file = hub.env_dir / "secrets" / "fleet-api-token"
        token_file.touch(mode=0o600)
        token_file.write_text(uuid.uuid4().hex + uuid.uuid4().hex + "\n")
        config = work / "frontdoor.json"
        config.write_text(json.dumps({
            "public_url": url,
            "listen_port": DOOR_PORT,
            "idp_metadata_file": str(hub.data_dir / "jupyterhub" / "etc" / "idp-metadata.xml"),
            "key_file": str(work / "sp.key"),
            "cert_file": str(work / "sp.crt"),
            "database": database.conninfo,
            "database_password_file": str(work / "db-password"),
            "cookie_secret_file": str(work / "cookie-secret"),
            "api_token_file": str(token_file),
            "hubs": [
                {"name": "hub-a", "url": hub.url, "capacity": 100},
                {"name": "hub-b", "url": DEAD_HUB, "capacity": 100},
            ],
        }))  # fmt: skip
        package = (
            Path(__file__).parent.parent / "playbooks/roles/callysto_login/files/callysto_login"
        )
        log = (ARTIFACTS / "frontdoor.log").open("w")
        process = subprocess.Popen(
            [sys.executable, "-m", "callysto_login.frontdoor", str(config)],
            cwd=package, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            for _ in range(200):
                with socket.socket() as probe:
                    if probe.connect_ex(("127.0.0.1", DOOR_PORT)) == 0:
                        break
                assert process.poll() is None, (ARTIFACTS / "frontdoor.log").read_text()
                time.sleep(0.1)
            yield {"url": url, "database": database, "pid": process.pid,
                   "token": token_file.read_text().strip()}  # fmt: skip
        finally:
            os.kill(process.pid, signal.SIGTERM)
            process.wait(timeout=30)
            log.close()
            entry.unlink(missing_ok=True)  # a reinstall removes it too


def door_sign_in(browser, door, address: str, path: str):
    """A student opens PATH at the front door and signs in with Google as ADDRESS."""
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(60_000)
    page.goto(door["url"] + path.lstrip("/"))
    page.click("#source-google")
    page.wait_for_selector("#email_input")
    page.fill("#email_input", address)
    page.click("#login_submit")
    return context, page


def test_the_front_door_sends_a_new_student_to_a_hub_and_keeps_the_link(hub, browser, frontdoor):
    from callysto_infra import assignments

    context, page = door_sign_in(browser, frontdoor, DOOR_STUDENTS[0], LINK)
    page.wait_for_url(f"{hub.url}**", timeout=60_000)
    # The hub's own sign-in page, asked to go on to the same nbgitpuller link.
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(page.url).query)
    assert page.url.startswith(f"{hub.url}hub/login") and query["next"] == [f"/{LINK}"]
    # The front door forgot who it sent: the next student at this computer signs in anew.
    assert not [c for c in context.cookies() if c["name"] == "callysto-frontdoor-user"]
    page.goto(frontdoor["url"])
    assert page.query_selector("#source-google") is not None
    context.close()
    expected = hub.findhash("--source", "google", DOOR_STUDENTS[0])
    with frontdoor["database"].connect(autocommit=True) as conn:
        assert assignments.find(conn, expected) == "hub-a", "the hash the hubs get, on hub-a"


def test_the_front_door_says_when_a_students_hub_is_down(browser, frontdoor):
    from callysto_infra import assignments

    # The second new student goes to hub-b (the least loaded), where nothing answers.
    context, page = door_sign_in(browser, frontdoor, DOOR_STUDENTS[1], "/")
    page.wait_for_selector("#hub-down")
    assert "hub-b" in page.inner_text("#hub-down")
    assert page.url.startswith(frontdoor["url"]), "never sent to another hub"
    context.close()
    with frontdoor["database"].connect(autocommit=True) as conn:
        loads = {load.name: load.students for load in assignments.loads(conn)}
    assert loads == {"hub-a": 1, "hub-b": 1}


def test_a_forged_post_to_the_front_door_assigns_no_one(frontdoor):
    from callysto_infra import assignments

    body = urllib.parse.urlencode({"SAMLResponse": base64.b64encode(b"<x/>").decode()})
    acs = frontdoor["url"] + "frontdoor/saml/acs"  # http://127.0.0.1 only
    request = urllib.request.Request(acs, data=body.encode(), method="POST")  # noqa: S310
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)  # noqa: S310
    assert refused.value.code == 403
    with frontdoor["database"].connect(autocommit=True) as conn:
        assert sum(load.students for load in assignments.loads(conn)) == 2


# --- a hub of the fleet lets in only its own students -------------------------------------------


def ask_front_door(door, user: str, token: str | None) -> tuple[int, dict]:
    """The front door's answer to a hub asking for USER's hub with TOKEN (None: no header)."""
    query = urllib.parse.urlencode({"user": user})
    request = urllib.request.Request(  # noqa: S310 (http://127.0.0.1 only)
        f"{door['url']}frontdoor/api/assignment?{query}",
        headers={"Authorization": f"token {token}"} if token is not None else {},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as refused:
        return refused.code, json.loads(refused.read() or b"{}")


def test_the_front_door_tells_only_the_fleet_which_hub_a_student_has(hub, frontdoor):
    from callysto_infra import assignments

    student = fresh_hash()
    token = frontdoor["token"]
    for wrong in (None, "", "0" * len(token), token[:-1], f"{token}0", token.upper()):
        assert ask_front_door(frontdoor, student, wrong)[0] == 403, wrong
    for bad in ("", "not-a-hash", student.upper(), student[:-1], f"{student}0", f"{student}\n"):
        assert ask_front_door(frontdoor, bad, token)[0] == 400, bad
    with frontdoor["database"].connect(autocommit=True) as conn:
        assert assignments.find(conn, student) is None, "no refused question assigns anyone"
    # A student with no hub yet gets one, as at the front door's own sign-in, and keeps it.
    status, answer = ask_front_door(frontdoor, student, token)
    assert status == 200
    with frontdoor["database"].connect(autocommit=True) as conn:
        assert answer["hub"] == assignments.find(conn, student)
    assert answer["url"] == {"hub-a": hub.url, "hub-b": DEAD_HUB}[answer["hub"]]
    assert ask_front_door(frontdoor, student, token) == (200, answer)


def assign_to(door, user_hash: str, name: str) -> None:
    """USER_HASH's hub is NAME in the fleet's table (assigned, then moved if it must be)."""
    from callysto_infra import assignments

    with door["database"].connect(autocommit=True) as conn:
        if assignments.assign(conn, user_hash)[0] != name:
            assignments.move(conn, user_hash, name)


@pytest.fixture(scope="class")
def fleet_hub(hub, frontdoor):
    """This hub as hub-a of the front door's fleet: the role's fleet settings set as an operator
    overrides any default (the environment's group_vars), installed by make local; on its own
    again afterwards."""
    settings = hub.env_dir / "group_vars" / "all.yml"
    settings.write_text(
        "callysto_login_fleet_name: hub-a\n"
        f"callysto_login_frontdoor_url: {frontdoor['url']}\n"
        "callysto_login_fleet_timeout: 3\n"
    )
    try:
        made = hub.make()
        (ARTIFACTS / "make-local-signin-fleet.log").write_text(made.stdout + made.stderr)
        assert made.returncode == 0, made.stderr[-3000:]
        yield hub
    finally:
        settings.unlink()
        again = hub.make()
        assert again.returncode == 0, again.stderr[-3000:]


@pytest.mark.usefixtures("fleet_hub")
class TestAHubOfTheFleet:
    def test_the_hub_keeps_the_fleets_token_private(self, hub, frontdoor):
        copy = hub.hub_secrets / "fleet-api-token"
        assert copy.read_text().strip() == frontdoor["token"], "the controller's, kept as it was"
        assert copy.stat().st_mode & 0o777 == 0o600 and copy.stat().st_uid == 0
        assert (hub.env_dir / "secrets" / "fleet-api-token").stat().st_mode & 0o777 == 0o600

    def test_a_student_of_another_hub_is_sent_there_with_the_same_link(
        self, hub, browser, frontdoor
    ):
        address = FLEET_STUDENTS[0]
        user_hash = hub.findhash("--source", "google", address)
        assign_to(frontdoor, user_hash, "hub-b")
        context = browser.new_context()
        # Nothing answers at hub-b's address: what counts is that the browser is sent there.
        context.route(f"{DEAD_HUB}**", lambda route: route.fulfill(
            status=200, content_type="text/html", body="<p id='hub-b'>hub-b</p>"))  # fmt: skip
        page = context.new_page()
        page.set_default_timeout(60_000)
        page.goto(f"{hub.url}hub/login?next={urllib.parse.quote('/' + LINK, safe='')}")
        page.click("#source-google")
        page.wait_for_selector("#email_input")
        page.fill("#email_input", address)
        page.click("#login_submit")
        page.wait_for_selector("#hub-b")
        assert page.url == DEAD_HUB + LINK
        assert "jupyterhub-hub-login" not in [c["name"] for c in context.cookies(hub.url)]
        context.close()
        assert nothing_created(hub, user_hash)

    def test_a_student_of_this_hub_signs_in_as_before(self, hub, frontdoor):
        address = FLEET_STUDENTS[1]
        user_hash = hub.findhash("--source", "google", address)
        assign_to(frontdoor, user_hash, "hub-a")
        student = Student(hub)
        answer = student.sign_in("google", address)
        assert answer.status_code == 302
        assert answer.headers["Location"].startswith("/hub/")
        assert student.signed_in_as() == user_hash

    def test_a_front_door_that_does_not_answer_lets_no_one_in(self, hub, frontdoor):
        address = FLEET_STUDENTS[2]
        user_hash = hub.findhash("--source", "google", address)
        student = Student(hub)
        _, response = student.proxy_response("google", address)
        # Stopped, the front door still takes connections but never answers: the hub's timeout.
        os.kill(frontdoor["pid"], signal.SIGSTOP)
        try:
            started = time.monotonic()
            answer = student.post_response(response)
            waited = time.monotonic() - started
        finally:
            os.kill(frontdoor["pid"], signal.SIGCONT)
        assert answer.status_code == 503
        assert "Sign-in cannot check your hub right now" in answer.text
        assert "try again in a minute" in answer.text
        assert waited < 20, "the hub gave up after its fleet timeout (3 s)"
        assert student.signed_in_as() is None
        assert nothing_created(hub, user_hash)


def test_addresses_are_written_nowhere(hub):
    needles = {
        variant.encode()
        for address in ADDRESSES
        for variant in (address, address.lower(), address.split("@")[0].lower())
    }
    roots = [hub.root, hub.mountpoint, Path("/var/log"), Path("/var/lib"), Path("/tmp")]
    seen = 0
    for root in roots:
        for path, data in _files(root):
            seen += 1
            lowered = data.lower()
            for needle in needles:
                assert needle.lower() not in lowered, f"{needle!r} found in {path}"
    assert seen > 100
    # The places that would hold one if anything did were read.
    assert list(hub.data_dir.rglob("jupyterhub.sqlite"))
    assert list((hub.data_dir / "simplesamlphp" / "log").glob("*.log"))


def test_the_proxy_keeps_its_sessions_in_memory_only(hub):
    from callysto_infra import environments, local

    env = environments.Environment(
        name=hub.name,
        path=hub.env_dir,
        config=environments.parse_config(hub.env_dir / "env.yaml"),
    )
    memory = local.proxy_memory_dir(env)
    assert memory.is_relative_to("/dev/shm")
    sessions = list((memory / "sessions").iterdir())
    assert sessions, "the students signed in above have proxy sessions"
    assert (memory / "sessions").stat().st_mode & 0o077 == 0
    assert not (hub.data_dir / "simplesamlphp" / "sessions").exists()


def test_the_proxy_keeps_the_salt_and_keys_private(hub):
    secrets = hub.proxy_secrets
    for name in ("secrets.inc.php", "idp.key"):
        assert (secrets / name).stat().st_mode & 0o007 == 0, name
    assert (hub.hub_secrets / "saml-sp.key").stat().st_mode & 0o777 == 0o600
    salt = (hub.env_dir / "secrets" / "saml-salt").read_text().strip()
    assert salt not in (Path(ARTIFACTS) / "make-local-signin.log").read_text()


def test_a_reinstall_keeps_every_hash(hub):
    """A fresh SimpleSAMLphp install puts a random salt in secrets.inc.php and leaves no
    configuration; the next run of the playbook puts the environment's back."""
    secrets_inc = hub.proxy_secrets / "secrets.inc.php"
    secrets_inc.write_text("<?php\n$config['secretsalt'] = 'a-random-salt-of-a-fresh-install';\n")
    for name in ("config.php", "authsources.php"):
        (hub.data_dir / "simplesamlphp" / "config" / name).unlink()
    again = hub.make()
    assert again.returncode == 0, again.stderr[-2000:]
    expected = hub.findhash(*findhash_args("google"))
    student = Student(hub)
    deadline = time.monotonic() + 60
    while True:
        try:
            answer = student.sign_in("google", GOOGLE)
            break
        except (AssertionError, OSError):
            if time.monotonic() > deadline:
                raise
            time.sleep(1)
    assert answer.status_code == 302
    assert student.signed_in_as() == expected
