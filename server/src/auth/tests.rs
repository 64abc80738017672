// Panicking on a broken expectation is what a test is for.
#![allow(clippy::unwrap_used)]

use std::fs;

use super::dev_secret::*;
use super::keys::*;
use super::*;
use std::time::{SystemTime, UNIX_EPOCH};

// Generated with `openssl genpkey -algorithm ed25519` for these tests only.
const ED_PRIVATE_PEM: &str = "-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIC8PG7CJ4ciLgfHOXf26RJN9+MvHASJo6W29g1GuJPPA
-----END PRIVATE KEY-----
";
const ED_PUBLIC_PEM: &str = "-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEA5sbici/Y2wcJpg3j9fgV6/OrcJvd2lySkt7pMrNTTRQ=
-----END PUBLIC KEY-----
";
/// Public half of an unrelated Ed25519 key.
const OTHER_ED_PUBLIC_PEM: &str = "-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEAZuRnJBNuvq38XSt1DWC6jpUoWPa9rg/7LhZHdouurQ0=
-----END PUBLIC KEY-----
";
const RSA_2048_PUBLIC_PEM: &str = "-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAr4tlDwBPKO26MVHBuLrs
/MF0NrzPxRiEgFB8cw6MZikQyon+QttWqFRIN2hWEF2Sj+fIQk6X6fD69vQIVbeC
E3qXP+X3PwBcqBioT5OXY42ez5WROKgeSzDR93K46UeYCXtbTWf+SY0hByXp+1ul
f/7BIT7fXYzHA43mWHyPwifCN9wtqxWIfl+Ez9xSBIUSHkwQbmnM0wynRI8ZB6Q2
mzPKSps1K+eBr432EbMFTGjnGk4cFZIfkxyAscFDU7U77+gjuhliI+UdqQAvJvNt
HHkfhyYbtdfdmaDXiltXStTuUcBhLurLiva+fKt8qQ7hlbcXNtTu1cYhYXXcojHQ
XQIDAQAB
-----END PUBLIC KEY-----
";
const RSA_2048_PRIVATE_PEM: &str = "-----BEGIN PRIVATE KEY-----
MIIEvAIBADANBgkqhkiG9w0BAQEFAASCBKYwggSiAgEAAoIBAQCvi2UPAE8o7box
UcG4uuz8wXQ2vM/FGISAUHxzDoxmKRDKif5C21aoVEg3aFYQXZKP58hCTpfp8Pr2
9AhVt4ITepc/5fc/AFyoGKhPk5djjZ7PlZE4qB5LMNH3crjpR5gJe1tNZ/5JjSEH
Jen7W6V//sEhPt9djMcDjeZYfI/CJ8I33C2rFYh+X4TP3FIEhRIeTBBuaczTDKdE
jxkHpDabM8pKmzUr54GvjfYRswVMaOcaThwVkh+THICxwUNTtTvv6CO6GWIj5R2p
AC8m820ceR+HJhu1192ZoNeKW1dK1O5RwGEu6suK9r58q3ypDuGVtxc21O7VxiFh
ddyiMdBdAgMBAAECggEADg6biRf9PsnKnyhs2t4dHCBhrgBwotfTxHKthIkltQiU
z6M9OR1XUyNspQM14RmdIujsoGKqx5EEh8IC6NpJEEZA1l0T73eX894FnFm1RcOR
dA4GEwNjaaH/LlGBfSy+gAPgy9IICtvCSVA/7GDqX9WGoaLnQBaF2UMDrxJKcMGb
8b5gZ6cQ5m0kliPxx2Ehj/gLwDVShmkFCHLEhA3h2gltfFTPPop5I90CfgLiWcsk
0OFsIwNEVQbzRuoNPKE16WIJLpnDpaz9zHI5aocv/a3iSMEUKm2+FZpi7IUna/ZZ
JIuyycWPuWHebKDi6AHVXSDGD93SsGZ493MRsFXwAQKBgQD3J2bsrRYWt0QQ/2es
JvWFkmiuEKoKhTI+AbdirQjx8yJdI2Bu2X/XvWWNNKjokj45Kr6PZmoTvwhlaivD
prs13vEvw7v8hX0miBohxsqVQwHUFtSf0lPwBafPPU85yw1orRCwuo99X3QRkA/T
WPhGKq+IledyfuQeUJ9XUuLuRQKBgQC109tkmbsf8uj2xqx07D+AyRP7uDu5JXwx
xl1S5jJlDPs0rVyNLs8YE2s4t1BWpTc8LbIJWI0mvaytVcNYU0vZ15nzJpyBvl/9
sUmrMU0DUcPIxgIGQRSu+c2wjKc9cdbh/Wz9dLrXllwM/1+WJbX0ccEoWn6IIiSt
UEA4p+lnOQKBgGuu5S81cqxPCP8G6JqfFtYtpiJA7HVM90kA4m/ByGXycwR1h2yE
oyjSQk61pOo/3ZB2yTQdgRY9Y2EcUxkZqfOcwST4eQ1a89436nrQ7C8AVOmdUOKZ
dyzaqfSnV79sctkqnl0By8bqMd39EIga+YFI09YEyiSemLGEmwgm+uypAoGAPDA7
CZwR40uHbljpsXKausjVAphDvM/5wohFUDG/MNARP6i7YEjEaNXUwlt8DpJ2LEd8
DbfwUYir5lzjYxN/okbKQUDgwdoA8HuFRVP2iEjCpG1XMjbM3/b07aJBogdS+E/p
iiTfzImLQwot3AfzqU0WgYMjK3ER7wUHnTmH+5ECgYAtNAGl/S4Wo2JH9CJ7lWhA
xlxC2M8W1lykNU5THx1Lw/3Fi3gPGRI2bBIq3186kcsh3NOS6TW4vcfjjAuBOZGj
x5Z3kDaxu1T7yoG1qBPsRmpHsyey9wUE/ou3cFYoJIP1y7xqKx13zjv8vCaJvNgy
SPEsJgyluREhWcEjJN378w==
-----END PRIVATE KEY-----
";
const P256_PUBLIC_PEM: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE1EuJGuqCVto0Q+88ZZFvNm9BlEZE
JsR6LpNyEh4+6d25ApLvB/RWZ2PdCGi14A5/odSbsyDYsL5Q+INoNQtLkg==
-----END PUBLIC KEY-----
";
const P256_PRIVATE_PEM: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgjBht59bEy3DsG/pv
/R/oE0iiwHk2dgXOU+Ws+BJl2hOhRANCAATUS4ka6oJW2jRD7zxlkW82b0GURkQm
xHouk3ISHj7p3bkCku8H9FZnY90IaLXgDn+h1JuzINiwvlD4g2g1C0uS
-----END PRIVATE KEY-----
";
const RSA_1024_PUBLIC_PEM: &str = "-----BEGIN PUBLIC KEY-----
MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQCtGSM8mgd52WxSSSvSElsc/fRd
AsMT6KG2Mwt6DwAlqtLTVsQY3ih2rvFqdQ3gWhn4kFfZBgvKIBhG9Ax54Cky1n63
XBDUilQcw7svw/WG7VLgenfJvixKcUF2xXAz7KBMBVMm+rlBsfFhOJo+GwN349DW
086GPygIm5Ns0GDB7QIDAQAB
-----END PUBLIC KEY-----
";
const P384_PUBLIC_PEM: &str = "-----BEGIN PUBLIC KEY-----
MHYwEAYHKoZIzj0CAQYFK4EEACIDYgAEp99VXstijPitgZAt3hYo2O8UmxAxeapv
r2jw7kLOLKkd3E09tlFnUnPBF6WRUNH/G7cMAbiZCWu8R9oxnHGQOSOln3/rBnhU
pWsY9sGrnCHAKM7nC+Mg90cwBfkk2Fap
-----END PUBLIC KEY-----
";

