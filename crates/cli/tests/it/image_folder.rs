//! A researcher's own images: a generated class-folder tree trains a
//! classifier end to end (its `val/` folder as the validation split), and
//! `validate` refuses a broken tree with the file, line, key and path.

use crate::common::{make_fixture, run};

#[test]
fn an_image_folder_trains_and_a_broken_one_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("my-images");
    make_fixture("image-folder", &data);
    let grid = tmp.path().join("grid.yaml");
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
      data: {{ name: image-folder, root: {data}, val: val, image_size: 16 }}
      backbone: {{ width: 4 }}
      epochs: 2
      batch_size: 8
      optimizer: {{ lr: 0.05 }}
      output: "{{results}}/backbone.safetensors"
    axes:
      split: [validation, test]
"#,
            results = tmp.path().join("results").display(),
            data = data.display()
        ),
    )
    .unwrap();
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
