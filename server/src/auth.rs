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

use std::fmt;
use std::fs;
use std::io;
use std::path::Path;
use std::time::Duration;

use fieldsync_core::{Principal, Role};
use jsonwebtoken::crypto::CryptoProvider;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// Issuer expected (and, in dev mode, written) when none is configured.
pub const DEFAULT_ISSUER: &str = "fieldsync";
/// Audience expected (and, in dev mode, written) when none is configured.
pub const DEFAULT_AUDIENCE: &str = "fieldsync";

/// Name of the dev-mode HMAC secret inside the data directory.
pub const SECRET_FILE_NAME: &str = "jwt-secret";

/// Bytes of randomness in a generated dev secret; 256 bits is HS256's own strength.
const SECRET_LEN: usize = 32;

/// Clock skew tolerated between the token issuer and this server.
const LEEWAY_SECS: u64 = 30;

/// Tokens longer than this are refused before any parsing. Identity-provider tokens with many
/// groups can reach a few KiB; nothing legitimate comes near this, and it bounds the work an
/// unauthenticated caller can make us do.
const MAX_TOKEN_LEN: usize = 16 * 1024;

/// RSA moduli shorter than this are refused: 1024-bit RSA is considered breakable.
const MIN_RSA_BITS: usize = 2048;

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
    pub fn principal(&self) -> Principal {
        Principal { team: self.team.clone(), user: self.sub.clone(), role: self.role }
    }

    /// Like [`Claims::principal`] without cloning.
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

/// Which keys tokens are checked against.
#[derive(Clone)]
pub enum KeyMode {
    /// Local development: HS256 with a server-held secret; the server can mint tokens.
    Dev { secret: Vec<u8> },
    /// Production: tokens come from an identity provider; only its public key is known.
    External {
        /// RS256, ES256 or EdDSA.
        algorithm: Algorithm,
        public_key_pem: Vec<u8>,
    },
}

// Hand-written so that a `{:?}` of the configuration (startup logs, panics) never leaks the
// dev secret.
impl fmt::Debug for KeyMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyMode::Dev { .. } => f.debug_struct("Dev").field("secret", &"[redacted]").finish(),
            KeyMode::External { algorithm, .. } => f
                .debug_struct("External")
                .field("algorithm", algorithm)
                .field("public_key_pem", &"[..]")
                .finish(),
        }
    }
}

/// Validated authentication settings. Only constructible through the functions below, so an
/// `AuthConfig` always holds a usable key.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    issuer: String,
    audience: String,
    mode: KeyMode,
}

impl AuthConfig {
    /// Dev mode with the secret stored in `dir/jwt-secret`, generated on first use.
    pub fn dev_from_data_dir(dir: &Path) -> Result<AuthConfig, AuthError> {
        let secret = load_or_create_secret(dir)?;
        AuthConfig::dev(secret)
    }

    /// Dev mode with an explicit secret (tests, or operators who manage the secret themselves).
    pub fn dev(secret: Vec<u8>) -> Result<AuthConfig, AuthError> {
        if secret.len() < SECRET_LEN {
            return Err(AuthError::Config(format!(
                "the HS256 secret must be at least {SECRET_LEN} bytes, got {}",
                secret.len()
            )));
        }
        Ok(AuthConfig {
            issuer: DEFAULT_ISSUER.to_owned(),
            audience: DEFAULT_AUDIENCE.to_owned(),
            mode: KeyMode::Dev { secret },
        })
    }

