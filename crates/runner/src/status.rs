//! Where a results folder stands: done, failed, running (claimed by a live
//! worker) and pending cells, from the files alone, so that it answers for
//! a grid that workers on other machines are running.

use std::fmt;
use std::path::Path;
use std::time::Duration;

use reusebench_results::State;

use crate::claim;
use crate::error::RunnerError;
use crate::identity::{self, Digests, Identity, Input};
use crate::store;

#[derive(Debug, Clone, Default)]
pub struct GridStatus {
    pub name: String,
    pub cells: usize,
    pub done: usize,
    /// (cell folder, where it ran: host and Slurm job, reason).
    pub failed: Vec<(String, String, String)>,
    /// (cell folder, holder, seconds since the claim).
    pub running: Vec<(String, String, u64)>,
    /// Per running cell (same order), its latest live rows in words.
    pub latest: Vec<String>,
    /// (cell folder, note: why it is not running, if known).
    pub pending: Vec<(String, Option<String>)>,
    /// (cell folder, why) of done cells whose inputs or build changed
    /// since they ran: `run` runs them again.
    pub stale: Vec<(String, String)>,
}

/// The status of the results folder `results` (written by `run`).
pub fn of(results: &Path, claim_timeout: Duration) -> Result<GridStatus, RunnerError> {
    let grid_file = results.join("grid.json");
    let text = std::fs::read_to_string(&grid_file).map_err(|e| RunnerError::io(&grid_file, e))?;
    let grid: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| RunnerError::Store(format!("{}: {e}", grid_file.display())))?;
    let cells: Vec<String> = grid["cells"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    let mut out = GridStatus {
        name: grid["name"].as_str().unwrap_or_default().to_string(),
        cells: cells.len(),
        ..Default::default()
    };
    let now = claim::unix_now();
    let digests = Digests::default();
    for name in cells {
        let dir = results.join("cells").join(&name);
        if store::is_done(&dir) {
            out.done += 1;
            let why = stale_since_run(&dir, &digests);
            if !why.is_empty() {
                out.stale.push((name, why.join("; ")));
            }
            continue;
        }
        let claimed = claim::read(&dir);
        if let Some(found) = &claimed
            && found.stale(claim_timeout).is_none()
        {
            let age = now.saturating_sub(found.holder.started);
            out.running.push((name, found.holder.describe(), age));
            out.latest
                .push(latest_in_words(&crate::live::last_rows(&dir, 3)));
            continue;
        }
        match store::read_status(&dir) {
            Some(s) if s.state == State::Failed => {
                let mut place = s.host.unwrap_or_else(|| "?".into());
                if let Some(job) = s.slurm_job {
                    place = format!("Slurm job {job} on {place}");
                }
                out.failed.push((name, place, s.reason.unwrap_or_default()));
            }
            _ => {
                let note = claimed
                    .and_then(|f| f.stale(claim_timeout))
                    .map(|why| format!("interrupted: {why}"));
                out.pending.push((name, note));
            }
        }
    }
    Ok(out)
}

/// What changed since the done cell in `dir` ran: its inputs (read
/// again) and the build. (A changed config default shows when the grid is
/// run: status reads the results folder, not the grid.)
fn stale_since_run(dir: &Path, digests: &Digests) -> Vec<String> {
    let Some(stored) = identity::read(dir) else {
        return vec!["no identity recorded (written by an older build)".into()];
    };
    let inputs = stored
        .inputs
        .iter()
        .map(|i| Input {
            path: i.path.clone(),
            digest: digests.of(&i.path),
        })
        .collect();
    let now = Identity {
        schema: identity::CONFIG_SCHEMA,
        config: stored.config.clone(),
        inputs,
        build: identity::build(),
    };
    now.changes_since(&stored)
}

/// `curve_loss 0.512 (stage=pretrain, epoch=3)`, the rows joined by `; `.
fn latest_in_words(rows: &[reusebench_results::MetricRow]) -> String {
    rows.iter()
        .map(|r| {
            let coords: Vec<String> = r.coords.iter().map(|(k, v)| format!("{k}={v}")).collect();
            match coords.is_empty() {
                true => format!("{} {:.4}", r.metric, r.value),
                false => format!("{} {:.4} ({})", r.metric, r.value, coords.join(", ")),
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

impl fmt::Display for GridStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "grid `{}`: {} cell(s)", self.name, self.cells)?;
        writeln!(f, "  done     {}", self.done)?;
        writeln!(f, "  failed   {}", self.failed.len())?;
        writeln!(f, "  running  {}", self.running.len())?;
        writeln!(f, "  pending  {}", self.pending.len())?;
        if !self.stale.is_empty() {
            writeln!(f, "  stale    {} (done; run reruns them)", self.stale.len())?;
        }
        if !self.failed.is_empty() {
            writeln!(f, "failed:")?;
            for (cell, place, reason) in &self.failed {
                writeln!(f, "  {cell} ({place}): {reason}")?;
            }
        }
        if !self.stale.is_empty() {
            writeln!(f, "stale:")?;
            for (cell, why) in &self.stale {
                writeln!(f, "  {cell}: {why}")?;
            }
        }
        if !self.running.is_empty() {
            writeln!(f, "running:")?;
            for (i, (cell, holder, age)) in self.running.iter().enumerate() {
                writeln!(f, "  {cell} on {holder}, for {age}s")?;
                match self.latest.get(i) {
                    Some(l) if !l.is_empty() => writeln!(f, "    latest: {l}")?,
                    _ => {}
                }
            }
        }
        let notes: Vec<_> = self
            .pending
            .iter()
            .filter_map(|(c, n)| n.as_ref().map(|n| (c, n)))
            .collect();
        if !notes.is_empty() {
            writeln!(f, "pending, interrupted:")?;
            for (cell, note) in notes {
                writeln!(f, "  {cell}: {note}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::live::{LIVE_FILE, Live};
    use reusebench_core::train::LiveRows;
    use reusebench_results::{Coords, MetricRow};

    /// A cell another worker is running shows with its latest live rows.
    #[test]
    fn a_running_cell_shows_its_latest_live_rows() {
        let tmp = tempfile::tempdir().unwrap();
        let results = tmp.path();
        let name = "pretrain-0123456789ab";
        let dir = results.join("cells").join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            results.join("grid.json"),
            serde_json::json!({ "name": "g", "cells": [name] }).to_string(),
        )
        .unwrap();
        // Another live process on this host holds it (pid 1 never ends).
        let holder = claim::Holder {
            pid: 1,
            ..claim::Holder::me()
        };
        std::fs::write(
            dir.join(claim::CLAIM_FILE),
            serde_json::to_string(&holder).unwrap(),
        )
        .unwrap();
        let live = Live::start(&dir, None).unwrap();
        for epoch in 0..3usize {
            let at = Coords::new().with("stage", "pretrain").with("epoch", epoch);
            live.row(&MetricRow::at("curve_loss", 1.0 / (epoch + 1) as f64, at));
        }
        // Flushed as it goes: the file holds every row before the cell ends.
        let text = std::fs::read_to_string(dir.join(LIVE_FILE)).unwrap();
        assert_eq!(text.lines().count(), 3);
        let status = of(results, Duration::from_secs(60)).unwrap();
        assert_eq!(status.running.len(), 1);
        let shown = status.to_string();
        assert!(
            shown.contains("latest: curve_loss 1.0000 (stage=pretrain, epoch=0)")
                && shown.contains("curve_loss 0.3333 (stage=pretrain, epoch=2)"),
            "{shown}"
        );
    }
}
