//! `report.html`: one self-contained page a researcher can send — the
//! summary (every table of `summary.md`, sortable by a click on a column
//! head, no network), the plots inlined as SVG, the selected
//! hyperparameters and failed cells (both in the summary), the grid that
//! produced the folder, and where and when it ran.

use std::path::{Path, PathBuf};

use minijinja::{Environment, context};

use crate::error::ReportError;

const TEMPLATE: &str = r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{{ title }} — reusebench</title>
<style>
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1200px; padding: 0 1rem; color: #222; }
table { border-collapse: collapse; margin: 0.8rem 0; font-size: 0.85rem; display: block; overflow-x: auto; max-width: 100%; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.5rem; text-align: left; }
th { background: #f2f2f2; cursor: pointer; user-select: none; }
th.sorted-asc::after { content: " ▲"; } th.sorted-desc::after { content: " ▼"; }
code { background: #f4f4f4; padding: 0 0.2rem; }
.env { color: #555; font-size: 0.9rem; }
figure { margin: 1rem 0; } figure svg { max-width: 100%; height: auto; }
pre { background: #f7f7f7; padding: 0.8rem; overflow-x: auto; font-size: 0.8rem; }
</style>
</head>
<body>
<h1>{{ title }}</h1>
<p class="env">reusebench {{ version }} · results <code>{{ results }}</code> · written {{ written }} · device(s) {{ devices }} · {{ cells_done }} cell(s) done, {{ cells_failed }} failed</p>
{{ summary }}
<h2>Plots</h2>
{% for fig in figures %}<figure id="{{ fig.name }}"><figcaption><code>{{ fig.name }}</code></figcaption>
{{ fig.svg }}
</figure>
{% else %}<p>No plots.</p>{% endfor %}
<h2>Configuration</h2>
<p>The grid as <code>grid.json</code> records it (every cell's resolved config is in <code>cells/&lt;cell&gt;/config.json</code>).</p>
<pre>{{ grid }}</pre>
<script>
// Click a column head to sort its table by it (numbers as numbers).
document.querySelectorAll("table").forEach(function (table) {
  var heads = table.querySelectorAll("thead th");
  heads.forEach(function (th, col) {
    th.addEventListener("click", function () {
      var asc = !th.classList.contains("sorted-asc");
      heads.forEach(function (h) { h.classList.remove("sorted-asc", "sorted-desc"); });
      th.classList.add(asc ? "sorted-asc" : "sorted-desc");
      var body = table.querySelector("tbody");
      var rows = Array.prototype.slice.call(body.rows);
      var key = function (r) { var t = r.cells[col] ? r.cells[col].textContent.trim() : ""; var n = parseFloat(t); return isNaN(n) ? t : n; };
      rows.sort(function (a, b) {
        var x = key(a), y = key(b);
        var c = (typeof x === "number" && typeof y === "number") ? x - y : String(x).localeCompare(String(y));
        return asc ? c : -c;
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
});
</script>
</body>
</html>
"#;

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// `code`, **bold** and escaping inside one line of Markdown.
fn inline(s: &str) -> String {
    let mut out = String::new();
    for (i, part) in s.split('`').enumerate() {
        if i % 2 == 1 {
            out.push_str(&format!("<code>{}</code>", escape(part)));
            continue;
        }
        for (j, piece) in escape(part).split("**").enumerate() {
            match j % 2 {
                1 => out.push_str(&format!("<strong>{piece}</strong>")),
                _ => out.push_str(piece),
            }
        }
    }
    out
}

fn cells_of(line: &str) -> Vec<String> {
    let inner = line.trim().trim_start_matches('|').trim_end_matches('|');
    inner.split('|').map(|c| inline(c.trim())).collect()
}

/// The Markdown `summary.md` is written in (headings, paragraphs, lists,
/// pipe tables) as HTML.
pub fn markdown_to_html(md: &str) -> String {
    let mut out = String::new();
    let lines: Vec<&str> = md.lines().collect();
    let mut i = 0;
    let mut paragraph: Vec<String> = Vec::new();
    let flush = |p: &mut Vec<String>, out: &mut String| {
        if !p.is_empty() {
            out.push_str(&format!("<p>{}</p>\n", p.join(" ")));
            p.clear();
        }
    };
    while i < lines.len() {
        let line = lines[i].trim_end();
        let is_table = line.trim_start().starts_with('|')
            && lines.get(i + 1).is_some_and(|n| {
                n.trim_start().starts_with("| ---") || n.trim_start().starts_with("|---")
            });
        if is_table {
            flush(&mut paragraph, &mut out);
            out.push_str("<table>\n<thead><tr>");
            for c in cells_of(line) {
                out.push_str(&format!("<th>{c}</th>"));
            }
            out.push_str("</tr></thead>\n<tbody>\n");
            i += 2;
            while i < lines.len() && lines[i].trim_start().starts_with('|') {
                out.push_str("<tr>");
                for c in cells_of(lines[i]) {
                    out.push_str(&format!("<td>{c}</td>"));
                }
                out.push_str("</tr>\n");
                i += 1;
            }
            out.push_str("</tbody>\n</table>\n");
            continue;
        }
        let heading = line.chars().take_while(|&c| c == '#').count();
        if heading > 0 && line[heading..].starts_with(' ') {
            flush(&mut paragraph, &mut out);
            // The page's own title is the h1: the summary's headings go one down.
            let level = (heading + 1).min(6);
            out.push_str(&format!(
                "<h{level}>{}</h{level}>\n",
                inline(line[heading..].trim())
            ));
        } else if let Some(item) = line.trim_start().strip_prefix("- ") {
            flush(&mut paragraph, &mut out);
            out.push_str(&format!("<ul><li>{}</li></ul>\n", inline(item)));
        } else if line.trim().is_empty() {
            flush(&mut paragraph, &mut out);
        } else {
            paragraph.push(inline(line.trim()));
        }
        i += 1;
    }
    flush(&mut paragraph, &mut out);
    out
}

/// `YYYY-MM-DD HH:MM:SS UTC` of a Unix time (the civil-from-days algorithm).
fn utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rest = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// The devices the done cells ran on (their `status.json`).
fn devices(results: &Path) -> String {
    let mut seen: Vec<String> = Vec::new();
    if let Ok(dirs) = std::fs::read_dir(results.join("cells")) {
        for d in dirs.flatten() {
            let status = std::fs::read_to_string(d.path().join("status.json")).ok();
            let device = status
                .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
                .and_then(|v| v["device"].as_str().map(String::from));
            if let Some(dev) = device
                && !seen.contains(&dev)
            {
                seen.push(dev);
            }
        }
    }
    seen.sort();
    if seen.is_empty() {
        "–".into()
    } else {
        seen.join(", ")
    }
}

/// Writes `report.html` beside `summary.md` (which [`crate::write_report`]
/// wrote) from it, the SVG plots and `grid.json`.
pub fn write_html(
    results: &Path,
    cells_done: usize,
    cells_failed: usize,
) -> Result<PathBuf, ReportError> {
    let summary_path = results.join("summary.md");
    let summary =
        std::fs::read_to_string(&summary_path).map_err(|e| ReportError::io(&summary_path, e))?;
    // The summary's own title line is the page's.
    let body = summary.split_once('\n').map_or("", |(_, rest)| rest);
    let mut figures: Vec<(String, String)> = Vec::new();
    if let Ok(entries) = std::fs::read_dir(results.join("plots")) {
        for e in entries.flatten() {
            let path = e.path();
            if path.extension().is_some_and(|x| x == "svg") {
                let svg =
                    std::fs::read_to_string(&path).map_err(|err| ReportError::io(&path, err))?;
                // Inline: drop any XML prolog before the <svg> element.
                let svg = svg
                    .find("<svg")
                    .map_or(svg.as_str(), |at| &svg[at..])
                    .to_string();
                let name = path
                    .file_stem()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .to_string();
                figures.push((name, svg));
            }
        }
    }
    figures.sort();
    let grid = std::fs::read_to_string(results.join("grid.json")).unwrap_or_default();
    let title = serde_json::from_str::<serde_json::Value>(&grid)
        .ok()
        .and_then(|g| g["name"].as_str().map(String::from))
        .unwrap_or_else(|| "Results".into());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut env = Environment::new();
    env.add_template("report", TEMPLATE)
        .map_err(|e| ReportError::Template(e.to_string()))?;
    let page = env
        .get_template("report")
        .and_then(|t| {
            t.render(context! {
                title => title,
                version => env!("CARGO_PKG_VERSION"),
                results => results.display().to_string(),
                written => utc(now),
                devices => devices(results),
                cells_done => cells_done,
                cells_failed => cells_failed,
                summary => minijinja::Value::from_safe_string(markdown_to_html(body)),
                figures => figures
                    .iter()
                    .map(|(name, svg)| context! { name => name, svg => minijinja::Value::from_safe_string(svg.clone()) })
                    .collect::<Vec<_>>(),
                grid => grid,
            })
        })
        .map_err(|e| ReportError::Template(e.to_string()))?;
    let path = results.join("report.html");
    crate::aggregate::write_atomic(&path, page.as_bytes())?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_tables_headings_and_inline_marks_become_html() {
        let md = "## exp (continual)\n\nValues are **mean** over `seeds` <x>.\n\n| method | acc |\n| --- | --- |\n| sgd | 1.5 |\n| lp-ft | 2.5 |\n\n- a failed cell\n";
        let html = markdown_to_html(md);
        assert!(html.contains("<h3>exp (continual)</h3>"), "{html}");
        assert!(
            html.contains("<strong>mean</strong>")
                && html.contains("<code>seeds</code>")
                && html.contains("&lt;x&gt;"),
            "{html}"
        );
        assert!(
            html.contains("<thead><tr><th>method</th><th>acc</th></tr></thead>"),
            "{html}"
        );
        assert_eq!(html.matches("<tr><td>").count(), 2, "{html}");
        assert!(html.contains("<ul><li>a failed cell</li></ul>"));
    }

    #[test]
    fn utc_dates_are_civil() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(1_796_531_554), "2026-12-06 04:32:34 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00 UTC");
    }
}