    /// Tokens signed by an identity provider, checked against its public key.
    ///
    /// `algorithm` is `RS256`, `ES256` or `EdDSA`; the key must be a PEM public key of that kind.
    pub fn external(
        algorithm: &str,
        public_key_pem: &[u8],
        issuer: impl Into<String>,
        audience: impl Into<String>,
    ) -> Result<AuthConfig, AuthError> {
        let algorithm = parse_external_algorithm(algorithm)?;
        // Building the key here means a bad key stops the server at startup, not at the first
        // request.
        decoding_key_for(algorithm, public_key_pem)?;
        let issuer = issuer.into();
        let audience = audience.into();
        if issuer.trim().is_empty() {
            return Err(AuthError::Config("the token issuer must not be empty".to_owned()));
        }
        if audience.trim().is_empty() {
            return Err(AuthError::Config("the token audience must not be empty".to_owned()));
        }
        Ok(AuthConfig {
            issuer,
            audience,
            mode: KeyMode::External { algorithm, public_key_pem: public_key_pem.to_vec() },
        })
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    pub fn audience(&self) -> &str {
        &self.audience
    }

    pub fn mode(&self) -> &KeyMode {
        &self.mode
    }

    /// The one algorithm tokens must be signed with.
    pub fn algorithm(&self) -> Algorithm {
        match &self.mode {
            KeyMode::Dev { .. } => Algorithm::HS256,
            KeyMode::External { algorithm, .. } => *algorithm,
        }
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

fn parse_external_algorithm(name: &str) -> Result<Algorithm, AuthError> {
    let name = name.trim();
    if name.eq_ignore_ascii_case("none") {
        return Err(AuthError::Config("unsigned tokens (alg \"none\") are never accepted".to_owned()));
    }
    if ["HS256", "HS384", "HS512"].iter().any(|hs| name.eq_ignore_ascii_case(hs)) {
        return Err(AuthError::Config(format!(
            "{name} is a shared-secret algorithm and is refused with an external identity \
             provider; use RS256, ES256 or EdDSA"
        )));
    }
    if name.eq_ignore_ascii_case("RS256") {
        Ok(Algorithm::RS256)
    } else if name.eq_ignore_ascii_case("ES256") {
        Ok(Algorithm::ES256)
    } else if name.eq_ignore_ascii_case("EdDSA") {
        Ok(Algorithm::EdDSA)
    } else {
        Err(AuthError::Config(format!("unsupported token algorithm {name:?}; use RS256, ES256 or EdDSA")))
    }
}

fn algorithm_name(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::HS256 => "HS256",
        Algorithm::RS256 => "RS256",
        Algorithm::ES256 => "ES256",
        Algorithm::EdDSA => "EdDSA",
        // Never configured; any header naming it is then "not allowed", which is right.
        _ => "",
    }
}

/// Builds the public key for `algorithm` and proves it is usable, so that misconfiguration fails
/// at startup with a clear message.
fn decoding_key_for(algorithm: Algorithm, pem: &[u8]) -> Result<DecodingKey, AuthError> {
    if contains(pem, b"PRIVATE KEY") {
        return Err(AuthError::Config(
            "the configured key is a private key; give the server only the public key".to_owned(),
        ));
    }
    let bad =
        |what: &str| AuthError::Config(format!("the configured key is not a valid {what} public key (PEM)"));
    match algorithm {
        Algorithm::RS256 => {
            let key = DecodingKey::from_rsa_pem(pem).map_err(|_| bad("RSA"))?;
            // jsonwebtoken only parses RSA keys when verifying; parse now to fail early.
            let provider = CryptoProvider::try_get_default()
                .ok_or_else(|| AuthError::Config("jsonwebtoken has no crypto provider".to_owned()))?;
            let der = key.try_get_as_bytes().map_err(|_| bad("RSA"))?;
            let (modulus, _) =
                (provider.key_utils.rsa_pub_components_from_public_key)(der).map_err(|_| bad("RSA"))?;
            let significant = modulus.iter().skip_while(|b| **b == 0).count();
            if significant * 8 < MIN_RSA_BITS {
                return Err(AuthError::Config(format!(
                    "the RSA key is too short: at least {MIN_RSA_BITS} bits are required"
                )));
            }
            Ok(key)
        }
        Algorithm::ES256 => {
            let key = DecodingKey::from_ec_pem(pem).map_err(|_| bad("P-256"))?;
            probe(&key, algorithm).map_err(|_| bad("P-256"))?;
            Ok(key)
        }
        Algorithm::EdDSA => {
            let key = DecodingKey::from_ed_pem(pem).map_err(|_| bad("Ed25519"))?;
            // jsonwebtoken 12 slices the first 32 bytes without checking the length, which would
            // panic on a truncated key.
            if key.try_get_as_bytes().map(<[u8]>::len).ok() != Some(32) {
                return Err(bad("Ed25519"));
            }
            probe(&key, algorithm).map_err(|_| bad("Ed25519"))?;
            Ok(key)
        }
        other => Err(AuthError::Config(format!(
            "unsupported token algorithm {other:?}; use RS256, ES256 or EdDSA"
        ))),
    }
}

/// Constructing a verifier parses the key; the (empty) signature is expected not to match.
fn probe(key: &DecodingKey, algorithm: Algorithm) -> Result<(), jsonwebtoken::errors::Error> {
    jsonwebtoken::crypto::verify("", b"fieldsync key probe", key, algorithm).map(|_| ())
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Decodes a JWT segment (base64url; padding tolerated).
fn base64url_decode(s: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(s.trim_end_matches('=')).ok()
}

// ---------------------------------------------------------------------------------------------
// Dev secret on disk
// ---------------------------------------------------------------------------------------------

/// Attaches the path to an I/O error: "permission denied" alone does not say which file.
fn io_at(path: &Path, err: io::Error) -> AuthError {
    AuthError::Io(io::Error::new(err.kind(), format!("{}: {err}", path.display())))
}

fn load_or_create_secret(dir: &Path) -> Result<Vec<u8>, AuthError> {
    let path = dir.join(SECRET_FILE_NAME);
    match read_secret(&path) {
        Err(AuthError::Io(e)) if e.kind() == io::ErrorKind::NotFound => {}
        other => return other,
    }

    fs::create_dir_all(dir).map_err(|e| io_at(dir, e))?;
    let secret = random_secret().map_err(|e| io_at(Path::new("OS random source"), e))?;
    let tmp = dir.join(format!(".{SECRET_FILE_NAME}.{}.tmp", uuid::Uuid::new_v4().simple()));
    let written = write_private_file(&tmp, format!("{}\n", hex_encode(&secret)).as_bytes())
        .and_then(|()| publish(&tmp, &path));
    // Whatever happened, the temporary name must not linger next to the real secret.
    let _ = fs::remove_file(&tmp);
    written.map_err(|e| io_at(&path, e))?;
    sync_dir(dir);
    tracing::info!(path = %path.display(), "generated a new dev JWT secret");

    // Read back rather than trusting our own bytes: if another process created the file at the
    // same moment, its secret won and everyone must use that one.
    read_secret(&path)
}

/// Moves the finished temp file into place without ever replacing an existing secret.
fn publish(tmp: &Path, path: &Path) -> io::Result<()> {
    match fs::hard_link(tmp, path) {
        Ok(()) => Ok(()),
        // Someone else published first; theirs is kept.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        // Filesystems without hard links: rename is still atomic, just not exclusive.
        Err(_) => fs::rename(tmp, path),
    }
}

fn read_secret(path: &Path) -> Result<Vec<u8>, AuthError> {
    let text = fs::read_to_string(path).map_err(|e| io_at(path, e))?;
    warn_if_readable_by_others(path);
    let secret = hex_decode(text.trim()).ok_or_else(|| {
        AuthError::Config(format!(
            "{} does not contain a hex-encoded secret; delete it to generate a new one",
            path.display()
        ))
    })?;
    if secret.len() < SECRET_LEN {
        return Err(AuthError::Config(format!(
            "{} holds only {} bytes; at least {SECRET_LEN} are required",
            path.display(),
            secret.len()
        )));
    }
    Ok(secret)
}

#[cfg(unix)]
fn write_private_file(path: &Path, contents: &[u8]) -> io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    // Created 0600 from the start: a chmod afterwards would leave a window where it is readable.
    let mut file = fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

#[cfg(not(unix))]
fn write_private_file(path: &Path, contents: &[u8]) -> io::Result<()> {
    use std::io::Write;
    let mut file = fs::OpenOptions::new().write(true).create_new(true).open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

/// Makes the new directory entry durable; best effort, as not every platform can fsync a dir.
fn sync_dir(dir: &Path) {
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

#[cfg(unix)]
fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(
            path = %path.display(),
            mode = format!("{:o}", meta.permissions().mode() & 0o777),
            "the JWT secret is readable by other users; anyone who can read it can mint tokens"
        );
    }
}

#[cfg(not(unix))]
fn warn_if_readable_by_others(_path: &Path) {}

/// The kernel CSPRNG. rand is built without its OS-randomness feature, so read it directly.
#[cfg(unix)]
fn random_secret() -> io::Result<[u8; SECRET_LEN]> {
    use std::io::Read;
    let mut buf = [0u8; SECRET_LEN];
    fs::File::open("/dev/urandom")?.read_exact(&mut buf)?;
    Ok(buf)
}

/// Without /dev/urandom, v4 UUIDs are the OS CSPRNG we can reach (uuid uses getrandom): two of
/// them give 244 random bits, ample for HS256.
#[cfg(not(unix))]
fn random_secret() -> io::Result<[u8; SECRET_LEN]> {
    let mut buf = [0u8; SECRET_LEN];
    buf[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    buf[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    Ok(buf)
}

fn hex_encode(bytes: &[u8]) -> String {
    use fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

fn hex_decode(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || !s.is_ascii() {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| s.get(i..i + 2).and_then(|pair| u8::from_str_radix(pair, 16).ok()))
        .collect()
}

#[cfg(test)]
// Panicking on a broken expectation is what a test is for.
#[allow(clippy::unwrap_used)]
mod tests {
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
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            claims,
            &EncodingKey::from_secret(secret).unwrap(),
        )
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
            claims.principal(),
            Principal { team: "acme-north".into(), user: "alice@acme.io".into(), role: Role::Manager }
        );
        assert_eq!(claims.iss, DEFAULT_ISSUER);
        assert_eq!(claims.aud, DEFAULT_AUDIENCE);
        assert_eq!(claims.exp, claims.iat + 8 * 3600);
        assert_eq!(claims.clone().into_principal(), claims.principal());
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
        let mut claims: serde_json::Value =
            serde_json::from_slice(&base64url_decode(parts[1]).unwrap()).unwrap();
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
        assert!(matches!(
            dev_auth(SECRET).verify(&format!("{header}.{payload}.")),
            Err(AuthError::BadSignature)
        ));
    }

    #[test]
    fn a_token_for_another_audience_or_issuer_is_refused() {
        let auth = dev_auth(SECRET);
        let wrong_aud = sign_hs256(SECRET, &claims_json("t", "u", DEFAULT_ISSUER, "billing"));
        assert!(matches!(auth.verify(&wrong_aud), Err(AuthError::WrongAudience)));
        let wrong_iss = sign_hs256(SECRET, &claims_json("t", "u", "evil", DEFAULT_AUDIENCE));
        assert!(matches!(auth.verify(&wrong_iss), Err(AuthError::WrongIssuer)));

        let mut no_aud = claims_json("t", "u", DEFAULT_ISSUER, DEFAULT_AUDIENCE);
        no_aud.as_object_mut().unwrap().remove("aud");
        assert!(matches!(auth.verify(&sign_hs256(SECRET, &no_aud)), Err(AuthError::InvalidClaims(_))));
        let mut no_exp = claims_json("t", "u", DEFAULT_ISSUER, DEFAULT_AUDIENCE);
        no_exp.as_object_mut().unwrap().remove("exp");
        assert!(matches!(auth.verify(&sign_hs256(SECRET, &no_exp)), Err(AuthError::InvalidClaims(_))));
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
        let principal = auth.verify(&token).unwrap().principal();
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
            (
                Algorithm::ES256,
                P256_PUBLIC_PEM,
                EncodingKey::from_ec_pem(P256_PRIVATE_PEM.as_bytes()).unwrap(),
            ),
        ] {
            let name = algorithm_name(alg);
            let config =
                AuthConfig::external(name, public.as_bytes(), "https://idp.example", "fs-api").unwrap();
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

        let mut bad_role = claims_json("t", "u", DEFAULT_ISSUER, DEFAULT_AUDIENCE);
        bad_role["role"] = "root".into();
        assert!(matches!(auth.verify(&sign_hs256(SECRET, &bad_role)), Err(AuthError::InvalidClaims(_))));
        let mut no_team = claims_json("t", "u", DEFAULT_ISSUER, DEFAULT_AUDIENCE);
        no_team.as_object_mut().unwrap().remove("team");
        assert!(matches!(auth.verify(&sign_hs256(SECRET, &no_team)), Err(AuthError::InvalidClaims(_))));
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
}
