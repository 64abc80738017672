//! The configuration file of `fieldsync serve --config FILE`: TOML, one key per flag of `serve`
//! (the flag's name without `--`), for deployments that keep their settings in a file.
//!
//! A value comes from, first to last: the flag, its environment variable (`FIELDSYNC_…`), the
//! file, the default. Paths in the file are relative to the file's directory. An unknown key, a
//! value of the wrong type or out of its bounds is an error naming the file, the line and the key,
//! before anything is opened.
//!
//! ```
//! let file = fieldsync_server::config::ServeFile::parse(
//!     "addr = \"0.0.0.0:8080\"\ndata = \"data\"\nfeed-trim-every = \"30s\"\nmin-free-space = \"1GiB\"\n",
//!     std::path::Path::new("/etc/fieldsync"),
//! )?;
//! assert_eq!(file.data.as_deref(), Some(std::path::Path::new("/etc/fieldsync/data")));
//! assert_eq!(file.feed_trim_every, Some(std::time::Duration::from_secs(30)));
//! assert_eq!(file.min_free_space, Some(1 << 30));
//! # Ok::<(), fieldsync_server::config::ConfigError>(())
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// Largest configuration file read: a settings file, not data.
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {cause}")]
    Read { path: String, cause: std::io::Error },
    #[error("{path}: larger than {MAX_CONFIG_BYTES} bytes: not a configuration file")]
    TooLarge { path: String },
    #[error("{0}")]
    Invalid(String),
}

/// The settings a file gives, checked and with its paths resolved: every key optional, none
/// unknown, sizes and periods read by the flags' own parsers.
#[derive(Debug, Default, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ServeFile {
    pub data: Option<PathBuf>,
    pub addr: Option<SocketAddr>,
    pub no_seed: Option<bool>,
    /// `text` or `json` (checked by the command line's own parser).
    pub log_format: Option<String>,
    pub jwt_alg: Option<String>,
    pub jwt_public_key: Option<PathBuf>,
    pub jwt_issuer: Option<String>,
    pub jwt_audience: Option<String>,
    pub feed_retain: Option<u64>,
    #[serde(default, deserialize_with = "period")]
    pub feed_trim_every: Option<Duration>,
    pub tile_url: Option<String>,
    #[serde(default, deserialize_with = "size")]
    pub min_free_space: Option<u64>,
    pub metrics_token_file: Option<PathBuf>,
}

/// `feed-trim-every = "10m"`, through [`parse_period`].
fn period<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    let text = String::deserialize(d)?;
    parse_period(&text).map(Some).map_err(serde::de::Error::custom)
}

/// `min-free-space = "1GiB"` through [`parse_bytes`], or a number of bytes.
fn size<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Size {
        Bytes(u64),
        Text(String),
    }
    match Size::deserialize(d)? {
        Size::Bytes(n) => Ok(Some(n)),
        Size::Text(t) => parse_bytes(&t).map(Some).map_err(serde::de::Error::custom),
    }
}

impl ServeFile {
    /// Reads and checks the file at `path`.
    pub fn load(path: &Path) -> Result<ServeFile, ConfigError> {
        let shown = path.display().to_string();
        let read = |cause| ConfigError::Read { path: shown.clone(), cause };
        let size = std::fs::metadata(path).map_err(read)?.len();
        if size > MAX_CONFIG_BYTES {
            return Err(ConfigError::TooLarge { path: shown });
        }
        let text = std::fs::read_to_string(path).map_err(read)?;
        let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        ServeFile::parse(&text, dir).map_err(|e| ConfigError::Invalid(format!("{shown}: {e}")))
    }

    /// Checks `text`, resolving relative paths against `dir`.
    pub fn parse(text: &str, dir: &Path) -> Result<ServeFile, ConfigError> {
        let mut file: ServeFile =
            toml::from_str(text).map_err(|e| ConfigError::Invalid(e.to_string().trim_end().into()))?;
        for path in
            [&mut file.data, &mut file.jwt_public_key, &mut file.metrics_token_file].into_iter().flatten()
        {
            if path.is_relative() {
                *path = dir.join(&*path);
            }
        }
        Ok(file)
    }
}

