//! Bearer-token authentication: who is calling, for which team, with which role.
//!
//! Every request to the sync server carries a JWT. The token is the *only* source of the caller's
//! [`Principal`]: team isolation and field-level rules are enforced against what it says, so the
//! verifier is deliberately strict (one pinned algorithm, issuer, audience, expiry and a narrow
//! character set for identifiers that later become storage keys and log fields).
//!
//! Two key modes exist:
//!
//! * **Dev** – HS256 with a secret the server generates once into `<data dir>/jwt-secret`, so a
//!   fresh checkout works offline with no identity provider, and `fieldsync` can mint tokens.
//! * **External** – production: tokens come from an identity provider and only its public key is
//!   configured (RS256, ES256 or EdDSA). The server can verify but never mint tokens then.
//!
//! Shared-secret algorithms are refused in external mode because the classic JWT "algorithm
//! confusion" attack signs an HS256 token with the public key as the HMAC secret; pinning exactly
//! one asymmetric algorithm closes it.
//!
//! The module's rooms: this file verifies and mints tokens ([`Authenticator`], [`Claims`]);
//! [`keys`] turns configuration into validated keys ([`AuthConfig`]); [`dev_secret`] keeps the
//! dev-mode secret on disk.

pub mod dev_secret;
pub mod keys;
#[cfg(test)]
mod tests;

use std::fmt;
use std::io;
use std::time::Duration;

use fieldsync_core::{Principal, Role};
use jsonwebtoken::crypto::CryptoProvider;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

pub use dev_secret::SECRET_FILE_NAME;
pub use keys::{AuthConfig, KeyMode};
use keys::{algorithm_name, decoding_key_for};

/// Issuer expected (and, in dev mode, written) when none is configured.
pub const DEFAULT_ISSUER: &str = "fieldsync";
/// Audience expected (and, in dev mode, written) when none is configured.
pub const DEFAULT_AUDIENCE: &str = "fieldsync";

/// Clock skew tolerated between the token issuer and this server.
const LEEWAY_SECS: u64 = 30;

/// Tokens longer than this are refused before any parsing. Identity-provider tokens with many
/// groups can reach a few KiB; nothing legitimate comes near this, and it bounds the work an
/// unauthenticated caller can make us do.
const MAX_TOKEN_LEN: usize = 16 * 1024;

/// The claims of a fieldsync token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user id.
    pub sub: String,
    pub team: String,
    pub role: Role,
    pub exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    pub iat: u64,
    pub iss: String,
    pub aud: String,
}

impl Claims {
    /// The caller these claims describe.
    pub fn into_principal(self) -> Principal {
        Principal { team: self.team, user: self.sub, role: self.role }
    }
}

/// Why a token was refused, or why authentication could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("no bearer token was presented (expected an `Authorization: Bearer <token>` header)")]
    Missing,
    #[error("the bearer token is not a well-formed JWT")]
    Malformed,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet (its nbf lies in the future)")]
    NotYetValid,
    #[error("the token's signature does not match the configured key")]
    BadSignature,
    #[error("the token is signed with an algorithm this server does not accept")]
    AlgorithmNotAllowed,
    #[error("the token was issued for another audience")]
    WrongAudience,
    #[error("the token comes from an issuer this server does not trust")]
    WrongIssuer,
    #[error("the token's claims are not acceptable: {0}")]
    InvalidClaims(String),
    #[error("authentication is misconfigured: {0}")]
    Config(String),
    #[error("authentication I/O failed: {0}")]
    Io(#[from] io::Error),
}

impl AuthError {
    /// True when the caller's credentials are at fault (answer 401); false when the server is
    /// (answer 500 and alert someone).
    pub fn is_unauthorized(&self) -> bool {
        !matches!(self, AuthError::Config(_) | AuthError::Io(_))
    }
}

/// Verifies (and in dev mode mints) tokens. Build once at startup and share: keys and validation
/// rules are precomputed.
#[derive(Debug, Clone)]
pub struct Authenticator {
    algorithm: Algorithm,
    issuer: String,
    audience: String,
    decoding_key: DecodingKey,
    /// Present only in dev mode: in external mode the private key lives with the provider.
    encoding_key: Option<EncodingKey>,
    validation: Validation,
}

impl Authenticator {
    pub fn new(config: &AuthConfig) -> Result<Authenticator, AuthError> {
        // jsonwebtoken panics on decode if it cannot pick a crypto backend (e.g. both backends
        // enabled by some other crate); find out now, as an error, rather than per request.
        if CryptoProvider::try_get_default().is_none() {
            return Err(AuthError::Config(
                "jsonwebtoken has no crypto provider (check its crate features)".to_owned(),
            ));
        }
        let algorithm = config.algorithm();
        let (decoding_key, encoding_key) = match &config.mode {
            KeyMode::Dev { secret } => {
                let dk = DecodingKey::from_secret(secret)
                    .map_err(|e| AuthError::Config(format!("unusable HS256 secret: {e}")))?;
                let ek = EncodingKey::from_secret(secret)
                    .map_err(|e| AuthError::Config(format!("unusable HS256 secret: {e}")))?;
                (dk, Some(ek))
            }
            KeyMode::External { algorithm, public_key_pem } => {
                (decoding_key_for(*algorithm, public_key_pem)?, None)
            }
        };

        let mut validation = Validation::new(algorithm);
        validation.algorithms = vec![algorithm];
        validation.set_audience(&[config.audience.as_str()]);
        validation.set_issuer(&[config.issuer.as_str()]);
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.validate_aud = true;
        validation.leeway = LEEWAY_SECS;
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);

