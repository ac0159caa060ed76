//! The git commit this build is made from, for the cells' identity (a
//! result is reused only by the build that made it).
fn main() {
    let commit = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    if let Some(commit) = commit {
        println!("cargo:rustc-env=REUSEBENCH_GIT_COMMIT={commit}");
    }
    // A new commit moves a ref (or packs it); a checkout moves HEAD. Only
    // paths that exist: a missing one would rerun this on every build.
    println!("cargo:rerun-if-changed=build.rs");
    for path in [
        "../../.git/HEAD",
        "../../.git/refs/heads",
        "../../.git/packed-refs",
    ] {
        if std::path::Path::new(path).exists() {
            println!("cargo:rerun-if-changed={path}");
        }
    }
}