/// A period such as `10m`, `30s` or `50ms`: at least a millisecond.
pub fn parse_period(s: &str) -> Result<Duration, String> {
    match humantime::parse_duration(s.trim()) {
        Ok(d) if d >= Duration::from_millis(1) => Ok(d),
        Ok(_) => Err(format!("{s:?}: at least 1ms")),
        Err(e) => Err(format!("{s:?}: {e} (try e.g. 10m or 30s)")),
    }
}

/// A size such as `64MiB`, `1GiB`, `500MB` or a number of bytes.
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: u64 = n.parse().map_err(|_| format!("{s:?}: a size such as 64MiB or 1GiB"))?;
    let scale: u64 = match unit.trim() {
        "" | "B" => 1,
        "KB" => 1_000,
        "KiB" => 1 << 10,
        "MB" => 1_000_000,
        "MiB" => 1 << 20,
        "GB" => 1_000_000_000,
        "GiB" => 1 << 30,
        other => return Err(format!("{other:?}: a unit among B, KB, KiB, MB, MiB, GB, GiB")),
    };
    n.checked_mul(scale).ok_or_else(|| format!("{s:?} is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(text: &str) -> String {
        match ServeFile::parse(text, Path::new("/etc/fieldsync")) {
            Err(e) => e.to_string(),
            Ok(f) => panic!("{text:?} was taken: {f:?}"),
        }
    }

    #[test]
    fn every_key_is_read_and_relative_paths_follow_the_file() {
        let text = r#"
            data = "data"
            addr = "0.0.0.0:9000"
            no-seed = true
            log-format = "json"
            jwt-alg = "EdDSA"
            jwt-public-key = "/keys/idp.pem"
            jwt-issuer = "https://idp.example"
            jwt-audience = "fieldsync-prod"
            feed-retain = 5000
            feed-trim-every = "1m"
            tile-url = "https://tiles.example/{z}/{x}/{y}.png"
            min-free-space = 1048576
            metrics-token-file = "secrets/metrics"
        "#;
        let f = ServeFile::parse(text, Path::new("/etc/fieldsync")).expect("valid");
        assert_eq!(
            f,
            ServeFile {
                data: Some("/etc/fieldsync/data".into()),
                addr: Some("0.0.0.0:9000".parse().expect("addr")),
                no_seed: Some(true),
                log_format: Some("json".into()),
                jwt_alg: Some("EdDSA".into()),
                jwt_public_key: Some("/keys/idp.pem".into()),
                jwt_issuer: Some("https://idp.example".into()),
                jwt_audience: Some("fieldsync-prod".into()),
                feed_retain: Some(5000),
                feed_trim_every: Some(Duration::from_secs(60)),
                tile_url: Some("https://tiles.example/{z}/{x}/{y}.png".into()),
                min_free_space: Some(1 << 20),
                metrics_token_file: Some("/etc/fieldsync/secrets/metrics".into()),
            }
        );
        assert_eq!(ServeFile::parse("", Path::new(".")).expect("empty"), ServeFile::default());
    }

    #[test]
    fn a_bad_file_says_which_key_and_line() {
        let e = refused("addr = \"127.0.0.1:8080\"\nadress = \"x\"\n");
        assert!(e.contains("line 2") && e.contains("adress") && e.contains("addr"), "{e}");
        let e = refused("feed-retain = \"lots\"\n");
        assert!(e.contains("line 1") && e.contains("feed-retain"), "{e}");
        let e = refused("feed-trim-every = \"soon\"\n");
        assert!(e.contains("feed-trim-every") && e.contains("soon"), "{e}");
        let e = refused("min-free-space = \"9 parsecs\"\n");
        assert!(e.contains("min-free-space"), "{e}");
        let e = refused("addr = \"somewhere\"\n");
        assert!(e.contains("line 1") && e.contains("addr"), "{e}");
        let e = refused("feed-retain = -1\n");
        assert!(e.contains("feed-retain"), "{e}");
        let e = refused("[data]\npath = 1\n");
        assert!(e.contains("data"), "{e}");
        let e = refused("addr = \"127.0.0.1:8080\"\naddr = \"127.0.0.1:9090\"\n");
        assert!(e.contains("line 2"), "a key given twice: {e}");
    }
}