const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
const HOUR: Duration = Duration::from_secs(3600);

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

fn dev_auth(secret: &[u8]) -> Authenticator {
    Authenticator::new(&AuthConfig::dev(secret.to_vec()).unwrap()).unwrap()
}

fn eddsa_auth(public_pem: &str) -> Authenticator {
    let config =
        AuthConfig::external("EdDSA", public_pem.as_bytes(), "https://idp.example", "fs-api").unwrap();
    Authenticator::new(&config).unwrap()
}

fn claims_json(team: &str, sub: &str, iss: &str, aud: &str) -> serde_json::Value {
    let t = now();
    serde_json::json!({
        "sub": sub, "team": team, "role": "rep",
        "exp": t + 3600, "iat": t, "iss": iss, "aud": aud,
    })
}

fn sign_hs256(secret: &[u8], claims: &serde_json::Value) -> String {
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &EncodingKey::from_secret(secret).unwrap())
        .unwrap()
}

fn b64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}

#[test]
fn a_dev_token_round_trips_to_its_principal() {
    let auth = dev_auth(SECRET);
    assert!(auth.can_issue());
    let token = auth.issue("acme-north", "alice@acme.io", Role::Manager, 8 * HOUR, now()).unwrap();
    let claims = auth.verify(&token).unwrap();
    assert_eq!(
        claims.clone().into_principal(),
        Principal { team: "acme-north".into(), user: "alice@acme.io".into(), role: Role::Manager }
    );
    assert_eq!(claims.iss, DEFAULT_ISSUER);
    assert_eq!(claims.aud, DEFAULT_AUDIENCE);
    assert_eq!(claims.exp, claims.iat + 8 * 3600);
}

