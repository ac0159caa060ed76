//! `report --html` in a real headless Chromium: the page loads with no
//! network, its tables and inlined plots render, and a screenshot lands in
//! the test's output folder. Skipped, with the reason, where Chromium
//! cannot start (`.ci/run` installs Debian's `chromium` where it can).

use std::process::Command;

use crate::common::{SmokeRun, run};

fn chromium() -> Option<&'static str> {
    ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|b| {
            Command::new(b)
                .args(["--headless", "--no-sandbox", "--disable-gpu", "--version"])
                .output()
                .is_ok_and(|o| o.status.success())
        })
}

#[test]
fn html_report_renders_in_a_browser() {
    let smoke = SmokeRun::any("tune");
    let results = smoke.results.clone();
    let (code, out) = run(&["report", results.to_str().unwrap(), "--html"]);
    assert_eq!(code, 0, "{out}");
    let page_path = results.join("report.html");
    let page = std::fs::read_to_string(&page_path).unwrap();
    // Self-contained: no link to anything outside the page.
    for outside in ["src=\"http", "href=\"http", "<link ", "<script src"] {
        assert!(!page.contains(outside), "the page loads {outside}");
    }
    let svgs = std::fs::read_dir(results.join("plots"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "svg")
        })
        .count();
    assert!(svgs > 0);
    let Some(browser) = chromium() else {
        eprintln!(
            "skipped the browser part: no Chromium starts here (Debian: apt-get install chromium)"
        );
        return;
    };
    let url = format!("file://{}", page_path.display());
    let dom = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--dump-dom",
            &url,
        ])
        .output()
        .unwrap();
    let dom = String::from_utf8_lossy(&dom.stdout);
    // What the browser built: the summary's tables, the selection, every plot.
    assert!(dom.contains("<h1>smoke-tune</h1>"), "{dom}");
    assert!(dom.contains("Hyperparameters selected on validation"));
    assert!(
        dom.matches("<table>").count() >= 4,
        "tables: {}",
        dom.matches("<table>").count()
    );
    assert_eq!(dom.matches("<svg").count(), svgs, "every plot inlined");
    assert!(dom.contains("<th>group</th>") && dom.contains("random search, 4 trials"));
    let shot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("html-report.png");
    let _ = std::fs::remove_file(&shot);
    let status = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--window-size=1280,1600",
            &format!("--screenshot={}", shot.display()),
            &url,
        ])
        .output()
        .unwrap();
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let png = std::fs::read(&shot).unwrap();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "a screenshot of {} bytes",
        png.len()
    );
    eprintln!("screenshot: {}", shot.display());
}