        Ok(Authenticator {
            algorithm,
            issuer: config.issuer.clone(),
            audience: config.audience.clone(),
            decoding_key,
            encoding_key,
            validation,
        })
    }

    /// The one algorithm accepted.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// True when this server can mint tokens (dev mode).
    pub fn can_issue(&self) -> bool {
        self.encoding_key.is_some()
    }

    /// Checks a raw token (without the `Bearer ` prefix) and returns its claims.
    pub fn verify(&self, bearer_token: &str) -> Result<Claims, AuthError> {
        let token = bearer_token.trim();
        if token.is_empty() {
            return Err(AuthError::Missing);
        }
        if token.len() > MAX_TOKEN_LEN {
            return Err(AuthError::Malformed);
        }
        let mut parts = token.split('.');
        let (Some(header_b64), Some(_), Some(_), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(AuthError::Malformed);
        };

        // Look at the algorithm before touching the key, so that a token for another algorithm
        // is reported as such rather than as a signature mismatch.
        match jsonwebtoken::decode_header(token) {
            Ok(header) if header.alg == self.algorithm => {}
            Ok(_) => return Err(AuthError::AlgorithmNotAllowed),
            Err(_) => return Err(self.classify_unreadable_header(header_b64)),
        }

        // Decode into a JSON value first: signature and registered claims are then checked by
        // jsonwebtoken, and a well-signed token whose fieldsync claims don't fit (unknown role,
        // no team) is reported as InvalidClaims instead of as an unreadable token.
        let data = jsonwebtoken::decode::<serde_json::Value>(token, &self.decoding_key, &self.validation)
            .map_err(map_jwt_error)?;
        // A JSON object may repeat a name, and serde_json keeps the last value: a token whose
        // `role` says "rep" to one reader and "admin" to another is refused outright. The
        // signature is good at this point, so the payload segment is the signed one.
        for segment in token.split('.').take(2) {
            reject_duplicate_names(&base64url_decode(segment).ok_or(AuthError::Malformed)?)?;
        }
        let claims: Claims =
            serde_json::from_value(data.claims).map_err(|e| AuthError::InvalidClaims(e.to_string()))?;
        check_identifier("sub", &claims.sub)?;
        check_identifier("team", &claims.team)?;
        Ok(claims)
    }

    /// Checks the value of an `Authorization` header (`Bearer <token>`, scheme case-insensitive).
    pub fn verify_authorization_header(&self, header: Option<&str>) -> Result<Claims, AuthError> {
        let token = bearer_token(header)?;
        self.verify(token)
    }

    /// Mints a token (dev mode only). `now_unix` is passed in so callers and tests control time.
    pub fn issue(
        &self,
        team: &str,
        user: &str,
        role: Role,
        ttl: Duration,
        now_unix: u64,
    ) -> Result<String, AuthError> {
        let Some(key) = &self.encoding_key else {
            return Err(AuthError::Config(
                "this server cannot mint tokens: tokens come from your identity provider".to_owned(),
            ));
        };
        check_identifier("user", user)?;
        check_identifier("team", team)?;
        if ttl.as_secs() == 0 {
            return Err(AuthError::Config("a token must live at least one second".to_owned()));
        }
        let exp = now_unix
            .checked_add(ttl.as_secs())
            .ok_or_else(|| AuthError::Config("the token lifetime is too long".to_owned()))?;
        let claims = Claims {
            sub: user.to_owned(),
            team: team.to_owned(),
            role,
            exp,
            nbf: Some(now_unix),
            iat: now_unix,
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
        };
        jsonwebtoken::encode(&Header::new(self.algorithm), &claims, key)
            .map_err(|e| AuthError::Config(format!("could not sign the token: {e}")))
    }

    /// jsonwebtoken cannot parse a header whose `alg` it does not know (notably `none`), so peek
    /// at the raw JSON to tell "wrong algorithm" apart from plain garbage.
    fn classify_unreadable_header(&self, header_b64: &str) -> AuthError {
        let alg = base64url_decode(header_b64)
            .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
            .and_then(|json| json.get("alg").and_then(|a| a.as_str()).map(str::to_owned));
        match alg {
            Some(alg) if alg != algorithm_name(self.algorithm) => AuthError::AlgorithmNotAllowed,
            _ => AuthError::Malformed,
        }
    }
}

