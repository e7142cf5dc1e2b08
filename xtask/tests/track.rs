//! `cargo xtask track` end to end, on real kernels: Debian's packaged ones on both arches
//! into a history, run once; a failure in recorded revisions pinned on exactly the revision
//! that brought it, and a real run of a newer one seen as its fix; and `--bisect` finding the
//! commit that breaks a JIT case in a series of commits on linux-source-6.1, in log2(n)
//! builds.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{cache_dir, path_str, recorded_run, show};

use runner::diff::Class;
use runner::report::Report;
use runner::track::{RevisionInfo, Track};

fn xtask(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .env_remove("CI")
        .output()
        .expect("cannot run the xtask binary")
}

fn read_track(dir: &Path) -> Track {
    let text = std::fs::read(dir.join("track.json")).expect("track.json is written");
    serde_json::from_slice(&text).expect("track.json reads back")
}

/// Puts `report` into the history as Debian revision `abi`, as `track` stores a run.
fn store(history: &Path, abi: &str, report: &Report) {
    let dir = history.join("x86_64").join("debian-amd64").join(abi);
    std::fs::create_dir_all(&dir).expect("the entry's directory");
    report.write(&dir.join("report.json")).expect("report.json");
    let n: u64 = abi
        .rsplit('-')
        .next()
        .and_then(|n| n.parse().ok())
        .expect("an ABI");
    let info = RevisionInfo {
        id: abi.to_owned(),
        // As `track` orders 6.1.0-N.
        order: 6_001_000_000 + n,
        subject: format!("recorded {abi}"),
    };
    std::fs::write(
        dir.join("revision.json"),
        serde_json::to_vec(&info).expect("revision.json"),
    )
    .expect("revision.json is written");
}

#[test]
fn debian_revisions_run_once_on_both_arches() {
    let history = tempfile::tempdir().expect("a temporary directory");
    let args = [
        "track",
        "--arch",
        "x86_64,mips64el",
        "--debian",
        "6.1.0-47,6.1.0-50",
        "--filter",
        "0-19",
        "--history",
        path_str(history.path()),
    ];
    let output = xtask(&args);
    assert_eq!(output.status.code(), Some(0), "{}", show(&output));
    let track = read_track(history.path());
    let series: Vec<(String, &str, usize)> = track
        .series
        .iter()
        .map(|s| (s.arch.to_string(), s.flavour.as_str(), s.revisions.len()))
        .collect();
    assert_eq!(
        series,
        [
            ("x86_64".to_owned(), "debian-amd64", 2),
            ("mips64el".to_owned(), "debian-5kc-malta", 2)
        ],
        "{}",
        show(&output)
    );
    for s in &track.series {
        for r in &s.revisions {
            assert!(r.new && r.complete, "{r:?}");
            assert_eq!(r.counts.values().sum::<usize>(), 20, "{r:?}");
            assert!(r.info.subject.contains(&r.info.id), "{r:?}");
        }
    }
    for page in ["track.md", "track.html"] {
        let text = std::fs::read_to_string(history.path().join(page)).expect("the page");
        assert!(text.contains("6.1.0-47") && text.contains("debian-5kc-malta"));
    }

    // The next night: nothing new, nothing run, the same view.
    let again = xtask(&args);
    assert_eq!(again.status.code(), Some(0), "{}", show(&again));
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert_eq!(
        stderr.matches("is in the history already").count(),
        4,
        "{}",
        show(&again)
    );
    assert!(!stderr.contains("booting"), "{}", show(&again));
    let track = read_track(history.path());
    assert!(track
        .series
        .iter()
        .all(|s| s.revisions.iter().all(|r| !r.new)));
}

#[test]
fn a_failure_is_pinned_on_the_revision_that_brought_it() {
    let history = tempfile::tempdir().expect("a temporary directory");
    let clean = recorded_run("x86_64-full.log", |log| log);
    let broken = recorded_run("x86_64-injected-failure.log", |log| log);
    for abi in ["6.1.0-47", "6.1.0-50", "6.1.0-53"] {
        store(history.path(), abi, &clean);
    }
    for abi in ["6.1.0-54", "6.1.0-55"] {
        store(history.path(), abi, &broken);
    }
    // 6.1.0-56 is not in the history: it is run, around the failing test only.
    let output = xtask(&[
        "track",
        "--arch",
        "x86_64",
        "--debian",
        "6.1.0-47,6.1.0-50,6.1.0-53,6.1.0-54,6.1.0-55,6.1.0-56",
        "--filter",
        "440-450",
        "--history",
        path_str(history.path()),
    ]);
    // Its news is a fix, which does not fail the run.
    assert_eq!(output.status.code(), Some(0), "{}", show(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains(
            "fix test_bpf JMP32_JLT_K: Small immediate [jit]: fail jited -> pass jited, \
             first in 6.1.0-56 (after 6.1.0-55)"
        ),
        "{}",
        show(&output)
    );
    let track = read_track(history.path());
    let [series] = track.series.as_slice() else {
        panic!("one series: {track:?}");
    };
    let ids: Vec<&str> = series
        .revisions
        .iter()
        .map(|r| r.info.id.as_str())
        .collect();
    assert_eq!(
        ids,
        ["6.1.0-47", "6.1.0-50", "6.1.0-53", "6.1.0-54", "6.1.0-55", "6.1.0-56"]
    );
    let failing: Vec<_> = series
        .tests
        .iter()
        .filter(|t| t.changes.iter().any(|c| c.class == Class::Regression))
        .collect();
    let [test] = failing.as_slice() else {
        panic!("exactly one regression: {failing:#?}");
    };
    assert_eq!(test.name, "JMP32_JLT_K: Small immediate");
    let pinned: Vec<(Class, &str, &str)> = test
        .changes
        .iter()
        .map(|c| (c.class, c.since.as_str(), c.revision.as_str()))
        .collect();
    assert_eq!(
        pinned,
        [
            (Class::Regression, "6.1.0-53", "6.1.0-54"),
            (Class::Fix, "6.1.0-55", "6.1.0-56")
        ]
    );
    let md = std::fs::read_to_string(history.path().join("track.md")).expect("track.md");
    assert!(
        md.contains("| regression | test_bpf JMP32_JLT_K: Small immediate | jit | pass jited | fail jited | 6.1.0-54 | 6.1.0-53 |"),
        "{md}"
    );
}

/// The cache's git repository of linux-source-6.1, made by building it once.
fn linux_source_repo() -> PathBuf {
    let output = xtask(&["kernel", "--arch", "x86_64"]);
    assert_eq!(output.status.code(), Some(0), "{}", show(&output));
    let cache = cache_dir().join("src");
    std::fs::read_dir(&cache)
        .expect("the cache has sources")
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("linux-source-6.1="))
        })
        .expect("linux-source-6.1 is unpacked in the cache")
}

