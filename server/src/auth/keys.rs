//! Key configuration: which algorithm and key tokens are checked against, validated when the
//! server starts so that a misconfiguration stops it with a clear message rather than failing
//! every request.

use std::fmt;
use std::path::Path;

use jsonwebtoken::{Algorithm, DecodingKey};

use jsonwebtoken::crypto::CryptoProvider;

use super::dev_secret::{SECRET_LEN, load_or_create_secret};
use super::{AuthError, DEFAULT_AUDIENCE, DEFAULT_ISSUER};

/// RSA moduli shorter than this are refused: 1024-bit RSA is considered breakable.
const MIN_RSA_BITS: usize = 2048;

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
    pub(super) issuer: String,
    pub(super) audience: String,
    pub(super) mode: KeyMode,
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

pub(super) fn parse_external_algorithm(name: &str) -> Result<Algorithm, AuthError> {
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

pub(super) fn algorithm_name(alg: Algorithm) -> &'static str {
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
pub(super) fn decoding_key_for(algorithm: Algorithm, pem: &[u8]) -> Result<DecodingKey, AuthError> {
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
