//! `refinery::embed_migrations!` reads `migrations/` at compile time: rebuild when a migration
//! is added or changed, not only when this crate's own sources are.
fn main() {
    println!("cargo:rerun-if-changed=../migrations");
}