fn git(repo: &Path, args: &[&str], index: &Path) -> String {
    let output = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(["-c", "user.name=test", "-c", "user.email=test@localhost"])
        .args(args)
        .env("GIT_INDEX_FILE", index)
        .output()
        .expect("git runs");
    assert!(output.status.success(), "git {args:?}: {}", show(&output));
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

#[test]
fn bisect_finds_the_commit_that_broke_a_jit_case_in_log2_n_builds() {
    let source = linux_source_repo();
    let dir = tempfile::tempdir().expect("a temporary directory");
    // A bare clone sharing the cache's objects: no checkout, made in milliseconds.
    let repo = dir.path().join("series.git");
    let output = Command::new("git")
        .args(["clone", "-q", "--bare", "--shared"])
        .arg(&source)
        .arg(&repo)
        .output()
        .expect("git runs");
    assert!(output.status.success(), "{}", show(&output));

    // Eight commits on the x86 JIT, each adding a comment; the fifth also makes BPF_JLT
    // jump on "above or equal" instead of "below".
    let index = dir.path().join("index");
    let file = "arch/x86/net/bpf_jit_comp.c";
    let good = git(&repo, &["rev-parse", "HEAD"], &index);
    let mut parent = good.clone();
    let mut commits = Vec::new();
    for i in 1..=8 {
        let mut text = git(
            &repo,
            &["cat-file", "-p", &format!("{parent}:{file}")],
            &index,
        );
        text.push_str(&format!("\n/* bisect test: commit {i} */\n"));
        if i == 5 {
            let jb = "/* LT is unsigned '<', JB in x86 */\n\t\t\t\tjmp_cond = X86_JB;";
            assert!(text.contains(jb), "the 6.1 JIT's BPF_JLT case");
            text = text.replacen(jb, "jmp_cond = X86_JAE;", 1);
        }
        let path = dir.path().join("file.c");
        std::fs::write(&path, &text).expect("the file is written");
        let blob = git(&repo, &["hash-object", "-w", path_str(&path)], &index);
        git(&repo, &["read-tree", &parent], &index);
        let info = format!("100644,{blob},{file}");
        git(&repo, &["update-index", "--cacheinfo", &info], &index);
        let tree = git(&repo, &["write-tree"], &index);
        let message = format!("commit {i}");
        parent = git(
            &repo,
            &["commit-tree", &tree, "-p", &parent, "-m", &message],
            &index,
        );
        commits.push(parent.clone());
    }

    let output = xtask(&[
        "track",
        "--bisect",
        "test_bpf JMP32_JLT_K: Small immediate [jit]",
        "--arch",
        "x86_64",
        "--kernel-source",
        path_str(&repo),
        "--good",
        &good,
        "--bad",
        &parent,
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", show(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains(&format!("first bad commit: {} commit 5", commits[4])),
        "{}",
        show(&output)
    );
    // log2(8) = 3.
    assert!(
        stdout.contains("3 builds for 8 commits"),
        "{}",
        show(&output)
    );

    // The bisect's worktree (1.5 GB) and build directory go with the repository, at the next
    // build: here one that finds its kernel built already.
    let gitdir = format!("gitdir: {}", repo.join("worktrees").display());
    let worktree = std::fs::read_dir(cache_dir().join("worktrees"))
        .expect("the cache has worktrees")
        .flatten()
        .map(|e| e.path())
        .find(|w| std::fs::read_to_string(w.join(".git")).is_ok_and(|t| t.starts_with(&gitdir)))
        .expect("the bisect's worktree is in the cache");
    let name = worktree.file_name().expect("a name").to_string_lossy();
    let build = cache_dir().join("build").join(format!("x86_64-{name}"));
    assert!(build.is_dir(), "{} is kept between builds", build.display());
    drop(dir);
    let output = xtask(&["kernel", "--arch", "x86_64"]);
    assert_eq!(output.status.code(), Some(0), "{}", show(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let why = [
        (&worktree, "its repository is gone"),
        (&build, "its tree is gone"),
    ];
    for (gone, why) in why {
        let said = format!("removed {}: {why}", gone.display());
        assert!(stderr.contains(&said), "{}", show(&output));
        assert!(!gone.exists(), "{} is removed", gone.display());
    }
}
