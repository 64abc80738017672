//! `cargo run -p fieldsync-bindgen -- generate --library <libfieldsync_mobile.so> --language python --out-dir <dir>`
fn main() {
    uniffi::uniffi_bindgen_main()
}
