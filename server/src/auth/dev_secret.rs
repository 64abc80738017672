//! The dev-mode HS256 secret: generated once into `<data dir>/jwt-secret` (private to its owner,
//! never replaced once written), read back on every start.

use std::fmt;
use std::fs;
use std::io;
use std::path::Path;

use super::AuthError;

/// Name of the dev-mode HMAC secret inside the data directory.
pub const SECRET_FILE_NAME: &str = "jwt-secret";

/// Bytes of randomness in a generated dev secret; 256 bits is HS256's own strength.
pub(super) const SECRET_LEN: usize = 32;

/// Attaches the path to an I/O error: "permission denied" alone does not say which file.
fn io_at(path: &Path, err: io::Error) -> AuthError {
    AuthError::Io(io::Error::new(err.kind(), format!("{}: {err}", path.display())))
}

pub(super) fn load_or_create_secret(dir: &Path) -> Result<Vec<u8>, AuthError> {
    load_or_create_secret_file(dir, SECRET_FILE_NAME)
}

/// The hex secret in `dir/name`, generated (32 random bytes, 0600) when the file does not exist:
/// the dev JWT secret, the metrics token.
pub(crate) fn load_or_create_secret_file(dir: &Path, name: &str) -> Result<Vec<u8>, AuthError> {
    let path = dir.join(name);
    match read_secret(&path) {
        Err(AuthError::Io(e)) if e.kind() == io::ErrorKind::NotFound => {}
        other => return other,
    }

    fs::create_dir_all(dir).map_err(|e| io_at(dir, e))?;
    let secret = random_secret().map_err(|e| io_at(Path::new("OS random source"), e))?;
    let tmp = dir.join(format!(".{name}.{}.tmp", uuid::Uuid::new_v4().simple()));
    let written = write_private_file(&tmp, format!("{}\n", hex_encode(&secret)).as_bytes())
        .and_then(|()| publish(&tmp, &path));
    // Whatever happened, the temporary name must not linger next to the real secret.
    let _ = fs::remove_file(&tmp);
    written.map_err(|e| io_at(&path, e))?;
    sync_dir(dir);
    tracing::info!(path = %path.display(), "generated a new secret");

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

/// A secret file: hex, at least 32 bytes once decoded.
pub(crate) fn read_secret(path: &Path) -> Result<Vec<u8>, AuthError> {
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

/// A new file only its owner may read (it must not exist yet): secrets, backups.
pub(crate) fn create_private(path: &Path) -> io::Result<fs::File> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    // Created 0600 from the start: a chmod afterwards would leave a window where it is readable.
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

pub(crate) fn write_private_file(path: &Path, contents: &[u8]) -> io::Result<()> {
    use std::io::Write;
    let mut file = create_private(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

/// Makes the new directory entry durable; best effort, as not every platform can fsync a dir.
pub(crate) fn sync_dir(dir: &Path) {
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
            "a secret is readable by other users: anyone who can read it can use it"
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

pub(crate) fn hex_encode(bytes: &[u8]) -> String {
    use fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

pub(super) fn hex_decode(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || !s.is_ascii() {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| s.get(i..i + 2).and_then(|pair| u8::from_str_radix(pair, 16).ok()))
        .collect()
}
