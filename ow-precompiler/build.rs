//! Record the target triple for the manifest.

fn main() {
    let target = std::env::var("TARGET").unwrap_or_else(|_| "unknown".to_owned());
    println!("cargo:rustc-env=OW_TARGET_TRIPLE={target}");
}
