"""User hashes: ours against SimpleSAMLphp's own core:TargetedID (run by php-cli), and findhash."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import random
import subprocess
from pathlib import Path

import pytest

from callysto_infra import environments, userhash

PHP_DRIVER = Path(__file__).parent / "php" / "targeted_id.php"

IDP = "https://hub.callysto.ca/simplesaml/saml2/idp/metadata.php"
SP = "https://hub.callysto.ca/shibboleth"


def simplesamlphp(cases: list[dict]) -> list[str]:
    """eduPersonTargetedID for each case, from SimpleSAMLphp's TargetedID class itself."""
    stdin = "".join(json.dumps(case) + "\n" for case in cases)
    done = subprocess.run(
        ["php", str(PHP_DRIVER)], input=stdin, capture_output=True, text=True, check=True
    )
    return done.stdout.split()


def random_text(rng: random.Random, alphabet: str, low: int, high: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(low, high)))


ASCII = "abcdefghijklmnopqrstuvwxyz0123456789._-+"
NON_ASCII = "éèçàüößøåñ中文字ΩЖ🙂"


def generated_cases(count: int, seed: int = 5) -> list[dict]:
    rng = random.Random(seed)
    cases = []
    for i in range(count):
        alphabet = ASCII + (NON_ASCII if i % 2 else "")
        local = random_text(rng, alphabet, 1, 24)
        domain = random_text(rng, ASCII[:26] + (NON_ASCII if i % 3 == 0 else ""), 2, 12)
        email = f"{local}@{domain}.ca"
        uid = userhash.user_id(email) if i % 4 else userhash.user_id(email, "saml", IDP)
        cases.append(
            {
                "salt": random_text(rng, ASCII + NON_ASCII, 1, 48),
                "idp": rng.choice([IDP, f"https://{random_text(rng, ASCII[:26], 3, 9)}.ca/idp"]),
                "sp": rng.choice([SP, "https://hüb.example.org/shibboleth"]),
                "uid": uid,
            }
        )
    return cases


def test_targeted_id_matches_simplesamlphp_on_generated_inputs():
    cases = generated_cases(400)
    assert any(len(c["uid"].encode()) != len(c["uid"]) for c in cases)  # non-ASCII included
    theirs = simplesamlphp(cases)
    ours = [userhash.targeted_id(c["salt"], c["idp"], c["sp"], c["uid"]) for c in cases]
    assert ours == theirs


def test_hasher_reused_for_many_users_matches_one_at_a_time():
    hasher = userhash.Hasher("pepper", IDP, SP)
    ids = [f"student{i}@école.ca" for i in range(50)]
    assert list(hasher.many(ids)) == [userhash.targeted_id("pepper", IDP, SP, u) for u in ids]


def test_lengths_count_utf8_bytes_like_php_strlen():
    uid = "élève@école.ca"  # 14 characters, 17 bytes
    src = f"set17:saml20-idp-hostedset{len(IDP)}:{IDP}"
    dst = f"set16:saml20-sp-remoteset{len(SP)}:{SP}"
    data = f"uidhashbases{len(src)}:{src}{len(dst)}:{dst}17:{uid}s"
    assert (
        userhash.targeted_id("s", IDP, SP, uid)
        == hashlib.sha1(data.encode(), usedforsecurity=False).hexdigest()
    )
    by_characters = data.replace("17:", "14:")
    assert (
        userhash.targeted_id("s", IDP, SP, uid)
        != hashlib.sha1(  # noqa: S324 - the format is SimpleSAMLphp's
            by_characters.encode()
        ).hexdigest()
    )


def test_google_user_id_is_the_lower_cased_address():
    assert userhash.user_id("Ada.Lovelace@Example.ORG") == "ada.lovelace@example.org"
    assert userhash.user_id("Ada@X.ca", "google") == "ada@x.ca"


def test_microsoft_user_id_is_the_account_id_and_no_address_gives_it():
    with pytest.raises(userhash.NeedsAccountId, match="account id"):
        userhash.user_id("Ada@X.ca", "microsoft")
    assert userhash.microsoft_user_id("0123abcd") == "https://graph.microsoft.com!0123abcd"


def test_institution_user_id_carries_the_idp():
    assert userhash.user_id("Ada@X.ca", "saml", "https://idp.x.ca") == "ada@x.ca!https://idp.x.ca"
    assert (
        userhash.user_id("Ada@X.ca", "institution", "https://idp.x.ca")
        == "ada@x.ca!https://idp.x.ca"
    )
    with pytest.raises(ValueError, match="IdP entity ID"):
        userhash.user_id("ada@x.ca", "saml")


# --- callysto user findhash -------------------------------------------------------------------


@pytest.fixture
def dev_env(envs_dir):
    return environments.create("dev", "brave-otter")


