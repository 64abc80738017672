//! # fieldsync-dashboard
//!
//! The manager's desk in a browser: the team map (customers by tier, filters, clusters,
//! territories, a rep's day), the week calendar per rep, the attention list, the check-in review
//! queue, report charts and the live feed. A browser app in `web/` (npm packages from a committed
//! lockfile: Leaflet, Chart.js, fetch-event-source; esbuild) bundled by `build.rs` at compile time
//! and embedded here, so `fieldsync serve` needs no files beside it and no internet: no CDN, no
//! web fonts, no map tiles unless the operator configures a tile URL.
//!
//! The server serves [`ASSETS`] at `/` (the page) and `/assets/{name}`; the app talks to the same
//! HTTP API as every other client, with a bearer token.
//!
//! ```
//! let page = fieldsync_dashboard::asset("index.html").expect("the page is always embedded");
//! assert!(page.mime.starts_with("text/html"));
//! assert!(fieldsync_dashboard::asset("../Cargo.toml").is_none());
//! ```

/// One embedded file.
#[derive(Debug, Clone, Copy)]
pub struct Asset {
    /// The file's name (no directories: the bundle is flat).
    pub path: &'static str,
    /// Its `Content-Type`.
    pub mime: &'static str,
    /// A strong validator of its bytes, quoted, for `ETag`.
    pub etag: &'static str,
    pub body: &'static [u8],
}

include!(concat!(env!("OUT_DIR"), "/assets.rs"));

/// The embedded file named `name`, if there is one.
pub fn asset(name: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.path == name)
}
