//! The initramfs writer checked by an independent reader: GNU cpio, as the kernel's own
//! unpacker reads the same newc format.

#![allow(clippy::unwrap_used, reason = "a test panics to fail")]

use std::io::Write;
use std::process::{Command, Stdio};

use runner::initramfs::Initramfs;

#[test]
fn gnu_cpio_lists_and_extracts_what_we_wrote() {
    let mut image = Initramfs::new();
    image
        .dir("proc")
        .char_device("dev/console", 5, 1)
        .file("init", 0o755, b"#!/bin/busybox sh\necho hi\n".to_vec())
        .file("lib/test_bpf.ko", 0o644, vec![0x7f; 5000])
        .symlink("bin/sh", "busybox");
    let raw = image.write_cpio(Vec::new()).unwrap();

    let mut cpio = Command::new("cpio")
        .args(["-itv", "--quiet"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("GNU cpio is needed for this test: apt-get install cpio");
    cpio.stdin.take().unwrap().write_all(&raw).unwrap();
    let output = cpio.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let listing = String::from_utf8(output.stdout).unwrap();
    // cpio -tv: mode, links, owner, group, size (or "major, minor"), date, name. Every
    // timestamp is zero, so the date is always 1970.
    let rows: Vec<(String, String)> = listing
        .lines()
        .map(|l| {
            let (head, name) = l.split_once(" 1970 ").unwrap();
            (
                head.split_whitespace().next().unwrap().to_owned(),
                name.to_owned(),
            )
        })
        .collect();
    let console = listing
        .lines()
        .find(|l| l.ends_with("dev/console"))
        .unwrap();
    assert!(console.contains(" 5,   1 "), "{console}");
    let want = [
        ("drwxr-xr-x", "bin"),
        ("lrwxrwxrwx", "bin/sh -> busybox"),
        ("drwxr-xr-x", "dev"),
        ("crw-------", "dev/console"),
        ("-rwxr-xr-x", "init"),
        ("drwxr-xr-x", "lib"),
        ("-rw-r--r--", "lib/test_bpf.ko"),
        ("drwxr-xr-x", "proc"),
    ];
    let got: Vec<(&str, &str)> = rows.iter().map(|(m, n)| (m.as_str(), n.as_str())).collect();
    assert_eq!(got, want, "{listing}");

    // Extract and compare contents byte for byte.
    let dir = tempfile::tempdir().unwrap();
    let mut cpio = Command::new("cpio")
        .args([
            "-id",
            "--quiet",
            "--no-absolute-filenames",
            "--nonmatching",
            "dev/console",
        ])
        .current_dir(dir.path())
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    cpio.stdin.take().unwrap().write_all(&raw).unwrap();
    assert!(cpio.wait().unwrap().success());
    assert_eq!(
        std::fs::read(dir.path().join("lib/test_bpf.ko")).unwrap(),
        vec![0x7f; 5000]
    );
    assert_eq!(
        std::fs::read(dir.path().join("init")).unwrap(),
        b"#!/bin/busybox sh\necho hi\n"
    );
    assert_eq!(
        std::fs::read_link(dir.path().join("bin/sh")).unwrap(),
        std::path::Path::new("busybox")
    );
}