def php_hash(env_or_salt, idp: str, sp: str, uid: str) -> str:
    return simplesamlphp([{"salt": env_or_salt, "idp": idp, "sp": sp, "uid": uid}])[0]


def test_findhash_uses_the_environment_salt_and_entity_ids(callysto, dev_env):
    done = callysto("user", "findhash", "--env", "brave-otter", "Élève@École.CA")
    assert done.returncode == 0, done.stderr
    salt = environments.read_salt(dev_env.salt_file)
    expected = php_hash(salt, dev_env.idp_entity_id, dev_env.sp_entity_id, "élève@école.ca")
    assert done.stdout.splitlines()[0] == expected
    # No Terraform state yet: the hash is still the answer, and the hub is said to be unknown.
    assert "hub: unknown" in done.stderr and "terraform apply" in done.stderr


def test_findhash_microsoft_needs_the_account_id_not_the_address(callysto, dev_env, one_line_error):
    refused = callysto(
        "user", "findhash", "--env", "brave-otter", "--source", "microsoft", "a@b.ca"
    )
    one_line_error(refused, "account id")
    assert refused.stdout == ""
    done = callysto("user", "findhash", "--env", "brave-otter", "--source", "microsoft",
                    "--account-id", "00000000-0000-0000-abcd-1234567890ab")  # fmt: skip
    assert done.returncode == 0, done.stderr
    salt = environments.read_salt(dev_env.salt_file)
    uid = "https://graph.microsoft.com!00000000-0000-0000-abcd-1234567890ab"
    assert done.stdout.splitlines()[0] == php_hash(
        salt, dev_env.idp_entity_id, dev_env.sp_entity_id, uid
    )
    roster = callysto("user", "findhash", "--env", "brave-otter", "--source", "microsoft",
                      "--account-id", "0123abcd", "--file", "/nonexistent")  # fmt: skip
    one_line_error(roster, "account ids")
    bad = callysto("user", "findhash", "--env", "brave-otter", "--source", "microsoft",
                   "--account-id", "a;b")  # fmt: skip
    one_line_error(bad, "Microsoft account id")


def test_findhash_institution_needs_the_idp(callysto, dev_env, one_line_error):
    refused = callysto(
        "user", "findhash", "--env", "brave-otter", "--source", "institution", "a@b.ca"
    )
    one_line_error(refused, "--idp")
    done = callysto("user", "findhash", "--env", "brave-otter", "--source", "institution",
                    "--idp", "https://idp.school.ca", "a@b.ca")  # fmt: skip
    assert done.returncode == 0, done.stderr
    salt = environments.read_salt(dev_env.salt_file)
    assert done.stdout.splitlines()[0] == php_hash(
        salt, dev_env.idp_entity_id, dev_env.sp_entity_id, "a@b.ca!https://idp.school.ca"
    )


def test_findhash_json_names_the_inputs(callysto, dev_env):
    done = callysto("user", "findhash", "--env", "brave-otter", "--json", "--source", "saml",
                    "--idp", "https://idp.school.ca", "a@b.ca")  # fmt: skip
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    salt = environments.read_salt(dev_env.salt_file)
    assert document["user_id"] == "a@b.ca!https://idp.school.ca"
    assert document["hash"] == php_hash(
        salt, dev_env.idp_entity_id, dev_env.sp_entity_id, "a@b.ca!https://idp.school.ca"
    )


def test_findhash_serves_any_deployment_from_overrides_without_an_environment(callysto, tmp_path):
    salt_file = tmp_path / "salt"
    salt_file.write_text("s3cr3t-ßalt\n")
    salt_file.chmod(0o600)
    done = callysto("user", "findhash", "--salt-file", str(salt_file), "--idp-entity-id", IDP,
                    "--sp-entity-id", SP, "student@example.org")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == php_hash("s3cr3t-ßalt", IDP, SP, "student@example.org")


def test_findhash_refuses_a_salt_file_others_can_read(callysto, tmp_path):
    salt_file = tmp_path / "salt"
    salt_file.write_text("s\n")
    salt_file.chmod(0o644)
    done = callysto("user", "findhash", "--salt-file", str(salt_file), "--idp-entity-id", IDP,
                    "--sp-entity-id", SP, "student@example.org")  # fmt: skip
    assert done.returncode == 2
    assert done.stdout == "" and len(done.stderr.splitlines()) == 1 and "chmod 600" in done.stderr


def test_salt_is_never_taken_from_the_command_line(callysto, dev_env):
    done = callysto("user", "findhash", "--env", "brave-otter", "--salt", "x", "a@b.ca")
    assert done.returncode == 2 and "--salt" in done.stderr