#[test]
fn the_dev_secret_is_generated_once_and_reused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("not").join("yet").join("there");
    let first = AuthConfig::dev_from_data_dir(&dir).unwrap();
    let second = AuthConfig::dev_from_data_dir(&dir).unwrap();
    let (KeyMode::Dev { secret: a }, KeyMode::Dev { secret: b }) = (first.mode(), second.mode()) else {
        panic!("dev mode expected");
    };
    assert_eq!(a, b);
    assert_eq!(a.len(), SECRET_LEN);
    assert!(!format!("{first:?}").contains(&hex_encode(a)), "Debug must not leak the secret");

    let path = dir.join(SECRET_FILE_NAME);
    let text = fs::read_to_string(&path).unwrap();
    assert_eq!(text, format!("{}\n", hex_encode(a)));
    // Only the secret itself: no temporary file left behind.
    let names: Vec<_> = fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, vec![std::ffi::OsString::from(SECRET_FILE_NAME)]);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    }

    // A token minted by one process verifies in the next.
    let token = Authenticator::new(&first).unwrap().issue("t", "u", Role::Rep, HOUR, now()).unwrap();
    assert!(Authenticator::new(&second).unwrap().verify(&token).is_ok());

    // Another data dir gets another secret.
    let other = AuthConfig::dev_from_data_dir(&tmp.path().join("elsewhere")).unwrap();
    let KeyMode::Dev { secret: c } = other.mode() else { panic!("dev mode expected") };
    assert_ne!(a, c);

    // A damaged secret is reported, never silently replaced.
    fs::write(&path, "not hex\n").unwrap();
    assert!(matches!(AuthConfig::dev_from_data_dir(&dir), Err(AuthError::Config(_))));
    fs::write(&path, "abcd\n").unwrap();
    assert!(matches!(AuthConfig::dev_from_data_dir(&dir), Err(AuthError::Config(_))));
}

#[test]
fn an_expired_token_is_refused_as_expired() {
    let auth = dev_auth(SECRET);
    let token = auth.issue("t", "u", Role::Rep, HOUR, now() - 2 * 3600).unwrap();
    assert!(matches!(auth.verify(&token), Err(AuthError::Expired)));
}

#[test]
fn a_token_from_the_future_is_refused_as_not_yet_valid() {
    let auth = dev_auth(SECRET);
    let token = auth.issue("t", "u", Role::Rep, HOUR, now() + 600).unwrap();
    assert!(matches!(auth.verify(&token), Err(AuthError::NotYetValid)));
    // Small clock skew is tolerated.
    let token = auth.issue("t", "u", Role::Rep, HOUR, now() + 5).unwrap();
    assert!(auth.verify(&token).is_ok());
}

