//! A researcher's own images: a generated class-folder tree trains a
//! classifier end to end (its `val/` folder as the validation split), and
//! `validate` refuses a broken tree with the file, line, key and path.

use std::path::{Path, PathBuf};

use crate::common::{make_fixture, run};

/// A grid that pretrains on the image folder at `data` (with `data_keys`
/// added to its data spec), then `more` (further YAML of the experiment
/// list); its path.
fn folder_grid(dir: &Path, data: &Path, data_keys: &str, more: &str) -> PathBuf {
    let grid = dir.join("grid.yaml");
    std::fs::write(
        &grid,
        format!(
            r#"name: folder
results: {results}
experiments:
  - name: pretrain
    protocol: pretrain
    base:
      seed: 0
      data: {{ name: image-folder, root: {data}, image_size: 16{data_keys} }}
      backbone: {{ width: 4 }}
      epochs: 2
      batch_size: 8
      optimizer: {{ lr: 0.05 }}
      output: "{{results}}/backbone.safetensors"
{more}"#,
            results = dir.join("results").display(),
            data = data.display()
        ),
    )
    .unwrap();
    grid
}

#[test]
fn an_image_folder_trains_and_a_broken_one_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("my-images");
    make_fixture("image-folder", &data);
    let more = "    axes:\n      split: [validation, test]\n";
    let grid = folder_grid(tmp.path(), &data, ", val: val", more);
    let (code, out) = run(&["run", grid.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    let summary = std::fs::read_to_string(tmp.path().join("results/summary.md")).unwrap();
    // Scored on the folder's val/ and test/ images, a row each.
    assert!(
        summary.contains("| pretrain | validation |") && summary.contains("| pretrain | test |"),
        "{summary}"
    );

    // A stray file in a class folder: refused before anything runs.
    let stray = data.join("test/class_2/README.md");
    std::fs::write(&stray, "about these images").unwrap();
    let (code, out) = run(&["validate", grid.to_str().unwrap()]);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("grid.yaml:8")
            && out.contains("key `data`")
            && out.contains("README.md")
            && out.contains("not an image file"),
        "{out}"
    );
}

/// With a groups file, the rows add the accuracy of every group, the worst
/// group's and the mean over groups; a broken groups file is refused with
/// its line before anything runs.
#[test]
fn an_image_folder_with_groups_reports_the_worst_group() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("birds");
    make_fixture("image-folder", &data);
    let continual = format!(
        r#"  - name: continual
    protocol: continual
    base:
      seed: 0
      data: {{ name: image-folder, root: {}, image_size: 16, groups: groups.csv }}
      classes_per_task: 2
      backbone: {{ width: 4 }}
      batch_size: 8
      knn: null
      method: {{ name: sgd, epochs: 1, optimizer: {{ lr: 0.05 }} }}
"#,
        data.display()
    );
    let grid = folder_grid(tmp.path(), &data, ", groups: groups.csv", &continual);
    let (code, out) = run(&["run", grid.to_str().unwrap(), "--no-report"]);
    assert_eq!(code, 0, "{out}");
    // The continual cell reports its final model's groups over every task.
    let continual = crate::common::cell_rows(&tmp.path().join("results"), "continual");
    let groups = continual[0]
        .1
        .iter()
        .filter(|r| r["metric"] == "acc_by_group")
        .count();
    assert_eq!(groups, 8);
    assert!(
        continual[0]
            .1
            .iter()
            .any(|r| r["metric"] == "worst_group_acc")
    );
    let cells = crate::common::cell_rows(&tmp.path().join("results"), "pretrain");
    let rows = &cells[0].1;
    let by_group: Vec<(String, f64)> = rows
        .iter()
        .filter(|r| r["metric"] == "acc_by_group")
        .map(|r| {
            (
                r["coords"]["group"].as_str().unwrap().to_string(),
                r["value"].as_f64().unwrap(),
            )
        })
        .collect();
    let names: Vec<&str> = by_group.iter().map(|(g, _)| g.as_str()).collect();
    assert_eq!(names.len(), 8, "4 classes x 2 attributes: {names:?}");
    let scalar = |m: &str| {
        rows.iter()
            .find(|r| r["metric"] == m)
            .and_then(|r| r["value"].as_f64())
            .unwrap()
    };
    let accs: Vec<f64> = by_group.iter().map(|(_, a)| *a).collect();
    assert_eq!(
        scalar("worst_group_acc"),
        accs.iter().copied().fold(f64::INFINITY, f64::min)
    );
    let mean = accs.iter().sum::<f64>() / accs.len() as f64;
    assert!((scalar("mean_group_acc") - mean).abs() < 1e-9);

    let groups = data.join("groups.csv");
    let text = std::fs::read_to_string(&groups).unwrap();
    std::fs::write(&groups, format!("{text}no comma here\n")).unwrap();
    let (code, out) = run(&["validate", grid.to_str().unwrap()]);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("grid.yaml:8")
            && out.contains("key `data`")
            && out.contains("groups.csv")
            && out.contains("expected `file,group`"),
        "{out}"
    );
}
