//! A guest's console and agent channel, any bytes at all: parsing never panics, and cutting
//! the bytes into reads anywhere gives the same lines.
#![no_main]

use libfuzzer_sys::fuzz_target;
use runner::console::LineSplitter;
use runner::plan::Plan;
use runner::report::Mode;
use runner::test_bpf::Suite;

fuzz_target!(|data: &[u8]| {
    let Ok(plan) = Plan::new(&Suite::ALL, &[Mode::Jit, Mode::Interp], None) else {
        return;
    };
    let _ = runner::session::replay(data, &plan);
    let _ = runner::agent::parse_output(data);

    let mut whole = Vec::new();
    let mut splitter = LineSplitter::new();
    splitter.push(data, |line| whole.push(line.to_vec()));
    splitter.finish(|line| whole.push(line.to_vec()));
    let mut chunked = Vec::new();
    let mut splitter = LineSplitter::new();
    let cut = data.first().map_or(1, |&b| usize::from(b % 7) + 1);
    for chunk in data.chunks(cut) {
        splitter.push(chunk, |line| chunked.push(line.to_vec()));
    }
    splitter.finish(|line| chunked.push(line.to_vec()));
    assert_eq!(whole, chunked);
    for line in &whole {
        let _ = runner::splat::detect(runner::console::text(line));
    }
});