#[test]
fn a_well_signed_token_repeating_a_claim_is_refused() {
    let auth = dev_auth(SECRET);
    let t = now();
    let sign = |header: &str, payload: &str| {
        let message = format!("{}.{}", b64url(header.as_bytes()), b64url(payload.as_bytes()));
        let key = EncodingKey::from_secret(SECRET).unwrap();
        let sig = jsonwebtoken::crypto::sign(message.as_bytes(), &key, Algorithm::HS256).unwrap();
        format!("{message}.{sig}")
    };
    let header = r#"{"alg":"HS256","typ":"JWT"}"#;
    let claims = |role: &str| {
        format!(
            r#"{{"sub":"u","team":"t",{role},"exp":{},"iat":{t},"iss":"fieldsync","aud":"fieldsync"}}"#,
            t + 3600
        )
    };
    // The token is otherwise good: with one role it verifies.
    let once = sign(header, &claims(r#""role":"rep""#));
    assert_eq!(auth.verify(&once).map(|c| c.role).ok(), Some(Role::Rep));
    let twice = sign(header, &claims(r#""role":"rep","role":"admin""#));
    match auth.verify(&twice) {
        Err(AuthError::InvalidClaims(why)) => assert!(why.contains("role"), "{why}"),
        other => panic!("a repeated role must be refused, got {other:?}"),
    }
    let nested = sign(header, &claims(r#""role":"rep","x":{"a":1,"a":2}"#));
    assert!(matches!(auth.verify(&nested), Err(AuthError::InvalidClaims(_))));
    let header_twice = sign(r#"{"alg":"HS256","alg":"HS256","typ":"JWT"}"#, &claims(r#""role":"rep""#));
    assert!(auth.verify(&header_twice).is_err(), "a repeated header name is refused too");
}

#[test]
fn a_token_signed_with_another_secret_is_refused() {
    let theirs = dev_auth(b"another secret, also 32 bytes long!");
    let token = theirs.issue("t", "u", Role::Admin, HOUR, now()).unwrap();
    assert!(matches!(dev_auth(SECRET).verify(&token), Err(AuthError::BadSignature)));

    // Tampering with the payload of a genuine token breaks the signature too.
    let ours = dev_auth(SECRET);
    let token = ours.issue("t", "u", Role::Rep, HOUR, now()).unwrap();
    let parts: Vec<&str> = token.split('.').collect();
    let mut claims: serde_json::Value = serde_json::from_slice(&base64url_decode(parts[1]).unwrap()).unwrap();
    claims["role"] = "admin".into();
    let forged = format!("{}.{}.{}", parts[0], b64url(claims.to_string().as_bytes()), parts[2]);
    assert!(matches!(ours.verify(&forged), Err(AuthError::BadSignature)));
}

#[test]
fn an_alg_none_token_is_refused() {
    let claims = claims_json("t", "u", DEFAULT_ISSUER, DEFAULT_AUDIENCE).to_string();
    let payload = b64url(claims.as_bytes());
    for auth in [dev_auth(SECRET), eddsa_auth(ED_PUBLIC_PEM)] {
        for alg in ["none", "None", "NONE"] {
            let header = b64url(format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#).as_bytes());
            for token in [format!("{header}.{payload}."), format!("{header}.{payload}.AAAA")] {
                let result = auth.verify(&token);
                assert!(matches!(result, Err(AuthError::AlgorithmNotAllowed)), "{alg}: {result:?}");
            }
            // Two-part form, as some libraries emit it.
            assert!(matches!(
                auth.verify(&format!("{header}.{payload}")),
                Err(AuthError::Malformed | AuthError::AlgorithmNotAllowed)
            ));
        }
    }
    // The configured algorithm with an empty signature is simply a bad signature.
    let header = b64url(br#"{"alg":"HS256","typ":"JWT"}"#);
    assert!(matches!(dev_auth(SECRET).verify(&format!("{header}.{payload}.")), Err(AuthError::BadSignature)));
}

#[test]
fn a_token_for_another_audience_or_issuer_is_refused() {
    let auth = dev_auth(SECRET);
    let wrong_aud = sign_hs256(SECRET, &claims_json("t", "u", DEFAULT_ISSUER, "billing"));
    assert!(matches!(auth.verify(&wrong_aud), Err(AuthError::WrongAudience)));
    let wrong_iss = sign_hs256(SECRET, &claims_json("t", "u", "evil", DEFAULT_AUDIENCE));
    assert!(matches!(auth.verify(&wrong_iss), Err(AuthError::WrongIssuer)));

    assert_invalid_claims(&auth, |c| drop(c.as_object_mut().unwrap().remove("aud")));
    assert_invalid_claims(&auth, |c| drop(c.as_object_mut().unwrap().remove("exp")));
}

#[test]
fn an_hs256_token_is_refused_when_an_rs256_key_is_configured() {
    let config =
        AuthConfig::external("RS256", RSA_2048_PUBLIC_PEM.as_bytes(), "https://idp.example", "fs-api")
            .unwrap();
    let auth = Authenticator::new(&config).unwrap();
    // The algorithm-confusion attack: HMAC keyed with the (public) RSA key.
    let claims = claims_json("t", "u", "https://idp.example", "fs-api");
    let forged = sign_hs256(RSA_2048_PUBLIC_PEM.as_bytes(), &claims);
    assert!(matches!(auth.verify(&forged), Err(AuthError::AlgorithmNotAllowed)));
    let forged = sign_hs256(ED_PUBLIC_PEM.as_bytes(), &claims);
    assert!(matches!(eddsa_auth(ED_PUBLIC_PEM).verify(&forged), Err(AuthError::AlgorithmNotAllowed)));
    // Conversely an EdDSA token is refused by a dev (HS256) server.
    let ed_token = jsonwebtoken::encode(
        &Header::new(Algorithm::EdDSA),
        &claims_json("t", "u", DEFAULT_ISSUER, DEFAULT_AUDIENCE),
        &EncodingKey::from_ed_pem(ED_PRIVATE_PEM.as_bytes()).unwrap(),
    )
    .unwrap();
    assert!(matches!(dev_auth(SECRET).verify(&ed_token), Err(AuthError::AlgorithmNotAllowed)));
}

#[test]
fn an_external_eddsa_token_verifies() {
    let key = EncodingKey::from_ed_pem(ED_PRIVATE_PEM.as_bytes()).unwrap();
    let mut claims = claims_json("acme", "bob", "https://idp.example", "fs-api");
    claims["role"] = "admin".into();
    let token = jsonwebtoken::encode(&Header::new(Algorithm::EdDSA), &claims, &key).unwrap();

    let auth = eddsa_auth(ED_PUBLIC_PEM);
    assert_eq!(auth.algorithm(), Algorithm::EdDSA);
    let principal = auth.verify(&token).unwrap().into_principal();
    assert_eq!(principal, Principal { team: "acme".into(), user: "bob".into(), role: Role::Admin });

    // Same token, but the server trusts a different key.
    assert!(matches!(eddsa_auth(OTHER_ED_PUBLIC_PEM).verify(&token), Err(AuthError::BadSignature)));

    // External mode never mints tokens.
    assert!(!auth.can_issue());
    let err = auth.issue("acme", "bob", Role::Rep, HOUR, now()).unwrap_err();
    assert!(matches!(&err, AuthError::Config(m) if m.contains("identity provider")));
    assert!(!err.is_unauthorized());
}

#[test]
fn external_rs256_and_es256_tokens_verify() {
    let claims = claims_json("acme", "carol", "https://idp.example", "fs-api");
    for (alg, public, signing) in [
        (
            Algorithm::RS256,
            RSA_2048_PUBLIC_PEM,
            EncodingKey::from_rsa_pem(RSA_2048_PRIVATE_PEM.as_bytes()).unwrap(),
        ),
        (Algorithm::ES256, P256_PUBLIC_PEM, EncodingKey::from_ec_pem(P256_PRIVATE_PEM.as_bytes()).unwrap()),
    ] {
        let name = algorithm_name(alg);
        let config = AuthConfig::external(name, public.as_bytes(), "https://idp.example", "fs-api").unwrap();
        let auth = Authenticator::new(&config).unwrap();
        let token = jsonwebtoken::encode(&Header::new(alg), &claims, &signing).unwrap();
        assert_eq!(auth.verify(&token).unwrap().sub, "carol", "{name}");

        // Flip one character in the middle of the signature.
        let (message, signature) = token.rsplit_once('.').unwrap();
        let mut sig = signature.as_bytes().to_vec();
        let mid = sig.len() / 2;
        sig[mid] = if sig[mid] == b'A' { b'B' } else { b'A' };
        let tampered = format!("{message}.{}", String::from_utf8(sig).unwrap());
        assert!(matches!(auth.verify(&tampered), Err(AuthError::BadSignature)), "{name}");
    }
}

#[test]
fn external_keys_are_checked_against_their_algorithm() {
    let ext = |alg: &str, pem: &str| AuthConfig::external(alg, pem.as_bytes(), "i", "a");
    assert!(ext("EdDSA", ED_PUBLIC_PEM).is_ok());
    assert!(ext("eddsa", ED_PUBLIC_PEM).is_ok());
    assert!(ext("RS256", RSA_2048_PUBLIC_PEM).is_ok());
    assert!(ext("ES256", P256_PUBLIC_PEM).is_ok());
    assert!(matches!(ext("ES256", P256_PRIVATE_PEM), Err(AuthError::Config(_))));
    assert!(matches!(ext("RS256", RSA_2048_PRIVATE_PEM), Err(AuthError::Config(_))));
    for (alg, pem) in [
        ("none", ED_PUBLIC_PEM),
        ("HS256", ED_PUBLIC_PEM),
        ("hs512", ED_PUBLIC_PEM),
        ("PS256", RSA_2048_PUBLIC_PEM),
        ("RS256", ED_PUBLIC_PEM),
        ("RS256", RSA_1024_PUBLIC_PEM),
        ("ES256", P384_PUBLIC_PEM),
        ("ES256", RSA_2048_PUBLIC_PEM),
        ("EdDSA", ED_PRIVATE_PEM),
        ("EdDSA", "not a pem"),
        ("EdDSA", ""),
    ] {
        assert!(matches!(ext(alg, pem), Err(AuthError::Config(_))), "{alg} accepted");
    }
    assert!(matches!(
        AuthConfig::external("EdDSA", ED_PUBLIC_PEM.as_bytes(), "", "a"),
        Err(AuthError::Config(_))
    ));
    assert!(matches!(AuthConfig::dev(b"short".to_vec()), Err(AuthError::Config(_))));
}

#[test]
fn claims_with_illegal_characters_are_refused() {
    let auth = dev_auth(SECRET);
    let long = "x".repeat(fieldsync_core::docs::MAX_ID_LEN + 1);
    let max = "x".repeat(fieldsync_core::docs::MAX_ID_LEN);
    for (team, sub) in [
        ("", "u"),
        ("t", ""),
        ("a/b", "u"),
        ("t", "alice smith"),
        ("t", "al\u{0131}ce"),
        ("t", "u\n"),
        ("t", "u*"),
        (long.as_str(), "u"),
        ("t", long.as_str()),
    ] {
        let token = sign_hs256(SECRET, &claims_json(team, sub, DEFAULT_ISSUER, DEFAULT_AUDIENCE));
        let result = auth.verify(&token);
        assert!(matches!(result, Err(AuthError::InvalidClaims(_))), "{team:?}/{sub:?}: {result:?}");
        let issued = auth.issue(team, sub, Role::Rep, HOUR, now());
        assert!(matches!(issued, Err(AuthError::InvalidClaims(_))), "issued {team:?}/{sub:?}");
    }
    let ok = sign_hs256(SECRET, &claims_json(&max, "a.b_c-d@e.f", DEFAULT_ISSUER, DEFAULT_AUDIENCE));
    assert!(auth.verify(&ok).is_ok());

    assert_invalid_claims(&auth, |c| c["role"] = "root".into());
    assert_invalid_claims(&auth, |c| drop(c.as_object_mut().unwrap().remove("team")));
}

/// The default claims with `edit` applied, signed with the dev secret, are refused as invalid.
#[track_caller]
fn assert_invalid_claims(auth: &Authenticator, edit: impl FnOnce(&mut serde_json::Value)) {
    let mut claims = claims_json("t", "u", DEFAULT_ISSUER, DEFAULT_AUDIENCE);
    edit(&mut claims);
    assert!(
        matches!(auth.verify(&sign_hs256(SECRET, &claims)), Err(AuthError::InvalidClaims(_))),
        "{claims}"
    );
}

#[test]
fn bearer_header_parsing() {
    let auth = dev_auth(SECRET);
    let token = auth.issue("t", "u", Role::Rep, HOUR, now()).unwrap();
    for header in [format!("Bearer {token}"), format!("bearer {token}"), format!("BEARER \t {token}  ")] {
        assert!(auth.verify_authorization_header(Some(&header)).is_ok(), "{header}");
    }
    for header in [None, Some(""), Some("   "), Some("Bearer"), Some("Bearer   ")] {
        assert!(matches!(auth.verify_authorization_header(header), Err(AuthError::Missing)));
    }
    for header in [
        format!("Basic {token}"),
        format!("Bearer{token}"),
        format!("Bearer {token} extra"),
        token.clone(),
        "Bearer not-a-jwt".to_owned(),
    ] {
        let result = auth.verify_authorization_header(Some(&header));
        assert!(matches!(result, Err(AuthError::Malformed)), "{header}: {result:?}");
    }
    assert!(AuthError::Missing.is_unauthorized());
}

#[test]
fn garbage_tokens_are_malformed_and_never_panic() {
    let huge = "a".repeat(MAX_TOKEN_LEN + 1);
    let auth = dev_auth(SECRET);
    let ed = eddsa_auth(ED_PUBLIC_PEM);
    for token in [
        "a",
        "a.b",
        "a.b.c",
        "a.b.c.d",
        "..",
        "...",
        "é.é.é",
        "%%%.%%%.%%%",
        huge.as_str(),
        "eyJhbGciOiJIUzI1NiJ9..",
        "eyJhbGciOiJIUzI1NiJ9.e30.",
        "e30.e30.e30",
        "bnVsbA.e30.",
    ] {
        for a in [&auth, &ed] {
            let result = a.verify(token);
            assert!(
                matches!(
                    result,
                    Err(AuthError::Malformed | AuthError::AlgorithmNotAllowed | AuthError::BadSignature)
                ),
                "{token:.40}: {result:?}"
            );
        }
    }
    assert!(matches!(auth.verify(""), Err(AuthError::Missing)));
}

#[test]
fn ttls_are_parsed_from_human_durations() {
    assert_eq!(parse_ttl("8h").unwrap(), Duration::from_secs(8 * 3600));
    assert_eq!(parse_ttl("30d").unwrap(), Duration::from_secs(30 * 86_400));
    assert_eq!(parse_ttl(" 1h 30m ").unwrap(), Duration::from_secs(5400));
    for bad in ["", "0s", "soon", "-1h", "8"] {
        assert!(matches!(parse_ttl(bad), Err(AuthError::Config(_))), "{bad}");
    }
    let auth = dev_auth(SECRET);
    assert!(matches!(auth.issue("t", "u", Role::Rep, Duration::ZERO, 0), Err(AuthError::Config(_))));
    assert!(matches!(auth.issue("t", "u", Role::Rep, HOUR, u64::MAX), Err(AuthError::Config(_))));
}

#[test]
fn base64url_decoding_matches_the_encoder() {
    for input in [&b""[..], b"f", b"fo", b"foo", b"foob", b"fooba", b"foobar", &[0xff, 0xfe, 0x00]] {
        assert_eq!(base64url_decode(&b64url(input)).as_deref(), Some(input));
    }
    assert_eq!(base64url_decode("a+b/"), None);
    assert_eq!(hex_decode(&hex_encode(&[0, 1, 0xab, 0xff])), Some(vec![0, 1, 0xab, 0xff]));
    assert_eq!(hex_decode("abc"), None);
    assert_eq!(hex_decode("zz"), None);
}
