"""`plexigate serve` key and limit options, and `plexigate token --ed25519-key`."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from clients.sdk import Client, SessionClosed
from crypto.errors import CloseCode
from gateway.auth import AuthError
from gateway.authconfig import AuthConfigError, load_ed25519_public_key, load_hs256_secret
from gateway.commands.serve import build_gateway
from gateway.keyfiles import init_keys, load_auth_secret, load_root_public
from plexigate.cli import build_parser, main
from plexigate.devtoken import issue_token


@pytest.fixture()
def keyfiles(tmp_path: Path) -> dict[str, Path]:
    ed = Ed25519PrivateKey.generate()
    files = {
        "keys": tmp_path / "keys",
        "hs": tmp_path / "hs.secret",
        "ed_pub_pem": tmp_path / "ed.pub.pem",
        "ed_pub_raw": tmp_path / "ed.pub",
        "ed_priv_pem": tmp_path / "ed.pem",
        "ed_priv_raw": tmp_path / "ed.seed",
    }
    init_keys(files["keys"])  # serve refuses an explicit --keys path without keys
    files["hs"].write_text("s" * 40 + "\n")
    files["ed_pub_pem"].write_bytes(
        ed.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    )
    files["ed_pub_raw"].write_bytes(ed.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))
    files["ed_priv_pem"].write_bytes(
        ed.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    )
    files["ed_priv_raw"].write_bytes(
        ed.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    )
    return files


def _serve_args(files: dict[str, Path], *extra: str) -> object:
    return build_parser().parse_args(["serve", "--keys", str(files["keys"]), "--port", "0", *extra])


def test_serve_options_reach_gateway_config(keyfiles: dict[str, Path]) -> None:
    args = _serve_args(
        keyfiles,
        "--jwt-hs256-secret-file",
        str(keyfiles["hs"]),
        "--jwt-ed25519-public-key",
        str(keyfiles["ed_pub_pem"]),
        "--jwt-ed25519-public-key",
        str(keyfiles["ed_pub_raw"]),
        "--max-channels",
        "3",
        "--max-connections-per-user",
        "2",
        "--publish-rate",
        "7",
        "--publish-burst",
        "9",
        "--rekey-after-messages",
        "500",
        "--rekey-after-seconds",
        "90",
        "--max-skew-ms",
        "1234",
    )
    gw = build_gateway(args)  # type: ignore[arg-type]
    lim, ses = gw.config.limits, gw.config.session
    assert (lim.max_channels_per_connection, lim.max_connections_per_user) == (3, 2)
    assert (lim.publish_rate_per_s, lim.publish_burst) == (7.0, 9)
    assert (ses.rekey_after_records, ses.rekey_after_ms, ses.max_skew_ms) == (500, 90_000, 1234)
    v = gw.verifier
    assert v.hs256_secrets == (b"s" * 40,) and len(v.ed25519_keys) == 2
    assert v.verify(issue_token("u", hs256_secret=b"s" * 40)).user == "u"
    # the keys directory's development secret is no longer trusted once --jwt-* is given
    with pytest.raises(AuthError):
        v.verify(issue_token("u", hs256_secret=load_auth_secret(keyfiles["keys"])))


def test_serve_defaults_use_keys_dir_secret(keyfiles: dict[str, Path]) -> None:
    gw = build_gateway(_serve_args(keyfiles))  # type: ignore[arg-type]
    assert gw.config.limits.max_channels_per_connection == 64
    assert gw.config.session.rekey_after_records == 100_000
    secret = load_auth_secret(keyfiles["keys"])
    assert gw.verifier.verify(issue_token("dev", hs256_secret=secret)).user == "dev"


def test_key_file_errors_name_the_file_only(tmp_path: Path) -> None:
    short = tmp_path / "short"
    short.write_text("tooshort")
    with pytest.raises(AuthConfigError, match="short") as info:
        load_hs256_secret(short)
    assert "tooshort" not in str(info.value)
    bad = tmp_path / "bad.pub"
    bad.write_bytes(b"\x01" * 31)
    with pytest.raises(AuthConfigError):
        load_ed25519_public_key(bad)
    rsa_like = tmp_path / "x.pem"
    rsa_like.write_bytes(b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
    with pytest.raises(AuthConfigError):
        load_ed25519_public_key(rsa_like)
    with pytest.raises(AuthConfigError):
        load_hs256_secret(tmp_path / "missing")


@pytest.mark.parametrize("keyname", ["ed_priv_pem", "ed_priv_raw"])
async def test_token_command_eddsa_accepted_by_served_gateway(
    keyfiles: dict[str, Path], keyname: str, capsys: pytest.CaptureFixture[str]
) -> None:
    gw = build_gateway(  # type: ignore[arg-type]
        _serve_args(keyfiles, "--jwt-ed25519-public-key", str(keyfiles["ed_pub_pem"]))
    )
    capsys.readouterr()
    rc = main(
        ["token", "--user", "ed", "--grant", "room=sub", "--ed25519-key", str(keyfiles[keyname])]
    )
    token = capsys.readouterr().out.strip()
    assert rc == 0 and token.count(".") == 2
    await gw.start()
    try:
        root = load_root_public(keyfiles["keys"])
        c = await Client.connect(gw.url, root, token)
        await c.join("room")
        await c.close()
        # an HS256 dev token is refused by this gateway (no HS256 key configured)
        rc = main(["token", "--keys", str(keyfiles["keys"]), "--user", "dev"])
        dev = capsys.readouterr().out.strip()
        with pytest.raises(SessionClosed) as info:
            await Client.connect(gw.url, root, dev)
        assert info.value.code == CloseCode.AUTH_FAILED
    finally:
        await gw.close()