# Addresses identity providers hand over, as RFC 5322 (with RFC 6532's UTF-8) spells them.
SCHOOL_ADDRESSES = [
    "o'brien+math@district-3.ca",
    "Mary-Jane.O'Neil@school.ca",
    '"jo smith"@school.ca',
    '"a,b\\"c"@school.ca',
    "élève+7@école.ca",
    "学生@学校.中国",
    "!#$%&*/=?^_`{|}~-@x.ca",
    "ada@[192.0.2.7]",
]


@pytest.mark.parametrize("address", SCHOOL_ADDRESSES)
def test_findhash_gives_simplesamlphps_hash_of_any_address(callysto, dev_env, address):
    done = callysto("user", "findhash", "--env", "brave-otter", address)
    assert done.returncode == 0, done.stderr
    salt = environments.read_salt(dev_env.salt_file)
    uid = address.lower()
    expected = php_hash(salt, dev_env.idp_entity_id, dev_env.sp_entity_id, uid)
    assert done.stdout.splitlines()[0] == expected


NOT_ADDRESSES = [
    "not-an-address",
    "a@b",
    "$(reboot)@x.ca",
    "a b@x.ca",
    "ada@school.ca\n",
    "ada..b@school.ca",
    ".ada@school.ca",
    "ada@school..ca",
    '"open@school.ca',
    "ada@sch ool.ca",
    "a\x01b@school.ca",
    "x" * 65 + "@school.ca",
    "ada@" + "s" * 250 + ".ca",
]


@pytest.mark.parametrize("address", NOT_ADDRESSES)
def test_findhash_refuses_what_is_not_an_address_without_echoing_it(callysto, dev_env, address):
    done = callysto("user", "findhash", "--env", "brave-otter", "--", address)
    assert done.returncode == 2 and len(done.stderr.splitlines()) == 1 and done.stdout == ""
    assert "invalid e-mail address" in done.stderr
    if len(address) > 3:
        assert address.strip() not in done.stderr


def test_roster_becomes_a_csv_of_email_and_hash(callysto, dev_env, tmp_path):
    roster = tmp_path / "class.txt"
    addresses = ["Ada@School.ca", "bob@school.ca", "zoë@école.ca", '"o,brien"@school.ca',
                 "o'brien+math@district-3.ca", '"jo smith"@school.ca']  # fmt: skip
    roster.write_text("# grade 7\n" + "\n".join(addresses[:2]) + "\n\n" + "\n".join(addresses[2:]))
    done = callysto("user", "findhash", "--env", "brave-otter", "--file", str(roster))
    assert done.returncode == 0, done.stderr
    rows = list(csv.reader(io.StringIO(done.stdout)))
    salt = environments.read_salt(dev_env.salt_file)
    expected = simplesamlphp(
        [
            {"salt": salt, "idp": dev_env.idp_entity_id, "sp": dev_env.sp_entity_id,
             "uid": a.lower()}
            for a in addresses
        ]
    )  # fmt: skip
    assert rows == [["email", "hash"], *map(list, zip(addresses, expected, strict=True))]


def test_roster_with_a_bad_line_writes_nothing(callysto, dev_env, tmp_path):
    roster = tmp_path / "class.txt"
    roster.write_text("ada@school.ca\nbob at school\n")
    out = tmp_path / "hashes.csv"
    done = callysto("user", "findhash", "--env", "brave-otter", "--file", str(roster),
                    "--output", str(out))  # fmt: skip
    assert done.returncode == 2
    assert "line 2" in done.stderr and len(done.stderr.splitlines()) == 1
    assert "bob at school" not in done.stderr  # a mistyped address is not repeated
    assert not out.exists()


def test_roster_output_file_holds_the_csv(callysto, dev_env, tmp_path):
    roster = tmp_path / "class.txt"
    roster.write_text("ada@school.ca\n")
    out = tmp_path / "hashes.csv"
    done = callysto("user", "findhash", "--env", "brave-otter", "--file", str(roster),
                    "--output", str(out))  # fmt: skip
    assert done.returncode == 0 and done.stdout == ""
    salt = environments.read_salt(dev_env.salt_file)
    assert out.read_text() == "email,hash\nada@school.ca,{}\n".format(
        userhash.targeted_id(salt, dev_env.idp_entity_id, dev_env.sp_entity_id, "ada@school.ca")
    )


def test_roster_output_that_cannot_be_written_is_one_line(callysto, dev_env, tmp_path):
    roster = tmp_path / "class.txt"
    roster.write_text("ada@school.ca\n")
    out = tmp_path / "no-such-folder" / "hashes.csv"
    done = callysto("user", "findhash", "--env", "brave-otter", "--file", str(roster),
                    "--output", str(out))  # fmt: skip
    assert done.returncode == 2 and done.stdout == ""
    assert f"output folder {out.parent} does not exist" in done.stderr
    assert done.stderr.count("\n") == 1
