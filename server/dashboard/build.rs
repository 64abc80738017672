//! Bundles the dashboard (`web/`) with npm and esbuild into `OUT_DIR`, then writes the table of
//! embedded assets that `src/lib.rs` includes.
//!
//! npm installs into `OUT_DIR` from the committed lockfile (`npm ci`), so the source tree stays
//! clean and a build never picks up packages the lockfile does not name. The install is redone
//! only when the lockfile changes. `FIELDSYNC_SKIP_DASHBOARD=1` builds without Node.js: the server
//! then serves a page saying the dashboard was left out, instead of failing to compile.

use std::collections::hash_map::DefaultHasher;
use std::env;
use std::fs;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let web = manifest.join("web");
    for watched in ["src", "package.json", "package-lock.json", "build.mjs"] {
        println!("cargo:rerun-if-changed={}", web.join(watched).display());
    }
    println!("cargo:rerun-if-env-changed=FIELDSYNC_SKIP_DASHBOARD");
    let dist = out.join("dist");
    let _ = fs::remove_dir_all(&dist);
    fs::create_dir_all(&dist).expect("create OUT_DIR/dist");
    let built = if env::var_os("FIELDSYNC_SKIP_DASHBOARD").is_some_and(|v| v == "1") {
        fs::write(
            dist.join("index.html"),
            "<!doctype html><title>fieldsync</title><p>This fieldsync was built without its dashboard \
             (FIELDSYNC_SKIP_DASHBOARD=1). The HTTP API is served as usual.</p>",
        )
        .expect("write the placeholder page");
        false
    } else {
        bundle(&web, &out.join("npm"), &dist);
        true
    };
    write_table(&dist, &out.join("assets.rs"), built);
}

fn run(cmd: &mut Command, what: &str) {
    let status = cmd.status().unwrap_or_else(|e| {
        panic!(
            "fieldsync-dashboard: cannot run {what} ({e}). The dashboard is bundled with Node.js and npm \
             at build time: install them, or set FIELDSYNC_SKIP_DASHBOARD=1 to build without it."
        )
    });
    assert!(status.success(), "fieldsync-dashboard: {what} failed ({status})");
}

fn bundle(web: &Path, work: &Path, dist: &Path) {
    fs::create_dir_all(work).expect("create the npm work directory");
    let lock = fs::read(web.join("package-lock.json")).expect("web/package-lock.json is committed");
    let stamp = work.join("installed.lock");
    if fs::read(&stamp).ok().as_deref() != Some(&lock[..]) || !work.join("node_modules").exists() {
        for f in ["package.json", "package-lock.json"] {
            fs::copy(web.join(f), work.join(f)).expect("copy the npm manifest");
        }
        run(
            Command::new("npm").args(["ci", "--no-audit", "--no-fund", "--loglevel=error"]).current_dir(work),
            "npm ci",
        );
        fs::write(&stamp, &lock).expect("write the install stamp");
    }
    fs::copy(web.join("build.mjs"), work.join("build.mjs")).expect("copy build.mjs");
    run(
        Command::new("node")
            .arg(work.join("build.mjs"))
            .arg(web.join("src"))
            .arg(dist)
            .arg(work.join("node_modules"))
            .current_dir(work),
        "node build.mjs (esbuild)",
    );
}

fn mime(name: &str) -> &'static str {
    match name.rsplit('.').next() {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("png") => "image/png",
        Some("svg") => "image/svg+xml",
        _ => "application/octet-stream",
    }
}

fn write_table(dist: &Path, table: &Path, built: bool) {
    let mut names: Vec<String> = fs::read_dir(dist)
        .expect("read dist")
        .map(|e| e.expect("dist entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let mut rows = String::new();
    for name in &names {
        let bytes = fs::read(dist.join(name)).expect("read a built asset");
        let mut h = DefaultHasher::new();
        bytes.hash(&mut h);
        rows.push_str(&format!(
            "    Asset {{ path: {name:?}, mime: {mime:?}, etag: \"\\\"{hash:016x}\\\"\", body: include_bytes!({file:?}) }},\n",
            mime = mime(name),
            hash = h.finish(),
            file = dist.join(name).display().to_string(),
        ));
    }
    fs::write(
        table,
        format!("/// Whether the bundle was built (false: FIELDSYNC_SKIP_DASHBOARD).\npub const BUILT: bool = {built};\n\n/// Every built file.\npub static ASSETS: &[Asset] = &[\n{rows}];\n"),
    )
    .expect("write the asset table");
}