/// Refuses a JSON text in which any object (at any depth) names a member twice.
fn reject_duplicate_names(json: &[u8]) -> Result<(), AuthError> {
    serde_json::from_slice::<NoDuplicateNames>(json).map(|_| ()).map_err(|e| {
        AuthError::InvalidClaims(if e.is_data() {
            e.to_string()
        } else {
            "the claims are not JSON".to_owned()
        })
    })
}

/// Any JSON value, checked for repeated member names as it is read.
struct NoDuplicateNames;

impl<'de> Deserialize<'de> for NoDuplicateNames {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NoDuplicateNames)
    }
}

impl<'de> serde::de::Visitor<'de> for NoDuplicateNames {
    type Value = NoDuplicateNames;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut seen = std::collections::HashSet::new();
        while let Some(name) = map.next_key::<String>()? {
            if !seen.insert(name.clone()) {
                return Err(serde::de::Error::custom(format_args!("claim {name:?} appears more than once")));
            }
            map.next_value::<NoDuplicateNames>()?;
        }
        Ok(NoDuplicateNames)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<NoDuplicateNames>()?.is_some() {}
        Ok(NoDuplicateNames)
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(NoDuplicateNames)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(NoDuplicateNames)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(NoDuplicateNames)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(NoDuplicateNames)
    }
    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(NoDuplicateNames)
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(NoDuplicateNames)
    }
}

/// Extracts the token from an `Authorization` header value.
fn bearer_token(header: Option<&str>) -> Result<&str, AuthError> {
    let value = header.map(str::trim).unwrap_or_default();
    if value.is_empty() {
        return Err(AuthError::Missing);
    }
    let (scheme, rest) = match value.find(char::is_whitespace) {
        Some(at) => value.split_at(at),
        None => (value, ""),
    };
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::Malformed);
    }
    let token = rest.trim();
    if token.is_empty() {
        return Err(AuthError::Missing);
    }
    if token.contains(char::is_whitespace) {
        return Err(AuthError::Malformed);
    }
    Ok(token)
}

/// Parses a token lifetime such as `8h`, `30d` or `1h 30m`.
/// Now in Unix seconds on the wall clock: tokens are issued on it because they are checked against
/// it (`exp`, `nbf`), whatever clock the rest of the server runs on.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

pub fn parse_ttl(s: &str) -> Result<Duration, AuthError> {
    let ttl = humantime::parse_duration(s.trim())
        .map_err(|e| AuthError::Config(format!("invalid token lifetime {s:?}: {e} (try e.g. 8h or 30d)")))?;
    if ttl.as_secs() == 0 {
        return Err(AuthError::Config(format!("invalid token lifetime {s:?}: must be at least one second")));
    }
    Ok(ttl)
}

/// Identifiers become storage keys and log fields: team and user ids follow the one id alphabet of
/// the documents (`docs::validate_id`), which keeps separators, control characters and look-alike
/// Unicode out.
fn check_identifier(what: &str, value: &str) -> Result<(), AuthError> {
    fieldsync_core::docs::validate_id(what, value).map_err(|e| AuthError::InvalidClaims(e.to_string()))
}

fn map_jwt_error(err: jsonwebtoken::errors::Error) -> AuthError {
    match err.into_kind() {
        ErrorKind::ExpiredSignature => AuthError::Expired,
        ErrorKind::ImmatureSignature => AuthError::NotYetValid,
        ErrorKind::InvalidSignature | ErrorKind::Signing(_) => AuthError::BadSignature,
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName | ErrorKind::UnsupportedAlgorithm => {
            AuthError::AlgorithmNotAllowed
        }
        ErrorKind::InvalidAudience => AuthError::WrongAudience,
        ErrorKind::InvalidIssuer => AuthError::WrongIssuer,
        ErrorKind::MissingRequiredClaim(claim) => {
            AuthError::InvalidClaims(format!("the {claim} claim is missing"))
        }
        ErrorKind::InvalidClaimFormat(claim) => {
            AuthError::InvalidClaims(format!("the {claim} claim has the wrong type"))
        }
        ErrorKind::InvalidSubject => AuthError::InvalidClaims("unexpected subject".to_owned()),
        // Key problems surface while verifying but are the server's fault, not the caller's.
        kind @ (ErrorKind::InvalidEcdsaKey
        | ErrorKind::InvalidEddsaKey
        | ErrorKind::InvalidRsaKey(_)
        | ErrorKind::InvalidKeyFormat
        | ErrorKind::MissingAlgorithm
        | ErrorKind::RsaFailedSigning
        | ErrorKind::Provider(_)) => AuthError::Config(format!("verification key problem: {kind:?}")),
        // InvalidToken, Base64, Json, Utf8 and whatever future versions add: the caller sent
        // something we could not read.
        _ => AuthError::Malformed,
    }
}

/// Decodes a JWT segment (base64url; padding tolerated).
fn base64url_decode(s: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(s.trim_end_matches('=')).ok()
}
