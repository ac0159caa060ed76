//! `{data}` in a grid: `--data-root`, else `$REUSEBENCH_DATA`, else
//! `datasets`; `validate` names the file it looked for where none is there.

use crate::common::{bin, make_fixture, run};

#[test]
fn data_root_comes_from_the_flag_then_the_environment_then_datasets() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("my-data");
    make_fixture("cifar10", &data.join("cifar-10-batches-bin"));
    let grid = tmp.path().join("grid.yaml");
    std::fs::write(
        &grid,
        format!(
            "name: d\nresults: {}\nexperiments:\n  - name: pretrain\n    protocol: pretrain\n    base:\n      seed: 0\n      data: {{ name: cifar10, root: \"{{data}}/cifar-10-batches-bin\" }}\n      backbone: {{ width: 4 }}\n      epochs: 1\n      optimizer: {{ lr: 0.05 }}\n      output: \"{{results}}/b.safetensors\"\n",
            tmp.path().join("results").display()
        ),
    )
    .unwrap();
    let g = grid.to_str().unwrap();
    let d = data.to_str().unwrap();
    // The flag.
    let (code, out) = run(&["validate", g, "--data-root", d]);
    assert_eq!(code, 0, "{out}");
    // The environment.
    let out = bin()
        .args(["validate", g])
        .env("REUSEBENCH_DATA", d)
        .current_dir(tmp.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Neither: `datasets` under the working directory, which has none.
    let out = bin()
        .args(["validate", g])
        .env_remove("REUSEBENCH_DATA")
        .current_dir(tmp.path())
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(
        text.contains("datasets/cifar-10-batches-bin/data_batch_1.bin does not exist"),
        "{text}"
    );
}
