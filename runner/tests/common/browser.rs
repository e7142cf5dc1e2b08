//! Debian's headless Chromium, for the tests that check a page in a real browser.
//!
//! Chromium is required, not optional: without `/usr/bin/chromium` these tests fail and name
//! the package to install.

use std::fs::File;
use std::io::BufReader;
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const CHROMIUM: &str = "/usr/bin/chromium";

/// Far more than a page takes, even on a loaded machine.
const TIMEOUT: Duration = Duration::from_secs(60);

/// One browser at a time: the machine running the tests may be small and shared.
static BROWSER: Mutex<()> = Mutex::new(());

/// Writes `page` as `name` in a new directory, which lives as long as the result, and
/// returns its `file://` URL.
pub fn write_page(name: &str, page: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join(name);
    std::fs::write(&path, page).expect("the page is written");
    let url = format!("file://{}", path.display());
    (dir, url)
}

/// Runs headless Chromium on `url` and returns what it printed on stdout; kills it when it
/// runs over [`TIMEOUT`].
pub fn chromium(args: &[&str], url: &str) -> String {
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: install Debian's `chromium` package \
         (apt-get install --no-install-recommends chromium)"
    );
    let _one = BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().expect("a temporary directory");
    let (out, err) = (dir.path().join("stdout"), dir.path().join("stderr"));
    let mut child = Command::new(CHROMIUM)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--force-device-scale-factor=1",
        ])
        .arg(format!(
            "--user-data-dir={}",
            dir.path().join("profile").display()
        ))
        .args(args)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(File::create(&out).expect("a file for stdout"))
        .stderr(File::create(&err).expect("a file for stderr"))
        // Its own group, so that a timeout ends its helper processes too.
        .process_group(0)
        .spawn()
        .expect("cannot start chromium");
    let stderr = || std::fs::read_to_string(&err).unwrap_or_default();
    let deadline = Instant::now() + TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("cannot wait for chromium") {
            break status;
        }
        if Instant::now() > deadline {
            let group = rustix::process::Pid::from_child(&child);
            let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
            let _ = child.wait();
            panic!("chromium ran over {TIMEOUT:?}; its stderr:\n{}", stderr());
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "chromium failed: {status}\n{}", stderr());
    std::fs::read_to_string(&out).expect("chromium's stdout is UTF-8")
}

/// A screenshot of `url` taken with `window` (`--window-size=W,H`): its width, height and
/// RGB pixels.
pub fn screenshot(url: &str, window: &str) -> (usize, usize, Vec<[u8; 3]>) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let png = dir.path().join("shot.png");
    let shot = format!("--screenshot={}", png.display());
    chromium(&[&shot, window, "--hide-scrollbars"], url);
    let file = File::open(&png).expect("chromium wrote the screenshot");
    let mut decoder = png::Decoder::new(BufReader::new(file));
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder.read_info().expect("the screenshot is a PNG");
    let size = reader
        .output_buffer_size()
        .expect("a screenshot fits in memory");
    let mut buffer = vec![0; size];
    let info = reader.next_frame(&mut buffer).expect("the PNG decodes");
    let step = match info.color_type {
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        other => panic!("a colour screenshot, not {other:?}"),
    };
    let pixels = buffer[..info.buffer_size()]
        .chunks_exact(step)
        .map(|p| [p[0], p[1], p[2]])
        .collect();
    (info.width as usize, info.height as usize, pixels)
}
