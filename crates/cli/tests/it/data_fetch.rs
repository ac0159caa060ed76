//! `data fetch` and `data verify`: a download from a local HTTP server
//! (these machines reach no dataset host) that breaks half-way and resumes
//! with a `Range` request, checksums that catch a corrupt archive or file,
//! and `verify` on generated fixtures and on the real subsets.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::{Arc, Mutex};

use reusebench_fetch::download::sha256_file;

use crate::common::{make_fixture, repo, run};

/// Serves `body` at any path on 127.0.0.1. Honours `Range: bytes=N-`
/// (206); the first `break_first` responses stop half-way through the
/// body, as a dropped connection does. Returns the port and the `Range`
/// header of every request (empty where it had none).
fn serve(body: Vec<u8>, break_first: usize) -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for (i, stream) in listener.incoming().enumerate() {
            let mut stream = stream.unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut range = String::new();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap() == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("range:") {
                    range = v.trim().to_string();
                }
            }
            log.lock().unwrap().push(range.clone());
            let start: usize = range
                .strip_prefix("bytes=")
                .and_then(|r| r.trim_end_matches('-').parse().ok())
                .unwrap_or(0);
            let n = body.len();
            let head = if start > 0 {
                format!(
                    "HTTP/1.1 206 Partial Content\r\nContent-Length: {}\r\nContent-Range: bytes {start}-{}/{n}\r\nConnection: close\r\n\r\n",
                    n - start,
                    n - 1
                )
            } else {
                format!("HTTP/1.1 200 OK\r\nContent-Length: {n}\r\nConnection: close\r\n\r\n")
            };
            stream.write_all(head.as_bytes()).unwrap();
            let end = if i < break_first {
                start + (n - start) / 2
            } else {
                n
            };
            let _ = stream.write_all(&body[start..end]);
            let _ = stream.flush();
            // Dropping the stream closes the connection: short of
            // Content-Length where the body was cut.
        }
    });
    (port, seen)
}

/// A CIFAR-10 fixture packed as the official archive is
/// (`cifar-10-batches-bin/…` inside a .tar.gz); returns the archive's
/// bytes and each file's SHA-256.
fn cifar_archive(dir: &Path) -> (Vec<u8>, Vec<(String, String)>) {
    let src = dir.join("src/cifar-10-batches-bin");
    make_fixture("cifar10", &src);
    // As the real subsets do: the folder lists its own checksums.
    let sums: String = std::fs::read_dir(&src)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "bin"))
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().to_string();
            format!("{}  {name}\n", sha256_file(&p).unwrap())
        })
        .collect();
    std::fs::write(src.join("SHA256SUMS"), sums).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    {
        let mut tar = tar::Builder::new(&mut gz);
        tar.append_dir_all("cifar-10-batches-bin", &src).unwrap();
        tar.finish().unwrap();
    }
    let bytes = gz.finish().unwrap();
    let files = [
        "data_batch_1.bin",
        "data_batch_2.bin",
        "data_batch_3.bin",
        "data_batch_4.bin",
        "data_batch_5.bin",
        "test_batch.bin",
    ]
    .iter()
    .map(|f| (f.to_string(), sha256_file(&src.join(f)).unwrap()))
    .collect();
    (bytes, files)
}

fn manifest(path: &Path, port: u16, archive_sha: &str, files: &[(String, String)]) {
    let files: serde_json::Map<String, serde_json::Value> = files
        .iter()
        .map(|(f, h)| (f.clone(), serde_json::Value::from(h.clone())))
        .collect();
    let m = serde_json::json!({ "datasets": { "cifar10": {
        "url": format!("http://127.0.0.1:{port}/cifar-10-binary.tar.gz"),
        "archive": "cifar-10-binary.tar.gz",
        "bytes": null,
        "sha256": archive_sha,
        "extract_to": "",
        "folder": "cifar-10-batches-bin",
        "layout": "cifar10",
        "files": files,
    }}});
    std::fs::write(path, serde_json::to_string_pretty(&m).unwrap()).unwrap();
}

/// `reusebench data verify NAME DIR ARGS...`: exit code and output.
fn verify(name: &str, dir: &Path, args: &[&str]) -> (i32, String) {
    let dir = dir.to_str().unwrap();
    let mut all = vec!["data", "verify", name, dir];
    all.extend_from_slice(args);
    run(&all)
}

#[test]
fn fetch_resumes_a_broken_download_checks_it_and_verify_catches_a_corrupt_file() {
    let tmp = tempfile::tempdir().unwrap();
    let (archive, files) = cifar_archive(tmp.path());
    let archive_sha = {
        let p = tmp.path().join("archive.tar.gz");
        std::fs::write(&p, &archive).unwrap();
        sha256_file(&p).unwrap()
    };
    let (port, seen) = serve(archive.clone(), 1);
    let m = tmp.path().join("manifest.json");
    manifest(&m, port, &archive_sha, &files);
    let out_dir = tmp.path().join("data");
    let fetch = [
        "data",
        "fetch",
        "cifar10",
        "--to",
        out_dir.to_str().unwrap(),
        "--manifest",
        m.to_str().unwrap(),
        "--quiet",
    ];

    // The connection breaks half-way: an error that says how to resume,
    // and the part kept.
    let (code, out) = run(&fetch);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("run the same command again to resume"),
        "{out}"
    );
    let part = out_dir.join("cifar-10-binary.tar.gz.part");
    let kept = std::fs::metadata(&part).unwrap().len();
    assert!(kept > 0 && (kept as usize) < archive.len(), "{kept}");

    // Again: it asks for the rest only, checks, unpacks and verifies.
    let (code, out) = run(&fetch);
    assert_eq!(code, 0, "{out}");
    assert_eq!(seen.lock().unwrap()[1], format!("bytes={kept}-"));
    assert!(!part.exists());
    assert_eq!(
        std::fs::read(out_dir.join("cifar-10-binary.tar.gz")).unwrap(),
        archive
    );
    assert!(
        out.contains("data_batch_3.bin: 100 records, SHA-256 matches the manifest"),
        "{out}"
    );
    assert!(out.contains("verdict: the official files"), "{out}");

    // `verify` on what it fetched, then on a copy with one flipped byte.
    let verify = [
        "data",
        "verify",
        "cifar10",
        out_dir.to_str().unwrap(),
        "--manifest",
        m.to_str().unwrap(),
    ];
    let (code, out) = run(&verify);
    assert_eq!(code, 0, "{out}");
    let file = out_dir.join("cifar-10-batches-bin/data_batch_2.bin");
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[500] ^= 1;
    std::fs::write(&file, bytes).unwrap();
    let (code, out) = run(&verify);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("[!!] data_batch_2.bin")
            && out.contains("the folder's SHA256SUMS says")
            && out.contains("broken"),
        "{out}"
    );
    assert!(!out.contains("[!!] data_batch_1.bin"), "{out}");
}

#[test]
fn a_corrupt_archive_is_refused_by_name_and_set_aside() {
    let tmp = tempfile::tempdir().unwrap();
    let (archive, files) = cifar_archive(tmp.path());
    let (port, _) = serve(archive, 0);
    let m = tmp.path().join("manifest.json");
    let wrong = "0".repeat(64);
    manifest(&m, port, &wrong, &files);
    let out_dir = tmp.path().join("data");
    let (code, out) = run(&[
        "data",
        "fetch",
        "cifar10",
        "--to",
        out_dir.to_str().unwrap(),
        "--manifest",
        m.to_str().unwrap(),
        "--quiet",
    ]);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("cifar-10-binary.tar.gz") && out.contains(&wrong),
        "{out}"
    );
    assert!(out_dir.join("cifar-10-binary.tar.gz.corrupt").exists());
    assert!(
        !out_dir.join("cifar-10-batches-bin").exists(),
        "nothing unpacked"
    );
    // A manifest that is not one is named.
    std::fs::write(&m, "{ \"datasets\": 3 }").unwrap();
    let (code, out) = run(&[
        "data",
        "verify",
        "cifar10",
        ".",
        "--manifest",
        m.to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("manifest.json"), "{out}");
}

#[test]
fn verify_reads_the_fixtures_of_each_layout() {
    let tmp = tempfile::tempdir().unwrap();
    // Generated CIFAR-10 with the shipped manifest: smaller than the
    // official files and without SHA256SUMS, so a subset.
    let cifar = tmp.path().join("c");
    make_fixture("cifar10", &cifar);
    let (code, out) = verify("cifar10", &cifar, &[]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("100 of the official 10000 records") && out.contains("subset"),
        "{out}"
    );
    let (code, out) = verify("cifar10", &cifar, &["--subset-ok"]);
    assert_eq!(code, 0, "{out}");

    let tiny = tmp.path().join("t");
    make_fixture("tiny-imagenet", &tiny);
    let (code, out) = verify("tiny-imagenet", &tiny, &["--subset-ok"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("wnids.txt: 20 classes") && out.contains("decodes"),
        "{out}"
    );
    std::fs::remove_dir_all(tiny.join("train/n00001007/images")).unwrap();
    let (code, out) = verify("tiny-imagenet", &tiny, &["--subset-ok"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("n00001007") && out.contains("no training images"),
        "{out}"
    );

    // FMoW has no published checksums: complete counts and decodes pass.
    let fmow = tmp.path().join("f");
    make_fixture("fmow", &fmow);
    let (code, out) = verify("fmow", &fmow, &[]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("700 metadata rows, one image each"), "{out}");
    std::fs::remove_file(fmow.join("images/rgb_img_5.png")).unwrap();
    let (code, out) = verify("fmow", &fmow, &[]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("rgb_img_5.png"), "{out}");
}

#[test]
fn verify_knows_the_real_subsets_for_what_they_are() {
    let shared = repo().join("../shared/datasets");
    if !shared.is_dir() {
        eprintln!("skipped: ../shared/datasets is absent");
        return;
    }
    let cifar = shared.join("cifar-10-subset");
    let (code, out) = verify("cifar10", &cifar, &[]);
    assert_eq!(code, 1, "a subset is not the official files: {out}");
    assert!(out.contains("1017 of the official 10000 records"), "{out}");
    assert!(out.contains("matches the folder's SHA256SUMS"), "{out}");
    let (code, out) = verify("cifar10", &cifar, &["--subset-ok"]);
    assert_eq!(code, 0, "{out}");
    let tiny = shared.join("tiny-imagenet-200-subset");
    let (code, out) = verify("tiny-imagenet", &tiny, &["--subset-ok"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("wnids.txt: 200 classes"), "{out}");
    assert!(
        out.contains("train: 100 images per class, the official set has 500"),
        "{out}"
    );
    assert!(out.contains("val: 10000 annotated images"), "{out}");
}
